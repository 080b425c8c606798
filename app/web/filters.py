"""Jinja filters of the pages: UTC times, the deadline clock, roles and events in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from markupsafe import Markup

from app.auth import ROLE_NAMES
from app.engine import now

SOON = timedelta(hours=4)

EVENT_WORDS = {
    "case_opened": "Case opened",
    "case_closed": "Case closed",
    "case_cancelled": "Case cancelled",
    "task_ready": "Task ready",
    "task_claimed": "Task claimed",
    "task_completed": "Task completed",
    "task_cancelled": "Task cancelled",
    "timer_scheduled": "Deadline set",
    "timer_fired": "Deadline reached",
    "timer_cancelled": "Deadline cleared",
}

SUMMARY_LABELS = {
    "outcome": "Outcome",
    "fault_class": "Fault class",
    "cause": "Cause",
    "support_mode": "Support mode",
    "under_warranty": "Under warranty at notice time",
    "free_of_charge": "Free of charge",
}


def _as_datetime(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO string (event payloads hold strings)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_utc(value: Any) -> str:
    """``2026-03-02 08:00 UTC``; an empty value is a dash, text that is no time is shown as it is."""
    moment = _as_datetime(value)
    if moment is None:
        return "—" if value in (None, "") else str(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def format_date(value: date | None) -> str:
    """``2027-02-28``, or a dash."""
    return value.isoformat() if value else "—"


def format_duration(delta: timedelta) -> str:
    """A span as staff read it: ``3 h 20 min``, ``45 min``, ``2 d 5 h``; whole minutes, rounded down."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return "less than 1 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 2:
        return f"{days} d {hours} h" if hours else f"{days} d"
    hours += days * 24
    parts = [f"{hours} h"] if hours else []
    if mins or not hours:
        parts.append(f"{mins} min")
    return " ".join(parts)


@dataclass(frozen=True)
class DeadlineClock:
    """How a deadline stands at one moment: the words and the CSS state."""

    text: str
    state: str  # overdue | soon | ok | none

    @property
    def css_class(self) -> str:
        """The classes of the clock's element."""
        return f"deadline deadline-{self.state}"


def deadline_clock(due_at: datetime | None, current: datetime | None = None) -> DeadlineClock:
    """``due in 3 h 20 min`` or ``overdue by 1 h 5 min``, measured on the system clock."""
    if due_at is None:
        return DeadlineClock("none", "none")
    left = due_at - (current or now())
    if left <= timedelta(0):
        return DeadlineClock(f"overdue by {format_duration(left)}", "overdue")
    return DeadlineClock(f"due in {format_duration(left)}", "soon" if left < SOON else "ok")


def render_deadline(due_at: datetime | None) -> Markup:
    """The deadline clock as an element the page script can keep ticking from ``data-due-at``."""
    clock = deadline_clock(due_at)
    if due_at is None:
        return Markup('<span class="{}">{}</span>').format(clock.css_class, clock.text)
    return Markup('<span class="{}" data-due-at="{}" title="Due {}">{}</span>').format(
        clock.css_class, due_at.astimezone(UTC).isoformat(), format_utc(due_at), clock.text)


def role_name(role: str | None) -> str:
    """The role in words (``engineer`` → Technical support engineer)."""
    if not role:
        return "Any staff"
    return ROLE_NAMES.get(role, role)


def event_words(event_type: str) -> str:
    """An event type in words (``task_completed`` → Task completed)."""
    return EVENT_WORDS.get(event_type) or event_type.replace("_", " ").capitalize()


def humanize(value: Any) -> str:
    """A process value in words: booleans as Yes/No, ``on_site`` as ``on site``."""
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value.replace("_", " ")
    return str(value)


def register_filters(app: Flask) -> None:
    """Install the filters on the app's Jinja environment."""
    app.add_template_filter(format_utc, "utc")
    app.add_template_filter(format_date, "day")
    app.add_template_filter(render_deadline, "deadline")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(role_name, "role_name")
    app.add_template_filter(event_words, "event_words")
    app.add_template_filter(humanize, "humanize")
