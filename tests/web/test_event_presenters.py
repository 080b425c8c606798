"""Every event type a case's history can hold has its presenter (app/web/events.py): a new event type
written by the code without one fails here, so the case page never falls back to a code."""

from __future__ import annotations

import re
from pathlib import Path

from app.web.events import PRESENTERS

APP = Path(__file__).resolve().parents[2] / "app"
# Case events are appended with record_event(case=..., type="...") or, by the step flow, as tuples.
CASE_EVENT = re.compile(r'record_event\(\s*case=[^)]*?type="(?P<a>[a-z_]+)"|\(\("(?P<b>[a-z_]+)", \{'
                        r'|\("(?P<c>(?:case|task)_[a-z_]+)", \{')


def case_event_types() -> set[str]:
    found: set[str] = set()
    for path in APP.rglob("*.py"):
        for match in CASE_EVENT.finditer(path.read_text()):
            found.add(match.group("a") or match.group("b") or match.group("c"))
    return found


def test_the_scan_finds_the_known_case_events() -> None:
    found = case_event_types()
    assert {"case_opened", "task_completed", "timer_fired", "parts_reserved", "attachment_added"} <= found
    assert "user_created" not in found  # user events belong to the users' history, not a case's


def test_every_case_event_type_has_a_presenter() -> None:
    missing = sorted(case_event_types() - PRESENTERS.keys())
    assert not missing, f"case events without a presenter in app/web/events.py: {', '.join(missing)}"
