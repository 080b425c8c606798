"""Release and assign through the JSON API, the worklist filters, and the deadline kept on completion."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import Actor
from app.engine import ManualClock
from tests.api.conftest import DIAGNOSIS

Client = Callable[..., FlaskClient]


def open_fault(client: FlaskClient, clock: ManualClock, equipment: int, *, hours_ago: float = 1,
               **fields: Any) -> dict[str, Any]:
    """Open a fault case whose customer called ``hours_ago`` hours ago; the case as the API returns it."""
    body = {"process": "fault_handling", "reported_at": (clock.now() - timedelta(hours=hours_ago)).isoformat(),
            "channel": "phone", "description": "UPS alarm", "equipment_id": equipment, **fields}
    response = client.post("/api/cases", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def diagnosis_task(case: dict[str, Any]) -> int:
    """The id of the case's open 'Diagnose fault' task."""
    return next(t["id"] for t in case["open_tasks"] if t["task_spec"] == "diagnose_fault")


def last_event(client: FlaskClient, case_id: int, type_: str) -> dict[str, Any]:
    """The latest event of ``type_`` in the case's history."""
    events = [e for e in client.get(f"/api/cases/{case_id}/events").get_json()["items"] if e["type"] == type_]
    assert events, f"no {type_} event"
    return events[-1]


STAFF = {"agent": ("ann", "agent"), "bob": ("bob", "engineer"), "cho": ("cho", "engineer"),
         "sue": ("sue", "supervisor"), "ada": ("ada", "auditor")}


class Staff(dict[str, FlaskClient]):
    """An agent (ann), two engineers, a supervisor and an auditor: real users with tokens, each created
    when a test first asks for them (hashing a password takes a while)."""

    def __init__(self, signed_in: Client) -> None:
        super().__init__()
        self.signed_in = signed_in

    def __missing__(self, key: str) -> FlaskClient:
        client = self[key] = self.signed_in(*STAFF[key])
        return client


@pytest.fixture
def staff(signed_in: Client, demo_equipment: dict[str, int], clock: ManualClock) -> Staff:
    """The department's people, signed in (see Staff)."""
    return Staff(signed_in)


@pytest.fixture
def task(staff: Staff, demo_equipment: dict[str, int], clock: ManualClock) -> tuple[int, int]:
    """(case id, diagnosis task id) of a fault case opened by the agent."""
    case = open_fault(staff["agent"], clock, demo_equipment["EA99020K0001"])
    return case["id"], diagnosis_task(case)


def test_the_assignee_releases_a_claimed_task_back_to_the_queue(staff: Staff,
                                                                task: tuple[int, int]) -> None:
    case_id, task_id = task
    assert staff["bob"].post(f"/api/tasks/{task_id}/claim").get_json()["assignee"] == "bob"
    response = staff["bob"].post(f"/api/tasks/{task_id}/release")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["assignee"] is None and response.get_json()["claimed_at"] is None
    event = last_event(staff["bob"], case_id, "task_released")
    assert event["actor"] == "bob"
    assert event["payload"]["previous"] == "bob" and event["payload"]["assignee"] is None
    assert event["payload"]["work_item_id"] == task_id
    # Back in the queue: another engineer may claim it now.
    assert staff["cho"].post(f"/api/tasks/{task_id}/claim").status_code == 200


def test_only_the_assignee_or_a_supervisor_releases(staff: Staff, task: tuple[int, int]) -> None:
    case_id, task_id = task
    staff["bob"].post(f"/api/tasks/{task_id}/claim")
    refused = staff["cho"].post(f"/api/tasks/{task_id}/release")
    assert refused.status_code == 403
    assert "claimed by bob" in refused.get_json()["message"]
    assert staff["ada"].post(f"/api/tasks/{task_id}/release").status_code == 403  # auditors change nothing
    assert staff["sue"].post(f"/api/tasks/{task_id}/release").status_code == 200
    event = last_event(staff["sue"], case_id, "task_released")
    assert (event["actor"], event["payload"]["previous"]) == ("sue", "bob")


def test_releasing_an_unclaimed_or_finished_task_is_409(staff: Staff, task: tuple[int, int]) -> None:
    _, task_id = task
    unclaimed = staff["bob"].post(f"/api/tasks/{task_id}/release")
    assert unclaimed.status_code == 409 and "not claimed" in unclaimed.get_json()["message"]
    assert staff["bob"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200
    assert staff["bob"].post(f"/api/tasks/{task_id}/release").status_code == 409
    assert staff["bob"].post("/api/tasks/999999/release").status_code == 404


def test_a_supervisor_assigns_a_task_to_a_user_holding_its_role(staff: Staff,
                                                                task: tuple[int, int]) -> None:
    case_id, task_id = task
    staff["bob"].post(f"/api/tasks/{task_id}/claim")
    staff["cho"]  # the user exists
    response = staff["sue"].post(f"/api/tasks/{task_id}/assign", json={"assignee": "cho"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["assignee"] == "cho"
    event = last_event(staff["sue"], case_id, "task_assigned")
    assert event["actor"] == "sue"
    assert (event["payload"]["previous"], event["payload"]["assignee"]) == ("bob", "cho")
    # The new assignee works it; the previous one no longer may.
    assert staff["bob"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 409
    assert staff["cho"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200


@pytest.mark.parametrize(("assignee", "message"), [
    ("zed", "there is no user named 'zed'"),
    ("ann", "user 'ann' does not hold the role engineer, which task"),
    ("ada", "user 'ada' does not hold the role engineer"),
    ("   ", "name the user"),
])
def test_assigning_to_a_user_who_cannot_work_the_task_is_a_clear_422(staff: Staff,
                                                                     task: tuple[int, int], assignee: str,
                                                                     message: str) -> None:
    case_id, task_id = task
    staff["ada"]  # the auditor exists
    before = staff["sue"].get(f"/api/cases/{case_id}/events").get_json()["items"]
    response = staff["sue"].post(f"/api/tasks/{task_id}/assign", json={"assignee": assignee})
    assert response.status_code == 422
    body = response.get_json()
    assert body["status"] == 422 and message in body["message"]
    assert message in " ".join(body["errors"]["assignee"])
    assert staff["sue"].get(f"/api/cases/{case_id}/events").get_json()["items"] == before
    assert staff["sue"].get(f"/api/tasks/{task_id}").get_json()["assignee"] is None


@pytest.mark.parametrize("body", [{}, {"assignee": ""}, {"assignee": 7}, {"assignee": "cho", "extra": 1},
                                  {"assignee": "x" * 101}])
def test_a_malformed_assign_body_is_422_at_its_field(staff: Staff, task: tuple[int, int],
                                                     body: dict[str, Any]) -> None:
    _, task_id = task
    response = staff["sue"].post(f"/api/tasks/{task_id}/assign", json=body)
    assert response.status_code == 422
    assert response.get_json()["errors"]


def test_only_supervisors_assign(staff: Staff, task: tuple[int, int]) -> None:
    _, task_id = task
    for name in ("bob", "agent", "ada"):
        response = staff[name].post(f"/api/tasks/{task_id}/assign", json={"assignee": "cho"})
        assert response.status_code == 403, name
        assert "assign tasks to others" in response.get_json()["message"]


def test_a_disabled_user_cannot_be_assigned(app: Flask, staff: Staff, task: tuple[int, int]) -> None:
    from app.auth import SYSTEM
    from app.extensions import db
    from app.users.service import create_user, disable_user

    _, task_id = task
    with app.app_context():
        create_user(username="dan", password="correct horse battery", roles=["engineer"], actor=SYSTEM)
        disable_user(username="dan", actor=Actor("root", frozenset({"admin"})))
        db.session.commit()
    response = staff["sue"].post(f"/api/tasks/{task_id}/assign", json={"assignee": "dan"})
    assert response.status_code == 422 and "disabled" in response.get_json()["message"]


# ------------------------------------------------------------------------------------------- filters


def ids(client: FlaskClient, query: str) -> list[int]:
    """The task ids the API lists for ``query``."""
    response = client.get(f"/api/tasks?{query}")
    assert response.status_code == 200, response.get_json()
    return [t["id"] for t in response.get_json()["items"]]


def test_the_task_list_filters_by_process_region_priority_channel_and_overdue(
        staff: Staff, demo_equipment: dict[str, int], clock: ManualClock) -> None:
    agent = staff["agent"]
    south = diagnosis_task(open_fault(agent, clock, demo_equipment["EA99020K0001"], hours_ago=30))  # overdue
    north = diagnosis_task(open_fault(agent, clock, demo_equipment["EA33020K0932"], priority="high",
                                      channel="email"))
    east = diagnosis_task(open_fault(agent, clock, demo_equipment["EA990120K0077"], channel="fax"))
    reader = staff["ada"]
    engineer = "role=engineer&"  # the overdue case also has a supervisor's escalation task
    assert ids(reader, engineer + "region=South") == [south]
    assert ids(reader, engineer + "region=North") == [north]
    assert ids(reader, engineer + "priority=high") == [north]
    assert ids(reader, engineer + "channel=fax") == [east]
    assert ids(reader, "overdue=true") == [south]
    assert sorted(ids(reader, engineer + "overdue=false")) == sorted([north, east])
    assert ids(reader, engineer + "process=fault_handling&region=East&overdue=false") == [east]
    assert ids(reader, "process=monthly_inspection") == []
    # Overdue work first, then the soonest deadline.
    assert ids(reader, "role=engineer")[0] == south
    assert ids(reader, "role=supervisor")  # the overdue case's escalation waits for a supervisor


@pytest.mark.parametrize("query", ["role=wizard", "priority=urgent", "channel=pigeon", "overdue=perhaps",
                                   "state=lost", "region=", "process=" + "p" * 101])
def test_unknown_filter_values_are_422_naming_the_field(staff: Staff, query: str) -> None:
    response = staff["ada"].get(f"/api/tasks?{query}")
    assert response.status_code == 422
    assert query.split("=")[0] in str(response.get_json()["errors"])


# ------------------------------------------------------------------------------- deadline kept or missed


def test_completion_records_whether_the_deadline_was_met_and_by_what_margin(
        staff: Staff, demo_equipment: dict[str, int], clock: ManualClock) -> None:
    case = open_fault(staff["agent"], clock, demo_equipment["EA99020K0001"], hours_ago=1)  # due in 23 h
    clock.advance(timedelta(hours=20, minutes=20))  # done 2 h 40 min before the 24 h deadline
    task_id = diagnosis_task(case)
    assert staff["bob"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200
    deadline = last_event(staff["bob"], case["id"], "task_completed")["payload"]["deadline"]
    assert deadline == {"name": "24 h diagnosis deadline", "due_at": "2026-03-03T07:00:00+00:00",
                        "margin_ms": (2 * 60 + 40) * 60 * 1000, "met": True}


def test_a_late_completion_records_the_deadline_missed(staff: Staff,
                                                       demo_equipment: dict[str, int], clock: ManualClock) -> None:
    case = open_fault(staff["agent"], clock, demo_equipment["EA99020K0001"], hours_ago=29)  # 5 h late already
    task_id = diagnosis_task(case)
    assert staff["bob"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200
    deadline = last_event(staff["bob"], case["id"], "task_completed")["payload"]["deadline"]
    assert deadline["met"] is False and deadline["margin_ms"] == -5 * 3600 * 1000
    assert deadline["name"] == "24 h diagnosis deadline"

