"""Every deadline of a case has its timer row, its due time on the work item and its timer events, even
one that was already due when the engine reached it: at entry, inline in a request, or in a worker."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from rq import SimpleWorker
from sqlalchemy import select

from app.audit.models import CaseEvent
from app.auth import SYSTEM, TIMER
from app.cases.models import Case
from app.engine import now
from app.extensions import db, redis_connection, timer_queue
from app.flows.steps import open_case
from app.flows.tasks import complete_work_item
from app.processes.service import deploy_path
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem
from app.timers.models import Timer
from app.timers.scheduling import dispatch_due_timers
from tests.support import staff_actor

DATA = Path(__file__).resolve().parents[1] / "data"
DIAGNOSIS = {"diagnosis": "Fan failure", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}


def fault_case(reported_at: datetime) -> int:
    """A fault-handling case on in-warranty equipment, entered now by a member of staff; its id."""
    seed_demo_data()
    equipment = db.session.scalars(select(Equipment).where(Equipment.warranty_ends_on > now().date())).first()
    case = open_case(actor=staff_actor("alice"), process_id="fault_handling", reported_at=reported_at,
                     channel="phone", description="UPS alarm", equipment_id=equipment.id)
    db.session.commit()
    return case.id


def timer(case_id: int, spec: str) -> Timer:
    """The case's timer row of a timer event."""
    db.session.rollback()
    return db.session.scalars(select(Timer).where(Timer.case_id == case_id, Timer.task_spec == spec)).one()


def item(case_id: int, spec: str) -> WorkItem:
    """The case's ready work item of a task."""
    return db.session.scalars(select(WorkItem).where(WorkItem.case_id == case_id, WorkItem.task_spec == spec,
                                                     WorkItem.state == "ready")).one()


def timer_events(case_id: int, timer_id: int) -> list[tuple[str, str]]:
    """(type, actor) of the events about one timer, in order."""
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq))
    return [(e.type, e.actor) for e in events if (e.payload or {}).get("timer_id") == timer_id]


def ms(delta: timedelta) -> int:
    """A duration in whole milliseconds, as fired_late_by_ms stores it."""
    return int(delta.total_seconds() * 1000)


def test_a_case_entered_after_its_deadline_records_the_deadline_as_fired_at_entry(deployed: Flask) -> None:
    reported = now() - timedelta(days=2)
    case_id = fault_case(reported)
    case = db.session.get(Case, case_id)
    deadline = timer(case_id, "diagnosis_deadline")
    assert deadline.due_at == reported + timedelta(hours=24)
    assert deadline.state == "fired"
    assert deadline.ended_at == case.opened_at
    assert deadline.fired_late_by_ms == ms(case.opened_at - deadline.due_at)  # about a day late
    assert timer_events(case_id, deadline.id) == [("timer_scheduled", "alice"), ("timer_fired", TIMER.username)]
    fired = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                       CaseEvent.type == "timer_fired")).one()
    assert fired.payload["due_at"] == deadline.due_at.isoformat()
    assert fired.payload["late_by_ms"] == deadline.fired_late_by_ms
    assert item(case_id, "diagnose_fault").due_at == deadline.due_at  # still dated, now overdue
    assert item(case_id, "review_overdue_diagnosis").role == "supervisor"  # the escalation is there
    opened = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                        CaseEvent.type == "case_opened")).one()
    assert opened.actor == "alice"  # the person's own events keep the person


def test_a_deadline_passing_inline_during_a_task_completion_gets_its_row_and_events(deployed: Flask) -> None:
    reported = now() - timedelta(days=2, hours=1)  # the 48 h removal deadline passed an hour ago
    case_id = fault_case(reported)
    diagnose = item(case_id, "diagnose_fault")
    complete_work_item(work_item_id=diagnose.id, actor=staff_actor("wang"), data=DIAGNOSIS)
    db.session.commit()
    removal = timer(case_id, "removal_deadline")
    assert removal.due_at == reported + timedelta(hours=48)
    assert removal.state == "fired"
    assert ms(timedelta(hours=1)) <= removal.fired_late_by_ms < ms(timedelta(hours=1, minutes=1))
    assert removal.fired_late_by_ms == ms(removal.ended_at - removal.due_at)
    assert timer_events(case_id, removal.id) == [("timer_scheduled", "wang"), ("timer_fired", TIMER.username)]
    completed = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                           CaseEvent.type == "task_completed")).one()
    assert completed.actor == "wang"
    assert item(case_id, "repair_remotely").due_at == removal.due_at
    assert item(case_id, "review_overdue_removal").role == "supervisor"
    # The diagnosis deadline fired at entry and is not recorded twice.
    assert db.session.scalar(select(Timer.state).where(Timer.case_id == case_id,
                                                       Timer.task_spec == "diagnosis_deadline")) == "fired"
    assert len(db.session.scalars(select(Timer).where(Timer.case_id == case_id)).all()) == 2


@pytest.fixture
def two_timers(deployed: Flask) -> Flask:
    """A process whose second timer is already due when its first fires."""
    deploy_path(DATA / "two_timers.bpmn", actor=SYSTEM)
    db.session.commit()
    return deployed


def test_a_deadline_already_due_when_a_worker_fires_the_one_before_gets_its_row(two_timers: Flask) -> None:
    reported = now() - timedelta(hours=24, seconds=-0.5)
    case_id = open_case(actor=staff_actor("alice"), process_id="two_timers", reported_at=reported,
                        channel="phone", description="Two timers").id
    db.session.commit()
    first = timer(case_id, "wait_a_day")
    assert first.state == "waiting"
    time.sleep(0.7)
    assert dispatch_due_timers(two_timers) == 1
    SimpleWorker([timer_queue()], connection=redis_connection()).work(burst=True)  # a real RQ worker
    first, second = timer(case_id, "wait_a_day"), timer(case_id, "wait_an_hour")
    assert first.state == second.state == "fired"
    assert second.due_at == reported + timedelta(hours=1)
    assert second.fired_late_by_ms == ms(second.ended_at - second.due_at)  # 23 hours late
    assert abs(second.fired_late_by_ms - ms(timedelta(hours=23))) < 5000
    assert timer_events(case_id, first.id) == [("timer_scheduled", "alice"), ("timer_fired", TIMER.username)]
    assert timer_events(case_id, second.id) == [("timer_scheduled", TIMER.username),
                                                ("timer_fired", TIMER.username)]
    assert item(case_id, "follow_up").role == "supervisor"
