"""Operating data: one row per unit and day, idempotent resends, corrections on request, out-of-range
values refused with the reading and field named, bulk imports that keep good rows and name bad ones, and
the month's review with anomalies under configurable rules."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import create_app
from app.config import ConfigError
from app.engine import ManualClock
from app.extensions import db
from app.readings import service as readings
from app.readings.models import Reading
from app.readings.rules import RulesError, parse_rules
from app.registry.models import Equipment
from app.registry.service import seed_demo_data

TODAY = date(2026, 3, 2)  # the test clock's day (T0) in the department's zone


def day(n: int, **changes: Any) -> dict[str, Any]:
    """A normal day ``n`` days before today, with ``changes``."""
    values = {"day": (TODAY - timedelta(days=n)).isoformat(), "input_voltage": 221.5, "output_voltage": 220.1,
              "load_percent": 46, "battery_health_percent": 93, "temperature_c": 26.5, "alarm_codes": []}
    return {**values, **changes}


@pytest.fixture
def unit(deployed: Flask, clock: ManualClock) -> dict[str, int]:
    seed_demo_data()
    db.session.commit()
    units = db.session.scalars(select(Equipment).order_by(Equipment.id)).all()
    units[-1].monitored = False
    db.session.commit()
    return {"id": units[0].id, "other": units[1].id, "unmonitored": units[-1].id}


@pytest.fixture
def feed(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    return signed_in("monitor", "technical_dept")


def stored_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Reading)) or 0


def test_a_day_is_stored_once_and_a_resend_changes_nothing(unit: dict[str, int], feed: FlaskClient) -> None:
    first = feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(2), day(1)]})
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["created"] == [(TODAY - timedelta(days=n)).isoformat() for n in (2, 1)]
    again = feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(1)]})
    assert again.status_code == 200 and again.get_json()["unchanged"] == [(TODAY - timedelta(days=1)).isoformat()]
    assert stored_count() == 2
    listed = feed.get(f"/api/equipment/{unit['id']}/readings",
                      query_string={"from": (TODAY - timedelta(days=1)).isoformat()}).get_json()
    assert [(r["day"], r["load_percent"], r["received_by"]) for r in listed["items"]] == [
        ((TODAY - timedelta(days=1)).isoformat(), 46.0, "monitor")]


def test_other_values_for_a_recorded_day_are_refused_unless_corrected(unit: dict[str, int], feed: FlaskClient) -> None:
    assert feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(1)]}).status_code == 201
    changed = feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(3), day(1, load_percent=51)]})
    assert changed.status_code == 409
    assert "correct=true" in changed.get_json()["errors"]["readings"]["1"]["day"][0]
    assert stored_count() == 1  # day 3 of the refused request was not kept either
    corrected = feed.post(f"/api/equipment/{unit['id']}/readings",
                          json={"readings": [day(1, load_percent=51)], "correct": True})
    assert corrected.status_code == 200 and corrected.get_json()["corrected"]
    row = db.session.scalar(select(Reading))
    assert row is not None and (row.load_percent, row.corrected_by) == (51.0, "monitor")


@pytest.mark.parametrize(("reading", "field", "words"), [
    (day(1, load_percent=350), "load_percent", "must be from 0 to 300"),
    (day(1, battery_health_percent=-1), "battery_health_percent", "must be from 0 to 100"),
    (day(1, temperature_c="hot"), "temperature_c", "must be a number"),
    (day(1, input_voltage=None), "input_voltage", "is required"),
    (day(-1), "day", "is in the future"),
    (day(500), "day", "more than 400 days ago"),
    (day(1, day="2026-02-30"), "day", "YYYY-MM-DD"),
    (day(1, alarm_codes=["<script>"]), "alarm_codes", "alarm codes"),
    (day(1, humidity=40), "humidity", "unknown field"),
])
def test_a_bad_reading_names_its_field_and_nothing_is_stored(unit: dict[str, int], feed: FlaskClient,
                                                             reading: dict[str, Any], field: str, words: str) -> None:
    response = feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(2), reading]})
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]["readings"]["1"]
    assert words in errors[field][0], errors
    assert "0" not in response.get_json()["errors"]["readings"]
    assert stored_count() == 0


def test_the_same_day_twice_in_one_request_and_unmonitored_equipment_are_refused(unit: dict[str, int],
                                                                                  feed: FlaskClient) -> None:
    twice = feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(1), day(1)]})
    assert twice.status_code == 422 and "sent twice" in twice.get_json()["errors"]["readings"]["1"]["day"][0]
    unmonitored = feed.post(f"/api/equipment/{unit['unmonitored']}/readings", json={"readings": [day(1)]})
    assert unmonitored.status_code == 422
    assert unmonitored.get_json()["errors"] == {"equipment_id": ["is not monitored"]}
    assert feed.post("/api/equipment/999/readings", json={"readings": [day(1)]}).status_code == 404
    assert stored_count() == 0


def test_who_may_send_and_read(unit: dict[str, int], signed_in: Callable[..., FlaskClient]) -> None:
    agent = signed_in("desk", "agent")
    assert agent.post(f"/api/equipment/{unit['id']}/readings", json={"readings": [day(1)]}).status_code == 403
    assert agent.get(f"/api/equipment/{unit['id']}/readings").status_code == 200
    owner = signed_in("owner", "process_owner")
    assert owner.get(f"/api/equipment/{unit['id']}/readings").status_code == 403


def test_the_month_review_lists_anomalies_and_missing_days(unit: dict[str, int], feed: FlaskClient, app: Flask,
                                                           clock: ManualClock) -> None:
    clock.set(clock.now().replace(month=4, day=1))  # the inspection of March runs on April 1st
    march = [day(-n, day=f"2026-03-{n:02d}") for n in range(1, 32) if n not in (10, 11)]
    march[4] = {**march[4], "input_voltage": 150.0}  # 2026-03-05
    march[19] = {**march[19], "temperature_c": 47.0, "alarm_codes": ["BATT_TEMP_HIGH"]}  # 2026-03-22
    assert feed.post(f"/api/equipment/{unit['id']}/readings", json={"readings": march}).status_code == 201
    review = feed.get("/api/readings/review", query_string={"month": "2026-03"}).get_json()
    mine = next(i for i in review["items"] if i["equipment_id"] == unit["id"])
    assert mine["days_received"] == 29
    assert mine["missing_days"] == ["2026-03-10", "2026-03-11"]
    assert [(a["day"], [f["text"] for f in a["findings"]]) for a in mine["anomalies"]] == [
        ("2026-03-05", ["Input voltage 150 V is below 176 V"]),
        ("2026-03-22", ["Temperature 47 °C is above 40 °C", "Alarms raised: BATT_TEMP_HIGH"])]
    others = [i for i in review["items"] if i["equipment_id"] != unit["id"]]
    assert others and all(len(i["missing_days"]) == 31 for i in others)
    assert unit["unmonitored"] not in [i["equipment_id"] for i in review["items"]]
    app.config["READING_RULES"] = '{"temperature_c": [null, 50], "input_voltage": [140, 264]}'
    try:
        relaxed = feed.get("/api/readings/review", query_string={"month": "2026-03"}).get_json()
    finally:
        app.config["READING_RULES"] = None
    mine = next(i for i in relaxed["items"] if i["equipment_id"] == unit["id"])
    assert [(a["day"], [f["measure"] for f in a["findings"]]) for a in mine["anomalies"]] == [
        ("2026-03-22", ["alarm_codes"])]
    assert relaxed["rules"]["temperature_c"] == [None, 50]
    assert feed.get("/api/readings/review", query_string={"month": "2026-13"}).status_code == 422


def test_a_json_import_keeps_good_rows_and_names_bad_ones(unit: dict[str, int], feed: FlaskClient) -> None:
    serial = db.session.get(Equipment, unit["id"]).serial_number
    rows = [{"serial_number": serial, **day(2)}, {"serial_number": "NO-SUCH", **day(2)},
            {"serial_number": serial, **day(1, load_percent=999)}, {"serial_number": serial, **day(1)}]
    report = feed.post("/api/readings/import", json={"rows": rows}).get_json()
    assert (report["created"], report["unchanged"], report["refused_rows"]) == (2, 0, 2)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(2, "serial_number"), (3, "load_percent")]
    again = feed.post("/api/readings/import", json={"rows": rows}).get_json()
    assert (again["created"], again["unchanged"], again["refused_rows"]) == (0, 2, 2)
    assert stored_count() == 2


def _upload(client: FlaskClient, text: bytes, **fields: str) -> Any:
    return client.post("/api/readings/import.csv", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(text), "readings.csv"), **fields})


def test_a_csv_import_reports_lines_and_columns(unit: dict[str, int], feed: FlaskClient) -> None:
    serial = db.session.get(Equipment, unit["id"]).serial_number
    csv_text = (
        "serial_number,day,input_voltage,output_voltage,load_percent,battery_health_percent,temperature_c,alarm_codes\n"
        f"{serial},2026-03-01,221,220,45,92,27,\n"
        f"{serial},2026-02-28,221,220,forty,92,27,\n"
        f"{serial},2026-02-27,221,220,45,92,27,UPS_ON_BATTERY;FAN_FAIL\n"
        f"{serial},2026-02-26,221,220,45,92,27,,surplus\n").encode()
    response = _upload(feed, b"\xef\xbb\xbf" + csv_text)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["created"], report["refused_rows"]) == (2, 2)
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(3, "load_percent"), (5, "")]
    stored = db.session.scalar(select(Reading).where(Reading.day == date(2026, 2, 27)))
    assert stored is not None and stored.alarm_codes == ["FAN_FAIL", "UPS_ON_BATTERY"]
    second = _upload(feed, csv_text).get_json()
    assert (second["created"], second["unchanged"]) == (0, 2)


@pytest.mark.parametrize(("content", "words"), [
    (b"serial_number,day\nX,2026-03-01\n", "missing column input_voltage"),
    (b"serial_number,day,input_voltage,output_voltage,load_percent,battery_health_percent,temperature_c,colour\n",
     "unknown column 'colour'"),
    (b"serial_number,day\n\xff\xfe\n", "line 2 is not UTF-8"),
])
def test_a_csv_that_cannot_be_read_is_refused_whole(unit: dict[str, int], feed: FlaskClient, content: bytes,
                                                    words: str) -> None:
    response = _upload(feed, content)
    assert response.status_code == 422
    assert any(words in message for message in response.get_json()["errors"]["file"]), response.get_json()
    assert stored_count() == 0


def test_rules_are_checked_when_the_app_starts(tmp_path: Any) -> None:
    assert parse_rules(None)[0].low == 176
    for text, words in [("{", "not JSON"), ('{"humidity": [1, 2]}', "unknown measure"),
                        ('{"load_percent": [95, 90]}', "low bound above"), ('{"load_percent": "90"}', "[low, high]")]:
        with pytest.raises(RulesError, match=words):
            parse_rules(text)
    with pytest.raises(ConfigError, match="unknown measure"):
        create_app({"ENV_NAME": "testing", "READING_RULES": '{"humidity": [1, 2]}', "INSTANCE_DIR": str(tmp_path)})


def test_the_service_refuses_nothing_it_should_keep(unit: dict[str, int]) -> None:
    from app.auth import SYSTEM

    report = readings.record_readings(actor=SYSTEM, equipment_id=unit["other"], readings=[day(1)])
    assert len(report.created) == 1
