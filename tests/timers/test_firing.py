"""Timers fire through RQ with real Redis and real worker processes: on time, once, and never lost."""

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
from rq import SimpleWorker
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.engine import now
from app.extensions import db, redis_connection, timer_queue
from app.flows.steps import open_case
from app.flows.tasks import complete_work_item
from app.processes.service import deploy_path
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem
from app.timers.scheduling import DUE_KEY, dispatch_due_timers, job_id_for, wall_epoch
from tests.support import WorkerProcesses, open_due_in, staff_actor, timer_of, wait_until, worker_env

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
DIAGNOSIS = {"diagnosis": "Fan failure", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}


@pytest.fixture
def timer_processes(deployed: Flask) -> Flask:
    """The test processes with timers, deployed next to workflows/."""
    for name in ("timer_then_task", "looping_timer"):
        deploy_path(DATA / f"{name}.bpmn", actor=SYSTEM)
    db.session.commit()
    return deployed


def count_events(case_id: int, type: str) -> int:
    """How many events of a type the case has."""
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(CaseEvent)
                             .where(CaseEvent.case_id == case_id, CaseEvent.type == type)) or 0


def count_items(case_id: int) -> int:
    """How many work items the case has had."""
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.case_id == case_id)) or 0



@pytest.fixture
def workers(app: Flask, database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start real `flask worker` processes (own process groups); all are killed at the end."""
    processes = WorkerProcesses()

    def start(name: str, **settings: str) -> subprocess.Popen[bytes]:
        env = worker_env(database_url=database_url, redis_url=app.config["REDIS_URL"],
                         instance=tmp_path / "instance", **settings)
        return processes.start(name, env, tmp_path / f"{name}.log")

    yield start
    processes.stop()


def test_committed_timers_are_armed_at_their_exact_due_time(timer_processes: Flask) -> None:
    case = open_due_in(60)
    timer = timer_of(case)
    armed = redis_connection().zscore(DUE_KEY, str(timer.id))
    assert armed is not None and abs(armed - wall_epoch(timer.due_at)) < 0.001  # not rounded to a second
    assert not timer_queue().job_ids  # nothing is queued before it is due


def test_only_committed_timers_are_armed(timer_processes: Flask) -> None:
    case = open_case(actor=SYSTEM, process_id="timer_then_task", reported_at=now() - timedelta(hours=23),
                     channel="phone", description="Rolled back")
    db.session.rollback()
    assert redis_connection().zcard(DUE_KEY) == 0
    assert case.id is not None  # it had a row (and a timer) inside the transaction that was rolled back


def test_a_due_timer_is_dispatched_and_fires_with_a_deterministic_job_id(timer_processes: Flask) -> None:
    case = open_due_in(0.5)
    time.sleep(0.7)
    assert dispatch_due_timers(timer_processes) == 1
    timer_id = timer_of(case).id
    assert timer_queue().job_ids == [job_id_for(timer_id)]
    assert dispatch_due_timers(timer_processes) == 0  # claimed once
    SimpleWorker([timer_queue()], connection=redis_connection()).work(burst=True)
    timer = timer_of(case)
    assert timer.state == "fired"
    assert 0 <= timer.fired_late_by_ms < 1500  # bounded by this test's own sleep
    assert count_events(case, "timer_fired") == 1
    assert db.session.scalar(select(WorkItem.name).where(WorkItem.case_id == case)) == "Follow up"


def test_firing_twice_has_no_effect(timer_processes: Flask) -> None:
    from app.flows.timers import fire_timer

    case2 = open_due_in(0.5)
    time.sleep(0.7)
    assert fire_timer(timer_id=timer_of(case2).id) == "fired"
    db.session.commit()
    assert fire_timer(timer_id=timer_of(case2).id) == "already fired"
    assert count_events(case2, "timer_fired") == 1


def scheduler_running() -> bool:
    """True once a worker's RQ scheduler holds the timer queue's lock (it polls every second)."""
    return bool(redis_connection().exists(f"rq:scheduler-lock:{timer_queue().name}"))


def test_a_due_timer_fires_in_a_worker_process_on_time(timer_processes: Flask, workers) -> None:
    workers("w1")
    wait_until(scheduler_running, timeout=20)
    case = open_due_in(3)
    wait_until(lambda: timer_of(case).state == "fired", timeout=15)
    # A sanity bound for a shared test machine; bench/timers_bench.py measures the real p99.
    assert timer_of(case).fired_late_by_ms < 1500
    assert count_events(case, "timer_fired") == 1


def test_a_timer_cancelled_by_completing_its_task_never_fires(timer_processes: Flask, workers) -> None:
    workers("w1")
    case = open_due_in(3, process="one_task")
    timer = timer_of(case)
    item = db.session.scalars(select(WorkItem).where(WorkItem.case_id == case)).one()
    complete_work_item(work_item_id=item.id, actor=staff_actor("alice"),
                       data={"escalation_action": "other", "escalation_note": "answered"})
    db.session.commit()
    assert timer_of(case).state == "cancelled"
    assert redis_connection().zscore(DUE_KEY, str(timer.id)) is None  # disarmed at commit
    time.sleep(5)
    assert timer_of(case).state == "cancelled"
    assert count_events(case, "timer_fired") == 0


def test_a_worker_killed_mid_job_loses_nothing(timer_processes: Flask, workers) -> None:
    slow = workers("slow", SERVICECASE_TIMER_FIRE_DELAY="30")
    case = open_due_in(1.5)
    timer_id = timer_of(case).id
    registry = StartedJobRegistry(queue=timer_queue())
    wait_until(lambda: job_id_for(timer_id) in registry.get_job_ids(), timeout=15)
    os.killpg(slow.pid, signal.SIGKILL)  # mid-job: the firing transaction never commits
    slow.wait(10)
    killed_at = time.monotonic()
    assert timer_of(case).state == "waiting"
    workers("rescuer")
    wait_until(lambda: timer_of(case).state == "fired", timeout=30)
    assert time.monotonic() - killed_at <= 30
    assert count_events(case, "timer_fired") == 1
    assert count_items(case) == 1


def test_flushed_redis_is_restored_by_the_sweep(timer_processes: Flask, workers) -> None:
    workers("w1")
    wait_until(scheduler_running, timeout=20)
    cases = [open_due_in(4 + i) for i in range(5)]
    redis_connection().flushdb()  # while the worker runs: every scheduled job, lock and registry is gone
    for case in cases:
        wait_until(lambda case=case: timer_of(case).state == "fired", timeout=30)
    for case in cases:
        assert count_events(case, "timer_fired") == 1
        assert timer_of(case).fired_late_by_ms < 4000


def test_two_workers_racing_fire_once(timer_processes: Flask, workers) -> None:
    case = open_due_in(2)
    timer_id = timer_of(case).id
    queue = timer_queue()
    for n in range(6):  # the same timer under extra ids, as a duplicate sweep would do
        queue.enqueue_in(timedelta(seconds=2), "app.jobs.fire_timer_job", timer_id, job_id=f"race-{n}")
    workers("w1", SERVICECASE_SWEEP_INTERVAL="30")
    workers("w2", SERVICECASE_SWEEP_INTERVAL="30")
    wait_until(lambda: timer_of(case).state == "fired", timeout=20)
    time.sleep(3)
    assert count_events(case, "timer_fired") == 1
    assert count_items(case) == 1


def test_a_looping_script_is_stopped_by_the_job_timeout(timer_processes: Flask, workers) -> None:
    # The script budget would stop the loop first; raised here so the job timeout, the backstop, is what stops it.
    workers("w1", SERVICECASE_TIMER_JOB_TIMEOUT="3", SERVICECASE_SCRIPT_TIME_BUDGET_MS="60000")
    looping = open_due_in(1, process="looping_timer")
    wait_until(lambda: timer_of(looping).state == "failed", timeout=30)
    timer = timer_of(looping)
    assert "job timeout" in (timer.last_error or "")
    assert count_events(looping, "timer_failed") == 1
    fine = open_due_in(1)  # the worker is not hung: the next timer still fires
    wait_until(lambda: timer_of(fine).state == "fired", timeout=20)


def test_clock_advance_rehearses_the_24h_and_48h_escalations(timer_processes: Flask) -> None:
    runner = timer_processes.test_cli_runner()
    seed_demo_data()
    in_warranty = db.session.scalars(select(Equipment).where(Equipment.warranty_ends_on > now().date())).first()
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now(), channel="phone",
                     description="UPS on bypass", equipment_id=in_warranty.id).id
    db.session.commit()

    def ready() -> list[str]:
        db.session.expire_all()
        return sorted(db.session.scalars(select(WorkItem.task_spec).where(
            WorkItem.case_id == case, WorkItem.state == "ready")))

    assert ready() == ["diagnose_fault"]
    result = runner.invoke(args=["clock", "advance", "23h59m"])
    assert result.exit_code == 0, result.output
    assert ready() == ["diagnose_fault"]
    result = runner.invoke(args=["clock", "advance", "2m"])
    assert "fired 1 timer" in result.output
    assert ready() == ["diagnose_fault", "review_overdue_diagnosis"]
    item = db.session.scalars(select(WorkItem).where(WorkItem.case_id == case,
                                                     WorkItem.task_spec == "diagnose_fault")).one()
    complete_work_item(work_item_id=item.id, actor=staff_actor("wang"), data=DIAGNOSIS)
    db.session.commit()
    assert ready() == ["repair_remotely", "review_overdue_diagnosis"]  # free under warranty: no quote
    result = runner.invoke(args=["clock", "advance", "24h"])
    assert result.exit_code == 0, result.output
    assert "review_overdue_removal" in ready()
    assert count_events(case, "timer_fired") == 2


def test_clock_advance_refuses_nonsense(timer_processes: Flask) -> None:
    runner = timer_processes.test_cli_runner()
    result = runner.invoke(args=["clock", "advance", "soon"])
    assert result.exit_code != 0
    assert "cannot read 'soon' as a duration" in result.output
