"""Arming timers in Redis once their rows commit, and dispatching them to RQ the moment they are due.

RQ's own scheduler works in whole seconds twice over (due times truncated, one poll a second), which
alone makes a p99 lateness near two seconds. So timers wait in a Redis sorted set of their own
(timer id → exact wall-clock due time); a dispatcher in every worker polls it every 100 ms, claims due
timers atomically and enqueues their firing jobs (job id ``timer-<id>``) on the RQ queue at once. The
database stays the source of truth: the sweep re-arms whatever Redis lost.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app.engine import OffsetClock, SystemClock, get_clock
from app.extensions import redis_connection, timer_queue
from app.timers.models import Timer
from app.uow import defer, on_commit
from app.uow import install_session_hooks as install_uow_hooks

log = logging.getLogger(__name__)

DUE_KEY = "servicecase:timers:due"
FIRE_JOB = "app.jobs.fire_timer_job"

# Take every due member (score ≤ now) up to a limit and remove them in one step, so two dispatchers
# never claim the same timer.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then redis.call('ZREM', KEYS[1], unpack(ids)) end
return ids
"""


def job_id_for(timer_id: int) -> str:
    """The deterministic RQ job id of a timer."""
    return f"timer-{timer_id}"


def _clock_offset_seconds() -> float:
    clock = get_clock()
    if isinstance(clock, OffsetClock):
        return clock.offset().total_seconds()
    if isinstance(clock, SystemClock):
        return 0.0
    return (clock.now() - datetime.now(UTC)).total_seconds()  # a manual clock (tests)


def wall_epoch(due_at: datetime) -> float:
    """The wall-clock moment (epoch seconds) at which a due time on the system clock arrives."""
    return due_at.timestamp() - _clock_offset_seconds()


def wall_time_for(due_at: datetime) -> datetime:
    """For RQ's own ``enqueue_at``: the wall-clock due time rounded up to a second (RQ truncates)."""
    return datetime.fromtimestamp(math.ceil(wall_epoch(due_at) - 1e-6), UTC)


# -- arming after commit ----------------------------------------------------------------------------
TIMERS = "timers"  # the unit of work's entries of this kind are timer changes, applied after commit


def note_timer_changes(*, new: list[Timer], ended: list[Timer]) -> None:
    """Arm or disarm timers once the transaction commits (a savepoint rolled back forgets its own)."""
    if new or ended:
        # Frozen now: what the rows say at this point of the transaction, in order with later changes.
        defer(TIMERS, ([(t.id, t.due_at) for t in new], [(t.id, t.state) for t in ended]))


def arm_timers(conn: Redis, due: dict[int, datetime]) -> None:
    """Put timers (id → due time) into the due set; arming again only moves the due time."""
    if due:
        conn.zadd(DUE_KEY, {str(timer_id): wall_epoch(due_at) for timer_id, due_at in due.items()})


def _apply_committed(changes: list[tuple[list[tuple[int, datetime]], list[tuple[int, str]]]]) -> None:
    """After a commit: arm the timers that started waiting, disarm the cancelled ones."""
    arm: dict[int, datetime] = {}
    disarm: set[int] = set()
    for new, ended in changes:
        for timer_id, due_at in new:
            arm[timer_id] = due_at
            disarm.discard(timer_id)
        for timer_id, state in ended:
            arm.pop(timer_id, None)
            if state == "cancelled":  # a fired timer's own job is running right now: leave it be
                disarm.add(timer_id)
    if not (arm or disarm):
        return
    if not current_app.config.get("REDIS_URL"):  # no Redis (a one-off CLI): the sweep arms them later
        return
    try:
        conn = redis_connection()
        arm_timers(conn, arm)
        if disarm:
            conn.zrem(DUE_KEY, *[str(timer_id) for timer_id in disarm])
            queue = timer_queue()
            for timer_id in disarm:
                _delete_waiting_job(queue, job_id_for(timer_id))
    except RedisError as exc:
        log.warning("could not arm timers in Redis (the sweep will re-arm them): %s", exc)


def install_session_hooks() -> None:
    """Arm timers only for timer rows that were committed (through the unit of work's journal)."""
    install_uow_hooks()
    on_commit(TIMERS, _apply_committed)


def _delete_waiting_job(queue: Queue, job_id: str) -> None:
    try:
        job = Job.fetch(job_id, connection=queue.connection)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.DEFERRED):
        job.delete()


# -- dispatching --------------------------------------------------------------------------------------
def _fire_job_data(timer_id: int, job_id: str | None = None) -> Any:
    intervals = current_app.config["TIMER_RETRY_INTERVALS"]
    return Queue.prepare_data(FIRE_JOB, (timer_id,), job_id=job_id or job_id_for(timer_id),
                              retry=Retry(max=len(intervals), interval=intervals), result_ttl=600,
                              failure_ttl=7 * 24 * 3600, description=f"fire timer {timer_id}")


def enqueue_fire_jobs(queue: Queue, timer_ids: list[int]) -> list[Job]:
    """Put timers' firing jobs on the queue now, in one round trip, with retries and backoff."""
    return queue.enqueue_many([_fire_job_data(timer_id) for timer_id in timer_ids]) if timer_ids else []


def enqueue_fire_job(queue: Queue, timer_id: int, *, job_id: str | None = None) -> Job:
    """Put one timer's firing job on the queue now (``job_id`` for a re-fire beside the original)."""
    return queue.enqueue_many([_fire_job_data(timer_id, job_id)])[0]


def dispatch_due_timers(app: Flask, *, limit: int = 500) -> int:
    """Claim the timers whose due time has come and enqueue their firing jobs; returns how many."""
    conn = redis_connection(app)
    claim = app.extensions.get("servicecase.claim_due")
    if claim is None:
        claim = app.extensions["servicecase.claim_due"] = conn.register_script(_CLAIM_DUE)
    claimed = claim(keys=[DUE_KEY], args=[time.time(), limit])
    if not claimed:
        return 0
    with app.app_context():
        enqueue_fire_jobs(timer_queue(app), [int(raw) for raw in claimed])
    return len(claimed)
