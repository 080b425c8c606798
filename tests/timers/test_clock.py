"""The simulated clock lives in the database: Redis losing everything or a new process does not move it,
and it never goes back past recorded history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import create_app
from app.auth import SYSTEM
from app.engine import OffsetClock, get_clock, now, set_clock
from app.extensions import db, redis_connection
from app.flows.steps import open_case
from app.timers.models import SimulatedClock
from app.timers.simulation import clock_offset, offset_reader

DAY = timedelta(days=1)


def advance(app: Flask, by: str) -> str:
    """Run `flask clock advance BY` and return its output (it must succeed)."""
    result = app.test_cli_runner().invoke(args=["clock", "advance", by])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_offset_survives_a_redis_flush_and_a_new_process(deployed: Flask, database_url: str,
                                                             tmp_path: Any) -> None:
    assert "fired 0 timer(s)" in advance(deployed, "25h")
    assert clock_offset() == timedelta(hours=25)
    redis_connection().flushdb()  # FLUSHALL, a Redis restart...
    assert clock_offset() == timedelta(hours=25)
    stored = db.session.get(SimulatedClock, 1)
    assert stored.offset_seconds == 25 * 3600 and stored.updated_by == SYSTEM.username
    previous = get_clock()
    try:  # a restarted `dev.py run` or a worker: a new app, a new clock, the same database
        other = create_app({"ENV_NAME": "testing", "TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url,
                            "INSTANCE_DIR": str(tmp_path), "REDIS_URL": deployed.config["REDIS_URL"],
                            "CLOCK": "simulated"})
        clock = get_clock()
        assert clock is not previous and isinstance(clock, OffsetClock)
        assert clock.offset(fresh=True) == timedelta(hours=25)
        assert abs(clock.now() - (datetime.now(UTC) + timedelta(hours=25))) < timedelta(seconds=5)
        with other.app_context():
            db.engine.dispose()
    finally:
        set_clock(previous)


def test_advances_add_up_and_the_cli_shows_and_resets(deployed: Flask) -> None:
    advance(deployed, "25h")
    advance(deployed, "PT1H")
    runner = deployed.test_cli_runner()
    shown = runner.invoke(args=["clock", "show"])
    assert shown.exit_code == 0 and "ahead of the wall clock by 1 day, 2:00:00" in shown.output
    reset = runner.invoke(args=["clock", "reset"])  # no history recorded ahead of the wall clock
    assert reset.exit_code == 0, reset.output
    assert clock_offset() == timedelta(0)
    assert abs(now() - datetime.now(UTC)) < timedelta(seconds=5)


def test_reset_is_refused_once_history_was_recorded_past_the_wall_clock(deployed: Flask, client: FlaskClient) -> None:
    advance(deployed, "3d")
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now(), channel="phone",
                     description="Entered on the simulated clock")
    db.session.commit()
    result = deployed.test_cli_runner().invoke(args=["clock", "reset"])
    assert result.exit_code != 0
    assert "recorded history reaches" in result.output
    latest = case.opened_at.isoformat(timespec="seconds")[:16]  # the case's events, to the minute
    assert latest in result.output, result.output
    assert clock_offset() == timedelta(days=3)  # unchanged
    reply = client.post("/api/admin/clock/advance", json={"by": "1h"})  # forward still fine
    assert reply.status_code == 200, reply.get_json()
    assert clock_offset() == timedelta(days=3, hours=1)


def test_reading_the_clock_stays_out_of_the_requests_transaction(deployed: Flask) -> None:
    advance(deployed, "2h")
    stored = db.session.get(SimulatedClock, 1)
    stored.offset_seconds = 99.0
    db.session.flush()  # an uncommitted change inside the session's transaction
    connection = db.session.connection()
    assert get_clock().offset(fresh=True) == timedelta(hours=2)  # read elsewhere: the committed value
    assert db.session.connection() is connection and db.session().in_transaction()
    db.session.rollback()


def test_a_reader_without_its_table_keeps_the_last_offset(deployed: Flask, database_url: str,
                                                          tmp_path: Any) -> None:
    advance(deployed, "2h")
    read = offset_reader(deployed)
    assert read() == 2 * 3600
    previous = get_clock()
    empty = create_app({"ENV_NAME": "testing", "TESTING": True, "INSTANCE_DIR": str(tmp_path),
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.db'}", "CLOCK": "simulated"})
    set_clock(previous)  # create_app installed a clock of its own; keep the test session's
    assert offset_reader(empty)() == 0.0  # before `flask db upgrade`: no table, no crash
    assert db.session.scalar(select(SimulatedClock.offset_seconds)) == 2 * 3600


def test_every_test_starts_on_the_wall_clock(deployed: Flask) -> None:
    assert clock_offset() == timedelta(0)  # the cleanup empties the clock's table too
    assert db.session.get(SimulatedClock, 1) is None
