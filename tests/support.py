"""Helpers the tests with real processes share: free ports, polling, worker processes, timer cases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import has_app_context
from sqlalchemy import select

from app.auth import STAFF_ROLES, SYSTEM, Actor
from app.engine import DecisionTable, Engine, get_engine, now
from app.engine.operations import OperationRegistry
from app.extensions import db
from app.flows.steps import open_case
from app.timers.models import Timer

ROOT = Path(__file__).resolve().parent.parent
# What the demo actor held before sign-in existed: every staff role, process owner and admin (not auditor);
# the tests' default signed-in user holds these.
WORKING_ROLES = (*STAFF_ROLES, "process_owner", "admin")


def staff_actor(username: str) -> Actor:
    """A member of staff named ``username`` holding every staff role (for calling services directly)."""
    return Actor(username, frozenset(STAFF_ROLES))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition", step: float = 0.1) -> float:
    """Poll until ``predicate`` holds; return the seconds it took (fail after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        if has_app_context():
            db.session.rollback()  # the next poll reads what other processes committed meanwhile
        time.sleep(step)
    raise AssertionError(f"{what}: not met within {timeout} s")


def open_due_in(seconds: float, process: str = "timer_then_task", description: str = "Timer test") -> int:
    """Open a case whose 24 h timer is due ``seconds`` from now (the customer called a day ago); its id."""
    case = open_case(actor=SYSTEM, process_id=process, reported_at=now() - timedelta(hours=24, seconds=-seconds),
                     channel="phone", description=description)
    db.session.commit()
    return case.id


def timer_of(case_id: int) -> Timer:
    """The case's (single) timer row, read fresh (jobs run in-process end their session)."""
    db.session.rollback()
    return db.session.scalars(select(Timer).where(Timer.case_id == case_id)).one()


def worker_env(*, database_url: str, redis_url: str, instance: Path, clock: str = "simulated",
               **settings: str) -> dict[str, str]:
    """The environment of a `flask worker` process in the tests: testing config, a fast sweep."""
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SERVICECASE_ENV": "testing",
            "SERVICECASE_CLOCK": clock, "SERVICECASE_INSTANCE": str(instance), "SERVICECASE_SWEEP_INTERVAL": "1",
            "SERVICECASE_SWEEP_GRACE": "2", **settings}


class WorkerProcesses:
    """Real `flask --app wsgi worker` processes, each in its own process group, all killed by ``stop``."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start one worker named ``name``; what it prints goes to ``log_path``."""
        log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--name", name],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        """Kill every worker still running, with its children (RQ's scheduler)."""
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def user_token(username: str, *roles: str) -> str:
    """An API token of the user ``username`` (created with ``roles`` on first use, every staff role when none
    are given); needs an app context, commits."""
    from app.users import service as users
    from app.users.models import User

    if db.session.scalar(select(User.id).where(User.username == users.normalize_username(username))) is None:
        users.create_user(username=username, password="correct horse battery", roles=roles or STAFF_ROLES,
                          actor=SYSTEM)
    _, token = users.create_token(username=username, actor=SYSTEM)
    db.session.commit()
    return token


def workflow_decisions(directory: Path | None = None) -> list[DecisionTable]:
    """The decision tables (``*.dmn``) of ``workflows/`` (or ``directory``), parsed and checked."""
    folder = directory or ROOT / "workflows"
    return [get_engine().parse_decision(path.read_bytes(), path.name) for path in sorted(folder.glob("*.dmn"))]


def recording_operations(calls: list[tuple[str, dict[str, Any]]] | None = None) -> OperationRegistry:
    """Operations for tests that drive the engine alone, without a database: the stock operations the
    shipped processes call, each recording its call (name, parameters) in ``calls`` and answering as the
    real one would when the stock suffices. The real ones are tested through the app (tests/stock)."""
    from app.flows.operations import install

    registry = install(OperationRegistry())
    log = calls if calls is not None else []

    def recorder(name: str, answer: Callable[..., Any]) -> Callable[..., Any]:
        def call(**params: Any) -> Any:
            log.append((name, params))
            return answer(**params)
        return call

    for name, answer in {
        "stock.check": lambda lines, field="", needed=True: {"region": "test", "available": {}},
        "stock.reserve": lambda lines, field="": [{"part_number": line["part_number"], "quantity": line["quantity"],
                                                   "state": "held"} for line in lines],
        "stock.use": lambda used, field="": [{"part_number": line["part_number"], "consumed": line["quantity"]}
                                             for line in used],
        "stock.release": lambda reason: [],
        "readings.review_month": lambda before: {"label": "February 2026", "month": "2026-02", "equipment_checked": 0,
                                                 "anomalies": [], "without_data": []},
        "visits.sample": lambda seed_text, size=None: {"seed": 1, "size": 3, "regions": ["East"], "notes": [],
                                                       "users": [{"id": 1, "name": "Test user", "region": "East",
                                                                  "phone": "", "contact": ""}]},
        "cases.open_linked": lambda process, items, kind="linked": [
            {"case_id": n + 1, "number": f"FH-TEST-{n + 1:06d}", "serial_number": item.get("serial_number")}
            for n, item in enumerate(items)],
    }.items():
        operation = registry.get(name)
        assert operation is not None, name
        registry.register(name, recorder(name, answer), required=operation.required, optional=operation.optional)
    return registry


def engine_for_tests(**kwargs: Any) -> Engine:
    """An engine whose service tasks call ``recording_operations`` (for tests without the app)."""
    return Engine(operations=kwargs.pop("operations", None) or recording_operations(), **kwargs)


def stocked_region(region: str, parts: dict[str, int], *, code: str | None = None) -> None:
    """A warehouse for ``region`` holding ``parts`` ({part number: units}), made by the system; needs an app
    context, commits. Parts already in the catalogue are reused."""
    from app.stock import service as stock
    from app.stock.models import Part, Warehouse

    if db.session.scalar(select(Warehouse.id).where(Warehouse.region == region)) is None:
        stock.create_warehouse(actor=SYSTEM, code=code or region.upper()[:20].replace(" ", "_"),
                               name=f"{region} regional warehouse", region=region)
    for number, units in parts.items():
        if db.session.scalar(select(Part.id).where(Part.part_number == number)) is None:
            stock.create_part(actor=SYSTEM, part_number=number, name=f"Part {number}")
        stock.receive_stock(actor=SYSTEM, region=region, part_number=number, quantity=units, note="test stock")
    db.session.commit()
