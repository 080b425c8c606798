"""Shared fixtures: an app on a migrated database (SQLite file, or PostgreSQL via TEST_DATABASE_URL),
a controllable clock, clients, and a clean database after every test.

Tests that use several connections (concurrent clients, a live server, RQ workers) need committed data,
so instead of one rolled-back transaction per test, every table is emptied after each test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from app import create_app
from app.auth import SYSTEM, Actor
from app.engine import ManualClock, OffsetClock, get_clock, get_engine, set_clock
from app.extensions import db, redis_connection
from app.processes.service import deploy_path
from tests.support import WORKING_ROLES, staff_actor, user_token

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# A Redis database of its own, emptied before the session and after every test.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _database_url(tmp_root: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_root / 'test.db'}"
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a fresh schema per test session: migrations run from nothing
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database the test session runs against, empty."""
    return _database_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app, its schema built by running the migrations."""
    application = create_app({
        "ENV_NAME": "testing", "TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_DIR": str(tmp_path_factory.mktemp("instance")), "REDIS_URL": REDIS_URL,
        "CLOCK": "simulated",
    })
    with application.app_context():
        redis_connection(application).flushdb()
        upgrade()
    yield application


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table after each test that used the app."""
    yield
    if "app" not in request.fixturenames:
        return
    application: Flask = request.getfixturevalue("app")
    with application.app_context():
        db.session.rollback()
        if db.engine.dialect.name == "postgresql":  # ids start again at 1, as they do on SQLite
            names = ", ".join(table.name for table in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()
        redis_connection(application).flushdb()
        get_engine().clear_cache()  # emptied tables hand out version ids again
        clock = get_clock()
        if isinstance(clock, OffsetClock):  # a moved simulated clock must not leak into the next test
            clock.offset(fresh=True)


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    """An application context for calling services directly."""
    with app.app_context():
        yield app
        db.session.rollback()


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """The system clock, stopped at T0 and moved only by the test."""
    manual = ManualClock(T0)
    previous = set_clock(manual)
    yield manual
    set_clock(previous)


@pytest.fixture
def deployed(ctx: Flask) -> Flask:
    """Every process of workflows/ plus the test processes, deployed."""
    deploy_path(ROOT / "workflows", actor=SYSTEM)
    deploy_path(DATA / "one_task.bpmn", actor=SYSTEM)
    db.session.commit()
    return ctx


@pytest.fixture
def staff() -> Actor:
    """A member of staff holding every staff role (a plain actor, for calling services directly)."""
    return staff_actor("alice")


@pytest.fixture
def client(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    """A test client signed in (by token) as the user ``demo`` holding every role but auditor, as the demo
    actor did before sign-in existed; ``anonymous`` is the client nobody signed in with."""
    return signed_in("demo", *WORKING_ROLES)


@pytest.fixture
def anonymous(app: Flask) -> FlaskClient:
    """A test client nobody has signed in with (pages send it to the sign-in page, the API answers 401)."""
    return app.test_client()


def sign_in_session(client: FlaskClient, username: str, password: str) -> TestResponse:
    """Sign ``client`` in through the sign-in form, as a browser does (CSRF token from the page)."""
    page = client.get("/sign-in").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the sign-in page"
    return client.post("/sign-in", data={"username": username, "password": password, "csrf_token": match.group(1)})


@pytest.fixture
def signed_in(app: Flask) -> Callable[..., FlaskClient]:
    """``signed_in("bob", "engineer")``: a test client acting as the real user bob (created with those roles
    on first use; every staff role when none are given) through an API token, on pages and API alike."""

    def make(username: str = "alice", *roles: str) -> FlaskClient:
        with app.app_context():
            token = user_token(username, *roles)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make
