"""The simulation clock: an offset from the wall clock, kept in the database, that every process adds.

It exists only when the configuration says CLOCK=simulated (development and testing); production
refuses that setting. The offset lives beside the history it dates (table ``simulated_clock``), so a
Redis flush or restart cannot silently move the clock back; it never moves back past recorded history.
Advancing it fires every timer that became due, so a 48-hour scenario is rehearsed in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.audit.models import CaseEvent
from app.auth import Actor, require
from app.cases.models import Case
from app.engine import OffsetClock, get_clock, now
from app.errors import ConflictError, InvalidDataError, PermissionDeniedError
from app.extensions import db
from app.tasks.models import WorkItem
from app.timers.models import ScheduleOccurrence, SimulatedClock, Timer
from app.timers.service import fire_or_fail
from app.uow import unit_of_work

log = logging.getLogger(__name__)

CLOCK_ROW = 1
_TABLE = SimulatedClock.__table__


def offset_reader(app: Flask) -> Callable[[], float]:
    """Read the offset through a short connection of its own, never the request's session (reading the
    clock must not join, block or break a transaction). A failed read keeps the last value it had."""
    engine: Engine | None = None
    last, warned = 0.0, False

    def read() -> float:
        nonlocal engine, last, warned
        try:
            if engine is None:
                with app.app_context():
                    engine = db.engine
            with engine.connect() as conn:
                value = conn.scalar(select(_TABLE.c.offset_seconds).where(_TABLE.c.id == CLOCK_ROW))
        except SQLAlchemyError as exc:  # no table yet (before `flask db upgrade`), or the database is away
            if not warned:
                log.warning("simulated clock: cannot read the offset (%s); keeping %s s", exc, last)
                warned = True
            return last
        last, warned = (float(value) if value is not None else 0.0), False
        return last

    return read


def _check(actor: Actor) -> OffsetClock:
    """The simulated clock, if ``actor`` may move it (timers.manage) and the configuration has one."""
    require(actor, "timers.manage")
    if current_app.config["CLOCK"] != "simulated":
        raise PermissionDeniedError("the clock can be moved only when CLOCK=simulated (development/testing)")
    clock = get_clock()
    if not isinstance(clock, OffsetClock):
        raise PermissionDeniedError("this process does not run on the simulated clock")
    return clock


def clock_offset() -> timedelta:
    """How far the simulated clock is ahead of the wall clock (zero on the system clock)."""
    clock = get_clock()
    return clock.offset(fresh=True) if isinstance(clock, OffsetClock) else timedelta(0)


def _store_offset(*, actor: Actor, add: float | None = None, set_to: float | None = None) -> float:
    """Change the offset in a transaction of its own, at once visible to every process (like the clock
    itself it is not part of the caller's unit of work); an addition is atomic. Returns the new offset."""
    stamp = {"updated_at": datetime.now(UTC), "updated_by": actor.username}
    value = _TABLE.c.offset_seconds + add if add is not None else set_to
    for attempt in (1, 2):
        try:
            with db.engine.begin() as conn:
                if not conn.execute(update(_TABLE).where(_TABLE.c.id == CLOCK_ROW)
                                    .values(offset_seconds=value, **stamp)).rowcount:
                    conn.execute(insert(_TABLE).values(id=CLOCK_ROW, offset_seconds=add or set_to or 0.0, **stamp))
                stored = conn.scalar(select(_TABLE.c.offset_seconds).where(_TABLE.c.id == CLOCK_ROW))
                return float(stored or 0.0)
        except IntegrityError:  # another process inserted the row first: update it instead
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def latest_recorded_moment() -> datetime | None:
    """The latest moment the history records (events, cases opened, timers ended, tasks completed...)."""
    moments = [db.session.scalar(select(func.max(column))) for column in (
        CaseEvent.occurred_at, Case.opened_at, Timer.ended_at, WorkItem.completed_at,
        ScheduleOccurrence.started_at)]
    found = [m for m in moments if m is not None]
    return max(found) if found else None


def advance_clock(*, by: timedelta, actor: Actor, fire: bool = True) -> tuple[datetime, list[int]]:
    """Move the simulated clock forward and fire every timer now due; returns (new now, fired timer ids)."""
    clock = _check(actor)
    if by <= timedelta(0):
        raise InvalidDataError("the clock only moves forward", errors={"by": ["must be positive"]})
    if by > timedelta(days=3660):
        raise InvalidDataError("that is more than ten years", errors={"by": ["must be at most 3660 days"]})
    _store_offset(actor=actor, add=by.total_seconds())
    clock.offset(fresh=True)
    return now(), (fire_due_timers() if fire else [])


def reset_clock(*, actor: Actor) -> datetime:
    """Put the simulated clock back on the wall clock, unless history is recorded later than that: the
    history would then be dated ahead of the clock, and new events would sort before older ones."""
    clock = _check(actor)
    wall = datetime.now(UTC)
    latest = latest_recorded_moment()
    if latest is not None and latest > wall:
        raise ConflictError(
            f"the clock cannot go back to the wall clock ({wall.isoformat(timespec='seconds')}): recorded "
            f"history reaches {latest.isoformat(timespec='seconds')}, {latest - wall} later; it stays at "
            f"{now().isoformat(timespec='seconds')}")
    _store_offset(actor=actor, set_to=0.0)
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
