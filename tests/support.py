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

from flask import has_app_context
from sqlalchemy import select

from app.auth import STAFF_ROLES, SYSTEM, Actor
from app.engine import DecisionTable, get_engine, now
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
