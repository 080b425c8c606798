"""Cases of the new processes walked to closed on the real database through the services a request uses:
work items inside a call activity are claimed and completed like any other."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.cases.models import Case
from app.extensions import db
from app.flows.steps import open_case
from app.flows.tasks import complete_work_item
from app.tasks.service import list_work_items
from tests.processes.test_deploy import WORKFLOWS, deploy
from tests.support import staff_actor
from tests.workflows.test_complaints import COMPLAINT, RESULT
from tests.workflows.test_consultation import ANSWER


def walk_to_closed(case_id: int, steps: list[tuple[str, dict[str, Any]]]) -> Case:
    """Complete the case's one ready work item per step, each in its own transaction; the closed case."""
    staff = staff_actor("alice")
    for spec, data in steps:
        db.session.expire_all()
        (item,), _ = list_work_items(actor=staff, case_id=case_id, state="ready")
        assert item.task_spec == spec, (item.task_spec, spec)
        complete_work_item(work_item_id=item.id, actor=staff, data=data)
        db.session.commit()
    db.session.expire_all()
    case = db.session.get(Case, case_id)
    assert case is not None
    return case


def test_a_complaint_walks_through_the_called_judgement_to_closed(ctx: Flask, clock: Any) -> None:
    assert deploy(ctx, WORKFLOWS).exit_code == 0
    case = open_case(actor=staff_actor("alice"), process_id="complaint_handling", reported_at=clock.now(),
                     channel="phone", description="Third battery failure")
    db.session.commit()
    assert case.number.startswith("CP-")
    judged = {"is_quality_problem": "yes", "under_warranty": "no", "treatment_plan": "Batteries at cost"}
    closed = walk_to_closed(case.id, [
        ("record_complaint", COMPLAINT), ("judge_quality", judged),
        ("negotiate_solution", {"proposed_solution": "At cost", "negotiation": "Agreed", "solution_agreed": "yes"}),
        ("record_complaint_result", RESULT)])
    assert closed.status == "closed", closed.status
    _, total = list_work_items(actor=staff_actor("alice"), case_id=case.id, state="completed")
    assert total == 4


def test_a_consultation_answered_twice_closes(ctx: Flask, clock: Any) -> None:
    assert deploy(ctx, WORKFLOWS).exit_code == 0
    case = open_case(actor=staff_actor("alice"), process_id="consultation", reported_at=clock.now(),
                     channel="email", description="How to self-test")
    db.session.commit()
    assert case.number.startswith("CQ-")
    closed = walk_to_closed(case.id, [("answer_question", {**ANSWER, "satisfied": "no"}),
                                      ("answer_question", ANSWER)])
    assert closed.status == "closed", closed.status
