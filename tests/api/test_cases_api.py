"""The case endpoints of the JSON API: every status code of the contract, and nothing stored on refusal."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.auth import SYSTEM
from app.cases.models import Case
from app.extensions import db
from app.processes.models import ProcessVersion
from app.processes.service import deploy_sources
from app.registry.models import Equipment

DATA = Path(__file__).resolve().parents[1] / "data"
MAX_DESCRIPTION = 5000


def _error(response: Any, status: int) -> dict[str, Any]:
    """The JSON error body, checked for the API's one error shape."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body


# -- opening a case --------------------------------------------------------------------------------
def test_open_case_returns_the_case_with_its_first_task_and_deadline(api, client, ctx: Flask) -> None:
    reported_at = api.reported_at()
    response = client.post("/api/cases", json=api.case_body(reported_at=reported_at.isoformat()))
    assert response.status_code == 201
    case = response.get_json()

    stored = db.session.get(Case, case["id"])
    latest = db.session.scalar(select(ProcessVersion).where(ProcessVersion.process_id == "fault_handling"))
    assert re.fullmatch(r"FH-\d{4}-\d{6}", case["number"])
    assert case["number"] == f"FH-{api.clock.now().year}-{case['id']:06d}" == stored.number
    assert case["status"] == "open" and case["closed_at"] is None
    assert case["process"] == "fault_handling"
    assert case["process_version"] == latest.version and case["process_version_id"] == latest.id
    assert datetime.fromisoformat(case["reported_at"]) == reported_at
    assert datetime.fromisoformat(case["opened_at"]) == api.clock.now()
    assert case["equipment"]["id"] == api.equipment["EA99020K0001"]
    assert case["customer"]["id"] == stored.equipment.customer_id  # taken from the equipment's file

    (task,) = case["open_tasks"]
    assert (task["task_spec"], task["role"], task["form_key"], task["state"]) == (
        "diagnose_fault", "engineer", "fault_diagnosis", "ready")
    assert datetime.fromisoformat(task["due_at"]) == reported_at + timedelta(hours=24)
    (deadline,) = case["deadlines"]
    assert deadline["task_spec"] == "diagnosis_deadline" and deadline["state"] == "waiting"
    assert datetime.fromisoformat(deadline["due_at"]) == reported_at + timedelta(hours=24)

    assert case.pop("other_open_cases") == []  # the equipment had no open case
    assert client.get(f"/api/cases/{case['id']}").get_json() == case


def test_opening_a_second_case_for_the_same_equipment_names_the_one_already_open(api, client) -> None:
    first = api.open_case()
    other = api.open_case(equipment_id=api.equipment["EA33010K0215"])
    second = api.open_case()
    assert [(c["id"], c["number"], c["status"]) for c in second["other_open_cases"]] == [
        (first["id"], first["number"], "open")]
    assert other["other_open_cases"] == []
    third = api.open_case()
    assert [c["number"] for c in third["other_open_cases"]] == [first["number"], second["number"]]
    assert api.open_case(equipment_id=None, customer_id=first["customer"]["id"])["other_open_cases"] == []


def test_reported_at_with_another_offset_is_stored_in_utc(api) -> None:
    local = api.reported_at().astimezone(timezone(timedelta(hours=8)))
    case = api.open_case(reported_at=local.isoformat())
    assert case["reported_at"] == local.astimezone(UTC).isoformat()
    assert datetime.fromisoformat(case["open_tasks"][0]["due_at"]) == local + timedelta(hours=24)


def test_a_description_of_exactly_the_limit_is_accepted(api) -> None:
    case = api.open_case(description="x" * MAX_DESCRIPTION)
    assert len(case["description"]) == MAX_DESCRIPTION


def _drop(name: str) -> Callable[[dict[str, Any], Any], Any]:
    def change(body: dict[str, Any], api: Any) -> dict[str, Any]:
        body.pop(name)
        return body
    return change


def _set(**fields: Any) -> Callable[[dict[str, Any], Any], Any]:
    def change(body: dict[str, Any], api: Any) -> dict[str, Any]:
        return {**body, **fields}
    return change


def _future(body: dict[str, Any], api: Any) -> dict[str, Any]:
    return {**body, "reported_at": (api.clock.now() + timedelta(minutes=1)).isoformat()}


def _naive(body: dict[str, Any], api: Any) -> dict[str, Any]:
    return {**body, "reported_at": api.reported_at().replace(tzinfo=None).isoformat()}


def _other_customer(body: dict[str, Any], api: Any) -> dict[str, Any]:
    # EA33020K0932 belongs to Northern Railway; EA99020K0001 to Harbour City.
    railway = db.session.get(Equipment, api.equipment["EA33020K0932"])
    return {**body, "customer_id": railway.customer_id, "equipment_id": api.equipment["EA99020K0001"]}


def _float_customer(body: dict[str, Any], api: Any) -> dict[str, Any]:
    # The owner of the equipment, plus a half: a truncating integer field would accept it.
    owner = db.session.get(Equipment, body["equipment_id"]).customer_id
    return {**body, "customer_id": owner + 0.5}


REFUSED_BODIES = {
    "missing process": (_drop("process"), "process"),
    "missing reported_at": (_drop("reported_at"), "reported_at"),
    "missing channel": (_drop("channel"), "channel"),
    "missing description": (_drop("description"), "description"),
    "process not a string": (_set(process=7), "process"),
    "reported_at not a datetime": (_set(reported_at="yesterday"), "reported_at"),
    "reported_at a number": (_set(reported_at=1_772_000_000), "reported_at"),
    "description a list": (_set(description=["UPS"]), "description"),
    "equipment_id a string": (_set(equipment_id="one"), "equipment_id"),
    "customer_id a float": (_float_customer, "customer_id"),
    "equipment_id zero": (_set(equipment_id=0), "equipment_id"),
    "unknown field": (_set(colour="red"), "colour"),
    "naive reported_at": (_naive, "reported_at"),
    "future reported_at": (_future, "reported_at"),
    "unknown process": (_set(process="no_such_process"), "process"),
    "unknown equipment": (_set(equipment_id=999_999), "equipment_id"),
    "unknown customer": (_set(customer_id=999_999), "customer_id"),
    "equipment of another customer": (_other_customer, "equipment_id"),
    "oversized description": (_set(description="x" * (MAX_DESCRIPTION + 1)), "description"),
    "empty description": (_set(description=""), "description"),
    "bad channel": (_set(channel="pigeon"), "channel"),
    "bad priority": (_set(priority="whenever"), "priority"),
    "overlong title": (_set(title="t" * 201), "title"),
}


@pytest.mark.parametrize("change,field", REFUSED_BODIES.values(), ids=list(REFUSED_BODIES))
def test_an_invalid_case_is_refused_with_422_naming_the_field(api, client, change, field: str) -> None:
    api.open_case()  # something stored already, so "nothing saved" is not trivially true
    before = api.counts()
    body = _error(client.post("/api/cases", json=change(api.case_body(), api)), 422)
    assert field in body["errors"], body
    assert api.counts() == before


@pytest.mark.parametrize("payload", [[], "a string", 42, None], ids=["list", "string", "number", "null"])
def test_a_body_that_is_not_an_object_is_refused(api, client, payload: Any) -> None:
    before = api.counts()
    _error(client.post("/api/cases", json=payload), 422)
    assert api.counts() == before


def test_malformed_json_is_400_and_saves_nothing(api, client) -> None:
    before = api.counts()
    body = _error(client.post("/api/cases", data='{"process": "fault_handling", ',
                              content_type="application/json"), 400)
    assert "json" in body["message"].lower()
    assert api.counts() == before


def test_a_body_over_the_size_limit_is_413_and_saves_nothing(api, client, app: Flask) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = api.counts()
    body = _error(client.post("/api/cases", json=api.case_body(description="x" * (limit + 1))), 413)
    assert str(limit) in body["message"]
    assert api.counts() == before


def test_a_process_that_fails_at_start_is_422_and_saves_nothing(api, client) -> None:
    source = (DATA / "runtime_failure.bpmn").read_text()
    broken = (source.replace('id="runtime_failure"', 'id="start_failure"')
              .replace("d = {'present': 1}", "d = {'present': 1}['absent']"))
    deploy_sources([("start_failure.bpmn", broken.encode())], actor=SYSTEM)
    db.session.commit()
    before = api.counts()
    body = _error(client.post("/api/cases", json=api.case_body(process="start_failure")), 422)
    assert "prepare" in body["message"]  # the failing element is named
    assert api.counts() == before


# -- reading cases -----------------------------------------------------------------------------------
def test_get_case_404_for_an_unknown_case(api, client) -> None:
    case = api.open_case()
    unknown = case["id"] + 1000
    assert "does not exist" in _error(client.get(f"/api/cases/{unknown}"), 404)["message"]
    _error(client.get(f"/api/cases/{unknown}/events"), 404)


@pytest.fixture
def listed(api) -> dict[str, dict[str, Any]]:
    """Three open fault cases a minute apart and one closed one-task case."""
    cases = {}
    for name, description in (("fuse", "Fuse BLOWN in hall A"), ("battery", "Battery bank swelling"),
                              ("fan", "Fan noise in the cabinet")):
        cases[name] = api.open_case(description=description)
        api.clock.advance(timedelta(minutes=1))
    cases["closed"] = api.open_case(process="one_task", description="Question about the invoice",
                                    equipment_id=None)
    response = api.complete(cases["closed"]["open_tasks"][0]["id"], api.REVIEW)
    assert response.status_code == 200 and response.get_json()["status"] == "closed"
    return cases


def _ids(client: Any, query: str) -> list[int]:
    response = client.get(f"/api/cases{query}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["total"] >= len(body["items"])
    return [c["id"] for c in body["items"]]


def test_list_filters_by_status_process_and_text(client, listed) -> None:
    ids = {name: case["id"] for name, case in listed.items()}
    fault = {ids["fuse"], ids["battery"], ids["fan"]}
    assert set(_ids(client, "")) == set(ids.values())
    assert set(_ids(client, "?status=open")) == fault
    assert _ids(client, "?status=closed") == [ids["closed"]]
    assert _ids(client, "?status=cancelled") == []
    assert set(_ids(client, "?process=fault_handling")) == fault
    assert _ids(client, "?process=one_task") == [ids["closed"]]
    assert _ids(client, "?process=nothing_like_it") == []
    assert _ids(client, "?text=blown") == [ids["fuse"]]  # case-insensitive, in the description
    assert _ids(client, f"?text={listed['fan']['number'].lower()}") == [ids["fan"]]
    assert _ids(client, "?text=hall&status=open&process=fault_handling") == [ids["fuse"]]
    assert _ids(client, "?text=hall&status=closed") == []


def test_list_is_newest_first_and_paginated(client, listed) -> None:
    newest_first = [listed[n]["id"] for n in ("closed", "fan", "battery", "fuse")]
    pages = [client.get(f"/api/cases?per_page=3&page={page}").get_json() for page in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [3, 1, 0]
    assert all(p["total"] == 4 and p["per_page"] == 3 for p in pages)
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert [c["id"] for p in pages for c in p["items"]] == newest_first
    assert client.get("/api/cases").get_json()["per_page"] == 25  # the default page size


@pytest.mark.parametrize("query,field", [
    ("page=0", "page"), ("page=100001", "page"), ("page=-1", "page"), ("page=two", "page"),
    ("per_page=0", "per_page"), ("per_page=101", "per_page"), ("per_page=many", "per_page"),
    ("status=pending", "status"), ("text=" + "t" * 201, "text")
])
def test_list_refuses_arguments_past_their_limits(api, client, query: str, field: str) -> None:
    body = _error(client.get(f"/api/cases?{query}"), 422)
    assert field in body["errors"], body


def test_list_accepts_the_largest_page_and_page_size(api, client) -> None:
    api.open_case()
    body = client.get("/api/cases?page=100000&per_page=100").get_json()
    assert (body["items"], body["total"], body["page"], body["per_page"]) == ([], 1, 100000, 100)


# -- history -----------------------------------------------------------------------------------------
def test_events_are_the_case_history_in_order(api, client, ctx: Flask) -> None:
    case = api.open_case()
    opened = api.events(case["id"])
    assert [e["seq"] for e in opened] == [1, 2, 3]
    assert [e["type"] for e in opened] == ["case_opened", "task_ready", "timer_scheduled"]
    assert opened[0]["payload"]["number"] == case["number"]
    assert opened[1]["payload"]["task_spec"] == "diagnose_fault"
    assert opened[2]["payload"]["task_spec"] == "diagnosis_deadline"

    task = case["open_tasks"][0]
    assert api.complete(task["id"], api.DIAGNOSIS, actor="wang").status_code == 200
    events = api.events(case["id"])
    assert events[:3] == opened  # history is only ever appended to
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) == db.session.get(Case, case["id"]).event_count
    completed = events[3]
    assert (completed["type"], completed["actor"]) == ("task_completed", "wang")
    assert completed["payload"]["work_item_id"] == task["id"]
    assert completed["payload"]["data"] == api.DIAGNOSIS
    later = events[4:]
    assert sorted(e["type"] for e in later) == ["task_ready", "timer_cancelled", "timer_scheduled"]
    by_type = {e["type"]: e["payload"] for e in later}
    assert by_type["task_ready"]["task_spec"] == "repair_remotely"
    assert by_type["timer_cancelled"]["task_spec"] == "diagnosis_deadline"
    assert by_type["timer_scheduled"]["task_spec"] == "removal_deadline"
    assert all(datetime.fromisoformat(e["occurred_at"]) == api.clock.now() for e in events)
