"""Every path of workflows/consultation.bpmn through the engine seam: satisfied on the first or the third
answer, on-site guidance and the satisfaction question again."""

from __future__ import annotations

from app.engine import Engine, Instance, ProcessDefinition
from tests.workflows.conftest import NOTICE
from tests.workflows.test_recurring import FORMS, ready, walk

ANSWER = {"question": "How do I run the battery self-test?", "answer": "Menu > Battery > Test", "answered_by": "alice",
          "answer_method": "phone", "satisfied": "yes", "on_site_needed": False}
GUIDANCE = {"engineer_name": "Li Wei", "guided_at": "2026-05-05T02:00:00+00:00", "guidance": "Ran the test together"}


def start(engine: Engine, consultation: ProcessDefinition) -> Instance:
    """A question taken on the hotline."""
    return engine.start(consultation, {"case_number": "CQ-2026-000001", "reported_at": NOTICE.isoformat(),
                                       "channel": "phone", "description": "Question", "equipment": None})


def test_the_catalogue(consultation: ProcessDefinition) -> None:
    catalogue = consultation.catalogue
    assert catalogue.case_prefix == "CQ" and catalogue.startable and catalogue.timers == {}
    assert {k: (v.role, v.form_key) for k, v in catalogue.human_tasks.items()} == {
        "answer_question": ("agent", "consultation_answer"), "give_onsite_guidance": ("engineer", "onsite_guidance")}


def test_satisfied_on_the_first_answer(engine: Engine, consultation: ProcessDefinition) -> None:
    instance = start(engine, consultation)
    assert ready(instance) == ["answer_question"]
    instance = walk(engine, instance, [("answer_question", ANSWER)])
    assert instance.is_completed and instance.data["answers"] == 1


def test_satisfied_on_the_third_answer(engine: Engine, consultation: ProcessDefinition) -> None:
    unsatisfied = {**ANSWER, "satisfied": "no"}
    instance = walk(engine, start(engine, consultation), [
        ("answer_question", unsatisfied), ("answer_question", {**unsatisfied, "answer_method": "email"})])
    assert ready(instance) == ["answer_question"] and instance.data["answers"] == 2
    # The next answer starts from what is known: the question, the last answer.
    (task,) = instance.ready_human_tasks()
    assert FORMS.get("consultation_answer").prefilled(task.data)["question"] == ANSWER["question"]
    instance = walk(engine, instance, [("answer_question", ANSWER)])
    assert instance.is_completed and instance.data["answers"] == 3


def test_on_site_guidance_then_the_user_is_asked_again(engine: Engine, consultation: ProcessDefinition) -> None:
    instance = walk(engine, start(engine, consultation), [
        ("answer_question", {**ANSWER, "satisfied": "no", "on_site_needed": True})])
    assert ready(instance) == ["give_onsite_guidance"]
    assert instance.ready_human_tasks()[0].role == "engineer"
    instance = walk(engine, instance, [("give_onsite_guidance", GUIDANCE)])
    assert ready(instance) == ["answer_question"]
    (task,) = instance.ready_human_tasks()
    assert task.data["on_site_needed"] is False  # not sent again unless ticked again
    instance = walk(engine, instance, [("answer_question", {**ANSWER, "answer_method": "on_site_guidance"})])
    assert instance.is_completed and instance.data["answers"] == 2


def test_on_site_guidance_even_when_the_box_says_satisfied(engine: Engine, consultation: ProcessDefinition) -> None:
    instance = walk(engine, start(engine, consultation), [("answer_question", {**ANSWER, "on_site_needed": True})])
    assert ready(instance) == ["give_onsite_guidance"]
