"""Every path of workflows/fault_handling.bpmn, driven through the engine seam with a stopped clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.engine import Engine, Instance, ManualClock, ProcessDefinition, set_clock
from tests.support import engine_for_tests, recording_operations, workflow_decisions

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
IN_WARRANTY = {"id": 1, "model": "EA990-200K", "serial_number": "S1", "warranty_ends_on": "2027-02-28"}
OUT_OF_WARRANTY = {"id": 2, "model": "EA660-60K", "serial_number": "S2", "warranty_ends_on": "2024-06-14"}

DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
REPORT = {"report_summary": "Fixed", "report_sent_via": "email", "customer_confirmed": True}


CALLS: list[tuple[str, dict[str, Any]]] = []  # the service tasks' operations, as they were called


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine for the module, like a worker process; its operations record their calls in CALLS."""
    return engine_for_tests(operations=recording_operations(CALLS))


@pytest.fixture(autouse=True)
def _no_calls_yet() -> None:
    CALLS.clear()


@pytest.fixture(scope="module")
def definition(engine: Engine) -> ProcessDefinition:
    """The fault-handling process, parsed and round-tripped through its stored form."""
    parsed = engine.parse((ROOT / "workflows" / "fault_handling.bpmn").read_bytes(), "fault_handling.bpmn",
                          workflow_decisions())
    stored = engine.dump_definition(parsed)
    return engine.load_definition(("fault_handling", "test"), lambda: stored)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """A stopped clock at T0."""
    manual = ManualClock(T0)
    previous = set_clock(manual)
    yield manual
    set_clock(previous)


def start(engine: Engine, definition: ProcessDefinition, *, equipment: dict[str, Any] | None,
          reported_at: datetime = T0) -> Instance:
    """Open a case as the system does."""
    return engine.start(definition, {
        "case_number": "FH-2026-000001", "reported_at": reported_at.isoformat(), "channel": "phone",
        "priority": "normal", "description": "UPS alarm", "customer": None, "equipment": equipment})


def ready(instance: Instance) -> list[str]:
    """Spec ids of the ready human tasks, sorted."""
    return sorted(t.spec_id for t in instance.ready_human_tasks())


def do(engine: Engine, instance: Instance, spec_id: str, data: dict[str, Any]) -> Instance:
    """Complete the ready task ``spec_id`` after a store/load round trip, as a request would."""
    loaded = engine.load(instance.definition, instance.dump())
    task = next(t for t in loaded.ready_human_tasks() if t.spec_id == spec_id)
    loaded.complete(task.id, data)
    return loaded


def walk(engine: Engine, instance: Instance, steps: list[tuple[str, dict[str, Any]]]) -> Instance:
    """Complete the steps in order, checking each is ready when its turn comes."""
    for spec_id, data in steps:
        assert spec_id in ready(instance), f"{spec_id} not ready; ready: {ready(instance)}"
        instance = do(engine, instance, spec_id, data)
    return instance


def test_catalogue_names_every_human_task_with_role_and_form(definition: ProcessDefinition) -> None:
    tasks = {k: (v.role, v.form_key) for k, v in definition.catalogue.human_tasks.items()}
    assert tasks["diagnose_fault"] == ("engineer", "fault_diagnosis")
    assert tasks["repair_on_site"] == ("regional_engineer", "onsite_repair_record")
    assert tasks["reserve_parts"] == ("warehouse", "parts_reservation")
    assert tasks["write_processing_report"] == ("agent", "processing_report")
    assert all(role and form for role, form in tasks.values())
    timers = definition.catalogue.timers
    assert timers["diagnosis_deadline"].attached_to == "diagnose_fault"
    assert timers["removal_deadline"].attached_to == "remove_fault"
    assert not timers["diagnosis_deadline"].interrupting


def test_warranty_quality_fault_repaired_remotely_is_free(engine: Engine, definition: ProcessDefinition,
                                                          clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    assert ready(instance) == ["diagnose_fault"]
    instance = walk(engine, instance, [
        ("diagnose_fault", DIAGNOSIS),
        ("repair_remotely", {"remote_channel": "network", "work_performed": "Reset", "remote_result": "repaired"}),
        ("write_processing_report", REPORT),
    ])
    assert instance.is_completed
    assert instance.data["outcome"] == "repaired_remotely"
    assert instance.data["free_of_charge"] is True


def test_out_of_warranty_quote_accepted_parts_on_site(engine: Engine, definition: ProcessDefinition,
                                                      clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=OUT_OF_WARRANTY)
    instance = walk(engine, instance, [
        ("diagnose_fault", {**DIAGNOSIS, "support_mode": "on_site", "parts_needed": True,
                            "parts_requested": [{"part_number": "F-200", "quantity": 2},
                                                {"part_number": "CAP-1", "quantity": 1}],
                            "fault_class": "complex", "removal_target_hours": 72}),
    ])
    assert instance.data["parts_to_reserve_text"] == "F-200 x 2; CAP-1 x 1"
    assert instance.data["parts_used"] == instance.data["parts_to_reserve"]  # the on-site record starts with them
    instance = walk(engine, instance, [
        ("quote_maintenance_cost", {"quote_amount": 1200.0, "quote_currency": "CNY", "quote_accepted": "yes"}),
        ("reserve_parts", {"reservation_note": "Shelf B3"}),
        ("repair_on_site", {"engineer_name": "Wang", "arrived_at": "2026-03-02T12:00:00+00:00",
                            "work_performed": "Replaced fuse",
                            "parts_used": [{"part_number": "F-200", "quantity": 1}], "onsite_result": "repaired"}),
        ("write_processing_report", REPORT),
    ])
    assert instance.is_completed
    assert instance.data["outcome"] == "repaired_on_site"
    assert instance.data["removal_due_at"] == (T0 + timedelta(hours=72)).isoformat()
    assert [name for name, _ in CALLS] == ["stock.check", "stock.reserve", "stock.use"]
    assert CALLS[1][1]["lines"] == [{"part_number": "F-200", "quantity": 2}, {"part_number": "CAP-1", "quantity": 1}]
    assert CALLS[2][1]["used"] == [{"part_number": "F-200", "quantity": 1}]


def test_quote_declined_goes_straight_to_the_report(engine: Engine, definition: ProcessDefinition,
                                                    clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=None)
    instance = walk(engine, instance, [
        ("diagnose_fault", DIAGNOSIS),
        ("quote_maintenance_cost", {"quote_amount": 800.0, "quote_currency": "CNY", "quote_accepted": "no"}),
        ("write_processing_report", REPORT),
    ])
    assert instance.is_completed
    assert instance.data["outcome"] == "quote_declined"


def test_misuse_under_warranty_is_charged(engine: Engine, definition: ProcessDefinition,
                                          clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    instance = walk(engine, instance, [("diagnose_fault", {**DIAGNOSIS, "cause": "misuse"})])
    assert ready(instance) == ["quote_maintenance_cost"]


def test_remote_needs_on_site(engine: Engine, definition: ProcessDefinition, clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    instance = walk(engine, instance, [
        ("diagnose_fault", DIAGNOSIS),
        ("repair_remotely", {"remote_channel": "telephone", "work_performed": "Tried",
                             "remote_result": "needs_on_site"}),
        ("repair_on_site", {"engineer_name": "Wang", "arrived_at": "2026-03-02T12:00:00+00:00",
                            "work_performed": "Fixed", "parts_used": [], "onsite_result": "repaired"}),
        ("write_processing_report", REPORT),
    ])
    assert instance.data["outcome"] == "repaired_on_site"


@pytest.mark.parametrize("route", ["remote", "on_site"])
def test_not_repairable_is_replaced_through_the_dealer(engine: Engine, definition: ProcessDefinition,
                                                       clock: ManualClock, route: str) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    if route == "remote":
        steps = [("diagnose_fault", DIAGNOSIS),
                 ("repair_remotely", {"remote_channel": "network", "work_performed": "No",
                                      "remote_result": "not_repairable"})]
    else:
        steps = [("diagnose_fault", {**DIAGNOSIS, "support_mode": "on_site"}),
                 ("repair_on_site", {"engineer_name": "Wang", "arrived_at": "2026-03-02T12:00:00+00:00",
                                     "work_performed": "Board burnt", "parts_used": [],
                                     "onsite_result": "not_repairable"})]
    instance = walk(engine, instance, [*steps,
        ("arrange_replacement", {"dealer_name": "Pearl Power", "replacement_agreed": True,
                                 "replacement_model": "EA990-200K",
                                 "delivery_planned_at": "2026-03-03T08:00:00+00:00"}),
        ("install_replacement", {"installed_at": "2026-03-03T12:00:00+00:00", "new_serial_number": "S9"}),
        ("write_processing_report", REPORT),
    ])
    assert instance.is_completed
    assert instance.data["outcome"] == "replaced"
    assert [call for call in CALLS if call[0] == "equipment.replace"] == [("equipment.replace", {
        "new_serial": "S9", "model": "EA990-200K", "installed_at": "2026-03-03T12:00:00+00:00",
        "dealer": "Pearl Power"})]


def test_diagnosis_deadline_runs_from_the_notice_and_escalates(engine: Engine, definition: ProcessDefinition,
                                                               clock: ManualClock) -> None:
    reported = T0 - timedelta(hours=5)  # the customer phoned five hours before it was typed in
    instance = start(engine, definition, equipment=IN_WARRANTY, reported_at=reported)
    (timer,) = instance.waiting_timers()
    assert timer.spec_id == "diagnosis_deadline"
    assert timer.due_at == reported + timedelta(hours=24)
    assert instance.ready_human_tasks()[0].due_at == reported + timedelta(hours=24)
    clock.set(reported + timedelta(hours=23, minutes=59))
    instance = engine.load(definition, instance.dump())
    instance.run()
    assert ready(instance) == ["diagnose_fault"]
    clock.set(reported + timedelta(hours=24, seconds=1))
    instance.run()
    assert ready(instance) == ["diagnose_fault", "review_overdue_diagnosis"]
    assert instance.waiting_timers() == []
    instance = walk(engine, instance, [
        ("review_overdue_diagnosis", {"escalation_action": "expedited", "escalation_note": "Called Wang"}),
        ("diagnose_fault", DIAGNOSIS),
    ])
    assert ready(instance) == ["repair_remotely"]


def test_removal_deadline_48h_for_common_faults(engine: Engine, definition: ProcessDefinition,
                                               clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    instance = walk(engine, instance, [("diagnose_fault", DIAGNOSIS)])
    (timer,) = instance.waiting_timers()
    assert timer.spec_id == "removal_deadline"
    assert timer.due_at == T0 + timedelta(hours=48)
    assert instance.ready_human_tasks()[0].due_at == T0 + timedelta(hours=48)
    clock.set(T0 + timedelta(hours=48, seconds=1))
    instance.run()
    assert ready(instance) == ["repair_remotely", "review_overdue_removal"]


def test_diagnosis_in_time_cancels_the_timer(engine: Engine, definition: ProcessDefinition,
                                            clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY)
    timer_id = instance.waiting_timers()[0].task_id
    instance = walk(engine, instance, [("diagnose_fault", DIAGNOSIS)])
    assert instance.task_state(timer_id) == "CANCELLED"
    clock.advance(timedelta(hours=30))
    instance.run()
    assert "review_overdue_diagnosis" not in ready(instance)


def test_a_notice_older_than_24h_escalates_at_once(engine: Engine, definition: ProcessDefinition,
                                                   clock: ManualClock) -> None:
    instance = start(engine, definition, equipment=IN_WARRANTY, reported_at=T0 - timedelta(hours=25))
    assert ready(instance) == ["diagnose_fault", "review_overdue_diagnosis"]
