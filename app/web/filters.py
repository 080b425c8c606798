"""Jinja filters of the pages: times in the department's zone, the deadline clock, roles and events in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, has_app_context
from markupsafe import Markup

from app.auth import ROLE_NAMES
from app.config import DEFAULT_TIME_ZONE
from app.engine import now

SOON = timedelta(hours=4)

EVENT_WORDS = {
    "case_opened": "Case opened",
    "case_closed": "Case closed",
    "case_cancelled": "Case cancelled",
    "task_ready": "Task ready",
    "task_claimed": "Task claimed",
    "task_released": "Task released",
    "task_assigned": "Task assigned",
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
    "charge_reason": "Why it is charged or free",
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


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def department_zone() -> ZoneInfo:
    """The department's time zone (setting ``SERVICECASE_TIME_ZONE``, checked at start-up)."""
    name = current_app.config.get("TIME_ZONE") if has_app_context() else None
    return _zone(name or DEFAULT_TIME_ZONE)


def format_time(value: Any) -> str:
    """A moment in the department's time zone, ``2026-03-02 16:00``: the one way every page shows a time.

    An empty value is a dash; text that is no time is shown as it is. The zone is named once per page (the
    footer), not after every time."""
    moment = _as_datetime(value)
    if moment is None:
        return "—" if value in (None, "") else str(value)
    return moment.astimezone(department_zone()).strftime("%Y-%m-%d %H:%M")


format_utc = format_time  # the former name (times were shown in UTC); kept for existing imports


def zone_offset(moment: datetime | None = None) -> str:
    """The department zone's offset from UTC at ``moment`` (now by default): ``UTC+8``, ``UTC-3:30``, ``UTC``."""
    offset = (moment or now()).astimezone(department_zone()).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")


def zone_note() -> str:
    """What the footer says about the times shown: ``Times in Asia/Shanghai (UTC+8)``."""
    return f"Times in {department_zone().key} ({zone_offset()})"


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


# The clock's sentences, whole (a translation replaces each sentence, never pieces of one); {span} is the
# remaining or exceeded time, filled in by the server and again by clock.js as the clock ticks.
DUE_TEXT = "due in {span}"
OVERDUE_TEXT = "overdue by {span}"
MISSED_TEXT = "{deadline} missed by {span}"
NO_DEADLINE_TEXT = "none"


@dataclass(frozen=True)
class DeadlineClock:
    """How a deadline stands at one moment: the words and the CSS state."""

    text: str
    state: str  # overdue | soon | ok | none

    @property
    def css_class(self) -> str:
        """The classes of the clock's element; an overdue one also has ``overdue`` (red, and said in words)."""
        return f"deadline deadline-{self.state}" + (" overdue" if self.state == "overdue" else "")


def _clock_state(left: timedelta) -> str:
    if left <= timedelta(0):
        return "overdue"
    return "soon" if left < SOON else "ok"


def deadline_clock(due_at: datetime | None, current: datetime | None = None) -> DeadlineClock:
    """``due in 3 h 20 min`` or ``overdue by 1 h 5 min``, measured on the system clock."""
    if due_at is None:
        return DeadlineClock(NO_DEADLINE_TEXT, "none")
    left = due_at - (current or now())
    state = _clock_state(left)
    text = OVERDUE_TEXT if state == "overdue" else DUE_TEXT
    return DeadlineClock(text.format(span=format_duration(left)), state)


def _clock_element(due_at: datetime, text: str, css_class: str, *, due_text: str, overdue_text: str) -> Markup:
    """A ticking clock: clock.js rewrites the text from ``data-due`` and the page's ``data-now`` every 30 s."""
    return Markup('<span class="{}" data-due="{}" data-text-due="{}" data-text-overdue="{}" title="{}">{}</span>'
                  ).format(css_class, due_at.astimezone(UTC).isoformat(), due_text, overdue_text,
                           f"Due {format_time(due_at)}", text)


def render_deadline(due_at: datetime | None) -> Markup:
    """The deadline clock of a task: the remaining time, or how long ago it passed (class ``overdue``)."""
    clock = deadline_clock(due_at)
    if due_at is None:
        return Markup('<span class="{}">{}</span>').format(clock.css_class, clock.text)
    return _clock_element(due_at, clock.text, clock.css_class, due_text=DUE_TEXT, overdue_text=OVERDUE_TEXT)


def render_missed(missed: Any) -> Markup:
    """Which deadline an escalation is about and by how much it was missed: ticking while the guarded work
    is still open, fixed once it is done (``missed`` is an app.tasks.service.MissedDeadline)."""
    if missed is None:
        return Markup("")
    end = missed.done_at or now()
    text = MISSED_TEXT.format(deadline=missed.name, span=format_duration(end - missed.due_at))
    late = end > missed.due_at
    css_class = "deadline missed " + ("deadline-overdue overdue" if late else "deadline-ok")
    if missed.done_at is not None:
        return Markup('<span class="{}" title="{}">{}</span>').format(
            css_class, f"Due {format_time(missed.due_at)}", text)
    template = MISSED_TEXT.replace("{deadline}", str(missed.name))  # the name is fixed; only {span} ticks
    return _clock_element(missed.due_at, text, css_class, due_text=template, overdue_text=template)


DEADLINE_MET_TEXT = "Completed {margin} before the deadline “{deadline}”"
DEADLINE_MISSED_TEXT = "Completed {margin} late: the deadline “{deadline}” was missed"


def deadline_outcome(outcome: Any) -> str:
    """Whether a completed task kept its promise, from the ``deadline`` of its ``task_completed`` event
    (``{"name", "due_at", "margin_ms", "met"}``): ``Completed 2 h 40 min before the deadline “24 h diagnosis
    deadline”`` or ``Completed 5 h late: …``; empty when the task had no deadline."""
    if not isinstance(outcome, dict) or not isinstance(outcome.get("margin_ms"), int):
        return ""
    margin = format_duration(timedelta(milliseconds=outcome["margin_ms"]))
    name = str(outcome.get("name") or "deadline")
    template = DEADLINE_MET_TEXT if outcome.get("met") else DEADLINE_MISSED_TEXT
    return template.format(margin=margin, deadline=name)


def role_name(role: str | tuple[str, ...] | list[str] | None) -> str:
    """The role in words (``engineer`` → Technical support engineer); several roles joined by "or"."""
    if not role:
        return "Any staff"
    if not isinstance(role, str):
        return " or ".join(ROLE_NAMES.get(each, each) for each in role)
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
    app.add_template_filter(format_time, "time")  # every time shown, in the department's zone
    app.add_template_filter(format_time, "utc")  # the former name of the same filter, for existing templates
    app.add_template_filter(format_date, "day")
    app.add_template_filter(render_deadline, "deadline")
    app.add_template_filter(render_missed, "missed_deadline")
    app.add_template_filter(deadline_outcome, "deadline_outcome")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(role_name, "role_name")
    app.add_template_filter(event_words, "event_words")
    app.add_template_filter(humanize, "humanize")
