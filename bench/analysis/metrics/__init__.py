"""Metrics of a run directory: episodes, samples, statistics and the derived tables."""
