"""Every path of workflows/monthly_inspection.bpmn and workflows/return_visit.bpmn, driven through the engine
seam with a stopped clock; the payloads are validated by the real record forms first, as a request would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.engine import Engine, Instance, ManualClock, ProcessDefinition, set_clock
from app.forms import FormRegistry, FormValidationError
from tests.support import engine_for_tests

ROOT = Path(__file__).resolve().parents[2]
OCCURRENCE = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)  # 1 April 2026, 01:00 +08:00
FORMS = FormRegistry.load(ROOT / "forms")

CLEAN_MONTH = {"period": "April 2026", "equipment_checked": 42, "anomalies_found": False, "anomalies": []}
ANOMALY = {"serial_number": "S1", "finding": "Battery temperature above 40 °C every afternoon since the 12th"}
QUIET_QUARTER = {"region": "South", "users_called": 2,
                 "calls": [{"customer": "Pearl Hotel", "satisfied": "yes"}, {"customer": "City Hospital"}],
                 "problems_raised": False}
JUDGEMENT = {"is_quality_problem": "yes", "under_warranty": "yes",
             "treatment_plan": "Replace the battery string under the warranty terms"}


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine for the module, like a worker process."""
    return engine_for_tests()


def _definition(engine: Engine, process_id: str) -> ProcessDefinition:
    package = [(path.name, path.read_bytes()) for path in (ROOT / "workflows").glob("*.bpmn")]
    parsed = engine.parse((ROOT / "workflows" / f"{process_id}.bpmn").read_bytes(), f"{process_id}.bpmn", (), package)
    stored = engine.dump_definition(parsed)
    return engine.load_definition((process_id, "test"), lambda: stored)


@pytest.fixture(scope="module")
def inspection(engine: Engine) -> ProcessDefinition:
    """The monthly inspection, parsed and round-tripped through its stored form."""
    return _definition(engine, "monthly_inspection")


@pytest.fixture(scope="module")
def visits(engine: Engine) -> ProcessDefinition:
    """The quarterly return visits, parsed and round-tripped through its stored form."""
    return _definition(engine, "return_visit")


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """A stopped clock just after the occurrence."""
    manual = ManualClock(OCCURRENCE + timedelta(minutes=1))
    previous = set_clock(manual)
    yield manual
    set_clock(previous)


def start(engine: Engine, definition: ProcessDefinition) -> Instance:
    """Start an instance as the schedule does: reported_at is the occurrence time."""
    return engine.start(definition, {
        "case_number": "MI-2026-000001", "reported_at": OCCURRENCE.isoformat(), "channel": "schedule",
        "priority": "normal", "description": "Started by the schedule", "customer": None, "equipment": None,
        "occurrence_at": OCCURRENCE.isoformat(), "occurrence_label": "April 2026"})


def ready(instance: Instance) -> list[str]:
    """Spec ids of the ready human tasks, sorted."""
    return sorted(t.spec_id for t in instance.ready_human_tasks())


def do(engine: Engine, instance: Instance, spec_id: str, data: dict[str, Any]) -> Instance:
    """Validate ``data`` with the task's record form, then complete the task after a store/load round trip."""
    loaded = engine.load(instance.definition, instance.dump())
    task = next(t for t in loaded.ready_human_tasks() if t.spec_id == spec_id)
    cleaned = FORMS.get(task.form_key).validate(data) if task.form_key else {}
    loaded.complete(task.id, cleaned)
    return loaded


def walk(engine: Engine, instance: Instance, steps: list[tuple[str, dict[str, Any]]]) -> Instance:
    """Complete the steps in order, checking each is ready when its turn comes."""
    for spec_id, data in steps:
        assert spec_id in ready(instance), f"{spec_id} not ready; ready: {ready(instance)}"
        instance = do(engine, instance, spec_id, data)
    return instance


# -- catalogues ------------------------------------------------------------------------------------
def test_both_processes_declare_a_calendar_cycle_on_their_timer_start(inspection: ProcessDefinition,
                                                                      visits: ProcessDefinition) -> None:
    monthly, quarterly = inspection.catalogue.start_timer, visits.catalogue.start_timer
    assert monthly is not None and quarterly is not None
    assert (monthly.id, monthly.kind, monthly.expression) == (
        "monthly_inspection_due", "cycle", '"R/2026-01-01T01:00:00+08:00/P1M"')
    assert (quarterly.id, quarterly.kind, quarterly.expression) == (
        "return_visits_due", "cycle", '"R/2026-01-01T01:00:00+08:00/P3M"')


def test_every_human_task_has_its_role_and_an_installed_form(inspection: ProcessDefinition,
                                                             visits: ProcessDefinition) -> None:
    tasks = {k: (v.role, v.form_key) for k, v in inspection.catalogue.human_tasks.items()}
    assert tasks == {"inspect_operating_data": ("engineer", "monthly_inspection"),
                     "review_overdue_inspection": ("supervisor", "escalation_review")}
    services = {k: v.operation for k, v in inspection.catalogue.service_tasks.items()}
    assert services == {"review_month": "readings.review_month", "open_fault_cases_for_anomalies": "cases.open_linked"}
    tasks = {k: (v.role, v.form_key) for k, v in visits.catalogue.human_tasks.items()}
    assert tasks == {"call_sampled_users": ("agent", "return_visit_feedback"),
                     "judge_quality": ("technical_dept", "quality_judgement")}  # inside the call activity
    assert visits.catalogue.calls == {"judge_quality_problem": "quality_judgement"}
    for definition in (inspection, visits):
        for task in definition.catalogue.human_tasks.values():
            assert task.form_key is None or task.form_key in FORMS
    deadline = inspection.catalogue.timers["inspection_deadline"]
    assert deadline.attached_to == "inspect_operating_data" and not deadline.interrupting


# -- monthly inspection ----------------------------------------------------------------------------
def test_inspection_starts_at_once_and_a_clean_month_completes(engine: Engine, inspection: ProcessDefinition,
                                                              clock: ManualClock) -> None:
    instance = start(engine, inspection)
    assert ready(instance) == ["inspect_operating_data"]
    # The start timer is not waiting inside the instance: only the inspection deadline is.
    assert [t.spec_id for t in instance.waiting_timers()] == ["inspection_deadline"]
    instance = walk(engine, instance, [("inspect_operating_data", CLEAN_MONTH)])
    assert instance.is_completed
    assert instance.waiting_timers() == []


def test_anomalies_are_followed_up_with_fault_cases(engine: Engine, inspection: ProcessDefinition,
                                                   clock: ManualClock) -> None:
    instance = start(engine, inspection)
    assert instance.data["period"] == "February 2026"  # the month's review prefilled the record
    instance = walk(engine, instance, [
        ("inspect_operating_data", {**CLEAN_MONTH, "anomalies_found": True, "anomalies": [ANOMALY]})])
    assert instance.is_completed  # the fault cases were opened by the service task
    assert instance.data["anomalies"] == [ANOMALY]
    assert instance.data["fault_cases"] == [{"case_id": 1, "number": "FH-TEST-000001",
                                             "serial_number": ANOMALY["serial_number"]}]


def test_listed_anomalies_are_followed_up_even_if_the_box_is_not_ticked(
        engine: Engine, inspection: ProcessDefinition, clock: ManualClock) -> None:
    instance = start(engine, inspection)
    instance = walk(engine, instance, [("inspect_operating_data", {**CLEAN_MONTH, "anomalies": [ANOMALY]})])
    assert instance.is_completed and len(instance.data["fault_cases"]) == 1


def test_inspection_deadline_is_five_days_from_the_occurrence_and_escalates(
        engine: Engine, inspection: ProcessDefinition, clock: ManualClock) -> None:
    instance = start(engine, inspection)
    (timer,) = instance.waiting_timers()
    assert timer.due_at == OCCURRENCE + timedelta(days=5)
    assert instance.ready_human_tasks()[0].due_at == OCCURRENCE + timedelta(days=5)
    clock.set(OCCURRENCE + timedelta(days=5) - timedelta(seconds=1))
    instance = engine.load(inspection, instance.dump())
    instance.run()
    assert ready(instance) == ["inspect_operating_data"]
    clock.set(OCCURRENCE + timedelta(days=5, seconds=1))
    instance.run()
    assert ready(instance) == ["inspect_operating_data", "review_overdue_inspection"]
    instance = walk(engine, instance, [
        ("review_overdue_inspection", {"escalation_action": "reassigned", "escalation_note": "Wang is ill"}),
        ("inspect_operating_data", CLEAN_MONTH),
    ])
    assert instance.is_completed


def test_an_inspection_started_late_after_downtime_escalates_at_once(
        engine: Engine, inspection: ProcessDefinition, clock: ManualClock) -> None:
    clock.set(OCCURRENCE + timedelta(days=40))  # the system was down; the April inspection is still owed
    instance = start(engine, inspection)
    assert ready(instance) == ["inspect_operating_data", "review_overdue_inspection"]


def test_inspection_done_in_time_cancels_the_deadline(engine: Engine, inspection: ProcessDefinition,
                                                     clock: ManualClock) -> None:
    instance = start(engine, inspection)
    timer_id = instance.waiting_timers()[0].task_id
    instance = walk(engine, instance, [
        ("inspect_operating_data", {**CLEAN_MONTH, "anomalies_found": True, "anomalies": [ANOMALY]})])
    assert instance.task_state(timer_id) == "CANCELLED"
    assert instance.is_completed


# -- quarterly return visits -----------------------------------------------------------------------
def test_return_visits_start_at_once_and_a_quiet_quarter_completes(engine: Engine, visits: ProcessDefinition,
                                                                   clock: ManualClock) -> None:
    instance = start(engine, visits)
    assert ready(instance) == ["call_sampled_users"]
    assert instance.waiting_timers() == []  # the cycle start event does not keep the instance open
    instance = walk(engine, instance, [("call_sampled_users", QUIET_QUARTER)])
    assert instance.is_completed


def test_problems_raised_are_judged_with_the_technical_department(engine: Engine, visits: ProcessDefinition,
                                                                  clock: ManualClock) -> None:
    instance = start(engine, visits)
    calls = [{"customer": "Pearl Hotel", "satisfied": "no", "problem_raised": "UPS beeps at night"}]
    instance = walk(engine, instance, [
        ("call_sampled_users", {**QUIET_QUARTER, "calls": calls, "problems_raised": True})])
    # The call activity judge_quality_problem runs the shared quality_judgement process: its task judge_quality.
    assert ready(instance) == ["judge_quality"]
    assert instance.ready_human_tasks()[0].role == "technical_dept"
    assert instance.element_states()["judge_quality_problem"] == "waiting"
    instance = walk(engine, instance, [("judge_quality", JUDGEMENT)])
    assert instance.is_completed
    assert instance.data["is_quality_problem"] == "yes"
    assert instance.data["quality_problem"] is True and instance.data["under_warranty"] is True
    assert instance.data["treatment_plan"] == instance.data["judgement"] == JUDGEMENT["treatment_plan"]
    assert instance.data["calls"] == calls  # the caller's data comes back with the judgement


def test_a_problem_written_on_a_call_is_judged_even_if_the_box_is_not_ticked(
        engine: Engine, visits: ProcessDefinition, clock: ManualClock) -> None:
    instance = start(engine, visits)
    calls = [{"customer": "Pearl Hotel", "satisfied": "yes"},
             {"customer": "City Hospital", "satisfied": "no", "problem_raised": "Display flickers"}]
    instance = walk(engine, instance, [("call_sampled_users", {**QUIET_QUARTER, "calls": calls})])
    assert ready(instance) == ["judge_quality"]


def test_the_judgement_form_requires_the_decisions(visits: ProcessDefinition) -> None:
    form = FORMS.get("quality_judgement")
    with pytest.raises(FormValidationError) as caught:
        form.validate({"judgement_note": "?"})
    assert {"is_quality_problem", "under_warranty", "treatment_plan"} <= set(caught.value.errors)
