"""Putting timers into RQ: deterministic job ids, wall-clock due times, and scheduling only what committed."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.engine import get_clock
from app.extensions import db, timer_queue
from app.timers.models import Timer

log = logging.getLogger(__name__)

PENDING_KEY = "servicecase.timers"
FIRE_JOB = "app.jobs.fire_timer_job"


def job_id_for(timer_id: int) -> str:
    """The deterministic RQ job id of a timer."""
    return f"timer-{timer_id}"


# -- scheduling after commit ------------------------------------------------------------------------
def note_timer_changes(*, new: list[Timer], ended: list[Timer]) -> None:
    """Remember timers to schedule or unschedule once the transaction commits."""
    pending = db.session.info.setdefault(PENDING_KEY, {"schedule": {}, "cancel": set()})
    for timer in new:
        pending["schedule"][timer.id] = timer.due_at
    for timer in ended:
        pending["schedule"].pop(timer.id, None)
        if timer.state == "cancelled":  # a fired timer's own job is running right now: leave it be
            pending["cancel"].add(timer.id)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if not pending or not (pending["schedule"] or pending["cancel"]):
        return
    try:
        queue = timer_queue()
    except RuntimeError:  # no Redis configured (some tests, one-off CLI): the sweep arms them later
        return
    try:
        for timer_id, due_at in pending["schedule"].items():
            enqueue_timer(queue, timer_id, due_at)
        for timer_id in pending["cancel"]:
            _delete_job(queue, job_id_for(timer_id))
    except RedisError as exc:
        log.warning("could not schedule timers in Redis (the sweep will re-arm them): %s", exc)


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def install_session_hooks() -> None:
    """Schedule timer jobs only for timers whose rows were committed."""
    if not event.contains(db.session, "after_commit", _after_commit):
        event.listen(db.session, "after_commit", _after_commit)
        event.listen(db.session, "after_soft_rollback", lambda session, previous: _after_rollback(session))


def wall_time_for(due_at: datetime) -> datetime:
    """RQ's scheduler runs on the wall clock: take a simulated clock's offset off, round up to a second
    (RQ truncates due times to whole seconds, which would fire up to a second early)."""
    offset = get_clock().now() - datetime.now(UTC)
    wall = due_at - offset
    return datetime.fromtimestamp(math.ceil(wall.timestamp()), UTC)


def enqueue_timer(queue: Queue, timer_id: int, due_at: datetime, *, job_id: str | None = None) -> Job:
    """Schedule the firing job at the timer's due time (now, if it is already due)."""
    from flask import current_app

    options: dict[str, Any] = {
        "job_id": job_id or job_id_for(timer_id),
        "retry": Retry(max=len(current_app.config["TIMER_RETRY_INTERVALS"]),
                       interval=current_app.config["TIMER_RETRY_INTERVALS"]),
        "result_ttl": 600, "failure_ttl": 7 * 24 * 3600,
        "description": f"fire timer {timer_id}",
    }
    at = wall_time_for(due_at)
    if at <= datetime.now(UTC):
        return queue.enqueue(FIRE_JOB, timer_id, **options)
    return queue.enqueue_at(at, FIRE_JOB, timer_id, **options)


def _delete_job(queue: Queue, job_id: str) -> None:
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED):
        job.delete()
