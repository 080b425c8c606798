"""Benchmarks: the SpiffWorkflow floor, the system through HTTP, and where a request's time goes."""
