"""The monthly inspection on real data: the case starts with the month's review (anomalies found by the
reading rules prefill the record), and each anomaly the engineer confirms opens a fault case on that
equipment, linked to the inspection both ways; a clean month opens none."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import SYSTEM
from app.cases.models import Case, CaseLink
from app.engine import ManualClock
from app.extensions import db
from app.flows.steps import open_case
from app.readings import service as readings
from app.registry.models import Equipment
from app.registry.service import seed_demo_data

OCCURRENCE = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 1 March 01:00 in Shanghai: February's inspection
Client = Callable[..., FlaskClient]


def february(serial: str, *, bad_days: dict[int, dict[str, Any]]) -> None:
    unit = db.session.scalar(select(Equipment).where(Equipment.serial_number == serial))
    assert unit is not None
    days = [{"day": date(2026, 2, n).isoformat(), "input_voltage": 221, "output_voltage": 220, "load_percent": 45,
             "battery_health_percent": 92, "temperature_c": 26, **bad_days.get(n, {})} for n in range(1, 29)]
    readings.record_readings(actor=SYSTEM, equipment_id=unit.id, readings=days)


@pytest.fixture
def inspection(deployed: Flask, clock: ManualClock) -> Callable[[], int]:
    seed_demo_data()
    db.session.commit()

    def start() -> int:
        detail = open_case(actor=SYSTEM, process_id="monthly_inspection", reported_at=OCCURRENCE,
                           channel="schedule", description="February 2026")
        db.session.commit()
        return detail.id
    return start


def open_task(client: FlaskClient, case_id: int) -> dict[str, Any]:
    (task,) = [t for t in client.get(f"/api/cases/{case_id}").get_json()["open_tasks"]
               if t["task_spec"] == "inspect_operating_data"]
    return client.get(f"/api/tasks/{task['id']}").get_json()


def test_an_anomaly_opens_a_linked_fault_case(inspection: Callable[[], int], signed_in: Client) -> None:
    february("EA99020K0001", bad_days={5: {"input_voltage": 150}, 22: {"temperature_c": 47,
                                                                      "alarm_codes": ["BATT_TEMP_HIGH"]}})
    february("EA33020K0932", bad_days={})
    case_id = inspection()
    engineer = signed_in("wang", "engineer")
    task = open_task(engineer, case_id)
    data = task["data"]
    assert data["period"] == "February 2026"
    assert data["equipment_checked"] == 5  # every monitored unit of the demo set
    assert [a["serial_number"] for a in data["anomalies"]] == ["EA99020K0001"]
    finding = data["anomalies"][0]["finding"]
    assert "2026-02-05: Input voltage 150 V is below 176 V" in finding
    assert "2026-02-22: Temperature 47 °C is above 40 °C, Alarms raised: BATT_TEMP_HIGH" in finding
    page = engineer.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert 'value="EA99020K0001"' in page  # the record starts with what the rules found
    done = engineer.post(f"/api/tasks/{task['id']}/complete", json={"data": {
        "period": data["period"], "equipment_checked": data["equipment_checked"], "anomalies_found": True,
        "anomalies": data["anomalies"]}})
    assert done.status_code == 200, done.get_json()
    db.session.rollback()
    inspection_case = db.session.get(Case, case_id)
    assert inspection_case is not None and inspection_case.status == "closed"
    (link,) = db.session.scalars(select(CaseLink)).all()
    assert (link.from_case_id, link.kind, link.created_by) == (case_id, "anomaly", "wang")
    fault = db.session.get(Case, link.to_case_id)
    assert fault is not None
    assert (fault.process_id, fault.channel, fault.status) == ("fault_handling", "case", "open")
    assert fault.equipment is not None and fault.equipment.serial_number == "EA99020K0001"
    assert "Input voltage 150 V" in fault.description
    for case in (case_id, fault.id):
        items = engineer.get(f"/api/cases/{case}/events").get_json()["items"]
        linked = [e for e in items if e["type"] == "case_linked"]
        assert len(linked) == 1
    history = engineer.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f"Case {fault.number} opened from this one by wang" in history
    assert f"Opened from case {inspection_case.number}" in engineer.get(f"/cases/{fault.id}").get_data(as_text=True)


def test_a_clean_month_opens_nothing(inspection: Callable[[], int], signed_in: Client, clock: ManualClock) -> None:
    february("EA99020K0001", bad_days={})
    case_id = inspection()
    engineer = signed_in("wang", "engineer")
    task = open_task(engineer, case_id)
    assert task["data"]["anomalies"] == [] and task["data"]["anomalies_found"] is False
    clock.advance(timedelta(hours=1))
    done = engineer.post(f"/api/tasks/{task['id']}/complete", json={"data": {
        "period": "February 2026", "equipment_checked": 5, "anomalies_found": False, "anomalies": []}})
    assert done.status_code == 200
    assert db.session.scalars(select(CaseLink)).all() == []


def test_an_unknown_serial_is_refused_with_the_row_and_nothing_is_opened(inspection: Callable[[], int],
                                                                        signed_in: Client) -> None:
    case_id = inspection()
    engineer = signed_in("wang", "engineer")
    task = open_task(engineer, case_id)
    refused = engineer.post(f"/api/tasks/{task['id']}/complete", json={"data": {
        "period": "February 2026", "equipment_checked": 5, "anomalies_found": True,
        "anomalies": [{"serial_number": "NO-SUCH-UNIT", "finding": "Odd readings"}]}})
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"anomalies": {"0": {"serial_number": ["no equipment has this serial "
                                                                                  "number"]}}}
    db.session.rollback()
    assert db.session.scalars(select(Case).where(Case.process_id == "fault_handling")).all() == []
