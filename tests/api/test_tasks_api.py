"""The task endpoints of the JSON API: worklists, claim, complete, every status code of the contract."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.auth import SYSTEM
from app.cases.models import Case
from app.extensions import db
from app.processes.service import deploy_sources
from app.tasks.models import WorkItem

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def _error(response: Any, status: int) -> dict[str, Any]:
    """The JSON error body, checked for the API's one error shape."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- worklists -----------------------------------------------------------------------------------------
@pytest.fixture
def worklist(api) -> dict[str, dict[str, Any]]:
    """Two fault cases (the second reported earlier, so more urgent) and a one-task case."""
    late = api.open_case(description="Reported an hour ago")
    early = api.open_case(reported_at=(api.reported_at() - timedelta(hours=5)).isoformat(),
                          description="Reported six hours ago")
    question = api.open_case(process="one_task", equipment_id=None, description="Invoice question",
                             reported_at=(api.reported_at() - timedelta(hours=2)).isoformat())
    return {"late": late["open_tasks"][0], "early": early["open_tasks"][0],
            "question": question["open_tasks"][0]}


def _task_ids(client: Any, query: str = "") -> list[int]:
    response = client.get(f"/api/tasks{query}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["total"] == len(body["items"])  # every test list fits one page
    return [t["id"] for t in body["items"]]


def test_worklist_is_most_urgent_first(client, worklist) -> None:
    by_due = sorted(worklist.values(), key=lambda t: datetime.fromisoformat(t["due_at"]))
    assert _task_ids(client) == [t["id"] for t in by_due]


def test_worklist_filters_by_role_case_assignee_and_state(api, client, worklist) -> None:
    early, late, question = worklist["early"], worklist["late"], worklist["question"]
    assert _task_ids(client, "?role=engineer") == [early["id"], late["id"]]
    assert _task_ids(client, "?role=agent") == [question["id"]]
    assert _task_ids(client, "?role=warehouse") == []
    assert _task_ids(client, f"?case_id={late['case_id']}") == [late["id"]]
    assert _task_ids(client, f"?case_id={late['case_id']}&role=agent") == []

    assert api.as_user("bob").post(f"/api/tasks/{late['id']}/claim").status_code == 200
    assert _task_ids(client, "?assignee=bob") == [late["id"]]
    assert _task_ids(client, "?assignee=carol") == []

    assert api.complete(question["id"], api.REVIEW).status_code == 200
    assert _task_ids(client, "?state=completed") == [question["id"]]
    assert question["id"] not in _task_ids(client)  # the default is the ready tasks
    assert _task_ids(client, "?state=cancelled") == []


@pytest.mark.parametrize("query,field", [
    ("state=done", "state"), ("page=0", "page"), ("per_page=101", "per_page"), ("per_page=0", "per_page"),
    ("case_id=0", "case_id"), ("case_id=abc", "case_id"), ("role=" + "r" * 51, "role"),
])
def test_worklist_refuses_arguments_past_their_limits(api, client, query: str, field: str) -> None:
    assert field in _error(client.get(f"/api/tasks?{query}"), 422)["errors"]


# -- one task --------------------------------------------------------------------------------------------
def test_a_task_shows_its_record_form_and_the_data_it_sees(api, client) -> None:
    case = api.open_case()
    task = case["open_tasks"][0]
    response = client.get(f"/api/tasks/{task['id']}")
    assert response.status_code == 200
    detail = response.get_json()
    assert {k: detail[k] for k in task} == task
    assert detail["form"] == json.loads((ROOT / "forms" / "fault_diagnosis.form.json").read_text())
    assert detail["data"]["case_number"] == case["number"]
    assert detail["data"]["reported_at"] == case["reported_at"]
    assert detail["data"]["equipment"]["id"] == case["equipment"]["id"]


def test_unknown_tasks_are_404(api, client) -> None:
    task = api.open_case()["open_tasks"][0]
    unknown = task["id"] + 1000
    before = api.counts()
    assert "does not exist" in _error(client.get(f"/api/tasks/{unknown}"), 404)["message"]
    _error(client.post(f"/api/tasks/{unknown}/claim"), 404)
    _error(api.complete(unknown, api.DIAGNOSIS), 404)
    assert api.counts() == before


# -- claim -----------------------------------------------------------------------------------------------
def test_claim_assigns_the_task_and_records_it(api, client, ctx: Flask) -> None:
    case = api.open_case()
    task = case["open_tasks"][0]
    response = api.as_user("bob").post(f"/api/tasks/{task['id']}/claim")
    assert response.status_code == 200
    claimed = response.get_json()
    assert claimed["assignee"] == "bob"
    assert datetime.fromisoformat(claimed["claimed_at"]) == api.clock.now()
    assert claimed["form"]["id"] == "fault_diagnosis"
    assert client.get(f"/api/tasks/{task['id']}").get_json()["assignee"] == "bob"
    assert db.session.get(WorkItem, task["id"]).assignee == "bob"
    last = api.events(case["id"])[-1]
    assert (last["type"], last["actor"], last["payload"]["work_item_id"]) == ("task_claimed", "bob", task["id"])
    assert last["payload"]["previous"] is None

    events = len(api.events(case["id"]))
    assert api.as_user("bob").post(f"/api/tasks/{task['id']}/claim").status_code == 200
    assert len(api.events(case["id"])) == events  # claiming your own task again changes nothing


def test_claiming_a_completed_task_is_409(api, client) -> None:
    task = api.open_case()["open_tasks"][0]
    assert api.complete(task["id"], api.DIAGNOSIS).status_code == 200
    before = api.snapshot(task["case_id"])
    api.clock.advance(timedelta(minutes=5))
    assert "no longer ready" in _error(client.post(f"/api/tasks/{task['id']}/claim"), 409)["message"]
    assert api.snapshot(task["case_id"]) == before


# -- complete --------------------------------------------------------------------------------------------
def test_complete_returns_the_case_moved_on(api, client, ctx: Flask) -> None:
    case = api.open_case()
    task = case["open_tasks"][0]
    response = api.complete(task["id"], api.DIAGNOSIS, actor="wang")
    assert response.status_code == 200
    moved = response.get_json()
    assert moved["id"] == case["id"] and moved["status"] == "open"
    assert [t["task_spec"] for t in moved["open_tasks"]] == ["repair_remotely"]
    assert [d["task_spec"] for d in moved["deadlines"]] == ["removal_deadline"]
    assert datetime.fromisoformat(moved["deadlines"][0]["due_at"]) == (
        datetime.fromisoformat(case["reported_at"]) + timedelta(hours=48))
    assert moved["summary"]["fault_class"] == "common" and moved["summary"]["free_of_charge"] is True
    item = db.session.get(WorkItem, task["id"])
    assert (item.state, item.completed_by, item.assignee, item.completed_at) == (
        "completed", "wang", "wang", api.clock.now())
    done = client.get(f"/api/tasks/{task['id']}").get_json()
    assert done["state"] == "completed" and done["data"] == {}


def _drop(name: str) -> dict[str, Any]:
    return {k: v for k, v in DIAGNOSIS.items() if k != name}


DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
INVALID_DATA = {
    "missing required text": (_drop("diagnosis"), "diagnosis"),
    "missing required choice": (_drop("support_mode"), "support_mode"),
    "blank required text": ({**DIAGNOSIS, "diagnosis": "   "}, "diagnosis"),
    "bad select value": ({**DIAGNOSIS, "cause": "gremlins"}, "cause"),
    "bad radio value": ({**DIAGNOSIS, "fault_class": "catastrophic"}, "fault_class"),
    "unknown field": ({**DIAGNOSIS, "colour": "red"}, "colour"),
    "number as text": ({**DIAGNOSIS, "removal_target_hours": "soon"}, "removal_target_hours"),
    "number out of range": ({**DIAGNOSIS, "removal_target_hours": 0}, "removal_target_hours"),
    "fraction for a whole number": ({**DIAGNOSIS, "removal_target_hours": 1.5}, "removal_target_hours"),
    "text as number": ({**DIAGNOSIS, "diagnosis": 42}, "diagnosis"),
    "checkbox as text": ({**DIAGNOSIS, "parts_needed": "yes"}, "parts_needed"),
    "text too long": ({**DIAGNOSIS, "diagnosis": "x" * 4001}, "diagnosis"),
}


@pytest.mark.parametrize("data,field", INVALID_DATA.values(), ids=list(INVALID_DATA))
def test_invalid_form_data_is_422_per_field_and_saves_nothing(api, data: dict[str, Any], field: str) -> None:
    task = api.open_case()["open_tasks"][0]
    before = api.snapshot(task["case_id"])
    api.clock.advance(timedelta(minutes=5))  # so a write that is not rolled back would show
    body = _error(api.complete(task["id"], data), 422)
    assert field in body["errors"], body
    assert all(isinstance(m, list) and m for m in body["errors"].values())
    assert api.snapshot(task["case_id"]) == before
    assert api.complete(task["id"], DIAGNOSIS).status_code == 200  # the task is still ready


@pytest.mark.parametrize("body,field", [
    ({}, "data"), ({"data": ["diagnosis"]}, "data"), ({"data": "diagnosis"}, "data"),
    ({"data": DIAGNOSIS, "comment": "hi"}, "comment"),
], ids=["no data", "data a list", "data a string", "unknown top-level field"])
def test_a_complete_body_of_the_wrong_shape_is_422(api, client, body: dict[str, Any], field: str) -> None:
    task = api.open_case()["open_tasks"][0]
    before = api.snapshot(task["case_id"])
    assert field in _error(client.post(f"/api/tasks/{task['id']}/complete", json=body), 422)["errors"]
    assert api.snapshot(task["case_id"]) == before


def test_completing_a_completed_task_is_409_and_changes_nothing(api) -> None:
    task = api.open_case()["open_tasks"][0]
    assert api.complete(task["id"], api.DIAGNOSIS).status_code == 200
    before = api.snapshot(task["case_id"])
    api.clock.advance(timedelta(minutes=5))
    assert "no longer ready" in _error(api.complete(task["id"], api.DIAGNOSIS), 409)["message"]
    _error(api.complete(task["id"], {"colour": "red"}), 409)  # a finished task is 409 whatever the data
    assert api.snapshot(task["case_id"]) == before


def test_a_fault_case_worked_to_closed_through_the_api(api, client) -> None:
    case = api.open_case()
    steps = [("diagnose_fault", api.DIAGNOSIS, "engineer"), ("repair_remotely", api.REMOTE_REPAIRED, "engineer"),
             ("write_processing_report", api.REPORT, "agent")]
    for spec, data, role in steps:
        task = api.task(case, spec)
        assert task["role"] == role
        assert api.as_user(f"{role}-1").post(f"/api/tasks/{task['id']}/claim").status_code == 200
        api.clock.advance(timedelta(hours=1))
        response = api.complete(task["id"], data, actor=f"{role}-1")
        assert response.status_code == 200, response.get_json()
    closed = response.get_json()
    assert closed["status"] == "closed"
    assert datetime.fromisoformat(closed["closed_at"]) == api.clock.now()
    assert closed["open_tasks"] == [] and closed["deadlines"] == []
    assert closed["summary"]["outcome"] == "repaired_remotely"
    assert client.get(f"/api/cases/{case['id']}").get_json() == closed
    assert _task_list(client, f"?case_id={case['id']}") == []
    events = api.events(case["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # The close is the last change of the process; the documents it made follow it.
    assert [e["type"] for e in events][-3:] == ["case_closed", "document_created", "document_created"]
    assert events[-3]["payload"]["outcome"] == "repaired_remotely"
    completed = [e["payload"]["task_spec"] for e in events if e["type"] == "task_completed"]
    assert completed == [spec for spec, _, _ in steps]
    assert [c["id"] for c in client.get("/api/cases?status=closed").get_json()["items"]] == [case["id"]]


def _task_list(client: Any, query: str) -> list[dict[str, Any]]:
    return client.get(f"/api/tasks{query}").get_json()["items"]


# -- a process that fails while it runs -----------------------------------------------------------------
RUNTIME_FAILURES = {
    "missing key": "d['missing'] == 1",
    "forbidden attribute": "getattr(d, '__class__') is None",
    "division by zero": "d['present'] / 0 == 1",
}


def _failing_case(api: Any, condition: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Deploy runtime_failure with ``condition`` on its gateway (it passes the deploy checks) and open a case."""
    source = (DATA / "runtime_failure.bpmn").read_text().replace("d['missing'] == 1", condition)
    deploy_sources([("runtime_failure.bpmn", source.encode())], actor=SYSTEM)
    db.session.commit()
    case = api.open_case(process="runtime_failure", equipment_id=None)
    return case, api.task(case, "review")


@pytest.mark.parametrize("condition", RUNTIME_FAILURES.values(), ids=list(RUNTIME_FAILURES))
def test_a_failing_condition_leaves_the_case_exactly_as_it_was(api, client, ctx: Flask, condition: str) -> None:
    case, task = _failing_case(api, condition)
    before = api.snapshot(case["id"])
    counts = api.counts()

    for _ in range(2):  # the same failure every time: nothing half-done is left behind
        api.clock.advance(timedelta(minutes=5))
        body = _error(api.complete(task["id"], api.REVIEW, actor="sam"), 422)
        assert "could not continue" in body["message"]
        assert condition in body["message"] and "'check'" in body["message"]  # what failed, and where
        assert api.snapshot(case["id"]) == before
        assert api.counts() == counts

    detail_after = client.get(f"/api/tasks/{task['id']}").get_json()
    assert detail_after["state"] == "ready"
    assert detail_after["data"]["d"] == {"present": 1}
    assert db.session.get(Case, case["id"]).status == "open"


@pytest.mark.parametrize("condition,reason", [
    ("d['missing'] == 1", "KeyError"),
    ("getattr(d, '__class__') is None", "not allowed"),
    ("d['present'] / 0 == 1", "division by zero"),
], ids=list(RUNTIME_FAILURES))
def test_the_failure_message_says_why_the_condition_failed(api, ctx: Flask, condition: str, reason: str) -> None:
    _, task = _failing_case(api, condition)
    assert reason in _error(api.complete(task["id"], api.REVIEW), 422)["message"]
