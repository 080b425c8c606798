"""Admins see pending timers, the queue and failed jobs, retry failed timers and (in development) move the clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.tasks.models import WorkItem
from app.timers.models import Timer
from app.timers.service import mark_failed


def _fault_case() -> int:
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=1),
                     channel="phone", description="Alarm")
    db.session.commit()
    return case.id


def test_the_timers_overview_lists_waiting_timers_and_the_queue(deployed: Flask, client: FlaskClient) -> None:
    case_id = _fault_case()
    body = client.get("/api/admin/timers").get_json()
    assert [t["name"] for t in body["timers"]] == ["24 h diagnosis deadline"]
    assert body["timers"][0]["case_id"] == case_id
    assert body["scheduled"] == 1 and body["redis_error"] is None
    page = client.get("/admin/timers")
    assert page.status_code == 200
    assert b"24 h diagnosis deadline" in page.data


def test_advancing_the_clock_through_the_api_fires_due_timers(deployed: Flask, client: FlaskClient) -> None:
    case_id = _fault_case()
    reply = client.post("/api/admin/clock/advance", json={"by": "22h"})
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["fired_timer_ids"] == [] and reply.get_json()["offset_seconds"] >= 22 * 3600
    reply = client.post("/api/admin/clock/advance", json={"by": "PT1H1M"})
    assert len(reply.get_json()["fired_timer_ids"]) == 1
    db.session.rollback()
    ready = db.session.scalars(select(WorkItem.task_spec).where(WorkItem.case_id == case_id,
                                                                WorkItem.state == "ready")).all()
    assert sorted(ready) == ["diagnose_fault", "review_overdue_diagnosis"]


@pytest.mark.parametrize("body,field", [({"by": "soon"}, "by"), ({}, "by"), ({"by": "-5h"}, "by"),
                                        ({"by": "25h", "x": 1}, "x")])
def test_a_bad_advance_is_refused(deployed: Flask, client: FlaskClient, body: dict, field: str) -> None:
    reply = client.post("/api/admin/clock/advance", json=body)
    assert reply.status_code == 422
    assert field in reply.get_json()["errors"]


def test_the_clock_cannot_move_on_the_system_clock(deployed: Flask, client: FlaskClient,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(deployed.config, "CLOCK", "system")
    reply = client.post("/api/admin/clock/advance", json={"by": "25h"})
    assert reply.status_code == 403
    assert "CLOCK=simulated" in reply.get_json()["message"]


def test_a_failed_timer_can_be_retried(deployed: Flask, client: FlaskClient) -> None:
    case_id = _fault_case()
    timer_id = db.session.scalar(select(Timer.id).where(Timer.case_id == case_id))
    mark_failed(timer_id=timer_id, error="database was down")
    listed = client.get("/api/admin/timers").get_json()["timers"]
    assert listed[0]["state"] == "failed" and listed[0]["last_error"] == "database was down"
    reply = client.post(f"/api/admin/timers/{timer_id}/retry")
    assert reply.status_code == 200 and reply.get_json()["state"] == "waiting"
    events = client.get(f"/api/cases/{case_id}/events").get_json()["items"]
    assert [e["type"] for e in events][-2:] == ["timer_failed", "timer_retried"]
    assert client.post("/api/admin/timers/999999/retry").status_code == 404
