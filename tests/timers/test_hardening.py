"""Timers after long outages and broken continuations: any lateness is stored, a firing that fails
outside its script marks the timer failed, and the sweep never queues a second job for a timer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.engine import now
from app.extensions import db, redis_connection, timer_queue
from app.flows.steps import open_case
from app.processes.service import deploy_path
from app.timers.models import Timer
from app.timers.scheduling import DUE_KEY, dispatch_due_timers, job_id_for
from app.timers.service import pending_timers, sweep
from tests.timers.test_firing import count_events, open_due_in, timer_of, timer_processes, wait_until, workers

__all__ = ["timer_processes", "workers"]  # fixtures used here

DATA = Path(__file__).resolve().parents[1] / "data"
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def unstorable(timer_processes: Flask) -> Flask:
    """A process whose continuation after its timer holds a value the case summary cannot store."""
    deploy_path(DATA / "unstorable_after_timer.bpmn", actor=SYSTEM)
    db.session.commit()
    return timer_processes


def open_many(count: int, *, due_in: float = 60) -> list[int]:
    """Open ``count`` timer_then_task cases whose timer is due ``due_in`` seconds from now; their ids."""
    ids = []
    for n in range(count):
        case = open_case(actor=SYSTEM, process_id="timer_then_task",
                         reported_at=now() - timedelta(hours=24, seconds=-due_in), channel="phone",
                         description=f"Outage {n}")
        ids.append(case.id)
        if n % 100 == 99:
            db.session.commit()
    db.session.commit()
    return ids


def states() -> dict[str, int]:
    """How many timers are in each state."""
    db.session.rollback()
    return dict(db.session.execute(select(Timer.state, func.count()).group_by(Timer.state)).all())


def assert_each_fired_once_about(cases: list[int], late: timedelta) -> None:
    """Every timer of the cases fired, with exactly one timer_fired event each and its lateness close to
    ``late`` (recurring processes of workflows/ start cases of their own as the year passes: not counted)."""
    db.session.rollback()
    assert states().get("waiting", 0) == 0
    found = db.session.execute(select(Timer.state, Timer.fired_late_by_ms).where(Timer.case_id.in_(cases))).all()
    assert len(found) == len(cases) and {state for state, _ in found} == {"fired"}
    lateness = [ms for _, ms in found]
    expected = late.total_seconds() * 1000
    assert all(abs(ms - expected) < 15 * 60 * 1000 for ms in lateness), (min(lateness), max(lateness))
    per_case = db.session.execute(select(CaseEvent.case_id, func.count()).where(
        CaseEvent.type == "timer_fired", CaseEvent.case_id.in_(cases)).group_by(CaseEvent.case_id)).all()
    assert len(per_case) == len(cases) and {n for _, n in per_case} == {1}


def test_lateness_beyond_32_bits_is_stored(timer_processes: Flask) -> None:
    case = open_due_in(60)
    result = timer_processes.test_cli_runner().invoke(args=["clock", "advance", "26d"])
    assert result.exit_code == 0, result.output
    assert "fired 1 timer" in result.output
    timer = timer_of(case)
    assert timer.state == "fired"
    assert timer.fired_late_by_ms > 2**31  # 26 days in ms: the old 32-bit column refused it (PostgreSQL)


def test_a_thousand_timers_400_days_late_fire_once_in_workers_and_the_queue_stays_bounded(
        timer_processes: Flask, workers: Callable[..., object]) -> None:
    cases = open_many(1000)
    db.session.commit()
    runner = timer_processes.test_cli_runner()
    result = runner.invoke(args=["clock", "advance", "400d", "--no-fire"])
    assert result.exit_code == 0, result.output
    queue, lengths, done = timer_queue(), [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            lengths.append(queue.count)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers("w1")
    workers("w2")  # both sweep every second with a 2 s grace, while all 1,000 are overdue
    try:
        wait_until(lambda: states().get("waiting", 0) == 0, timeout=240, step=0.5)
        time.sleep(3)  # a few more sweeps over the fired timers
    finally:
        done.set()
        sampler.join(5)
    assert_each_fired_once_about(cases, timedelta(days=400))
    assert lengths and max(lengths) <= 1000, max(lengths)
    assert queue.count == 0


def test_a_thousand_timers_400_days_late_fire_once_inline(timer_processes: Flask) -> None:
    cases = open_many(1000)
    result = timer_processes.test_cli_runner().invoke(args=["clock", "advance", "400d"])
    assert result.exit_code == 0, result.output
    assert "fired 1000 timer(s)" in result.output
    assert_each_fired_once_about(cases, timedelta(days=400))


@pytest.mark.parametrize("bad", ["set", "nul"])
def test_a_firing_that_fails_outside_its_script_marks_the_timer_failed(unstorable: Flask, bad: str) -> None:
    if bad == "nul" and db.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL refuses a NUL character in JSON (a DataError)")
    case = open_case(actor=SYSTEM, process_id="unstorable_after_timer", channel="phone", description="Bad",
                     reported_at=now() - timedelta(hours=24, seconds=-0.5), data={"bad": bad}).id
    db.session.commit()
    time.sleep(0.7)
    assert dispatch_due_timers(unstorable) == 1
    SimpleWorker([timer_queue()], connection=redis_connection()).work(burst=True)  # a real RQ worker
    timer = timer_of(case)
    assert timer.state == "failed", timer.state
    expected = "TypeError: Object of type set is not JSON serializable" if bad == "set" else "UntranslatableCharacter"
    assert "outside the process's scripts" in timer.last_error and expected in timer.last_error
    assert "[SQL" not in timer.last_error  # the reason, not the statement and its parameters
    assert count_events(case, "timer_failed") == 1
    assert [t.id for t in pending_timers(actor=SYSTEM)] == [timer.id]
    # No retries were scheduled for it, and the sweep does not queue it again: it waits for an admin.
    queue = timer_queue()
    assert queue.count == 0 and queue.scheduled_job_registry.count == 0
    for _ in range(3):
        sweep(horizon=300, grace=0)
        db.session.commit()
    assert queue.count == 0
    assert count_events(case, "timer_failed") == 1


def test_the_inline_advance_marks_a_failing_firing_failed_and_fires_the_others(unstorable: Flask) -> None:
    bad = open_case(actor=SYSTEM, process_id="unstorable_after_timer", channel="phone", description="Bad",
                    reported_at=now() - timedelta(hours=23), data={"bad": "set"}).id
    good = open_due_in(3600)
    db.session.commit()
    result = unstorable.test_cli_runner().invoke(args=["clock", "advance", "2h"])
    assert result.exit_code == 0, result.output
    assert "fired 1 timer" in result.output
    assert timer_of(bad).state == "failed" and count_events(bad, "timer_failed") == 1
    assert timer_of(good).state == "fired"


def test_sweeping_again_and_again_queues_one_job_per_timer(timer_processes: Flask) -> None:
    cases = [open_due_in(0.2) for _ in range(5)]
    time.sleep(0.5)
    conn = redis_connection()
    conn.delete(DUE_KEY)  # Redis lost them: only the sweep will fire them now
    queue = timer_queue()
    for _ in range(20):  # many sweeps, across several seconds, while the re-fire jobs are queued
        sweep(horizon=300, grace=0)
        db.session.commit()
        time.sleep(0.1)
    assert queue.count == 5
    assert sorted(queue.job_ids) == sorted(job_id_for(timer_of(c).id) for c in cases)
    SimpleWorker([queue], connection=conn).work(burst=True)
    assert all(timer_of(c).state == "fired" and count_events(c, "timer_fired") == 1 for c in cases)


def test_the_sweep_replaces_a_failed_job_instead_of_adding_one(timer_processes: Flask) -> None:
    case = open_due_in(0.2)
    time.sleep(0.5)
    timer_id = timer_of(case).id
    conn = redis_connection()
    conn.delete(DUE_KEY)
    queue = timer_queue()
    job = queue.enqueue("app.jobs.fire_timer_job", timer_id, job_id=job_id_for(timer_id))
    queue.remove(job)
    job.set_status("failed")  # as a job whose retries ran out is left
    for _ in range(10):
        sweep(horizon=300, grace=0)
        db.session.commit()
    assert queue.job_ids == [job_id_for(timer_id)]



def test_a_transient_failure_is_retried_and_the_last_attempt_marks_the_timer_failed(
        timer_processes: Flask, database_url: str) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs row locks and lock_timeout (PostgreSQL)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from app.flows.timers import fire_or_fail

    case = open_due_in(0.2)
    time.sleep(0.4)
    timer_id = timer_of(case).id
    other = create_engine(database_url)
    blocker = other.connect()
    blocker.execute(text("SELECT id FROM cases WHERE id = :id FOR UPDATE"), {"id": case})  # another writer

    def attempt(final: bool) -> str:
        db.session.execute(text("SET LOCAL lock_timeout = '300ms'"))  # this attempt gives up quickly
        return fire_or_fail(timer_id=timer_id, final=final)

    try:
        with pytest.raises(OperationalError):  # not the last attempt: raised for RQ to retry
            attempt(final=False)
        assert timer_of(case).state == "waiting" and count_events(case, "timer_failed") == 0
        threading.Timer(1.0, blocker.rollback).start()  # the other writer ends while the failure is recorded
        outcome = attempt(final=True)
    finally:
        blocker.close()
        other.dispose()
    assert outcome.startswith("failed:")
    timer = timer_of(case)
    assert timer.state == "failed" and "LockNotAvailable" in timer.last_error
    assert count_events(case, "timer_failed") == 1
