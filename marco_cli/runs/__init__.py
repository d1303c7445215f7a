"""Runs, once searched: the history (SQLite), benchmarks over datasets, and training data
exported from saved trees."""
