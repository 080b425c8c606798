"""workflows/quality_judgement.bpmn, the shared judgement that return visits and complaints call: run on its own
through the engine seam (as its callers run it), its outputs, and that it is called and not opened."""

from __future__ import annotations

from app.engine import Engine, ProcessDefinition
from tests.workflows.test_recurring import FORMS, ROOT, ready, walk

JUDGED = {"is_quality_problem": "yes", "under_warranty": "no", "treatment_plan": "Replace the cabinet fan at cost"}


def test_it_is_called_only_and_has_one_task_for_the_technical_department(engine: Engine,
                                                                          judgement: ProcessDefinition) -> None:
    catalogue = judgement.catalogue
    assert catalogue.startable is False and catalogue.case_prefix == "QJ"
    assert {k: (v.role, v.form_key) for k, v in catalogue.human_tasks.items()} == {
        "judge_quality": ("technical_dept", "quality_judgement")}
    assert catalogue.start_timer is None and catalogue.calls == {}
    assert "quality_judgement" in FORMS
    text = (ROOT / "workflows" / "return_visit.bpmn").read_text()
    assert 'calledElement="quality_judgement"' in text


def test_it_gives_back_quality_problem_and_warranty_as_booleans(engine: Engine, judgement: ProcessDefinition) -> None:
    instance = engine.start(judgement, {"case_number": "QJ-1"})
    assert ready(instance) == ["judge_quality"]
    instance = walk(engine, instance, [("judge_quality", JUDGED)])
    assert instance.is_completed
    data = instance.data
    assert (data["quality_problem"], data["under_warranty"], data["judgement"]) == (
        True, False, JUDGED["treatment_plan"])
    assert data["case_number"] == "QJ-1"  # what it was given comes back too


def test_a_warranty_known_from_the_equipment_file_prefills_the_form(engine: Engine,
                                                                    judgement: ProcessDefinition) -> None:
    for known, shown in ((True, "yes"), (False, "no")):
        instance = engine.start(judgement, {"under_warranty": known})
        (task,) = instance.ready_human_tasks()
        assert task.data["under_warranty"] == shown
        assert FORMS.get("quality_judgement").prefilled(task.data)["under_warranty"] == shown
    instance = engine.start(judgement, {})  # a return visit knows no single equipment
    (task,) = instance.ready_human_tasks()
    assert "under_warranty" not in task.data


def test_not_a_quality_problem(engine: Engine, judgement: ProcessDefinition) -> None:
    instance = walk(engine, engine.start(judgement, {"under_warranty": True}), [
        ("judge_quality", {**JUDGED, "is_quality_problem": "no", "under_warranty": "yes",
                           "treatment_plan": "Explain the battery's expected life"})])
    assert instance.data["quality_problem"] is False and instance.data["under_warranty"] is True
