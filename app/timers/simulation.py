"""The simulation clock: a shared offset in Redis that every process adds to the wall clock.

It exists only when the configuration says CLOCK=simulated (development and testing); production
refuses that setting. Advancing it fires every timer that became due, so a 48-hour scenario is
rehearsed in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from app.auth import Actor
from app.engine import OffsetClock, get_clock, now
from app.errors import InvalidDataError, PermissionDeniedError
from app.extensions import db, redis_connection
from app.timers.models import Timer
from app.timers.service import fire_timer

log = logging.getLogger(__name__)

OFFSET_KEY = "servicecase:clock:offset_seconds"


def offset_reader(app: Flask) -> Callable[[], float]:
    """Read the shared offset; without Redis the offset is zero (and that is logged once)."""
    warned = False

    def read() -> float:
        nonlocal warned
        if not app.config.get("REDIS_URL"):
            return 0.0
        try:
            value = redis_connection(app).get(OFFSET_KEY)
        except RedisError as exc:
            if not warned:
                log.warning("simulated clock: cannot read the offset from Redis (%s); using 0", exc)
                warned = True
            return 0.0
        return float(value) if value else 0.0

    return read


def _check(actor: Actor) -> OffsetClock:
    if current_app.config["CLOCK"] != "simulated":
        raise PermissionDeniedError("the clock can be moved only when CLOCK=simulated (development/testing)")
    if not actor.has_role("admin", "system"):
        raise PermissionDeniedError("only admins move the clock")
    clock = get_clock()
    if not isinstance(clock, OffsetClock):
        raise PermissionDeniedError("this process does not run on the simulated clock")
    return clock


def clock_offset() -> timedelta:
    """How far the simulated clock is ahead of the wall clock (zero on the system clock)."""
    clock = get_clock()
    return clock.offset(fresh=True) if isinstance(clock, OffsetClock) else timedelta(0)


def advance_clock(*, by: timedelta, actor: Actor, fire: bool = True) -> tuple[datetime, list[int]]:
    """Move the simulated clock forward and fire every timer now due; returns (new now, fired timer ids)."""
    clock = _check(actor)
    if by <= timedelta(0):
        raise InvalidDataError("the clock only moves forward", errors={"by": ["must be positive"]})
    if by > timedelta(days=3660):
        raise InvalidDataError("that is more than ten years", errors={"by": ["must be at most 3660 days"]})
    redis_connection().incrbyfloat(OFFSET_KEY, by.total_seconds())
    clock.offset(fresh=True)
    return now(), (fire_due_timers() if fire else [])


def reset_clock(*, actor: Actor) -> datetime:
    """Put the simulated clock back on the wall clock (timers already fired stay fired)."""
    clock = _check(actor)
    redis_connection().delete(OFFSET_KEY)
    clock.offset(fresh=True)
    return now()


def fire_due_timers(*, limit: int = 10_000) -> list[int]:
    """Fire every waiting timer that is due, here and now, one case transaction each."""
    due = db.session.scalars(select(Timer.id).where(Timer.state == "waiting", Timer.due_at < now())
                             .order_by(Timer.due_at).limit(limit)).all()
    db.session.commit()
    for timer_id in due:
        try:
            fire_timer(timer_id=timer_id)  # fires every due timer of that case
            db.session.commit()
        except Exception as exc:  # one failing case must not stop the others; it is marked failed
            db.session.rollback()
            log.warning("timer %s failed while the clock moved: %s", timer_id, exc)
    if not due:
        return []
    return list(db.session.scalars(select(Timer.id).where(Timer.id.in_(due), Timer.state == "fired")
                                   .order_by(Timer.id)))
