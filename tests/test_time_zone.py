"""The department's time zone: a setting checked at start-up, used by the one filter every page time goes
through, and named in the footer; storage stays UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask

from app.config import ConfigError, check_time_zone, load_config
from app.web.filters import format_time, zone_note, zone_offset

MOMENT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def test_the_default_zone_is_asia_shanghai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICECASE_TIME_ZONE", raising=False)
    assert load_config({"ENV_NAME": "testing"})["TIME_ZONE"] == "Asia/Shanghai"


def test_the_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICECASE_TIME_ZONE", " Europe/Berlin ")
    assert load_config({"ENV_NAME": "testing"})["TIME_ZONE"] == "Europe/Berlin"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "   ", "../../etc/passwd", "+08:00"])
def test_an_unknown_zone_stops_the_start_with_a_clear_config_error(monkeypatch: pytest.MonkeyPatch,
                                                                   zone: str) -> None:
    monkeypatch.setenv("SERVICECASE_TIME_ZONE", zone)
    with pytest.raises(ConfigError, match="SERVICECASE_TIME_ZONE"):
        load_config({"ENV_NAME": "testing"})


@pytest.mark.parametrize("zone", ["Asia/Shanghai\x00", None, 8])
def test_a_zone_no_environment_can_carry_is_refused_too(zone: object) -> None:
    with pytest.raises(ConfigError, match="SERVICECASE_TIME_ZONE"):
        check_time_zone(zone)


@pytest.mark.parametrize(("zone", "shown", "offset"), [
    ("Asia/Shanghai", "2026-03-02 16:00", "UTC+8"),
    ("UTC", "2026-03-02 08:00", "UTC"),
    ("Asia/Kolkata", "2026-03-02 13:30", "UTC+5:30"),
    ("America/St_Johns", "2026-03-02 04:30", "UTC-3:30"),
])
def test_times_are_shown_in_the_department_zone(app: Flask, monkeypatch: pytest.MonkeyPatch, zone: str,
                                                 shown: str, offset: str) -> None:
    monkeypatch.setitem(app.config, "TIME_ZONE", zone)
    with app.app_context():
        assert format_time(MOMENT) == shown
        assert format_time(MOMENT.isoformat()) == shown  # event payloads hold ISO strings
        assert zone_offset(MOMENT) == offset
        assert zone_note().startswith(f"Times in {zone} (")


def test_non_times_pass_through(app: Flask) -> None:
    with app.app_context():
        assert format_time(None) == "—" and format_time("") == "—"
        assert format_time("not a time") == "not a time"
