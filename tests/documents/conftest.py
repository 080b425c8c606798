"""The documents tests walk cases through the JSON API: its fixtures."""

from tests.api.conftest import api, demo_equipment

__all__ = ["api", "demo_equipment"]
