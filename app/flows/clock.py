"""Moving the simulated clock (development and testing) and firing what came due (app.timers.simulation
keeps the clock's offset)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import Actor
from app.cases.models import Case
from app.engine import now
from app.errors import ConflictError, InvalidDataError
from app.extensions import db
from app.flows.timers import fire_or_fail
from app.tasks.models import WorkItem
from app.timers.models import ScheduleOccurrence, Timer
from app.timers.simulation import movable_clock, store_offset
from app.uow import unit_of_work

log = logging.getLogger(__name__)


def latest_recorded_moment() -> datetime | None:
    """The latest moment the history records (events, cases opened, timers ended, tasks completed...)."""
    moments = [db.session.scalar(select(func.max(column))) for column in (
        CaseEvent.occurred_at, Case.opened_at, Timer.ended_at, WorkItem.completed_at,
        ScheduleOccurrence.started_at)]
    found = [m for m in moments if m is not None]
    return max(found) if found else None


def advance_clock(*, by: timedelta, actor: Actor, fire: bool = True) -> tuple[datetime, list[int]]:
    """Move the simulated clock forward and fire every timer now due; returns (new now, fired timer ids)."""
    clock = movable_clock(actor)
    if by <= timedelta(0):
        raise InvalidDataError("the clock only moves forward", errors={"by": ["must be positive"]})
    if by > timedelta(days=3660):
        raise InvalidDataError("that is more than ten years", errors={"by": ["must be at most 3660 days"]})
    store_offset(actor=actor, add=by.total_seconds())
    clock.offset(fresh=True)
    return now(), (fire_due_timers() if fire else [])


def reset_clock(*, actor: Actor) -> datetime:
    """Put the simulated clock back on the wall clock, unless history is recorded later than that: the
    history would then be dated ahead of the clock, and new events would sort before older ones."""
    clock = movable_clock(actor)
    wall = datetime.now(UTC)
    latest = latest_recorded_moment()
    if latest is not None and latest > wall:
        raise ConflictError(
            f"the clock cannot go back to the wall clock ({wall.isoformat(timespec='seconds')}): recorded "
            f"history reaches {latest.isoformat(timespec='seconds')}, {latest - wall} later; it stays at "
            f"{now().isoformat(timespec='seconds')}")
    store_offset(actor=actor, set_to=0.0)
    clock.offset(fresh=True)
    return now()


def fire_due_timers(*, limit: int = 10_000) -> list[int]:
    """Fire every waiting timer that is due, here and now, one case transaction each; a timer whose
    firing fails is marked failed with the reason and the others go on."""
    with unit_of_work():  # read, and end the read, before each firing opens a unit of work of its own
        due = db.session.scalars(select(Timer.id).where(Timer.state == "waiting", Timer.due_at < now())
                                 .order_by(Timer.due_at).limit(limit)).all()
    for timer_id in due:
        try:
            fire_or_fail(timer_id=timer_id, final=True)  # fires every due timer of that case
        except Exception as exc:  # the database itself is away: the worker's sweep fires it later
            log.warning("timer %s could not fire while the clock moved: %s", timer_id, exc)
    if not due:
        return []
    return list(db.session.scalars(select(Timer.id).where(Timer.id.in_(due), Timer.state == "fired")
                                   .order_by(Timer.id)))
