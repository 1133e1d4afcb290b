"""One experiment: scenarios, the action table, the runner and its history, the demo and the join-cost probe."""
