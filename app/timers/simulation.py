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
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.auth import Actor, require
from app.engine import OffsetClock, get_clock
from app.errors import PermissionDeniedError
from app.extensions import db
from app.timers.models import SimulatedClock

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


def movable_clock(actor: Actor) -> OffsetClock:
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


def store_offset(*, actor: Actor, add: float | None = None, set_to: float | None = None) -> float:
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
