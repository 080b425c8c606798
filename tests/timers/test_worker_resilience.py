"""The timer worker rides out Redis outages and its name can be reused after a SIGKILL.

Every test here runs its own redis-server on a free port (never the shared one), restarts it under real
`flask worker` processes, and checks the database: every timer fired exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.service import deploy_path
from app.timers.models import Timer
from app.timers.service import ALIVE_KEY
from tests.support import WorkerProcesses, free_port, wait_until, worker_env

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


class RedisServer:
    """A redis-server of the test's own, without persistence, that can be killed and started again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (empty) and wait until it answers."""
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--loglevel", "warning"], cwd=self.workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            finally:
                client.close()

    def kill(self) -> None:
        """SIGKILL it: every connection drops, everything it held is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def client(self) -> Redis:
        """A client for the test's own checks."""
        return Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=2)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server started for this test only."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


@pytest.fixture
def on_own_redis(deployed: Flask, own_redis: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The test's app talks to the test's own Redis (so commits arm timers there), with the timer processes."""
    monkeypatch.setitem(deployed.config, "REDIS_URL", own_redis.url)
    monkeypatch.setitem(deployed.extensions, "servicecase.redis",
                        Redis.from_url(own_redis.url, socket_timeout=5, socket_connect_timeout=2))
    monkeypatch.delitem(deployed.extensions, "servicecase.claim_due", raising=False)
    deploy_path(DATA / "timer_then_task.bpmn", actor=SYSTEM)
    db.session.commit()
    return deployed


@pytest.fixture
def workers(database_url: str, own_redis: RedisServer,
            tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start real `flask worker` processes on the test's Redis (own process groups, killed at the end)."""
    processes = WorkerProcesses()

    def start(name: str, **settings: str) -> subprocess.Popen[bytes]:
        env = worker_env(database_url=database_url, redis_url=own_redis.url, instance=tmp_path / "instance",
                         clock="system", **settings)
        return processes.start(name, env, tmp_path / f"{name}-{len(processes.started)}.log")

    yield start
    processes.stop()


def log_of(proc: subprocess.Popen[bytes]) -> str:
    """What a worker printed so far."""
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def open_due_cases(count: int, due_in: float = 0.0) -> list[int]:
    """Open ``count`` cases whose 24 h timer is due ``due_in`` seconds from now, committed in batches."""
    ids: list[int] = []
    for start in range(0, count, 50):
        for _ in range(min(50, count - start)):
            case = open_case(actor=SYSTEM, process_id="timer_then_task",
                             reported_at=now() - timedelta(hours=24, seconds=-due_in), channel="phone",
                             description="Resilience test")
            ids.append(case.id)
        db.session.commit()
    return ids


def fired_count() -> int:
    """How many timers have fired."""
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Timer).where(Timer.state == "fired")) or 0


def fired_events_per_case() -> dict[int, int]:
    """case id → number of timer_fired events."""
    db.session.rollback()
    rows = db.session.execute(select(CaseEvent.case_id, func.count()).where(CaseEvent.type == "timer_fired")
                              .group_by(CaseEvent.case_id)).all()
    return {case_id: n for case_id, n in rows}


def worker_ready(server: RedisServer, name: str) -> Callable[[], bool]:
    """True once the worker says it is alive and its RQ scheduler holds the queue's lock."""
    def ready() -> bool:
        client = server.client()
        try:
            return bool(client.exists(ALIVE_KEY.format(name))
                        and client.exists("rq:scheduler-lock:servicecase-timers"))
        finally:
            client.close()
    return ready


def assert_each_fired_once(cases: list[int]) -> None:
    """Every case's timer fired, with exactly one timer_fired event."""
    db.session.rollback()
    states = dict(db.session.execute(select(Timer.case_id, Timer.state).where(Timer.case_id.in_(cases))).all())
    assert {state for state in states.values()} == {"fired"}, states
    events = fired_events_per_case()
    assert {case: events.get(case, 0) for case in cases} == dict.fromkeys(cases, 1)


@pytest.mark.parametrize("down_for", [0.5, 10.0], ids=["restart", "ten-second-outage"])
def test_a_busy_worker_rides_out_a_redis_restart(on_own_redis: Flask, own_redis: RedisServer, workers,
                                                 down_for: float) -> None:
    worker = workers("w1", SERVICECASE_TIMER_FIRE_DELAY="0.02")
    wait_until(worker_ready(own_redis, "w1"), 30, "worker up")
    cases = open_due_cases(300, due_in=1)  # all due at once: a backlog the worker is busy with
    wait_until(lambda: fired_count() >= 30, 60, "the worker got going")
    own_redis.kill()  # mid-backlog: the queue, the due set and every registry are gone with it
    busy_when_killed = fired_count()
    time.sleep(down_for)
    own_redis.start()  # the same port, empty
    back_at = time.monotonic()
    assert busy_when_killed < len(cases), "the worker was not busy when Redis went away"
    took = wait_until(lambda: fired_count() == len(cases), 90, "every timer fired after Redis came back")
    assert worker.poll() is None, log_of(worker)[-3000:]
    assert_each_fired_once(cases)
    # It came back fully: the scheduler runs again and, once the backlog is worked off, a new timer
    # fires promptly (the dispatcher claims it from the due set).
    wait_until(worker_ready(own_redis, "w1"), 20, "scheduler back")
    client = own_redis.client()
    wait_until(lambda: client.llen("rq:queue:servicecase-timers") == 0, 60, "the backlog worked off")
    late = open_due_cases(1, due_in=1)
    wait_until(lambda: fired_count() == len(cases) + 1, 10, "a timer created after the outage fired")
    assert_each_fired_once(late)
    log = log_of(worker)
    assert "unhandled exception" not in log
    assert log.count("Redis is unreachable") <= 2, log[-3000:]  # once per outage, not once per retry
    print(f"\n{busy_when_killed}/{len(cases)} fired when Redis was killed; down {down_for} s; "
          f"the rest fired {took:.1f} s after it came back ({time.monotonic() - back_at:.1f} s total)")


def test_a_killed_worker_name_can_be_used_again_at_once(on_own_redis: Flask, own_redis: RedisServer,
                                                         workers) -> None:
    first = workers("w3", SERVICECASE_TIMER_FIRE_DELAY="60")
    wait_until(worker_ready(own_redis, "w3"), 30, "first w3 up")
    [case] = open_due_cases(1, due_in=0.5)
    client = own_redis.client()
    wait_until(lambda: client.hget("rq:worker:w3", "current_job") is not None, 20, "w3 busy with the timer")
    os.killpg(first.pid, signal.SIGKILL)  # mid-job: its registration and its started job stay behind
    first.wait(10)
    assert client.exists("rq:worker:w3")
    killed_at = time.monotonic()
    second = workers("w3")
    wait_until(lambda: "started with PID" in log_of(second), 10, "second w3 started")
    started_in = time.monotonic() - killed_at
    assert second.poll() is None, log_of(second)
    wait_until(lambda: fired_count() == 1, 30, "the timer the first w3 was running fired")
    assert_each_fired_once([case])
    assert started_in < 10
    print(f"\nsecond w3 started {started_in:.1f} s after the first was killed")


def test_a_second_worker_with_a_live_name_is_refused(on_own_redis: Flask, own_redis: RedisServer,
                                                     workers) -> None:
    first = workers("w3")
    wait_until(worker_ready(own_redis, "w3"), 30, "first w3 up")
    started = time.monotonic()
    second = workers("w3")
    try:
        code = second.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the second w3 was not refused") from None
    print(f"\nthe second w3 was refused after {time.monotonic() - started:.1f} s")
    assert code != 0
    assert "a worker named 'w3' is already running" in log_of(second)
    assert first.poll() is None  # the first one is untouched
    [case] = open_due_cases(1, due_in=0.5)
    wait_until(lambda: fired_count() == 1, 20, "the first w3 still fires timers")
    assert_each_fired_once([case])
