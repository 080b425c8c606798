"""Jinja filters of the pages: times in the department's zone, the deadline clock, roles and events in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app, has_app_context
from flask_babel import gettext, lazy_gettext
from markupsafe import Markup

from app.config import DEFAULT_TIME_ZONE
from app.engine import now

SOON = timedelta(hours=4)

# Every word below is translated when a page shows it (lazy_gettext: these are built at import time).
EVENT_WORDS = {
    "case_opened": lazy_gettext("Case opened"),
    "case_closed": lazy_gettext("Case closed"),
    "case_cancelled": lazy_gettext("Case cancelled"),
    "task_ready": lazy_gettext("Task ready"),
    "task_claimed": lazy_gettext("Task claimed"),
    "task_released": lazy_gettext("Task released"),
    "task_assigned": lazy_gettext("Task assigned"),
    "task_completed": lazy_gettext("Task completed"),
    "task_cancelled": lazy_gettext("Task cancelled"),
    "timer_scheduled": lazy_gettext("Deadline set"),
    "timer_fired": lazy_gettext("Deadline reached"),
    "timer_cancelled": lazy_gettext("Deadline cleared"),
    "attachment_added": lazy_gettext("Attachment added"),
}

SUMMARY_LABELS = {
    "outcome": lazy_gettext("Outcome"),
    "fault_class": lazy_gettext("Fault class"),
    "cause": lazy_gettext("Cause"),
    "support_mode": lazy_gettext("Support mode"),
    "under_warranty": lazy_gettext("Under warranty at notice time"),
    "free_of_charge": lazy_gettext("Free of charge"),
    "charge_reason": lazy_gettext("Why it is charged or free"),
}

# The roles in words (app.auth.ROLE_NAMES holds the same in English, for the CLI and the services).
ROLE_WORDS = {
    "agent": lazy_gettext("Customer service agent"),
    "engineer": lazy_gettext("Technical support engineer"),
    "regional_engineer": lazy_gettext("Regional engineer"),
    "technical_dept": lazy_gettext("Technical department"),
    "supervisor": lazy_gettext("Supervisor"),
    "warehouse": lazy_gettext("Warehouse keeper"),
    "process_owner": lazy_gettext("Process owner"),
    "admin": lazy_gettext("Administrator"),
    "auditor": lazy_gettext("Auditor"),
}
CHANNEL_WORDS = {"phone": lazy_gettext("Telephone"), "email": lazy_gettext("E-mail"), "fax": lazy_gettext("Fax"),
                 "web": lazy_gettext("Web"), "schedule": lazy_gettext("Recurring schedule"),
                 "case": lazy_gettext("Another case")}
PRIORITY_WORDS = {"normal": lazy_gettext("Normal"), "high": lazy_gettext("High"),
                  "emergency": lazy_gettext("Emergency (first-level fault)")}
CASE_STATUS_WORDS = {"open": lazy_gettext("Open"), "closed": lazy_gettext("Closed"),
                     "cancelled": lazy_gettext("Cancelled")}
TASK_STATE_WORDS = {"ready": lazy_gettext("Ready"), "completed": lazy_gettext("Completed"),
                    "cancelled": lazy_gettext("Cancelled")}
TIMER_STATE_WORDS = {"waiting": lazy_gettext("waiting"), "fired": lazy_gettext("fired"),
                     "failed": lazy_gettext("failed"), "cancelled": lazy_gettext("cancelled")}
# The case diagram's legend (app.flows.diagram.STATE_WORDS, in the page's language).
DIAGRAM_STATE_WORDS = {
    "done": lazy_gettext("Completed"),
    "active": lazy_gettext("Active: a task ready for someone, or a deadline running"),
    "waiting": lazy_gettext("Waiting: reached, waiting for what runs inside it or for another branch"),
}
# The kinds of attachment (app.attachments.service.ALLOWED_TYPES, in the page's language).
ATTACHMENT_TYPE_WORDS = {
    "application/pdf": lazy_gettext("PDF"),
    "image/png": lazy_gettext("PNG image"),
    "image/jpeg": lazy_gettext("JPEG image"),
    "image/tiff": lazy_gettext("TIFF image"),
    "image/gif": lazy_gettext("GIF image"),
    "image/webp": lazy_gettext("WebP image"),
    "text/plain": lazy_gettext("plain text"),
}
OVERDUE_WORDS = {"true": lazy_gettext("Overdue only"), "false": lazy_gettext("Not overdue")}
# The process values a case summary and the history show (outcome, fault class, cause, support mode): codes of
# the processes, shown in words; a code not listed here is shown with its underscores as spaces.
VALUE_WORDS = {
    "common": lazy_gettext("common"),
    "complex": lazy_gettext("complex"),
    "remote": lazy_gettext("remote"),
    "on_site": lazy_gettext("on site"),
    "quality": lazy_gettext("quality"),
    "natural_damage": lazy_gettext("natural damage"),
    "design": lazy_gettext("design"),
    "wear": lazy_gettext("wear"),
    "misuse": lazy_gettext("misuse"),
    "external": lazy_gettext("external"),
    "unknown": lazy_gettext("unknown"),
    "quote_declined": lazy_gettext("quote declined"),
    "repaired_remotely": lazy_gettext("repaired remotely"),
    "repaired_on_site": lazy_gettext("repaired on site"),
    "replaced": lazy_gettext("replaced"),
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
    return gettext("Times in %(zone)s (%(offset)s)", zone=department_zone().key, offset=zone_offset())


def format_date(value: date | None) -> str:
    """``2027-02-28``, or a dash."""
    return value.isoformat() if value else "—"


def format_duration(delta: timedelta) -> str:
    """A span as staff read it: ``3 h 20 min``, ``45 min``, ``2 d 5 h``; whole minutes, rounded down."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 1:
        return gettext("less than 1 min")
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days >= 2:
        return (gettext("%(days)s d %(hours)s h", days=days, hours=hours) if hours
                else gettext("%(days)s d", days=days))
    hours += days * 24
    parts = [gettext("%(hours)s h", hours=hours)] if hours else []
    if mins or not hours:
        parts.append(gettext("%(minutes)s min", minutes=mins))
    return " ".join(parts)


def duration_words() -> dict[str, str]:
    """The units of a span for clock.js (``data-text-*`` of the page's body), so the clocks tick in the page's
    language: {days}, {hours}, {minutes} are filled in by the script."""
    return {"less-than-minute": gettext("less than 1 min"),
            "days-hours": gettext("%(days)s d %(hours)s h", days="{days}", hours="{hours}"),
            "days": gettext("%(days)s d", days="{days}"),
            "hours": gettext("%(hours)s h", hours="{hours}"),
            "minutes": gettext("%(minutes)s min", minutes="{minutes}")}


# The clock's sentences, whole (a translation replaces each sentence, never pieces of one); {span} is the
# remaining or exceeded time, filled in by the server and again by clock.js as the clock ticks. These are the
# English ones; the page's language has its own (due_text() and the others below).
DUE_TEXT = "due in {span}"
OVERDUE_TEXT = "overdue by {span}"
MISSED_TEXT = "{deadline} missed by {span}"
NO_DEADLINE_TEXT = "none"


def due_text() -> str:
    """``due in {span}`` in the page's language."""
    return gettext("due in %(span)s", span="{span}")


def overdue_text() -> str:
    """``overdue by {span}`` in the page's language."""
    return gettext("overdue by %(span)s", span="{span}")


def missed_text() -> str:
    """``{deadline} missed by {span}`` in the page's language."""
    return gettext("%(deadline)s missed by %(span)s", deadline="{deadline}", span="{span}")


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
        return DeadlineClock(gettext("none"), "none")
    left = due_at - (current or now())
    state = _clock_state(left)
    text = overdue_text() if state == "overdue" else due_text()
    return DeadlineClock(text.replace("{span}", format_duration(left)), state)


def _clock_element(due_at: datetime, text: str, css_class: str, *, due_text: str, overdue_text: str) -> Markup:
    """A ticking clock: clock.js rewrites the text from ``data-due`` and the page's ``data-now`` every 30 s."""
    return Markup('<span class="{}" data-due="{}" data-text-due="{}" data-text-overdue="{}" title="{}">{}</span>'
                  ).format(css_class, due_at.astimezone(UTC).isoformat(), due_text, overdue_text,
                           gettext("Due %(time)s", time=format_time(due_at)), text)


def render_deadline(due_at: datetime | None) -> Markup:
    """The deadline clock of a task: the remaining time, or how long ago it passed (class ``overdue``)."""
    clock = deadline_clock(due_at)
    if due_at is None:
        return Markup('<span class="{}">{}</span>').format(clock.css_class, clock.text)
    return _clock_element(due_at, clock.text, clock.css_class, due_text=due_text(), overdue_text=overdue_text())


def render_missed(missed: Any) -> Markup:
    """Which deadline an escalation is about and by how much it was missed: ticking while the guarded work
    is still open, fixed once it is done (``missed`` is an app.tasks.service.MissedDeadline)."""
    if missed is None:
        return Markup("")
    end = missed.done_at or now()
    template = missed_text().replace("{deadline}", str(missed.name))  # the name is fixed; only {span} ticks
    text = template.replace("{span}", format_duration(end - missed.due_at))
    late = end > missed.due_at
    css_class = "deadline missed " + ("deadline-overdue overdue" if late else "deadline-ok")
    if missed.done_at is not None:
        return Markup('<span class="{}" title="{}">{}</span>').format(
            css_class, gettext("Due %(time)s", time=format_time(missed.due_at)), text)
    return _clock_element(missed.due_at, text, css_class, due_text=template, overdue_text=template)


DEADLINE_MET_TEXT = "Completed {margin} before the deadline “{deadline}”"  # in English; see deadline_outcome
DEADLINE_MISSED_TEXT = "Completed {margin} late: the deadline “{deadline}” was missed"


def deadline_outcome(outcome: Any) -> str:
    """Whether a completed task kept its promise, from the ``deadline`` of its ``task_completed`` event
    (``{"name", "due_at", "margin_ms", "met"}``): ``Completed 2 h 40 min before the deadline “24 h diagnosis
    deadline”`` or ``Completed 5 h late: …``; empty when the task had no deadline."""
    if not isinstance(outcome, dict) or not isinstance(outcome.get("margin_ms"), int):
        return ""
    margin = format_duration(timedelta(milliseconds=outcome["margin_ms"]))
    name = str(outcome.get("name") or gettext("deadline"))
    if outcome.get("met"):
        return gettext("Completed %(margin)s before the deadline “%(deadline)s”", margin=margin, deadline=name)
    return gettext("Completed %(margin)s late: the deadline “%(deadline)s” was missed", margin=margin, deadline=name)


def role_name(role: str | tuple[str, ...] | list[str] | None) -> str:
    """The role in words (``engineer`` → Technical support engineer); several roles joined by "or"."""
    if not role:
        return gettext("Any staff")
    if not isinstance(role, str):
        return gettext(" or ").join(str(ROLE_WORDS.get(each, each)) for each in role)
    return str(ROLE_WORDS.get(role, role))


def event_words(event_type: str) -> str:
    """An event type in words (``task_completed`` → Task completed)."""
    return str(EVENT_WORDS.get(event_type) or event_type.replace("_", " ").capitalize())


def humanize(value: Any) -> str:
    """A process value in words: booleans as Yes/No, ``on_site`` as ``on site``."""
    if value is True:
        return gettext("Yes")
    if value is False:
        return gettext("No")
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return str(VALUE_WORDS.get(value) or value.replace("_", " "))
    return str(value)


def _words(table: dict[str, Any]) -> Any:
    def words(code: Any) -> str:
        return str(table.get(str(code), code if code is not None else "—"))
    return words


case_status_words = _words(CASE_STATUS_WORDS)
task_state_words = _words(TASK_STATE_WORDS)
timer_state_words = _words(TIMER_STATE_WORDS)
channel_words = _words(CHANNEL_WORDS)
priority_words = _words(PRIORITY_WORDS)


def warranty_words(warranty: Any) -> str:
    """A WarrantyStatus (app.registry) in the page's language: ``in warranty until 2027-02-28``."""
    day = warranty.day.isoformat() if getattr(warranty, "day", None) else ""
    if warranty.state == "in_warranty":
        return gettext("in warranty until %(day)s", day=day)
    if warranty.state == "out_of_warranty":
        return gettext("out of warranty since %(day)s", day=day)
    return gettext("warranty unknown")


def form_title(form: Any) -> str:
    """A record form's title in the page's language (``"title@zh"`` beside ``"title"``)."""
    from app.forms import localized_title

    return localized_title(form)


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
    app.add_template_filter(case_status_words, "case_status")
    app.add_template_filter(task_state_words, "task_state")
    app.add_template_filter(timer_state_words, "timer_state")
    app.add_template_filter(channel_words, "channel_words")
    app.add_template_filter(priority_words, "priority_words")
    app.add_template_filter(warranty_words, "warranty_words")
    app.add_template_filter(form_title, "form_title")
