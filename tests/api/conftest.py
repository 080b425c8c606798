"""Fixtures of the JSON API tests: demo data, a thin client wrapper and snapshots of what is stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from app.audit.models import CaseEvent
from app.cases.models import Case
from app.engine import ManualClock
from app.extensions import db
from app.processes.models import ProcessVersion
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem
from app.timers.models import Timer
from tests.support import WORKING_ROLES

# Record-form data that walks a warranty fault along the remote path to the end.
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
REMOTE_REPAIRED = {"remote_channel": "network", "work_performed": "Reset the rectifier", "remote_result": "repaired"}
REPORT = {"report_summary": "Fault removed remotely", "report_sent_via": "email", "customer_confirmed": True}
REVIEW = {"escalation_action": "expedited", "escalation_note": "Called the engineer"}


def counts() -> dict[str, int]:
    """How many rows every table a case writes to holds."""
    db.session.rollback()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Case, CaseEvent, WorkItem, Timer, ProcessVersion)}


def case_snapshot(case_id: int) -> dict[str, Any]:
    """Everything stored about one case, as plain values to compare before and after a request."""
    db.session.rollback()
    case = db.session.scalar(select(Case).where(Case.id == case_id).execution_options(populate_existing=True))
    assert case is not None
    return {
        "case": (case.status, case.state_json, case.lock_version, case.event_count, case.updated_at,
                 case.closed_at, case.summary, case.process_version_id),
        "work_items": [(w.id, w.task_id, w.task_spec, w.state, w.assignee, w.due_at, w.completed_at,
                        w.completed_by) for w in db.session.scalars(
                            select(WorkItem).where(WorkItem.case_id == case_id).order_by(WorkItem.id))],
        "events": [(e.seq, e.type, e.actor, e.payload) for e in db.session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq))],
        "timers": [(t.id, t.task_spec, t.state, t.due_at) for t in db.session.scalars(
            select(Timer).where(Timer.case_id == case_id).order_by(Timer.id))],
    }


class ApiClient:
    """The test client with the few calls the API tests make again and again."""

    DIAGNOSIS = DIAGNOSIS
    REMOTE_REPAIRED = REMOTE_REPAIRED
    REPORT = REPORT
    REVIEW = REVIEW

    def __init__(self, client: FlaskClient, clock: ManualClock, equipment: dict[str, int],
                 signed_in: Callable[..., FlaskClient]) -> None:
        self.client = client
        self.clock = clock
        self.equipment = equipment
        self._signed_in = signed_in
        self._users: dict[str, FlaskClient] = {}

    def as_user(self, username: str) -> FlaskClient:
        """A client signed in (by token) as ``username``, holding the same roles as the default client."""
        if username not in self._users:
            self._users[username] = self._signed_in(username, *WORKING_ROLES)
        return self._users[username]

    def case_body(self, **fields: Any) -> dict[str, Any]:
        """A valid body for opening a fault case an hour after the customer's call."""
        body: dict[str, Any] = {
            "process": "fault_handling", "reported_at": self.reported_at().isoformat(), "channel": "phone",
            "description": "UPS alarm: rectifier fault", "equipment_id": self.equipment["EA99020K0001"]}
        body.update(fields)
        return body

    def reported_at(self) -> datetime:
        """When the customer called: an hour before now."""
        return self.clock.now() - timedelta(hours=1)

    def open_case(self, **fields: Any) -> dict[str, Any]:
        """Open a case through the API; it must succeed."""
        response = self.client.post("/api/cases", json=self.case_body(**fields))
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def task(self, case: dict[str, Any], spec: str) -> dict[str, Any]:
        """The open task ``spec`` of a case as the API shows it now."""
        current = self.client.get(f"/api/cases/{case['id']}").get_json()
        found = [t for t in current["open_tasks"] if t["task_spec"] == spec]
        assert found, f"{spec} is not open; open: {[t['task_spec'] for t in current['open_tasks']]}"
        return found[0]

    def complete(self, task_id: int, data: Any, *, actor: str | None = None) -> TestResponse:
        """Submit a task's record form (as the user ``actor``, or as the default client's user)."""
        client = self.as_user(actor) if actor else self.client
        return client.post(f"/api/tasks/{task_id}/complete", json={"data": data})

    @staticmethod
    def counts() -> dict[str, int]:
        """Rows per table (see ``counts``)."""
        return counts()

    @staticmethod
    def snapshot(case_id: int) -> dict[str, Any]:
        """Everything stored about a case (see ``case_snapshot``)."""
        return case_snapshot(case_id)

    def events(self, case_id: int) -> list[dict[str, Any]]:
        """The case's history."""
        response = self.client.get(f"/api/cases/{case_id}/events")
        assert response.status_code == 200
        return response.get_json()["items"]


@pytest.fixture
def demo_equipment(deployed: Flask) -> dict[str, int]:
    """Demo customers and equipment; equipment ids by serial number (ids differ per database)."""
    seed_demo_data()
    db.session.commit()
    return {e.serial_number: e.id for e in db.session.scalars(select(Equipment))}


@pytest.fixture
def api(client: FlaskClient, clock: ManualClock, demo_equipment: dict[str, int],
        signed_in: Callable[..., FlaskClient]) -> ApiClient:
    """The API client on a deployed, seeded database with the clock stopped."""
    return ApiClient(client, clock, demo_equipment, signed_in)
