"""Every operation of /api/openapi.json, fuzzed by schemathesis: no 500 and every response as documented.

The examples run in-process against the app on the test database (SQLite, or PostgreSQL with
TEST_DATABASE_URL), with the processes deployed, the demo data seeded and a few cases open, so that ids
exist to be found. The seed is fixed: a failure reproduces on the next run.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app import create_app
from app.auth import ROLES
from app.engine import now
from app.extensions import db
from app.registry.service import seed_demo_data
from tests.api.conftest import DIAGNOSIS
from tests.support import user_token

SEED = 20260302
MAX_EXAMPLES = 100  # per operation and phase (Hypothesis's default); the run takes about 25 s on two cores


def _document() -> dict[str, Any]:
    """The OpenAPI document as the app serves it (it depends on no data, so a throwaway app builds it).

    Read at import because schemathesis parametrizes at collection; its fixture-based loader does not work
    with pytest 9 (it sets a node attribute pytest no longer has).
    """
    with tempfile.TemporaryDirectory() as folder:
        document_app = create_app({"ENV_NAME": "testing", "TESTING": True, "INSTANCE_DIR": folder,
                                   "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/document.db",
                                   "REDIS_URL": None})
        response = document_app.test_client().get("/api/openapi.json")
        assert response.status_code == 200
        document = response.get_json()
        with document_app.app_context():
            db.engine.dispose()
    return document


_config = schemathesis.Config(seed=SEED)
_config.projects.default.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
schema = schemathesis.openapi.from_dict(_document(), config=_config)


@pytest.fixture
def with_data(deployed: Flask, client: FlaskClient) -> Flask:
    """Data behind the document: demo customers and equipment, open cases, a claimed and a completed task."""
    seed_demo_data()
    db.session.commit()
    body = {"process": "fault_handling", "reported_at": (now() - timedelta(hours=1)).isoformat(),
            "channel": "phone", "description": "UPS alarm: rectifier fault", "equipment_id": 1}
    cases = [client.post("/api/cases", json=body).get_json() for _ in range(3)]
    assert all("id" in case for case in cases), cases
    tasks = [case["open_tasks"][0]["id"] for case in cases]
    assert client.post(f"/api/tasks/{tasks[0]}/claim").status_code == 200
    assert client.post(f"/api/tasks/{tasks[1]}/complete", json={"data": DIAGNOSIS}).status_code == 200
    return deployed


@pytest.fixture
def every_role_token(ctx: Flask) -> str:
    """A token of a user holding every role, so that every operation is reachable (none is refused 403)."""
    return user_token("fuzzer", *ROLES)


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # data is read-mostly
def test_every_operation_answers_as_documented_and_never_500(case: schemathesis.Case, with_data: Flask,
                                                             every_role_token: str) -> None:
    case.call_and_validate(app=with_data, headers={"Authorization": f"Bearer {every_role_token}"},
                           checks=[not_a_server_error, response_schema_conformance])
