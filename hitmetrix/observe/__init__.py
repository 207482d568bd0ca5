"""Watching a running node: Prometheus metrics, structured logs and the live feed of accepted batches."""
