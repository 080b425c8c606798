"""Spare-parts stock: deliveries, stocktakes, reservations for a case (all lines or none), what the repair
used, releases; every movement recorded, never negative; who may do what; the API's answers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.models import CaseEvent
from app.auth import SYSTEM, Actor
from app.cases import service as cases
from app.engine import ManualClock
from app.errors import ConflictError, InvalidDataError, NotFoundError, PermissionDeniedError
from app.extensions import db
from app.flows import steps
from app.registry.models import Customer, Equipment
from app.stock import service as stock
from app.stock.models import ImmutableMovementError, Reservation, StockLevel, StockMovement
from app.stock.service import PartLine

KEEPER = Actor("wang", frozenset({"warehouse"}))
ENGINEER = Actor("li", frozenset({"engineer"}))
AUDITOR = Actor("audit", frozenset({"auditor"}))
REGION = "East"


@pytest.fixture
def stocked(deployed: Flask, clock: ManualClock) -> dict[str, Any]:
    """A warehouse for the East region with two parts in stock, and an open case on East equipment."""
    admin = Actor("root", frozenset({"admin"}))
    stock.create_warehouse(actor=admin, code="EAST", name="East regional warehouse", region=REGION)
    stock.create_warehouse(actor=admin, code="WEST", name="West regional warehouse", region="West")
    stock.create_part(actor=admin, part_number="FUS-125A", name="Rectifier fuse 125 A")
    stock.create_part(actor=admin, part_number="CAP-4700", name="DC bus capacitor 4700 uF")
    stock.create_part(actor=admin, part_number="FAN-120", name="Cooling fan 120 mm")
    stock.receive_stock(actor=KEEPER, region=REGION, part_number="FUS-125A", quantity=3, note="DN-1")
    stock.receive_stock(actor=KEEPER, region=REGION, part_number="CAP-4700", quantity=1, note="DN-1")
    stock.receive_stock(actor=KEEPER, region="West", part_number="FAN-120", quantity=5)
    customer = Customer(name="Harbour Hospital", region=REGION, created_at=clock.now())
    equipment = Equipment(customer=customer, model="UPS-60K", serial_number="EA-STOCK-1", region=REGION)
    db.session.add_all([customer, equipment])
    db.session.flush()
    detail = steps.open_case(actor=Actor("desk", frozenset({"agent"})), process_id="one_task",
                             reported_at=clock.now() - timedelta(hours=1), channel="phone",
                             description="UPS alarm", equipment_id=equipment.id)
    db.session.commit()
    return {"case_id": detail.id, "equipment_id": equipment.id}


def level(part_number: str, region: str = REGION) -> StockLevel:
    (found,), _ = stock.list_stock(actor=AUDITOR, region=region, part_number=part_number)
    db.session.refresh(found)
    return found


def test_a_delivery_and_a_stocktake_are_movements(stocked: dict[str, Any]) -> None:
    assert (level("FUS-125A").on_hand, level("FUS-125A").reserved) == (3, 0)
    stock.count_stock(actor=KEEPER, region=REGION, part_number="FUS-125A", on_hand=2, note="one broken in transit")
    movements, total = stock.list_movements(actor=AUDITOR, part_number="FUS-125A")
    assert total == 2
    assert [(m.kind, m.quantity, m.on_hand_after, m.actor, m.note) for m in movements] == [
        ("adjusted", -1, 2, "wang", "one broken in transit"), ("received", 3, 3, "wang", "DN-1")]


def test_a_reservation_holds_exactly_the_lines_and_the_case_history_says_so(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    held = stock.reserve_parts(actor=KEEPER, case=case,
                               lines=[PartLine("FUS-125A", 1), PartLine("CAP-4700", 1), PartLine("FUS-125A", 1)])
    db.session.commit()
    assert sorted((r.stock_level.part.part_number, r.quantity, r.state) for r in held) == [
        ("CAP-4700", 1, "held"), ("FUS-125A", 2, "held")]
    assert (level("FUS-125A").on_hand, level("FUS-125A").reserved, level("FUS-125A").available) == (3, 2, 1)
    assert level("CAP-4700").available == 0
    event = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.type == "parts_reserved"))
    assert event is not None and event.actor == "wang"
    assert event.payload["warehouse"] == "EAST"
    assert sorted((line["part_number"], line["quantity"]) for line in event.payload["lines"]) == [
        ("CAP-4700", 1), ("FUS-125A", 2)]


def test_one_line_short_refuses_every_line_and_names_it(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    with pytest.raises(ConflictError) as refused:
        stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 1), PartLine("CAP-4700", 2)])
    db.session.rollback()
    assert refused.value.errors == {"lines": {"1": {"quantity": ["only 1 available in region East"]}}}
    assert "only 1 of part CAP-4700 is available in the East regional warehouse; 2 were asked for" in str(refused.value)
    assert level("FUS-125A").reserved == 0 and level("CAP-4700").reserved == 0
    assert db.session.scalar(select(func.count()).select_from(Reservation)) == 0


def test_a_part_the_region_does_not_stock_is_named(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    with pytest.raises(ConflictError) as refused:
        stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 1), PartLine("FAN-120", 1)])
    assert refused.value.errors == {"lines": {"1": {"part_number": [
        "the East regional warehouse does not stock part FAN-120"]}}}


def test_the_repair_consumes_what_it_used_and_the_rest_goes_back(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 2), PartLine("CAP-4700", 1)])
    db.session.commit()
    case = cases.lock_case(stocked["case_id"])
    settled = stock.use_parts(actor=ENGINEER, case=case, used=[PartLine("FUS-125A", 1)])
    db.session.commit()
    assert sorted((r.stock_level.part.part_number, r.state, r.consumed) for r in settled) == [
        ("CAP-4700", "released", 0), ("FUS-125A", "consumed", 1)]
    assert (level("FUS-125A").on_hand, level("FUS-125A").reserved) == (2, 0)
    assert (level("CAP-4700").on_hand, level("CAP-4700").reserved) == (1, 0)
    kinds = [(m.kind, m.quantity, m.on_hand_after, m.reserved_after)
             for m in stock.list_movements(actor=AUDITOR, part_number="FUS-125A", case_id=case.id)[0]]
    assert kinds == [("released", 1, 2, 0), ("consumed", 1, 2, 1), ("reserved", 2, 3, 2)]
    types = [e.type for e in db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))]
    assert types[-2:] == ["parts_reserved", "parts_used"]


def test_using_more_than_was_reserved_is_refused_by_line(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 1)])
    with pytest.raises(InvalidDataError) as refused:
        stock.use_parts(actor=ENGINEER, case=case, used=[PartLine("FUS-125A", 1), PartLine("CAP-4700", 1)])
    assert refused.value.errors == {"parts_used": {"1": {"quantity": [
        "only 0 of part CAP-4700 were reserved for this case"]}}}


def test_releasing_puts_everything_back_with_the_reason(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 3)])
    stock.release_parts(actor=ENGINEER, case=case, reason="replaced by the dealer")
    db.session.commit()
    assert (level("FUS-125A").on_hand, level("FUS-125A").reserved) == (3, 0)
    (movement, *_), _ = stock.list_movements(actor=AUDITOR, part_number="FUS-125A")
    assert (movement.kind, movement.quantity, movement.note) == ("released", 3, "replaced by the dealer")
    assert stock.release_parts(actor=ENGINEER, case=case, reason="again") == []


def test_a_stocktake_cannot_go_below_what_is_reserved(stocked: dict[str, Any]) -> None:
    case = cases.lock_case(stocked["case_id"])
    stock.reserve_parts(actor=KEEPER, case=case, lines=[PartLine("FUS-125A", 2)])
    with pytest.raises(ConflictError) as refused:
        stock.count_stock(actor=KEEPER, region=REGION, part_number="FUS-125A", on_hand=1, note="count")
    assert refused.value.errors == {"on_hand": ["must be at least the 2 reserved"]}
    assert level("FUS-125A").on_hand == 3


def test_the_database_refuses_negative_stock_even_when_code_forgets(stocked: dict[str, Any]) -> None:
    found = level("CAP-4700")
    found.reserved = 2  # more than on hand
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    found = level("CAP-4700")
    found.on_hand = -1
    with pytest.raises(IntegrityError):
        db.session.flush()


def test_movements_are_never_changed(stocked: dict[str, Any]) -> None:
    movement = db.session.scalars(select(StockMovement)).first()
    assert movement is not None
    movement.quantity = 99
    with pytest.raises(ImmutableMovementError):
        db.session.flush()


@pytest.mark.parametrize(("actor", "call"), [
    (ENGINEER, lambda a: stock.receive_stock(actor=a, region=REGION, part_number="FUS-125A", quantity=1)),
    (AUDITOR, lambda a: stock.create_part(actor=a, part_number="X-1", name="x")),
    (ENGINEER, lambda a: stock.reserve_for_case(actor=a, case_id=1, lines=[PartLine("FUS-125A", 1)])),
    (Actor("desk", frozenset({"agent"})), lambda a: stock.use_for_case(actor=a, case_id=1, used=[])),
    (Actor("boss", frozenset({"process_owner"})), lambda a: stock.list_stock(actor=a)),
])
def test_who_may_not(stocked: dict[str, Any], actor: Actor, call: Callable[[Actor], Any]) -> None:
    with pytest.raises(PermissionDeniedError):
        call(actor)


def test_bad_reference_data_is_named(stocked: dict[str, Any]) -> None:
    admin = Actor("root", frozenset({"admin"}))
    with pytest.raises(ConflictError) as taken:
        stock.create_warehouse(actor=admin, code="EAST2", name="Second", region=REGION)
    assert taken.value.errors == {"region": ["has a warehouse already"]}
    with pytest.raises(InvalidDataError) as bad:
        stock.create_part(actor=admin, part_number="../etc", name=" ")
    assert set(bad.value.errors) == {"part_number", "name"}
    with pytest.raises(NotFoundError):
        stock.receive_stock(actor=KEEPER, region=REGION, part_number="NOPE-1", quantity=1)
    with pytest.raises(InvalidDataError) as nowhere:
        stock.receive_stock(actor=KEEPER, region="Atlantis", part_number="FUS-125A", quantity=1)
    assert nowhere.value.errors == {"region": ["region 'Atlantis' has no spare-parts warehouse"]}


def test_parse_lines_names_row_and_field() -> None:
    with pytest.raises(InvalidDataError) as bad:
        stock.parse_lines([{"part_number": "FUS-125A", "quantity": 1}, {"part_number": "", "quantity": 0},
                           {"part_number": "OK-1", "quantity": True}, "x"], field="parts_requested")
    assert bad.value.errors == {"parts_requested": {
        "1": {"part_number": [stock.PART_NUMBER_MESSAGE], "quantity": ["must be a whole number from 1 to 100000"]},
        "2": {"quantity": ["must be a whole number from 1 to 100000"]},
        "3": ["must be an object with part_number and quantity"]}}


# ------------------------------------------------------------------------------------------------ API

@pytest.fixture
def keeper(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    return signed_in("wang", "warehouse")


def test_api_levels_receipts_and_a_case_reservation(stocked: dict[str, Any], keeper: FlaskClient,
                                                    signed_in: Callable[..., FlaskClient]) -> None:
    listed = keeper.get("/api/stock", query_string={"region": REGION, "available": "true"}).get_json()
    assert [(i["part_number"], i["on_hand"], i["available"]) for i in listed["items"]] == [
        ("CAP-4700", 1, 1), ("FUS-125A", 3, 3)]
    received = keeper.post("/api/stock/receipts", json={"region": REGION, "part_number": "CAP-4700", "quantity": 4,
                                                        "note": "DN-2"})
    assert received.status_code == 201, received.get_json()
    assert received.get_json()["on_hand"] == 5
    case_id = stocked["case_id"]
    held = keeper.post(f"/api/cases/{case_id}/parts", json={"lines": [{"part_number": "CAP-4700", "quantity": 5}]})
    assert held.status_code == 201, held.get_json()
    assert [(r["part_number"], r["quantity"], r["state"]) for r in held.get_json()["items"]] == [
        ("CAP-4700", 5, "held")]
    short = keeper.post(f"/api/cases/{case_id}/parts", json={"lines": [{"part_number": "CAP-4700", "quantity": 1}]})
    assert short.status_code == 409
    assert short.get_json()["errors"] == {"lines": {"0": {"quantity": ["only 0 available in region East"]}}}
    engineer = signed_in("li", "engineer")
    assert engineer.post(f"/api/cases/{case_id}/parts", json={"lines": [{"part_number": "CAP-4700",
                                                                         "quantity": 1}]}).status_code == 403
    used = engineer.post(f"/api/cases/{case_id}/parts/used",
                         json={"used": [{"part_number": "CAP-4700", "quantity": 2}]})
    assert used.status_code == 200, used.get_json()
    assert [(r["state"], r["consumed"]) for r in used.get_json()["items"]] == [("consumed", 2)]
    assert keeper.get("/api/stock", query_string={"part_number": "CAP-4700"}).get_json()["items"][0]["on_hand"] == 3
    history = keeper.get(f"/api/stock/movements?case_id={case_id}").get_json()
    assert [m["kind"] for m in history["items"]] == ["released", "consumed", "reserved"]


@pytest.mark.parametrize(("path", "body", "status", "errors"), [
    ("/api/stock/receipts", {"region": REGION, "part_number": "FUS-125A", "quantity": 0}, 422,
     {"quantity": ["Must be greater than or equal to 1 and less than or equal to 100000."]}),
    ("/api/stock/receipts", {"region": REGION, "part_number": "FUS-125A", "quantity": "3"}, 422, None),
    ("/api/stock/receipts", {"region": REGION, "part_number": "NOPE-9", "quantity": 1}, 404,
     {"part_number": ["unknown part"]}),
    ("/api/stock/counts", {"region": REGION, "part_number": "FUS-125A", "on_hand": 1}, 422, {"note": None}),
    ("/api/cases/1/parts", {"lines": []}, 422, None),
    ("/api/cases/1/parts", {"lines": [{"part_number": "FUS-125A", "quantity": 1, "extra": 1}]}, 422, None),
    ("/api/cases/99/parts", {"lines": [{"part_number": "FUS-125A", "quantity": 1}]}, 404, None),
    ("/api/stock/warehouses", {"code": "east", "name": "x", "region": "North"}, 422, {"code": None}),
])
def test_api_bad_input_is_a_4xx_naming_the_field_and_changes_nothing(
        stocked: dict[str, Any], keeper: FlaskClient, path: str, body: dict[str, Any], status: int,
        errors: dict[str, Any] | None) -> None:
    before = (db.session.scalar(select(func.count()).select_from(StockMovement)),
              db.session.scalar(select(func.count()).select_from(Reservation)))
    response = keeper.post(path, json=body)
    assert response.status_code == status, response.get_json()
    payload = response.get_json()
    assert payload["status"] == status and payload["message"]
    for field, messages in (errors or {}).items():
        assert field in str(payload.get("errors")), payload
        if messages is not None:
            assert payload["errors"][field] == messages or payload["errors"].get("json", {}).get(field) == messages
    db.session.rollback()
    assert (db.session.scalar(select(func.count()).select_from(StockMovement)),
            db.session.scalar(select(func.count()).select_from(Reservation))) == before


def test_a_closed_case_takes_no_reservation(stocked: dict[str, Any], keeper: FlaskClient) -> None:
    case = cases.lock_case(stocked["case_id"])
    case.status = "closed"
    db.session.commit()
    response = keeper.post(f"/api/cases/{case.id}/parts", json={"lines": [{"part_number": "FUS-125A", "quantity": 1}]})
    assert response.status_code == 409
    assert "closed" in response.get_json()["message"]


def test_system_actor_is_allowed(stocked: dict[str, Any]) -> None:
    assert stock.list_warehouses(actor=SYSTEM)
