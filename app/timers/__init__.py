"""Timers domain."""
