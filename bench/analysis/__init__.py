"""What a history means: the ownership fold, replay, checks, metrics and the report."""
