"""Aggregation: the quantile sketch, windows and their roll-up, and the locked storage behind record()."""
