"""The unit of work: commit on success, roll back on error, after-commit work only after a commit, and
savepoints that keep (or drop) only their own part: against the real database and the real Redis."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.auth import SYSTEM
from app.engine import ManualClock, now
from app.extensions import db, redis_connection
from app.flows.steps import open_case
from app.registry.models import Customer
from app.timers.models import Timer
from app.timers.scheduling import DUE_KEY
from app.uow import NestedUnitOfWorkError, after_commit, unit_of_work


def _saved_elsewhere(app: Flask, name: str) -> int:
    """How many customers called ``name`` another connection sees (what was really committed)."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Customer).where(Customer.name == name)) or 0)
    finally:
        engine.dispose()


def _customer(name: str) -> Customer:
    customer = Customer(name=name, region="East", created_at=now())
    db.session.add(customer)
    db.session.flush()
    return customer


def test_a_unit_of_work_commits_when_it_ends(ctx: Flask) -> None:
    with unit_of_work():
        _customer("Committed Ltd")
    assert _saved_elsewhere(ctx, "Committed Ltd") == 1


def test_a_unit_of_work_that_raises_saves_nothing_and_raises_on(ctx: Flask) -> None:
    with pytest.raises(ZeroDivisionError), unit_of_work():
        _customer("Rolled Back Ltd")
        1 / 0  # noqa: B018
    assert _saved_elsewhere(ctx, "Rolled Back Ltd") == 0
    assert db.session.scalar(select(func.count()).select_from(Customer)) == 0  # not even in this session


def test_after_commit_callbacks_run_only_once_the_data_is_committed(ctx: Flask) -> None:
    seen: list[tuple[str, int]] = []
    with unit_of_work():
        _customer("Visible Ltd")
        after_commit(lambda: seen.append(("committed", _saved_elsewhere(ctx, "Visible Ltd"))))
        assert seen == []  # nothing runs at a flush
    assert seen == [("committed", 1)]  # it ran after the commit: another connection sees the row

    with pytest.raises(RuntimeError), unit_of_work():
        _customer("Never Ltd")
        after_commit(lambda: seen.append(("rolled back", 0)))
        raise RuntimeError("refused")
    with unit_of_work():  # the next transaction does not inherit what the rolled-back one deferred
        _customer("Later Ltd")
    assert seen == [("committed", 1)]


def test_a_failing_callback_does_not_undo_the_commit_or_stop_the_others(ctx: Flask) -> None:
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("Redis away")

    with unit_of_work():
        _customer("Kept Ltd")
        after_commit(broken)
        after_commit(lambda: seen.append("second"))
    assert seen == ["second"] and _saved_elsewhere(ctx, "Kept Ltd") == 1


def test_a_savepoint_rolled_back_drops_only_its_own_callbacks(ctx: Flask) -> None:
    seen: list[str] = []
    with unit_of_work():
        after_commit(lambda: seen.append("outer, before"))
        kept = db.session.begin_nested()
        after_commit(lambda: seen.append("kept savepoint"))
        kept.commit()
        assert seen == []  # releasing a savepoint is no commit: nothing runs yet
        dropped = db.session.begin_nested()
        after_commit(lambda: seen.append("rolled-back savepoint"))
        inner = db.session.begin_nested()
        after_commit(lambda: seen.append("inside the rolled-back savepoint"))
        inner.commit()
        dropped.rollback()
        after_commit(lambda: seen.append("outer, after"))
    assert seen == ["outer, before", "kept savepoint", "outer, after"]


def test_units_of_work_do_not_nest(ctx: Flask) -> None:
    with unit_of_work(), pytest.raises(NestedUnitOfWorkError), unit_of_work():
        pass
    with unit_of_work():  # and the outer one closed normally
        _customer("After Ltd")
    assert _saved_elsewhere(ctx, "After Ltd") == 1


# -- timers armed after commit (real Redis) -------------------------------------------------------------------
def _fault_case() -> int:
    case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=1),
                     channel="phone", description="UPS alarm")
    return case.id


def _timers_of(case_id: int) -> set[str]:
    return {str(t) for t in db.session.scalars(select(Timer.id).where(Timer.case_id == case_id))}


def _armed(app: Flask) -> set[str]:
    return {raw.decode() for raw in redis_connection(app).zrange(DUE_KEY, 0, -1)}


def test_a_savepoint_rolled_back_keeps_the_arming_of_timers_the_transaction_commits(
        deployed: Flask, clock: ManualClock) -> None:
    redis_connection(deployed).delete(DUE_KEY)
    with unit_of_work():
        kept = _fault_case()  # its response deadline must be armed once this commits
        savepoint = db.session.begin_nested()
        dropped = _fault_case()
        dropped_timers = _timers_of(dropped)
        savepoint.rollback()
    kept_timers = _timers_of(kept)
    assert kept_timers and dropped_timers
    armed = _armed(deployed)
    assert kept_timers <= armed, "the savepoint's rollback threw away the outer transaction's timers"
    assert not (dropped_timers - kept_timers) & armed


def test_timers_of_a_released_savepoint_wait_for_the_outer_commit(deployed: Flask, clock: ManualClock) -> None:
    redis_connection(deployed).delete(DUE_KEY)
    with pytest.raises(LookupError), unit_of_work():
        savepoint = db.session.begin_nested()
        case_id = _fault_case()
        savepoint.commit()
        timers = _timers_of(case_id)
        assert timers and not _armed(deployed) & timers  # a savepoint released is not a commit
        raise LookupError("the request fails after the savepoint")
    assert not _armed(deployed)  # rolled back: nothing armed for rows that do not exist


# -- SQLite: the write lock at BEGIN ------------------------------------------------------------------------
def test_on_sqlite_a_unit_of_work_holds_the_write_lock_from_its_start(ctx: Flask) -> None:
    url = make_url(ctx.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL locks the rows it writes; BEGIN IMMEDIATE is SQLite's")
    other = sqlite3.connect(url.database or "", timeout=0.1, isolation_level=None)
    try:
        with unit_of_work():
            db.session.execute(text("SELECT 1"))  # reads only, yet no other writer may start
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at the commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_sweep_whose_second_occurrence_fails_still_arms_the_first_ones_timers(
        ctx: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real savepoints: each recurring occurrence starts in a savepoint of the sweep's transaction, and
    # a failing one is rolled back alone. The occurrence started before it must still get its timers.
    from datetime import UTC, datetime

    from app.cases.models import Case
    from app.errors import ProcessFailedError
    from app.flows import schedules as schedule_flow
    from app.processes.service import deploy_path
    from tests.conftest import ROOT

    deploy_path(ROOT / "workflows", actor=SYSTEM)
    db.session.commit()
    redis_connection(ctx).delete(DUE_KEY)
    real_open_case, calls = schedule_flow.open_case, []

    def open_second_fails(**kwargs: object) -> object:
        calls.append(kwargs["process_id"])
        if len(calls) == 2:
            raise ProcessFailedError("the process could not start: boom")
        return real_open_case(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(schedule_flow, "open_case", open_second_fails)
    clock.set(datetime(2026, 3, 31, 17, 1, tzinfo=UTC))  # April's occurrences (1 April 01:00 +08:00) are due
    with unit_of_work():
        assert schedule_flow.start_due_occurrences() == 1
    assert len(calls) == 2
    (case_id,) = db.session.scalars(select(Case.id).where(Case.process_id == calls[0]))
    waiting = {str(t) for t in db.session.scalars(select(Timer.id).where(Timer.case_id == case_id,
                                                                         Timer.state == "waiting"))}
    assert waiting, f"{calls[0]} should wait on a deadline"
    assert waiting <= _armed(ctx), "the failed occurrence's savepoint threw away the started one's timers"


def test_a_sweep_that_fails_after_starting_occurrences_arms_none_of_their_timers(
        ctx: Flask, clock: ManualClock) -> None:
    # Releasing each occurrence's savepoint is no commit: if the sweep's transaction then fails, Redis must
    # not hold timers whose rows were never stored.
    from datetime import UTC, datetime

    from app.flows import schedules as schedule_flow
    from app.processes.service import deploy_path
    from tests.conftest import ROOT

    deploy_path(ROOT / "workflows", actor=SYSTEM)
    db.session.commit()
    redis_connection(ctx).delete(DUE_KEY)
    clock.set(datetime(2026, 3, 31, 17, 1, tzinfo=UTC))
    with pytest.raises(ConnectionError), unit_of_work():
        assert schedule_flow.start_due_occurrences() == 2
        assert db.session.scalar(select(func.count()).select_from(Timer).where(Timer.state == "waiting"))
        raise ConnectionError("the database went away before the commit")
    assert db.session.scalar(select(func.count()).select_from(Timer)) == 0
    assert _armed(ctx) == set()
