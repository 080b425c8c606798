"""The demo set `dev.py run` loads: the size the README promises, the same every time, and only once."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from app.engine import ManualClock
from app.extensions import db
from app.flows.demo import load_demo_set
from app.readings.models import Reading
from app.registry.models import Customer, Equipment
from app.registry.service import department_today
from app.stock.models import StockLevel, Warehouse


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_the_demo_set_is_a_department_worth_of_files_and_loads_once(ctx: Flask, clock: ManualClock) -> None:
    report = load_demo_set()
    db.session.commit()
    assert (count(Customer), count(Equipment)) == (50, 200)
    assert count(Warehouse) == 4 and count(StockLevel) == 4 * 12
    today = department_today()
    units = db.session.scalars(select(Equipment)).all()
    assert any(u.warranty_ends_on and u.warranty_ends_on >= today for u in units)
    assert any(u.warranty_ends_on and u.warranty_ends_on < today for u in units)
    monitored = [u for u in units if u.monitored]
    assert 50 <= len(monitored) <= 120
    assert count(Reading) == report.readings and report.readings >= 80 * len(monitored)
    first = sorted(c.name for c in db.session.scalars(select(Customer)))
    again = load_demo_set()
    assert again.customers == 0 and count(Customer) == 50  # only into an empty registry
    assert first[:3] == sorted(c.name for c in db.session.scalars(select(Customer)))[:3]
