"""Every path of workflows/complaint_handling.bpmn through the engine seam: quality problem yes/no × in/out of
warranty, the judgement run by the call activity to quality_judgement."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import Engine, Instance, ManualClock, ProcessDefinition
from tests.workflows.conftest import NOTICE
from tests.workflows.test_recurring import ready, walk

COMPLAINT = {"complainant": "Ms Chen, Pearl Hotel", "complainant_contact": "+86 20 5555 0101",
             "complained_at": "2026-05-04T02:00:00+00:00", "complaint_channel": "phone", "equipment_model": "UPS-60",
             "equipment_serial": "S1", "complaint": "Third battery failure this year", "received_by": "alice"}
RESULT = {"result": "Done", "user_accepts": "yes", "processed_by": "alice"}


def start(engine: Engine, complaints: ProcessDefinition, warranty_ends_on: str | None) -> Instance:
    """A complaint about equipment whose warranty ends on ``warranty_ends_on`` (None: no equipment on file)."""
    equipment = {"serial_number": "S1", "warranty_ends_on": warranty_ends_on} if warranty_ends_on else None
    return engine.start(complaints, {"case_number": "CP-2026-000001", "reported_at": NOTICE.isoformat(),
                                     "channel": "phone", "description": "Complaint", "equipment": equipment})


def judged(quality: str, warranty: str) -> dict[str, Any]:
    """The technical department's judgement."""
    return {"is_quality_problem": quality, "under_warranty": warranty, "treatment_plan": "As agreed"}


def test_the_catalogue_knows_the_called_judgement(complaints: ProcessDefinition) -> None:
    catalogue = complaints.catalogue
    assert catalogue.case_prefix == "CP" and catalogue.startable
    assert catalogue.calls == {"judge_complaint_quality": "quality_judgement"}
    assert {k: v.role for k, v in catalogue.human_tasks.items()} == {
        "record_complaint": "agent", "judge_quality": "technical_dept", "handle_under_warranty": "agent",
        "negotiate_solution": "supervisor", "record_complaint_result": "agent"}


@pytest.mark.parametrize(("warranty_ends_on", "under"), [("2027-12-31", True), ("2026-01-31", False), (None, False)])
def test_warranty_is_read_from_the_equipment_file_and_prefills_the_judgement(
        engine: Engine, complaints: ProcessDefinition, notice_clock: ManualClock, warranty_ends_on: str | None,
        under: bool) -> None:
    instance = start(engine, complaints, warranty_ends_on)
    assert ready(instance) == ["record_complaint"]
    assert instance.data["under_warranty"] is under
    instance = walk(engine, instance, [("record_complaint", COMPLAINT)])
    (task,) = instance.ready_human_tasks()
    assert (task.spec_id, task.role) == ("judge_quality", "technical_dept")
    assert task.data["under_warranty"] == ("yes" if under else "no")
    assert instance.element_states()["judge_complaint_quality"] == "waiting"


def test_quality_problem_under_warranty_is_handled_by_the_after_sales_terms(
        engine: Engine, complaints: ProcessDefinition, notice_clock: ManualClock) -> None:
    instance = walk(engine, start(engine, complaints, "2027-12-31"), [
        ("record_complaint", COMPLAINT), ("judge_quality", judged("yes", "yes"))])
    assert ready(instance) == ["handle_under_warranty"]
    instance = walk(engine, instance, [
        ("handle_under_warranty", {"warranty_action": "replace_parts", "arrangement": "New battery string on Friday"}),
        ("record_complaint_result", RESULT)])
    assert instance.is_completed
    assert instance.data["quality_problem"] is True and instance.data["warranty_action"] == "replace_parts"
    assert instance.data["complaint"] == COMPLAINT["complaint"]  # the record survives the call activity


def test_quality_problem_after_warranty_is_negotiated_with_the_user(
        engine: Engine, complaints: ProcessDefinition, notice_clock: ManualClock) -> None:
    instance = walk(engine, start(engine, complaints, "2026-01-31"), [
        ("record_complaint", COMPLAINT), ("judge_quality", judged("yes", "no"))])
    assert ready(instance) == ["negotiate_solution"]
    assert instance.ready_human_tasks()[0].role == "supervisor"
    instance = walk(engine, instance, [
        ("negotiate_solution", {"proposed_solution": "Batteries at cost, labour free", "negotiation": "Agreed by phone",
                                "solution_agreed": "yes"}),
        ("record_complaint_result", RESULT)])
    assert instance.is_completed and instance.data["solution_agreed"] == "yes"


@pytest.mark.parametrize(("warranty_ends_on", "warranty"), [("2027-12-31", "yes"), ("2026-01-31", "no")])
def test_not_a_quality_problem_is_explained_and_recorded(engine: Engine, complaints: ProcessDefinition,
                                                         notice_clock: ManualClock, warranty_ends_on: str,
                                                         warranty: str) -> None:
    instance = walk(engine, start(engine, complaints, warranty_ends_on), [
        ("record_complaint", COMPLAINT), ("judge_quality", judged("no", warranty))])
    assert ready(instance) == ["record_complaint_result"]
    instance = walk(engine, instance, [("record_complaint_result", {
        **RESULT, "explanation": "The batteries were run flat every night: not a product defect"})])
    assert instance.is_completed and instance.data["quality_problem"] is False
    assert "handle_under_warranty" not in instance.element_states()
    assert "negotiate_solution" not in instance.element_states()


def test_the_judge_may_correct_the_warranty_of_the_file(engine: Engine, complaints: ProcessDefinition,
                                                        notice_clock: ManualClock) -> None:
    instance = walk(engine, start(engine, complaints, "2027-12-31"), [
        ("record_complaint", COMPLAINT), ("judge_quality", judged("yes", "no"))])  # e.g. the warranty was voided
    assert ready(instance) == ["negotiate_solution"]
