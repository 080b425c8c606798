"""A task whose candidateGroups name several roles keeps them all: it is in each role's queue and counts, a
holder of any of them may claim and complete it, and a refusal names every role that would do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import SYSTEM, Actor
from app.engine import ManualClock
from app.engine.parser import Catalogue, HumanTaskInfo
from app.extensions import db
from app.processes.service import deploy_path
from app.tasks.models import WorkItem, WorkItemRole
from app.tasks.service import worklist_counts
from tests.support import staff_actor

DATA = Path(__file__).resolve().parents[1] / "data"
Client = Callable[..., FlaskClient]
RECORD = {"escalation_action": "expedited", "escalation_note": "Checked on site; all well."}


@pytest.fixture
def two_roles(deployed: Flask, clock: ManualClock, client: FlaskClient) -> dict[str, Any]:
    """A case of tests/data/two_roles.bpmn, waiting on its task for engineers or regional engineers."""
    deploy_path(DATA / "two_roles.bpmn", actor=SYSTEM)
    db.session.commit()
    response = client.post("/api/cases", json={"process": "two_roles", "channel": "phone",
                                               "reported_at": clock.now().isoformat(), "description": "check"})
    assert response.status_code == 201, response.get_json()
    (task,) = response.get_json()["open_tasks"]
    return task


def test_the_task_keeps_every_group_in_order_once(two_roles: dict[str, Any]) -> None:
    assert two_roles["role"] == "engineer"
    assert two_roles["roles"] == ["engineer", "regional_engineer"]
    stored = db.session.scalars(select(WorkItemRole).where(WorkItemRole.work_item_id == two_roles["id"])).all()
    assert [(r.role, r.position) for r in stored] == [("regional_engineer", 1)]


def test_it_is_in_the_queue_and_the_counts_of_each_of_its_roles(two_roles: dict[str, Any], client: FlaskClient,
                                                                ctx: Flask) -> None:
    for role in ("engineer", "regional_engineer"):
        listed = client.get("/api/tasks", query_string={"role": role, "state": "ready"}).get_json()
        assert two_roles["id"] in [t["id"] for t in listed["items"]], role
        assert listed["total"] == len(listed["items"])
    agents = client.get("/api/tasks", query_string={"role": "agent", "state": "ready"}).get_json()
    assert two_roles["id"] not in [t["id"] for t in agents["items"]]
    counts = {q.role: q.ready for q in worklist_counts(actor=staff_actor("zoe")).queues}
    assert counts["regional_engineer"] >= 1 and counts["engineer"] >= 1
    regional_only = {q.role: q.ready for q in worklist_counts(
        actor=Actor("ren", frozenset({"regional_engineer"}))).queues}
    assert regional_only == {"regional_engineer": counts["regional_engineer"]}


def test_a_holder_of_either_role_may_work_it_and_others_are_told_every_role(
        two_roles: dict[str, Any], signed_in: Client) -> None:
    task_id = two_roles["id"]
    agent = signed_in("ann", "agent")
    refused = agent.post(f"/api/tasks/{task_id}/claim")
    assert refused.status_code == 403
    body = refused.get_json()
    assert "the roles engineer or regional_engineer" in body["message"]
    assert body["errors"]["roles_needed"] == ["engineer", "regional_engineer", "supervisor"]

    regional = signed_in("ren", "regional_engineer")
    assert regional.post(f"/api/tasks/{task_id}/claim").status_code == 200
    done = regional.post(f"/api/tasks/{task_id}/complete", json={"data": RECORD})
    assert done.status_code == 200, done.get_json()
    item = db.session.get(WorkItem, task_id)
    db.session.refresh(item)
    assert (item.state, item.completed_by) == ("completed", "ren")


def test_assigning_it_takes_a_holder_of_any_of_its_roles(two_roles: dict[str, Any], signed_in: Client) -> None:
    supervisor = signed_in("sue", "supervisor")
    signed_in("ann", "agent")
    signed_in("ren", "regional_engineer")
    url = f"/api/tasks/{two_roles['id']}/assign"
    refused = supervisor.post(url, json={"assignee": "ann"})
    assert refused.status_code == 422
    assert refused.get_json()["errors"]["assignee"] == [
        f"user 'ann' does not hold the roles engineer or regional_engineer, which task {two_roles['id']} needs"]
    assigned = supervisor.post(url, json={"assignee": "ren"})
    assert assigned.status_code == 200 and assigned.get_json()["assignee"] == "ren"


def test_the_task_ready_event_names_every_role(two_roles: dict[str, Any], client: FlaskClient) -> None:
    events = client.get(f"/api/cases/{two_roles['case_id']}/events").get_json()["items"]
    (ready,) = [e for e in events if e["type"] == "task_ready"]
    assert ready["payload"]["role"] == "engineer"
    assert ready["payload"]["roles"] == ["engineer", "regional_engineer"]


def test_a_catalogue_stored_before_roles_existed_still_loads() -> None:
    stored = {"process_id": "p", "name": "P", "documentation": "", "timers": {}, "lanes": {},
              "human_tasks": {"t": {"id": "t", "name": "T", "role": "agent", "form_key": None, "lane": None,
                                    "documentation": ""},
                              "u": {"id": "u", "name": "U", "role": None, "form_key": None, "lane": None}}}
    catalogue = Catalogue.from_dict(stored)
    assert catalogue.human_tasks["t"].roles == ("agent",)
    assert catalogue.human_tasks["u"].roles == ()
    assert Catalogue.from_dict(catalogue.to_dict()) == catalogue
    info = HumanTaskInfo(id="x", name="X", role="engineer", form_key=None, lane=None,
                         roles=("engineer", "regional_engineer"))
    assert HumanTaskInfo.from_dict(Catalogue("p", "P", "", {"x": info}).to_dict()["human_tasks"]["x"]) == info
