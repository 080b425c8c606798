"""The quarter's return-visit sample on real data: per region, reproducible from the seed recorded in the case,
nobody called two quarters running unless a region is too small (and then the case says so), and the
feedback form starts with the users drawn."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.engine import ManualClock
from app.extensions import db
from app.flows.steps import open_case
from app.registry.models import Customer

Q1 = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)  # 1 January 01:00 in Shanghai
Q2 = datetime(2026, 3, 31, 17, 0, tzinfo=UTC)


@pytest.fixture
def customers(deployed: Flask, clock: ManualClock) -> dict[str, list[int]]:
    """Six customers in East, two in North."""
    made: dict[str, list[int]] = {"East": [], "North": []}
    for region, count in (("East", 6), ("North", 2)):
        for n in range(count):
            customer = Customer(name=f"{region} customer {n}", region=region, created_at=clock.now())
            db.session.add(customer)
            db.session.flush()
            made[region].append(customer.id)
    db.session.commit()
    return made


def quarter(at: datetime) -> tuple[int, dict[str, Any]]:
    detail = open_case(actor=SYSTEM, process_id="return_visit", reported_at=at, channel="schedule",
                       description="Quarterly return visits")
    db.session.commit()
    drawn = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == detail.id,
                                                      CaseEvent.type == "visit_sample_drawn"))
    assert drawn is not None
    return detail.id, drawn.payload


def test_the_sample_is_per_region_recorded_and_avoids_last_quarters_users(
        customers: dict[str, list[int]], clock: ManualClock, signed_in: Callable[..., Any]) -> None:
    clock.set(datetime(2026, 4, 1, 8, 0, tzinfo=UTC))
    first_id, first = quarter(Q1)
    assert first["size"] == 3 and first["seed"] and first["seed_text"].startswith("RV-")
    assert set(first["regions"]) == {"East", "North"}
    assert len(first["regions"]["East"]) == 3 and set(first["regions"]["East"]) <= set(customers["East"])
    assert sorted(first["regions"]["North"]) == sorted(customers["North"])  # a small region: everyone
    assert first["notes"] == ["North: only 2 user(s) in the region; all are called"]
    second_id, second = quarter(Q2)
    assert not set(second["regions"]["East"]) & set(first["regions"]["East"])  # nobody twice running in East
    assert second["previous_case_id"] == first_id
    assert "North: only 0 user(s) not called last quarter; 2 called again" in second["notes"]
    agent = signed_in("desk", "agent")
    (task,) = agent.get(f"/api/cases/{second_id}").get_json()["open_tasks"]
    data = agent.get(f"/api/tasks/{task['id']}").get_json()["data"]
    assert data["users_called"] == 5 and len(data["calls"]) == 5
    assert all(call["customer"].endswith(("(East)", "(North)")) for call in data["calls"])
    history = agent.get(f"/cases/{second_id}").get_data(as_text=True)
    assert "Return-visit sample drawn: 5 users in 2 regions" in history


def test_the_same_seed_draws_the_same_users(customers: dict[str, list[int]], clock: ManualClock) -> None:
    import random

    clock.set(datetime(2026, 4, 1, 8, 0, tzinfo=UTC))
    _, first = quarter(Q1)
    rng = random.Random(first["seed"])  # the draw, replayed from what the case recorded
    east = sorted(customers["East"])
    assert sorted(c for c in rng.sample(east, 3)) == sorted(first["regions"]["East"])
