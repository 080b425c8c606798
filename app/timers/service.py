"""Timers: RQ jobs for waiting timers, idempotent firing under the case lock, and the sweep that re-arms
whatever Redis lost. The database is the source of truth; Redis only says when to look."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.audit.service import record_event
from app.auth import TIMER, Actor, require
from app.cases.service import lock_case
from app.engine import now
from app.errors import NotFoundError
from app.extensions import db, timer_queue
from app.timers.models import Timer
from app.timers.scheduling import DUE_KEY, arm_timers, enqueue_fire_job, job_id_for, note_timer_changes

log = logging.getLogger(__name__)

# -- firing -----------------------------------------------------------------------------------------
def mark_failed(*, timer_id: int, error: str) -> None:
    """Record a failed firing on the timer and in the case's history (flushed; the caller commits)."""
    timer = db.session.get(Timer, timer_id)
    if timer is None:
        return
    case = lock_case(timer.case_id)
    db.session.refresh(timer)
    if timer.state != "waiting":  # fired or cancelled meanwhile by another attempt: nothing failed
        return
    timer.attempts += 1
    timer.last_error = error[:4000]
    timer.state = "failed"
    timer.ended_at = now()
    record_event(case=case, type="timer_failed", actor=TIMER.username, payload={
        "timer_id": timer.id, "task_id": timer.task_id, "task_spec": timer.task_spec, "name": timer.name,
        "due_at": timer.due_at.isoformat(), "error": timer.last_error})
    db.session.flush()


def retry_timer(*, timer_id: int, actor: Actor) -> Timer:
    """Put a failed timer back to waiting and fire it again (timers.manage: admins, after fixing the cause)."""
    require(actor, "timers.manage")
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


ALIVE_KEY = "servicecase:worker-alive:{}"  # set every second by each worker's dispatcher, expires in 5 s
_WILL_RUN = {JobStatus.QUEUED.value, JobStatus.SCHEDULED.value, JobStatus.DEFERRED.value}


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def sweep(*, horizon: float, grace: float, start_occurrences: Callable[[], int] | None = None) -> SweepReport:
    """Make sure every waiting timer will fire. Due within ``horizon`` seconds and lost by Redis (neither
    armed nor with a job): armed again. Overdue by more than ``grace`` seconds with no job that will run
    it, or with a job started by a worker that is no longer alive (SIGKILL leaves a job STARTED forever):
    its stale job is deleted and it is queued again under the same id. A timer therefore never has more
    than one job that will run, so the queue never holds more jobs than there are waiting timers."""
    report = SweepReport()
    queue = timer_queue()
    conn = queue.connection
    current = now()
    rows = db.session.execute(
        select(Timer.id, Timer.due_at).where(Timer.state == "waiting",
                                              Timer.due_at <= current + timedelta(seconds=horizon))
        .order_by(Timer.due_at)).all()
    report.checked = len(rows)
    if not rows:
        return _with_occurrences(report, start_occurrences)
    with conn.pipeline(transaction=False) as pipe:
        for timer_id, _ in rows:
            pipe.zscore(DUE_KEY, str(timer_id))
            pipe.hmget(Job.key_for(job_id_for(timer_id)), "status", "worker_name")
        answers = pipe.execute()
    states = [(timer_id, due_at, answers[2 * i], *[_text(v) for v in answers[2 * i + 1]])
              for i, (timer_id, due_at) in enumerate(rows)]
    workers = {worker for *_, status, worker in states if status == JobStatus.STARTED.value and worker}
    with conn.pipeline(transaction=False) as pipe:
        for worker in sorted(workers):
            pipe.exists(ALIVE_KEY.format(worker))
        alive = {worker for worker, found in zip(sorted(workers), pipe.execute(), strict=True) if found}
    lost: dict[int, datetime] = {}
    for timer_id, due_at, armed, status, worker in states:
        overdue = (current - due_at).total_seconds() > grace
        if status in _WILL_RUN or (status == JobStatus.STARTED.value and worker in alive):
            continue
        if status == JobStatus.STARTED.value or overdue:
            # A dispatcher may have claimed it from the due set since we looked: then it is queued now.
            if armed is not None and not conn.zrem(DUE_KEY, str(timer_id)):
                continue
            if status is not None:
                _delete_job(queue.connection, job_id_for(timer_id))  # finished, failed or orphaned
            enqueue_fire_job(queue, timer_id)
            report.rearmed_overdue.append(timer_id)
        elif armed is None:
            lost[timer_id] = due_at
            report.armed.append(timer_id)
    arm_timers(conn, lost)
    return _with_occurrences(report, start_occurrences)


def _delete_job(conn: Any, job_id: str) -> None:
    try:
        Job.fetch(job_id, connection=conn).delete()
    except NoSuchJobError:
        pass


def _with_occurrences(report: SweepReport, start_occurrences: Callable[[], int] | None) -> SweepReport:
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


def queue_status(*, actor: Actor, failed_limit: int = 50) -> QueueStatus:
    """Queue depth, scheduled/started/failed counts and the latest failed jobs with their error (timers.read)."""
    require(actor, "timers.read")
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
        armed = int(queue.connection.zcard(DUE_KEY))  # timers waiting for their due time
        return QueueStatus(queued=queue.count, scheduled=armed + ScheduledJobRegistry(queue=queue).count,
                           started=StartedJobRegistry(queue=queue).count, failed=failed.count,
                           failed_jobs=jobs)
    except (RedisError, RuntimeError) as exc:
        return QueueStatus(0, 0, 0, 0, [], error=str(exc))


def pending_timers(*, actor: Actor, limit: int = 200) -> list[Timer]:
    """Waiting and failed timers, soonest first (timers.read)."""
    require(actor, "timers.read")
    return list(db.session.scalars(select(Timer).where(Timer.state.in_(("waiting", "failed")))
                                   .options(selectinload(Timer.case)).order_by(Timer.due_at).limit(limit)))
