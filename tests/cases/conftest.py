"""Case-level tests: the ``concurrency`` marker selects the live-server, many-client proofs."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``-m concurrency`` selects these tests (they run on every database)."""
    config.addinivalue_line("markers", "concurrency: real concurrent HTTP clients against a live server")
