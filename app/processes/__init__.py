"""Processes domain."""
