"""Recurring processes: calendar-aware schedules read from a timer start event, one new case per occurrence.

A process such as the monthly inspection declares its rhythm in BPMN as a timer start event with a
``timeCycle`` (``"R/2026-01-01T01:00:00+08:00/P1M"``). SpiffWorkflow would run every cycle inside one
instance and freezes ``P1M`` into 31 days on first use, so the schedule drifts (ENGINE_NOTES, "Timers").
The parser therefore turns that start event into a plain one and this module owns the schedule:

- **Calendar arithmetic, always from the anchor.** Occurrence *n* is ``anchor + n × period``, computed
  afresh from the anchor (never by adding one period to the previous occurrence), with months and years
  added by the calendar in the anchor's own UTC offset and the day clamped to the month's length: from
  the 31st of January, one month is 28 February and two months are 31 March; the 1st stays the 1st;
  ``P3M`` is a calendar quarter. Weeks, days and times are fixed lengths. ``Rn`` means *n* occurrences
  (the anchor is the first, as in SpiffWorkflow); ``R`` alone means forever.
- **Read at deploy time.** ``sync_schedule`` evaluates the cycle (in the restricted environment: the
  expression is untrusted) when a new process version is stored and creates or updates the process's
  one ``Schedule``; an unreadable cycle refuses the deployment.
- **A new schedule owes nothing from before it existed.** Its first occurrence is the first one at or
  after the deploy time; when the anchor lies in the past, the occurrence of the period already running
  is *not* started (deploying is not an occurrence; open that case by hand if it is wanted). The same
  holds when a schedule that a cycle-less version had deactivated becomes active again.
- **A new version of a scheduled process keeps its place.** Started occurrences are kept; the next one
  is the first occurrence of the (possibly changed) cycle that is strictly after the last started one
  and not before the old schedule's position (its ``next_due_at`` if that is already due, else now), so
  an unchanged cycle carries on exactly, owed occurrences stay owed, and a changed cycle does not invent
  owed work for the past.

**The downtime rule.** Every occurrence that fell due while the schedule was active is started exactly
once, late if need be: a monthly inspection or a quarter's return visits that was missed is still owed
under the service plan, so it is started rather than skipped, as its own case with ``reported_at`` = the
occurrence time (its deadlines therefore count from when it was due). Each call of
``start_due_occurrences`` starts at most ``MAX_CATCH_UP`` occurrences per schedule, oldest first, so a
long outage cannot flood the worklist in one go; the rest follow on the next sweeps. "Exactly once" is
the database's promise, not the scheduler's: a ``ScheduleOccurrence`` row with a unique
``(schedule_id, occurrence_at)`` is inserted in a savepoint before the case is opened, and a worker that
loses that race skips the occurrence. The schedule row is also locked (``FOR NO KEY UPDATE SKIP LOCKED``
on PostgreSQL; SQLite's single writer lock) so concurrent sweeps take turns rather than collide. An
occurrence whose case cannot be opened (its process fails to start) gives its claim back and is retried
on the next sweep without holding up the other schedules.

``arm_schedules`` puts a sweep job into RQ at every schedule's next occurrence so that it starts on time;
Redis only says when to look, the sweep decides what to start.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rq import Queue
from sqlalchemy import func, select

from app.engine import ProcessDefinitionError, now
from app.engine.restricted import RestrictedEnvironment
from app.extensions import db
from app.processes.models import ProcessVersion
from app.timers.models import Schedule, ScheduleOccurrence
from app.timers.scheduling import wall_time_for

log = logging.getLogger(__name__)

MAX_CATCH_UP = 3  # occurrences one call starts per schedule after downtime; the rest follow next sweep
SWEEP_JOB = "app.jobs.sweep_job"

_AVERAGE_MONTH = timedelta(days=365.2425 / 12)  # only to estimate where to start looking for an index
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")
_REPETITIONS = re.compile(r"R(\d*)")
_PERIOD = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")
_EXAMPLE = "R/2026-01-01T00:00:00+08:00/P1M"


# -- cycles ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cycle:
    """An ISO-8601 repeating interval, read calendar-aware: occurrence n is anchor + n × period."""

    anchor: datetime  # the first occurrence, in the UTC offset it was written with
    period: str  # the period as an ISO-8601 duration, e.g. P1M
    months: int  # the period's years and months, added by the calendar
    span: timedelta  # the period's weeks, days, hours, minutes and seconds, of fixed length
    repetitions: int | None  # how many occurrences; None: forever
    text: str  # the cycle as written, e.g. R/2026-01-01T00:00:00+08:00/P1M


def parse_cycle(value: str) -> Cycle:
    """Read ``R[n]/<start with UTC offset>/<period>``; raise ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"a cycle must be text such as {_EXAMPLE!r}, not {type(value).__name__}")
    text = value.strip()
    parts = text.split("/")
    if len(parts) != 3:
        raise ValueError(f"cycle {text!r} must have three parts, R[n]/start/period, with the start's UTC "
                         f"offset, e.g. {_EXAMPLE!r}")
    count, start, period = parts
    repeat = _REPETITIONS.fullmatch(count.upper())
    if repeat is None:
        raise ValueError(f"cycle {text!r} must begin with R (forever) or Rn (n occurrences), not {count!r}")
    repetitions = int(repeat.group(1)) if repeat.group(1) else None
    if repetitions == 0:
        raise ValueError(f"cycle {text!r} has R0: it would never start anything")
    if start.upper().startswith("P"):
        raise ValueError(f"cycle {text!r} needs a start date and time with a UTC offset before its period, "
                         f"e.g. {_EXAMPLE!r}")
    try:
        anchor = datetime.fromisoformat(start)
    except ValueError:
        raise ValueError(f"cycle {text!r}: {start!r} is not an ISO-8601 date and time") from None
    if anchor.tzinfo is None or anchor.utcoffset() is None:
        raise ValueError(f"cycle {text!r}: the start {start!r} has no UTC offset; write it with one, "
                         "such as +08:00 or Z, so the schedule does not depend on the server's zone")
    period = period.upper()
    if not period.startswith("P"):
        raise ValueError(f"cycle {text!r} must end with a period such as P1M ({parts[2]!r} is not one; "
                         "R/start/end is not supported)")
    match = _PERIOD.fullmatch(period)
    if match is None or period in ("P", "PT") or period.endswith("T"):
        raise ValueError(f"cycle {text!r}: {parts[2]!r} is not an ISO-8601 period of whole numbers such as "
                         "P1M, P3M, P1W, P1D or PT12H")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    span = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if not (years or months) and span <= timedelta(0):
        raise ValueError(f"cycle {text!r}: the period {parts[2]!r} is zero")
    return Cycle(anchor=anchor, period=period, months=years * 12 + months, span=span,
                 repetitions=repetitions, text=text)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _add_months(moment: datetime, months: int) -> datetime:
    """Move by whole calendar months, keeping the day unless the month is shorter (31 Jan + 1 = 28 Feb)."""
    year, month0 = divmod(moment.year * 12 + moment.month - 1 + months, 12)
    return moment.replace(year=year, month=month0 + 1, day=min(moment.day, _days_in_month(year, month0 + 1)))


def at_index(cycle: Cycle, n: int) -> datetime:
    # Always from the anchor: 31 Jan + 2 months is 31 Mar, not (31 Jan + 1 month) + 1 month = 28 Mar.
    return (_add_months(cycle.anchor, cycle.months * n) + cycle.span * n).astimezone(UTC)


def occurrence(cycle: Cycle, n: int) -> datetime:
    """Occurrence n (0 = the anchor) in UTC: anchor + n × period, months by the calendar in the anchor's offset."""
    if n < 0 or (cycle.repetitions is not None and n >= cycle.repetitions):
        limit = "forever" if cycle.repetitions is None else f"0..{cycle.repetitions - 1}"
        raise ValueError(f"cycle {cycle.text!r} has no occurrence {n} (occurrences: {limit})")
    return at_index(cycle, n)


def first_index(cycle: Cycle, moment: datetime, *, strictly_after: bool = False) -> int | None:
    """The first n whose occurrence is at or after ``moment`` (strictly after, if asked); None if none is left."""

    def reached(n: int) -> bool:
        at = at_index(cycle, n)
        return at > moment if strictly_after else at >= moment

    approximate = _AVERAGE_MONTH * cycle.months + cycle.span
    n = max(0, int((moment - cycle.anchor) / approximate) - 1)
    while n > 0 and reached(n - 1):
        n -= 1
    while not reached(n):
        n += 1
    return n if cycle.repetitions is None or n < cycle.repetitions else None


def occurrence_label(cycle: Cycle, at: datetime) -> str:
    """How people name an occurrence, in the anchor's offset: "March 2026", "2026 Q2", "2 March 2026"."""
    local = at.astimezone(cycle.anchor.tzinfo)
    month = _MONTH_NAMES[local.month - 1]
    if cycle.months and not cycle.span:
        if cycle.months % 12 == 0:
            return str(local.year)
        if cycle.months == 3:
            return f"{local.year} Q{(local.month - 1) // 3 + 1}"
        return f"{month} {local.year}"
    if not cycle.months and cycle.span % timedelta(days=1) == timedelta(0):
        return f"{local.day} {month} {local.year}"
    return f"{local.day} {month} {local.year} {local:%H:%M} (UTC{local:%z})"


# -- deploy time ------------------------------------------------------------------------------------
_environment: RestrictedEnvironment | None = None


def _evaluate(expression: str) -> Any:
    global _environment
    if _environment is None:
        _environment = RestrictedEnvironment()
    return _environment.evaluate(expression, {})


def read_cycle(expression: str, *, filename: str, element_id: str) -> Cycle:
    """Evaluate a timer start event's timeCycle (untrusted: restricted) and parse it, or refuse the file."""

    def refuse(reason: str) -> ProcessDefinitionError:
        return ProcessDefinitionError(f"the timer start event's timeCycle {expression.strip()[:120]!r} {reason}",
                                      filename=filename, element_id=element_id)

    try:
        value = _evaluate(expression)
    except NameError as exc:
        raise refuse(f"cannot be evaluated ({exc}): there is no process data before a process starts, so "
                     f"write the cycle as a quoted literal such as '\"{_EXAMPLE}\"'") from None
    except Exception as exc:  # noqa: BLE001 - any failure of untrusted code refuses the file
        raise refuse(f"cannot be evaluated: {exc}") from None
    if not isinstance(value, str):
        raise refuse(f"gives {type(value).__name__}, not text such as \"{_EXAMPLE}\"")
    if len(value.strip()) > 200:
        raise refuse("gives a cycle longer than 200 characters")
    try:
        return parse_cycle(value)
    except ValueError as exc:
        raise refuse(f"is not a usable cycle: {exc}") from None


def sync_schedule(version: ProcessVersion) -> Schedule | None:
    """Bring the process's schedule in line with a newly stored version's timer start event (at deploy time)."""
    starts = [t for t in (version.catalogue or {}).get("timers", {}).values() if t.get("placement") == "start"]
    cycle: Cycle | None = None
    if len(starts) > 1:
        raise ProcessDefinitionError("a process can have only one timer start event",
                                     filename=version.filename, element_id=starts[1]["id"])
    if starts:
        timer = starts[0]
        if timer["kind"] != "cycle":
            raise ProcessDefinitionError(
                "a timer start event must use timeCycle (the app starts one case per occurrence of the "
                f"cycle); {timer['kind']} start timers are not supported",
                filename=version.filename, element_id=timer["id"])
        cycle = read_cycle(timer["expression"], filename=version.filename, element_id=timer["id"])

    # Everything is checked; only now is anything changed (the deploy is all or nothing).
    current = now()
    schedule = db.session.scalar(select(Schedule).where(Schedule.process_id == version.process_id)
                                 .with_for_update())
    if cycle is None:
        if schedule is not None and schedule.active:
            schedule.active, schedule.next_due_at, schedule.updated_at = False, None, current
            db.session.flush()
        return schedule

    last_started = None
    if schedule is not None:
        last_started = db.session.scalar(select(func.max(ScheduleOccurrence.occurrence_at))
                                         .where(ScheduleOccurrence.schedule_id == schedule.id))
    if schedule is None or not schedule.active:
        floor = current  # a new (or revived) schedule owes nothing from before it existed
    else:
        floor = min(schedule.next_due_at or current, current)  # keep the place, including owed occurrences
    n = first_index(cycle, floor)
    if n is not None and last_started is not None and at_index(cycle, n) <= last_started:
        n = first_index(cycle, last_started, strictly_after=True)
    if schedule is None:
        schedule = Schedule(process_id=version.process_id)
        db.session.add(schedule)
    schedule.process_version_id = version.id
    schedule.timer_spec = starts[0]["id"]
    schedule.expression = cycle.text
    schedule.anchor_at = cycle.anchor.astimezone(UTC)
    schedule.period = cycle.period
    schedule.repetitions = cycle.repetitions
    schedule.next_due_at = at_index(cycle, n) if n is not None else None
    schedule.active = n is not None
    schedule.updated_at = current
    db.session.flush()
    return schedule


# -- RQ ---------------------------------------------------------------------------------------------
def arm_schedules(queue: Queue) -> int:
    """Schedule a sweep job at every active schedule's next (future) occurrence; returns how many were armed."""
    current = now()
    armed = 0
    for schedule in db.session.scalars(select(Schedule).where(Schedule.active.is_(True),
                                                              Schedule.next_due_at > current)):
        assert schedule.next_due_at is not None
        n = first_index(parse_cycle(schedule.expression), schedule.next_due_at)
        # Deterministic id: arming again (every sweep) overwrites the same job. Occurrences already due
        # are not armed: the sweep that is running starts them, and the next sweep the rest.
        queue.enqueue_at(wall_time_for(schedule.next_due_at), SWEEP_JOB, job_id=f"schedule-{schedule.id}-{n}",
                         result_ttl=3600, failure_ttl=7 * 24 * 3600,
                         description=f"start {schedule.process_id} occurrence {n}")
        armed += 1
    return armed
