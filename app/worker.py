"""The timer worker: an RQ worker with its scheduler, a 100 ms dispatcher and a sweep thread, that rides out
Redis outages and takes over the name of a worker that was killed."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis.exceptions
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker, Worker, worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import StopRequested
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler
from rq.utils import as_text, parse_composite_key
from rq.worker import BaseWorker

from app.extensions import db, new_redis_connection, redis_connection, timer_queue

log = logging.getLogger(__name__)

SWEEP_LOCK = "servicecase:sweep-lock"
# What a dropped or hung Redis connection raises (redis-py's TimeoutError is no ConnectionError).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
RETRY_FIRST, RETRY_CAP = 0.2, 2.0  # seconds between attempts to reach Redis again: doubling, capped
ALIVE_TTL = 5  # the alive key outlives its last refresh (every second) by this many seconds
# RQ's worker TTL: the idle worker wakes every TTL - 15 s (heartbeat, scheduler check), and its blocking
# dequeue gives up on a hung Redis after TTL - 5 s (RQ's default 420 s would mean minutes).
WORKER_TTL = 30
MAINTENANCE_INTERVAL = 60  # RQ's registry cleanup (stuck and abandoned jobs); its default is 10 minutes
SCHEDULER_CHECK_INTERVAL = 10.0

T = TypeVar("T")


class WorkerNameTaken(RuntimeError):
    """A live worker already uses the name."""


class Backoff:
    """Delays that double from ``first`` up to ``cap``."""

    def __init__(self, first: float = RETRY_FIRST, cap: float = RETRY_CAP) -> None:
        self.first, self.cap, self._next = first, cap, first

    def next(self) -> float:
        """The delay to wait now; the following one is twice as long (at most ``cap``)."""
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        """Start again from ``first``."""
        self._next = self.first


class RedisOutage:
    """Whether this process can reach Redis, shared by the worker's threads: an outage is logged once when
    the first thread notices it and once when Redis answers again, and the recovery wakes the sweep."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self.back = threading.Event()  # set when Redis answers again (and on stop)

    @property
    def down(self) -> bool:
        """True between a failed and the next successful Redis call."""
        return self._since is not None

    def failed(self, where: str, exc: BaseException) -> None:
        """A Redis call failed with a connection error or timeout."""
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
                log.warning("Redis is unreachable (%s: %s); retrying every %.1f-%.0f s until it is back",
                            where, exc, RETRY_FIRST, RETRY_CAP)

    def recovered(self) -> None:
        """A Redis call succeeded."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            log.warning("Redis is back after %.1f s; re-arming timers from the database",
                        time.monotonic() - self._since)
            self._since = None
        self.back.set()


def _identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TimerWorker(SimpleWorker):
    """RQ's in-process worker, made to ride out Redis outages. Where RQ quits on a dropped connection
    (heartbeat, dequeue, job bookkeeping, maintenance), this one waits for Redis with a capped backoff,
    registers itself again (Redis may come back empty) and restarts its scheduler process, which exits
    whenever Redis drops under it."""

    max_connection_wait_time = RETRY_CAP  # RQ's own retry inside dequeue, capped like ours

    def __init__(self, *args: Any, outage: RedisOutage, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = outage
        self._burst = False
        self._scheduler_checked_at = 0.0

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:
        """RQ's work loop (see the overrides below for what changes)."""
        self._burst = burst
        return super().work(burst, *args, **kwargs)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        """RQ's, except that the scheduler is named after the worker (RQ picks a random name): a worker
        that takes over the name of a killed one also takes over its scheduler lock at once, instead of
        waiting a minute for it to expire with retries held up meanwhile."""
        self.scheduler = RQScheduler(self.queues, connection=self.connection, name=f"worker-{self.name}",
                                     logging_level=logging_level or self.log.level, date_format=date_format,
                                     log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return  # another worker's scheduler runs; _keep_scheduler takes over if it stops
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()

    # -- riding out an outage -------------------------------------------------------------------------
    def _riding_out(self, where: str, call: Callable[..., T], *args: Any) -> T:
        while True:
            try:
                result = call(*args)
            except REDIS_DOWN as exc:
                self._wait_for_redis(where, exc)
                continue
            self.outage.recovered()
            return result

    def _wait_for_redis(self, where: str, exc: BaseException) -> None:
        """Block until Redis answers again (a stop request still stops), then restore what it lost."""
        self.outage.failed(where, exc)
        backoff = Backoff()
        while True:
            if self._stop_requested:
                raise StopRequested()
            time.sleep(backoff.next())
            try:
                self.connection.ping()
                self._restore_registration()
                self._keep_scheduler(force=True)
            except REDIS_DOWN:
                continue
            self.outage.recovered()
            return

    def _restore_registration(self) -> None:
        """Write this worker's hash and registry entries again (a restarted Redis has none)."""
        if self.birth_date is None:  # not registered yet: bootstrap will
            return
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()

    def _keep_scheduler(self, force: bool = False) -> None:
        """Start RQ's scheduler process again if it died (it quits when Redis drops), or take it over
        from a worker that stopped; checked at most every SCHEDULER_CHECK_INTERVAL unless ``force``."""
        if self._burst or self.scheduler is None:
            return
        if not force and time.monotonic() - self._scheduler_checked_at < SCHEDULER_CHECK_INTERVAL:
            return
        self._scheduler_checked_at = time.monotonic()
        process = self.scheduler._process
        if process is None or not process.is_alive():
            self.scheduler.acquire_locks(auto_start=True)

    # -- RQ's steps, each riding out an outage -----------------------------------------------------------
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's heartbeat; on its own (not in a pipeline) it rides out an outage and notices an empty Redis."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return

        def beat() -> None:
            with self.connection.pipeline() as pipe:
                super(TimerWorker, self).heartbeat(timeout, pipeline=pipe)
                created = pipe.execute()[0]
            if created:  # the hash had to be created: Redis came back empty under us
                self._restore_registration()

        self._riding_out("heartbeat", beat)
        self._riding_out("scheduler check", self._keep_scheduler)

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """RQ's dequeue (which retries connection errors itself), riding out timeouts and the rest."""
        return self._riding_out("dequeue", super().dequeue_job_and_maintain_ttl, timeout, max_idle_time)

    def check_for_suspension(self, burst: bool) -> None:
        """RQ's suspension check, riding out an outage."""
        self._riding_out("suspension check", super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> None:
        """RQ's registry cleanup, riding out an outage."""
        self._riding_out("maintenance", super().run_maintenance_tasks)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job; if Redis drops around it, wait for Redis and put the job back if Redis still has it
        (firing is idempotent). If Redis came back empty, the sweep re-arms the timer from the database."""
        try:
            super().execute_job(job, queue)
        except REDIS_DOWN as exc:
            self._wait_for_redis(f"bookkeeping of job {job.id}", exc)
            self._riding_out("requeue", self._requeue_unfinished, job, queue)

    def _requeue_unfinished(self, job: Job, queue: Queue) -> None:
        status = self.connection.hget(job.key, "status")
        if status is None or as_text(status) not in (JobStatus.QUEUED.value, JobStatus.STARTED.value):
            return  # gone with Redis (the sweep has it), or finished, failed or scheduled for a retry
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 0, job.id)
            pipe.execute()
        queue.enqueue_job(job)
        log.info("job %s: its outcome was lost with the Redis connection; queued it again", job.id)

    def _pubsub_exception_handler(self, exc: Exception, pubsub: Any, pubsub_thread: Any) -> None:
        # RQ logs every failed reconnect of its command channel (one line every 2 s): note the outage instead.
        if isinstance(exc, redis.exceptions.ConnectionError):
            self.outage.failed("command channel", exc)
            time.sleep(RETRY_CAP)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def set_shutdown_requested_date(self) -> None:
        """Record a stop request in Redis if it is there (a stop during an outage still stops)."""
        try:
            super().set_shutdown_requested_date()
        except REDIS_DOWN:
            pass

    def teardown(self) -> None:
        """Stop the scheduler and record this worker's death, as far as Redis is there to record it."""
        if self.is_horse:
            return
        if self.scheduler:
            self.stop_scheduler()
        for step in (self.register_death, self.unsubscribe):
            try:
                step()
            except REDIS_DOWN as exc:
                log.warning("stopping without Redis (%s): %s", step.__name__, exc)


# -- taking a name ------------------------------------------------------------------------------------------
def _holder_is_alive(conn: Redis, alive_key: str, holder: str) -> bool:
    """Is the worker that set the alive key still running? A process of this host is asked directly;
    one elsewhere is alive if it refreshes its key (every second) before the key expires."""
    host, _, pid = holder.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    last_ttl = conn.pttl(alive_key)
    deadline = time.monotonic() + ALIVE_TTL + 1
    while time.monotonic() < deadline:
        time.sleep(0.2)
        ttl = conn.pttl(alive_key)
        if ttl < 0:  # expired (or deleted): nobody refreshes it
            return False
        if ttl > last_ttl + 100:  # refreshed
            return True
        last_ttl = ttl
    return True


def take_name(worker: BaseWorker, conn: Redis) -> None:
    """Claim the worker's name, or raise WorkerNameTaken if a live worker holds it. A worker that was killed
    (SIGKILL leaves its registration for RQ's worker TTL, 8 minutes by default) is cleaned up as RQ would:
    its registration goes and the jobs it was running are handled as abandoned (retried, or failed so the
    sweep fires their timers again)."""
    from app.timers.service import ALIVE_KEY

    alive_key, me = ALIVE_KEY.format(worker.name), _identity()
    while not conn.set(alive_key, me, nx=True, ex=ALIVE_TTL):
        holder = as_text(conn.get(alive_key) or b"")
        if holder and _holder_is_alive(conn, alive_key, holder):
            raise WorkerNameTaken(f"a worker named {worker.name!r} is already running ({holder}): "
                                  "stop it first, or start this one with another --name")
        conn.delete(alive_key)  # the dead holder's; then try to claim it again
    if conn.exists(worker.key) and not conn.hexists(worker.key, "death"):
        log.warning("worker %s was registered but is not running (killed?): taking its name over", worker.name)
        _abandon_started_jobs(worker, conn)
        with conn.pipeline() as pipe:
            worker_registration.unregister(worker, pipe)
            pipe.delete(worker.key)
            pipe.execute()


def _abandon_started_jobs(worker: BaseWorker, conn: Redis) -> None:
    """Expire the dead namesake's entries in the started registries now and let RQ's cleanup handle them
    (otherwise they would look like jobs of this live worker until their heartbeat TTL runs out)."""
    for queue in worker.queues:
        registry = queue.started_job_registry
        entries = [as_text(raw) for raw in conn.zrange(registry.key, 0, -1)]  # type: ignore[arg-type]
        if not entries:
            continue
        jobs = Job.fetch_many([parse_composite_key(entry)[0] for entry in entries], connection=conn)
        dead = {entry: 1 for entry, job in zip(entries, jobs, strict=True)
                if job is not None and job.worker_name == worker.name}
        if dead:
            conn.zadd(registry.key, dead, xx=True)
            registry.cleanup()
            log.warning("worker %s: %d job(s) it was running handled as abandoned", worker.name, len(dead))


def _release_name(conn: Redis, worker_name: str) -> None:
    from app.timers.service import ALIVE_KEY

    alive_key = ALIVE_KEY.format(worker_name)
    try:
        if as_text(conn.get(alive_key) or b"") == _identity():
            conn.delete(alive_key)
    except REDIS_DOWN:
        pass


# -- the sweep and the dispatcher -------------------------------------------------------------------------
def sweep_once(app: Flask) -> dict[str, object] | None:
    """Run one sweep unless another worker holds the sweep lock; returns what it did."""
    from app.flows.schedules import start_due_occurrences
    from app.timers.schedules import arm_schedules
    from app.timers.service import sweep
    from app.uow import unit_of_work

    interval = app.config["SWEEP_INTERVAL"]
    with app.app_context():
        conn = redis_connection(app)
        me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        if not conn.set(SWEEP_LOCK, me, nx=True, px=max(int(interval * 900), 500)):
            return None
        try:
            with unit_of_work():
                report = sweep(horizon=app.config["SWEEP_HORIZON"], grace=app.config["SWEEP_GRACE"],
                               start_occurrences=start_due_occurrences)
            arm_schedules(timer_queue(app))
        finally:
            db.session.remove()
        return {"checked": report.checked, "armed": len(report.armed),
                "rearmed_overdue": len(report.rearmed_overdue), "schedules_started": report.schedules_started}


def _dispatch_forever(app: Flask, stop: threading.Event, worker_name: str, outage: RedisOutage) -> None:
    """Every TIMER_DISPATCH_INTERVAL (100 ms), hand the timers that came due to the queue; every second,
    say this worker is alive (the sweep re-fires jobs of workers that stopped saying so). While Redis is
    away, retry with a capped backoff."""
    from app.timers.scheduling import dispatch_due_timers
    from app.timers.service import ALIVE_KEY

    interval = app.config["TIMER_DISPATCH_INTERVAL"]
    alive_key, me, said_at = ALIVE_KEY.format(worker_name), _identity(), 0.0
    backoff = Backoff()
    delay = interval
    while not stop.wait(delay):
        delay = interval
        try:
            if time.monotonic() - said_at >= 1:
                redis_connection(app).set(alive_key, me, ex=ALIVE_TTL)
                said_at = time.monotonic()
            while dispatch_due_timers(app) >= 500:  # a burst: drain it before sleeping again
                pass
        except REDIS_DOWN as exc:
            outage.failed("timer dispatch", exc)
            delay = backoff.next()
            continue
        except Exception as exc:  # not Redis: log it, keep dispatching
            log.warning("timer dispatch failed: %s", exc)
            delay = 1.0
            continue
        outage.recovered()
        backoff.reset()


def _sweep_forever(app: Flask, stop: threading.Event, outage: RedisOutage) -> None:
    """Sweep every SWEEP_INTERVAL, and at once when Redis comes back (it may have come back empty)."""
    interval = app.config["SWEEP_INTERVAL"]
    while not stop.is_set():
        try:
            report = sweep_once(app)
            outage.recovered()
            if report and (report["armed"] or report["rearmed_overdue"] or report["schedules_started"]):
                log.info("sweep: %s", report)
        except REDIS_DOWN as exc:
            outage.failed("sweep", exc)
        except Exception as exc:  # keep sweeping whatever one round hit (the database down, a bad schedule)
            log.warning("sweep failed: %s", exc)
        outage.back.wait(interval)
        outage.back.clear()


def run_worker(app: Flask, *, burst: bool = False, fork: bool = False, sweep: bool = True,
               name: str | None = None) -> bool:
    """Work the timer queue (RQ's scheduler runs the retries), dispatch due timers every 100 ms and,
    with ``sweep``, sweep every SWEEP_INTERVAL. In burst mode: dispatch what is due, sweep once, drain.
    Raises WorkerNameTaken if a live worker has ``name``, redis ConnectionError if Redis is unreachable."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("spiff").setLevel(logging.WARNING)  # it logs every task state change at INFO
    # The worker's own client: RQ raises its socket timeout above its blocking dequeue's, which must not
    # slow down the dispatcher's and the sweep's calls on the app's client.
    conn = new_redis_connection(app)
    conn.ping()
    queue = timer_queue(app, connection=conn)
    outage = RedisOutage()
    worker: BaseWorker
    if fork:  # RQ's forking worker (a child per job), without the outage handling
        worker = Worker([queue], connection=conn, name=name, worker_ttl=WORKER_TTL,
                        maintenance_interval=MAINTENANCE_INTERVAL)
    else:
        worker = TimerWorker([queue], connection=conn, name=name, outage=outage, worker_ttl=WORKER_TTL,
                             maintenance_interval=MAINTENANCE_INTERVAL)
    take_name(worker, conn)
    stop = threading.Event()
    try:
        if burst:
            from app.timers.scheduling import dispatch_due_timers

            if sweep:
                sweep_once(app)
            dispatch_due_timers(app)
        else:
            threading.Thread(target=_dispatch_forever, args=(app, stop, worker.name, outage),
                             name="timer-dispatch", daemon=True).start()
            if sweep:
                threading.Thread(target=_sweep_forever, args=(app, stop, outage), name="timer-sweep",
                                 daemon=True).start()
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop.set()
        outage.back.set()
        _release_name(conn, worker.name)
