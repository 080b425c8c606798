"""Starting the cases of recurring processes: one case per occurrence of a schedule, each occurrence once ever,
however many workers sweep at the same time (see app.timers.schedules for the schedules themselves)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.models import ProcessVersion
from app.timers.models import Schedule, ScheduleOccurrence
from app.timers.schedules import MAX_CATCH_UP, Cycle, at_index, first_index, occurrence_label, parse_cycle

log = logging.getLogger(__name__)


def start_due_occurrences(*, limit: int = 50) -> int:
    """Start one case per due occurrence of every active schedule, each occurrence once ever (flushes only)."""
    current = now()
    due = db.session.scalars(select(Schedule.id).where(Schedule.active.is_(True), Schedule.next_due_at <= current)
                             .order_by(Schedule.next_due_at, Schedule.id)).all()
    started = 0
    for schedule_id in due:
        if started >= limit:
            break
        started += _catch_up(schedule_id, current=current, budget=min(MAX_CATCH_UP, limit - started))
    return started


def _lock(schedule_id: int) -> Schedule | None:
    """The schedule, locked for this transaction; None when another worker holds it (PostgreSQL)."""
    query = select(Schedule).where(Schedule.id == schedule_id)
    # FOR NO KEY UPDATE: an occurrence row being inserted elsewhere holds KEY SHARE on its schedule
    # (foreign key), which must not make this schedule look busy.
    if db.session.scalar(query.with_for_update(skip_locked=True, key_share=True)) is None:
        return None
    # SQLite has no row locks: this no-op write takes its one writer lock, so sweeps take turns here;
    # reading again afterwards sees what the previous one left.
    db.session.execute(update(Schedule).where(Schedule.id == schedule_id).values(active=Schedule.active)
                       .execution_options(synchronize_session=False))
    return db.session.scalar(query.execution_options(populate_existing=True))


def _catch_up(schedule_id: int, *, current: datetime, budget: int) -> int:
    """Start up to ``budget`` due occurrences of one schedule, oldest first; return how many were started."""
    schedule = _lock(schedule_id)
    if schedule is None or not schedule.active or schedule.next_due_at is None or schedule.next_due_at > current:
        return 0
    cycle = parse_cycle(schedule.expression)
    version = db.session.get(ProcessVersion, schedule.process_version_id)
    name = version.name if version is not None else schedule.process_id
    n = first_index(cycle, schedule.next_due_at)
    started = 0
    while n is not None and started < budget:
        at = at_index(cycle, n)
        if at > current:
            break
        outcome = _start_occurrence(schedule, cycle, n, at, name=name, current=current)
        if outcome == "failed":
            break  # stay on this occurrence: the next sweep tries it again
        if outcome == "started":
            started += 1
        n = n + 1 if cycle.repetitions is None or n + 1 < cycle.repetitions else None
    schedule.next_due_at = at_index(cycle, n) if n is not None else None
    schedule.active = n is not None
    schedule.updated_at = current
    db.session.flush()
    return started


def _start_occurrence(schedule: Schedule, cycle: Cycle, n: int, at: datetime, *, name: str,
                      current: datetime) -> str:
    """Claim occurrence n and open its case in one savepoint: "started", "skipped" (claimed before) or "failed"."""
    savepoint = db.session.begin_nested()
    row = ScheduleOccurrence(schedule_id=schedule.id, sequence=n, occurrence_at=at, started_at=current)
    try:
        db.session.add(row)
        db.session.flush()
    except IntegrityError:
        savepoint.rollback()  # another worker started this occurrence: never twice
        return "skipped"
    label = occurrence_label(cycle, at)
    local = at.astimezone(cycle.anchor.tzinfo)
    description = f"Started by the schedule {cycle.text} for {label} (due {local.isoformat()})."
    if current - at > timedelta(minutes=5):
        description += f" Started late, at {current.isoformat()}, after downtime."
    try:
        case = open_case(actor=SYSTEM, process_id=schedule.process_id, reported_at=at, channel="schedule",
                         title=f"{name} — {label}", description=description,
                         data={"occurrence_at": at.isoformat(), "occurrence_label": label})
        row.case_id = case.id
        db.session.flush()
    except Exception:  # one failing process must not stop the other schedules
        savepoint.rollback()
        log.exception("schedule %s (%s): occurrence %s due %s could not be started; retried next sweep",
                      schedule.id, schedule.process_id, n, at.isoformat())
        return "failed"
    savepoint.commit()
    log.info("schedule %s (%s): started %s as case %s", schedule.id, schedule.process_id, label, case.number)
    return "started"
