"""Tasks domain."""
