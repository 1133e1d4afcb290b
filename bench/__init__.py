"""rebalance-lab's harness: launcher, metrics, scenarios, checker, reports and the CLI."""

__version__ = "0.1.0"
