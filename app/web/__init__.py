"""Server-rendered pages."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    """Register the page blueprints."""
    return None
