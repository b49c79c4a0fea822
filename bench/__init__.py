"""Benchmarks against the anchors: ``python -m bench NAME [--quick]``."""
