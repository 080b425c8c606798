"""The fault process and the spare-parts stock, through the API with the real database: the diagnosis
names parts its region stocks (or is refused, naming the line, with nothing saved), the keeper's
confirmation holds exactly those (or is refused while they are short), the on-site record uses what it
lists and the rest goes back, and parts a path did not use are released when the case closes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.stock import service as stock
from app.stock.models import Part, StockLevel
from tests.api.conftest import case_snapshot
from tests.support import stocked_region

DIAGNOSIS = {"diagnosis": "Battery string 2 failed the load test", "fault_class": "common",
             "removal_target_hours": 48, "cause": "wear", "support_mode": "on_site", "parts_needed": True,
             "parts_requested": [{"part_number": "BAT-12V-100", "quantity": 8}]}
QUOTE = {"quote_amount": 1250, "quote_currency": "CNY", "quote_accepted": "yes"}
REPORT = {"report_summary": "Done", "report_sent_via": "email", "customer_confirmed": True}
Client = Callable[..., FlaskClient]


@pytest.fixture
def case_id(deployed: Flask, clock: ManualClock, signed_in: Client) -> int:
    """A fault case on out-of-warranty equipment of the South region, whose warehouse holds 10 batteries."""
    seed_demo_data()
    stocked_region("South", {"BAT-12V-100": 10, "FAN-120": 2})
    equipment = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == "EA66060K0417"))
    response = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "phone", "reported_at": clock.now().isoformat(),
        "description": "UPS shuts down under load", "equipment_id": equipment})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def task_of(client: FlaskClient, case_id: int, spec: str) -> int:
    return next(t["id"] for t in client.get(f"/api/cases/{case_id}").get_json()["open_tasks"]
                if t["task_spec"] == spec)


def complete(client: FlaskClient, case_id: int, spec: str, data: dict[str, Any]) -> Any:
    return client.post(f"/api/tasks/{task_of(client, case_id, spec)}/complete", json={"data": data})


def level(part_number: str) -> tuple[int, int]:
    db.session.rollback()
    found = db.session.scalar(select(StockLevel).join(StockLevel.part).where(Part.part_number == part_number)
                              .execution_options(populate_existing=True))
    assert found is not None
    return found.on_hand, found.reserved


def events(case_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    db.session.rollback()
    return [(e.type, e.actor, e.payload) for e in db.session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq))]


def test_a_diagnosis_naming_parts_the_region_cannot_supply_is_refused_and_saves_nothing(
        case_id: int, signed_in: Client) -> None:
    engineer = signed_in("wang", "engineer")
    before = case_snapshot(case_id)
    unknown = complete(engineer, case_id, "diagnose_fault", {**DIAGNOSIS, "parts_requested": [
        {"part_number": "BAT-12V-100", "quantity": 2}, {"part_number": "IGBT-450", "quantity": 1}]})
    assert unknown.status_code == 409, unknown.get_json()
    assert unknown.get_json()["errors"] == {"parts_requested": {"1": {"part_number": [
        "the South regional warehouse does not stock part IGBT-450"]}}}
    short = complete(engineer, case_id, "diagnose_fault", {**DIAGNOSIS, "parts_requested": [
        {"part_number": "FAN-120", "quantity": 3}]})
    assert short.status_code == 409
    assert short.get_json()["errors"] == {"parts_requested": {"0": {"quantity": ["only 2 available in region South"]}}}
    none_named = complete(engineer, case_id, "diagnose_fault", {**DIAGNOSIS, "parts_requested": []})
    assert none_named.status_code == 422
    assert none_named.get_json()["errors"] == {"parts_requested": ["name at least one part"]}
    assert case_snapshot(case_id) == before
    assert level("BAT-12V-100") == (10, 0)


def test_the_keeper_holds_exactly_the_diagnosed_parts_and_the_repair_uses_what_it_lists(
        case_id: int, signed_in: Client) -> None:
    engineer, keeper = signed_in("wang", "engineer"), signed_in("zhao", "warehouse")
    assert complete(engineer, case_id, "diagnose_fault", DIAGNOSIS).status_code == 200
    assert level("BAT-12V-100") == (10, 0)  # checked, not yet held
    assert complete(signed_in("lin", "agent"), case_id, "quote_maintenance_cost", QUOTE).status_code == 200
    # Meanwhile a stocktake finds only five of the ten: the eight the diagnosis named are not there to hold.
    stock.count_stock(actor=SYSTEM, region="South", part_number="BAT-12V-100", on_hand=5, note="three broken")
    db.session.commit()
    short = complete(keeper, case_id, "reserve_parts", {"reservation_note": "Shelf B3"})
    assert short.status_code == 409
    assert short.get_json()["errors"] == {"parts_to_reserve": {"0": {"quantity": ["only 5 available in region South"]}}}
    assert task_of(keeper, case_id, "reserve_parts")  # still ready
    stock.receive_stock(actor=SYSTEM, region="South", part_number="BAT-12V-100", quantity=5, note="delivery")
    db.session.commit()
    assert complete(keeper, case_id, "reserve_parts", {"reservation_note": "Shelf B3"}).status_code == 200
    assert level("BAT-12V-100") == (10, 8)
    reserved = [(actor, payload["lines"]) for type_, actor, payload in events(case_id) if type_ == "parts_reserved"]
    assert [(actor, [(line["part_number"], line["quantity"]) for line in lines]) for actor, lines in reserved] == [
        ("zhao", [("BAT-12V-100", 8)])]
    task = signed_in("li", "regional_engineer").get(f"/api/tasks/{task_of(keeper, case_id, 'repair_on_site')}")
    assert task.get_json()["data"]["parts_used"] == [{"part_number": "BAT-12V-100", "quantity": 8}]
    record = {"engineer_name": "Li", "arrived_at": "2026-03-02T09:00:00+00:00", "work_performed": "Replaced string 2",
              "parts_used": [{"part_number": "BAT-12V-100", "quantity": 6}], "onsite_result": "repaired"}
    early = complete(signed_in("li", "regional_engineer"), case_id, "repair_on_site", record)
    assert early.status_code == 422  # the clock stands at 08:00: an arrival at 09:00 has not happened yet
    assert early.get_json()["errors"] == {"arrived_at": ["Cannot be in the future: it is now 2026-03-02 08:00 UTC."]}
    assert level("BAT-12V-100") == (10, 8)
    repaired = complete(signed_in("li", "regional_engineer"), case_id, "repair_on_site",
                        {**record, "arrived_at": "2026-03-02T07:40:00+00:00"})
    assert repaired.status_code == 200, repaired.get_json()
    assert level("BAT-12V-100") == (4, 0)
    used = [payload for type_, _, payload in events(case_id) if type_ == "parts_used"]
    assert [(line["state"], line["consumed"]) for line in used[0]["lines"]] == [("consumed", 6)]
    page = keeper.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Spare parts reserved by zhao: BAT-12V-100 × 8" in page
    assert "Spare parts used, booked by li: BAT-12V-100 × 6; the rest went back on the shelf" in page


def test_parts_a_replacement_did_not_use_go_back_when_the_case_closes(case_id: int, signed_in: Client) -> None:
    engineer, keeper, agent = signed_in("wang", "engineer"), signed_in("zhao", "warehouse"), signed_in("lin", "agent")
    assert complete(engineer, case_id, "diagnose_fault", DIAGNOSIS).status_code == 200
    assert complete(agent, case_id, "quote_maintenance_cost", QUOTE).status_code == 200
    assert complete(keeper, case_id, "reserve_parts", {}).status_code == 200
    assert level("BAT-12V-100") == (10, 8)
    regional, supervisor = signed_in("li", "regional_engineer"), signed_in("boss", "supervisor")
    assert complete(regional, case_id, "repair_on_site", {
        "engineer_name": "Li", "arrived_at": "2026-03-02T07:30:00+00:00", "work_performed": "Board burnt",
        "parts_used": [], "onsite_result": "not_repairable"}).status_code == 200
    assert complete(supervisor, case_id, "arrange_replacement", {
        "dealer_name": "Pearl Power", "replacement_agreed": True, "replacement_model": "EA660-60K",
        "delivery_planned_at": "2026-03-03T08:00:00+00:00"}).status_code == 200
    assert complete(regional, case_id, "install_replacement", {
        "installed_at": "2026-03-02T07:50:00+00:00", "new_serial_number": "EA66060K9999"}).status_code == 200
    assert level("BAT-12V-100") == (10, 8)  # still held until the case closes
    assert complete(agent, case_id, "write_processing_report", REPORT).status_code == 200
    assert level("BAT-12V-100") == (10, 0)
    # After the close come the parts going back, then the documents (which show the case as it closed).
    types = [(type_, actor) for type_, actor, _ in events(case_id) if type_ != "document_created"]
    assert types[-2:] == [("case_closed", "lin"), ("parts_released", "system")]
    released = [payload for type_, _, payload in events(case_id) if type_ == "parts_released"][-1]
    assert released["reason"] == "the case closed"
