"""Firing a timer: load the case under its lock, run the process on, store what changed; a failure marks the
timer failed with the reason (app.timers.service keeps the timers, their jobs and the sweep)."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from rq.timeouts import JobTimeoutException
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm.exc import StaleDataError

from app.auth import TIMER, Actor
from app.cases.service import lock_case
from app.engine import ScriptError, now
from app.extensions import db
from app.flows.context import acting_for
from app.flows.steps import load_instance, store_instance
from app.timers.models import Timer
from app.timers.scheduling import note_timer_changes
from app.timers.service import mark_failed
from app.uow import unit_of_work

log = logging.getLogger(__name__)


class TimerFiringError(RuntimeError):
    """The process could not continue when the timer fired (fire_or_fail then marks the timer failed)."""


def fire_timer(*, timer_id: int, actor: Actor = TIMER) -> str:
    """Fire one timer if it is waiting and due: load the case under its lock, run, store. Idempotent."""
    timer = db.session.get(Timer, timer_id)
    if timer is None:
        return "unknown"
    if timer.state != "waiting":
        return f"already {timer.state}"
    if timer.due_at >= now():
        note_timer_changes(new=[timer], ended=[])  # dispatched early (a clock moved back): arm it again
        return "not due"
    case = lock_case(timer.case_id)
    db.session.refresh(timer)
    if timer.state != "waiting":
        return f"already {timer.state}"
    instance = load_instance(case)
    try:
        with acting_for(actor, case):
            instance.run()
    except ScriptError as exc:  # the caller rolls back and marks the timer failed (fire_or_fail)
        raise TimerFiringError(_reason(exc)) from exc
    store_instance(case, instance, actor=actor)
    return "fired" if timer.state == "fired" else f"left {timer.state}"


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "JobTimeoutException":
            return f"a script ran longer than the job timeout and was stopped ({exc})"
        cause = cause.__cause__ or cause.__context__
    return str(exc)


# Worth another attempt: the database or Redis away or busy, a concurrent writer, a job that ran too long.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError, StaleDataError, RedisError,
    JobTimeoutException)


def _outside_reason(exc: Exception) -> str:
    """Why a firing failed outside the scripts, without the SQL and its (possibly huge) parameters."""
    cause = getattr(exc, "orig", None) or exc  # a DBAPI error, or what a bind processor raised
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"firing failed outside the process's scripts: {type(cause).__name__}: {detail}".rstrip(": ")


def fire_or_fail(*, timer_id: int, final: bool, delay: float = 0.0) -> str:
    """Fire a timer in a unit of work of its own: the edge of a firing job (and of each firing when the
    simulated clock moves). A script failure, or a failure that another attempt cannot mend (a value
    that does not fit a column, a broken constraint...), rolls the firing back and marks the timer
    failed with the reason at once, in a second unit of work; a transient one (database or Redis away)
    is raised again for a retry, unless this is the ``final`` attempt, which marks it failed too.
    Returns what happened."""
    try:
        with unit_of_work():
            outcome = fire_timer(timer_id=timer_id)
            if delay:
                time.sleep(delay)  # tests: a job that is still running when its worker is killed
        return outcome
    except TimerFiringError as exc:  # a script failed: the firing is rolled back, the failure recorded
        with unit_of_work():
            mark_failed(timer_id=timer_id, error=str(exc))
        return f"failed: timer {timer_id}: {exc}"
    except Exception as exc:
        if isinstance(exc, TRANSIENT_ERRORS) and not final:
            raise
        reason = _outside_reason(exc)
        log.warning("timer %s failed: %s", timer_id, reason)
        try:
            with unit_of_work():
                mark_failed(timer_id=timer_id, error=reason)
        except Exception:  # the database is still away: leave it waiting, the sweep fires it again later
            raise exc from None
        return f"failed: {reason}"
