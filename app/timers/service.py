"""Timers: RQ jobs for waiting timers, idempotent firing under the case lock, and the sweep that re-arms
whatever Redis lost. The database is the source of truth; Redis only says when to look."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.audit.service import record_event
from app.auth import TIMER, Actor
from app.cases.service import load_instance, lock_case, store_instance
from app.engine import ScriptError, now
from app.errors import NotFoundError, PermissionDeniedError
from app.extensions import db, timer_queue
from app.timers.models import Timer
from app.timers.scheduling import enqueue_timer, job_id_for, note_timer_changes

log = logging.getLogger(__name__)

# -- firing -----------------------------------------------------------------------------------------
class TimerFiringError(RuntimeError):
    """The process could not continue when the timer fired; the timer is marked failed."""


def fire_timer(*, timer_id: int, actor: Actor = TIMER) -> str:
    """Fire one timer if it is waiting and due: load the case under its lock, run, store. Idempotent."""
    timer = db.session.get(Timer, timer_id)
    if timer is None:
        return "unknown"
    if timer.state != "waiting":
        return f"already {timer.state}"
    if timer.due_at >= now():
        return "not due"
    case = lock_case(timer.case_id)
    db.session.refresh(timer)
    if timer.state != "waiting":
        return f"already {timer.state}"
    instance = load_instance(case)
    try:
        instance.run()
    except ScriptError as exc:
        db.session.rollback()
        reason = _reason(exc)
        mark_failed(timer_id=timer_id, error=reason)
        raise TimerFiringError(f"timer {timer_id}: {reason}") from exc
    store_instance(case, instance, actor=actor)
    return "fired" if timer.state == "fired" else f"left {timer.state}"


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if type(cause).__name__ == "JobTimeoutException":
            return f"a script ran longer than the job timeout and was stopped ({exc})"
        cause = cause.__cause__ or cause.__context__
    return str(exc)


def mark_failed(*, timer_id: int, error: str) -> None:
    """Record a failed firing on the timer and in the case's history, in a transaction of its own."""
    timer = db.session.get(Timer, timer_id)
    if timer is None:
        return
    case = lock_case(timer.case_id)
    db.session.refresh(timer)
    timer.attempts += 1
    timer.last_error = error[:4000]
    timer.state = "failed"
    timer.ended_at = now()
    record_event(case=case, type="timer_failed", actor=TIMER.username, payload={
        "timer_id": timer.id, "task_id": timer.task_id, "task_spec": timer.task_spec, "name": timer.name,
        "due_at": timer.due_at.isoformat(), "error": timer.last_error})
    db.session.commit()


def retry_timer(*, timer_id: int, actor: Actor) -> Timer:
    """Put a failed timer back to waiting and fire it again (admins, after fixing the cause)."""
    if not actor.has_role("admin"):
        raise PermissionDeniedError("only admins retry failed timers")
    timer = db.session.get(Timer, timer_id)
    if timer is None:
        raise NotFoundError(f"timer {timer_id} does not exist")
    case = lock_case(timer.case_id)
    db.session.refresh(timer)
    if timer.state == "failed":
        timer.state, timer.ended_at = "waiting", None
        record_event(case=case, type="timer_retried", actor=actor.username,
                     payload={"timer_id": timer.id, "name": timer.name})
        note_timer_changes(new=[timer], ended=[])
    db.session.flush()
    return timer


# -- the sweep --------------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What one sweep did."""

    checked: int = 0
    armed: list[int] = field(default_factory=list)  # jobs missing from Redis, scheduled again
    rearmed_overdue: list[int] = field(default_factory=list)  # overdue with no live job: fired now
    schedules_started: int = 0  # recurring-process occurrences started


_LIVE = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED)


def sweep(*, horizon: float, grace: float, start_occurrences: Callable[[], int] | None = None) -> SweepReport:
    """Re-arm every waiting timer due within ``horizon`` seconds whose job Redis lost, and re-fire every
    timer overdue by more than ``grace`` seconds (a killed worker's job stays STARTED forever)."""
    report = SweepReport()
    queue = timer_queue()
    current = now()
    rows = db.session.execute(
        select(Timer.id, Timer.due_at).where(Timer.state == "waiting",
                                              Timer.due_at <= current + timedelta(seconds=horizon))
        .order_by(Timer.due_at)).all()
    report.checked = len(rows)
    for timer_id, due_at in rows:
        try:
            status = Job.fetch(job_id_for(timer_id), connection=queue.connection).get_status(refresh=False)
        except NoSuchJobError:
            status = None
        overdue = (current - due_at).total_seconds()
        if status not in _LIVE:
            enqueue_timer(queue, timer_id, due_at)
            report.armed.append(timer_id)
        elif overdue > grace and status != JobStatus.QUEUED:
            # Scheduled too late (the clock moved) or started by a worker that may be dead: fire now
            # under another id; firing is idempotent, so a live original does no harm.
            enqueue_timer(queue, timer_id, due_at, job_id=f"{job_id_for(timer_id)}-sweep-{int(time.time())}")
            report.rearmed_overdue.append(timer_id)
    if start_occurrences is not None:
        report.schedules_started = start_occurrences()
    return report


# -- what admins see --------------------------------------------------------------------------------
@dataclass
class QueueStatus:
    """Queue depth and job registries of the timer queue."""

    queued: int
    scheduled: int
    started: int
    failed: int
    failed_jobs: list[dict[str, Any]]
    error: str | None = None


def queue_status(*, failed_limit: int = 50) -> QueueStatus:
    """Queue depth, scheduled/started/failed counts and the latest failed jobs with their error."""
    try:
        queue = timer_queue()
        failed = FailedJobRegistry(queue=queue)
        failed_ids = failed.get_job_ids(0, failed_limit - 1)
        jobs = []
        for job in Job.fetch_many(failed_ids, connection=queue.connection):
            if job is None:
                continue
            result = job.latest_result()
            jobs.append({"id": job.id, "description": job.description, "args": list(job.args or []),
                         "ended_at": job.ended_at.replace(tzinfo=UTC) if job.ended_at else None,
                         "error": (result.exc_string if result else None) or ""})
        return QueueStatus(queued=queue.count, scheduled=ScheduledJobRegistry(queue=queue).count,
                           started=StartedJobRegistry(queue=queue).count, failed=failed.count,
                           failed_jobs=jobs)
    except (RedisError, RuntimeError) as exc:
        return QueueStatus(0, 0, 0, 0, [], error=str(exc))


def pending_timers(*, limit: int = 200) -> list[Timer]:
    """Waiting and failed timers, soonest first."""
    return list(db.session.scalars(select(Timer).where(Timer.state.in_(("waiting", "failed")))
                                   .options(selectinload(Timer.case)).order_by(Timer.due_at).limit(limit)))
