"""Reservations of the last units, raced by real concurrent HTTP clients: exactly as many succeed as there
are units, the others are told which line is short, and the stock never goes negative.

Runs on whatever database the app fixture uses; CI runs it on PostgreSQL too, where the guarantee rests on
the conditional UPDATE re-checked after the row lock (SQLite serialises writers and may answer 503 busy,
which the client retries)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from app.auth import Actor
from app.engine import ManualClock
from app.extensions import db
from app.flows import steps
from app.registry.models import Customer, Equipment
from app.stock import service as stock
from app.stock.models import Part, Reservation, StockLevel, StockMovement
from tests.cases.test_concurrency import Server

pytestmark = pytest.mark.concurrency
ROUNDS = 20
ADMIN = Actor("root", frozenset({"admin"}))


@pytest.fixture
def live(deployed: Flask, clock: ManualClock) -> Iterator[Server]:
    stock.create_warehouse(actor=ADMIN, code="EAST", name="East regional warehouse", region="East")
    stock.create_part(actor=ADMIN, part_number="CAP-4700", name="DC bus capacitor 4700 uF")
    stock.create_part(actor=ADMIN, part_number="FUS-125A", name="Rectifier fuse 125 A")
    customer = Customer(name="Harbour Hospital", region="East", created_at=clock.now())
    db.session.add(customer)
    db.session.commit()
    server = Server(deployed)
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.thread.join(timeout=30)
    server.httpd.server_close()


def _open_cases(clock: ManualClock, count: int) -> list[int]:
    customer = db.session.scalar(select(Customer))
    ids = []
    for n in range(count):
        equipment = Equipment(customer=customer, model="UPS-60K", serial_number=f"EA-RACE-{clock.now():%H%M%S}-{n}",
                              region="East")
        db.session.add(equipment)
        db.session.flush()
        ids.append(steps.open_case(actor=Actor("desk", frozenset({"agent"})), process_id="one_task",
                                   reported_at=clock.now() - timedelta(hours=1), channel="phone",
                                   description="UPS alarm", equipment_id=equipment.id).id)
    db.session.commit()
    return ids


def _level(part_number: str) -> tuple[int, int]:
    db.session.rollback()
    found = db.session.scalar(select(StockLevel).join(StockLevel.part).where(Part.part_number == part_number)
                              .execution_options(populate_existing=True))
    assert found is not None
    return found.on_hand, found.reserved


def test_two_keepers_reserving_the_last_unit_for_two_cases_one_wins(live: Server, clock: ManualClock) -> None:
    outcomes: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        stock.receive_stock(actor=ADMIN, region="East", part_number="CAP-4700", quantity=1)
        db.session.commit()
        first, second = _open_cases(clock, 2)
        clock.advance(timedelta(seconds=1))
        line = {"lines": [{"part_number": "CAP-4700", "quantity": 1}]}
        replies = live.race([(f"/api/cases/{first}/parts", line, "keeper-a"),
                             (f"/api/cases/{second}/parts", line, "keeper-b")])
        statuses = sorted(r.status for r in replies)
        assert statuses == [201, 409], [r.seen for r in replies]
        loser = next(r for r in replies if r.status == 409)
        assert loser.body["errors"] == {"lines": {"0": {"quantity": ["only 0 available in region East"]}}}
        winner = next(i for i, r in enumerate(replies) if r.status == 201)
        outcomes["first case" if winner == 0 else "second case"] += 1
        on_hand, reserved = _level("CAP-4700")
        assert (on_hand, reserved) == (round_ + 1, round_ + 1)
    print(f"\nlast-unit races: {ROUNDS} rounds, one 201 and one 409 each; won by {dict(outcomes)}")


def test_eight_clients_for_three_units_three_succeed(live: Server, clock: ManualClock) -> None:
    stock.receive_stock(actor=ADMIN, region="East", part_number="FUS-125A", quantity=3)
    stock.receive_stock(actor=ADMIN, region="East", part_number="CAP-4700", quantity=8)
    db.session.commit()
    ids = _open_cases(clock, 8)
    body = {"lines": [{"part_number": "CAP-4700", "quantity": 1}, {"part_number": "FUS-125A", "quantity": 1}]}
    replies = live.race([(f"/api/cases/{case_id}/parts", body, f"keeper-{n}") for n, case_id in enumerate(ids)])
    statuses = Counter(r.status for r in replies)
    assert statuses == {201: 3, 409: 5}, [r.seen for r in replies]
    for reply in replies:
        if reply.status == 409:  # the fuse line is short; the capacitor line it had taken is rolled back
            assert reply.body["errors"] == {"lines": {"1": {"quantity": ["only 0 available in region East"]}}}
    assert _level("FUS-125A") == (3, 3)
    assert _level("CAP-4700") == (8, 3)
    assert db.session.scalar(select(func.count()).select_from(Reservation)) == 6
    reserved_moves = db.session.scalar(select(func.count()).select_from(StockMovement)
                                       .where(StockMovement.kind == "reserved"))
    assert reserved_moves == 6
    print(f"\n8 clients, 3 fuses: {dict(statuses)}")


def test_results_are_readable(live: Server) -> None:
    status, body = live.request("GET", "/api/stock/warehouses")
    assert status == 200 and body["items"][0]["code"] == "EAST"


