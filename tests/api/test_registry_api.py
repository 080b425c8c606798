"""GET /api/registry/equipment: finding the caller's equipment by serial, customer name, contact or phone,
with warranty and open cases; paginated; bad input is a 4xx naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data

SEARCH = "/api/registry/equipment"


@pytest.fixture
def agent(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    """An agent signed in, the demo customers and equipment on file, at T0 (2026-03-02 08:00 UTC)."""
    seed_demo_data()
    db.session.commit()
    return signed_in("amy", "agent")


def search(client: FlaskClient, q: str, **args: Any) -> dict[str, Any]:
    response = client.get(SEARCH, query_string={"q": q, **args})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def serials(body: dict[str, Any]) -> list[str]:
    return [item["serial_number"] for item in body["items"]]


@pytest.mark.parametrize(("q", "expected"), [
    ("EA33020K0932", ["EA33020K0932"]),  # the whole serial
    ("20k09", ["EA33020K0932"]),  # part of it, any case
    ("harbour", ["EA66060K0417", "EA99020K0001"]),  # the customer's name
    ("Zhang Min", ["EA33020K0932"]),  # the contact person
    ("+86 571 5550 0303", ["EA33010K0215", "EA990120K0077"]),  # the phone as filed
    ("5715550-0303", ["EA33010K0215", "EA990120K0077"]),  # the phone as the caller says it
    ("55500202", ["EA33020K0932"]),
    ("%%", []),  # literal text: no wildcards
    ("__", []),
    ("nobody", []),
])
def test_equipment_is_found_by_serial_customer_contact_or_phone(agent: FlaskClient, q: str,
                                                                  expected: list[str]) -> None:
    body = search(agent, q)
    assert sorted(serials(body)) == expected
    assert body["total"] == len(expected)


def test_a_serial_that_starts_with_the_text_comes_first(agent: FlaskClient) -> None:
    assert serials(search(agent, "EA99"))[0] == "EA99020K0001"
    assert serials(search(agent, "EA9901"))[0] == "EA990120K0077"


def test_each_match_carries_its_customer_and_its_warranty_today(agent: FlaskClient) -> None:
    items = {item["serial_number"]: item for item in search(agent, "EA")["items"]}
    assert items["EA99020K0001"]["warranty"] == {
        "state": "in_warranty", "text": "in warranty until 2027-02-28", "day": "2027-02-28"}
    assert items["EA66060K0417"]["warranty"] == {  # ended 2024-06-14: out since the day after
        "state": "out_of_warranty", "text": "out of warranty since 2024-06-15", "day": "2024-06-15"}
    assert items["EA33010K0215"]["warranty"] == {"state": "unknown", "text": "warranty unknown", "day": None}
    assert items["EA33020K0932"]["customer"]["name"] == "Northern Railway Signalling"
    assert items["EA33020K0932"]["customer"]["phone"] == "+86 10 5550 0202"
    assert items["EA33020K0932"]["installed_on"] == "2025-01-10"


def test_the_last_day_of_warranty_is_still_in_warranty(agent: FlaskClient, clock: ManualClock) -> None:
    hospital = "EA990120K0077"  # warranty ends 2026-08-31
    # The department's day (Asia/Shanghai, UTC+8): 23:59 there on 2026-08-31, then midnight.
    clock.set(clock.now().replace(year=2026, month=8, day=31, hour=15, minute=59))
    assert search(agent, hospital)["items"][0]["warranty"]["state"] == "in_warranty"
    clock.set(clock.now().replace(month=8, day=31, hour=16, minute=0))
    assert search(agent, hospital)["items"][0]["warranty"]["text"] == "out of warranty since 2026-09-01"


def test_open_cases_of_the_equipment_are_listed_closed_ones_not(agent: FlaskClient, clock: ManualClock) -> None:
    equipment = db.session.scalar(db.select(Equipment).where(Equipment.serial_number == "EA99020K0001"))
    assert equipment is not None
    opened = agent.post("/api/cases", json={
        "process": "fault_handling", "reported_at": "2026-03-02T07:30:00+00:00", "channel": "phone",
        "description": "Rectifier alarm", "equipment_id": equipment.id})
    assert opened.status_code == 201, opened.get_json()
    items = {item["serial_number"]: item for item in search(agent, "harbour")["items"]}
    assert [(c["id"], c["number"], c["title"]) for c in items["EA99020K0001"]["open_cases"]] == [
        (opened.get_json()["id"], "FH-2026-000001", "Rectifier alarm")]
    assert items["EA66060K0417"]["open_cases"] == []


def test_results_are_paginated(agent: FlaskClient) -> None:
    everything = search(agent, "EA", per_page=50)
    assert everything["total"] == 5 and len(everything["items"]) == 5
    pages = [search(agent, "EA", page=page, per_page=2) for page in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert all(p["total"] == 5 and p["per_page"] == 2 for p in pages)
    assert sum((serials(p) for p in pages), []) == serials(everything)
    assert search(agent, "EA", page=4, per_page=2)["items"] == []


@pytest.mark.parametrize(("query", "field"), [
    ({}, "q"),
    ({"q": "E"}, "q"),
    ({"q": "  "}, "q"),
    ({"q": "E" * 1000}, "q"),
    ({"q": "EA\x0099"}, "q"),
    ({"q": "EA", "per_page": "0"}, "per_page"),
    ({"q": "EA", "per_page": "51"}, "per_page"),
    ({"q": "EA", "page": "x"}, "page"),
    ({"q": "EA", "sort": "serial"}, "sort"),
])
def test_bad_searches_are_a_422_naming_the_field(agent: FlaskClient, query: dict[str, str], field: str) -> None:
    response = agent.get(SEARCH, query_string=query)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["status"] == 422 and field in body["errors"], body


def test_reading_the_registry_needs_registry_read(agent: FlaskClient,
                                                  signed_in: Callable[..., FlaskClient]) -> None:
    owner = signed_in("olga", "process_owner")  # sees definitions, not customers' files
    response = owner.get(SEARCH, query_string={"q": "EA"})
    assert response.status_code == 403
    assert "registry.read" in response.get_json()["errors"]["permission"]
    auditor = signed_in("audrey", "auditor")  # reads everything
    assert auditor.get(SEARCH, query_string={"q": "EA"}).status_code == 200


def test_the_search_is_documented(agent: FlaskClient) -> None:
    spec = agent.get("/api/openapi.json").get_json()
    operation = spec["paths"][SEARCH]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"q", "page", "per_page"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    assert "EquipmentMatch" in spec["components"]["schemas"]
