"""The script budget holds in every tier: a web request (test client and a real multi-threaded gunicorn),
a real timer worker process and the CLI. A looping script answers 422 naming the element and saves
nothing; a looping timer script marks the timer failed within seconds, not at the job timeout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.cases.models import Case
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.service import deploy_path
from app.tasks.models import WorkItem
from app.timers.models import Timer
from tests.support import (
    WORKING_ROLES,
    WorkerProcesses,
    free_port,
    open_due_in,
    timer_of,
    user_token,
    wait_until,
    worker_env,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
BUDGET_S = 0.3  # the app's default SCRIPT_TIME_BUDGET_MS
ANSWER = {"escalation_action": "other", "escalation_note": "answered"}


@pytest.fixture
def budget_processes(deployed: Flask) -> Flask:
    """The looping test processes, deployed next to workflows/ (committed: other processes read them)."""
    for name in ("budget_loop_at_start", "budget_gateway_after_task", "looping_timer", "timer_then_task"):
        deploy_path(DATA / f"{name}.bpmn", actor=SYSTEM)
    db.session.commit()
    return deployed


def counts() -> dict[str, int]:
    """Rows of every table a case writes to."""
    db.session.rollback()
    return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Case, CaseEvent, WorkItem, Timer)}


def case_body(process: str) -> dict[str, Any]:
    """A valid body for opening a case of ``process``, reported an hour ago."""
    return {"process": process, "reported_at": (now() - timedelta(hours=1)).isoformat(), "channel": "phone",
            "description": "Budget test"}


def env_for(app: Flask, database_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a server, worker or CLI process on the test database and Redis."""
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": app.config["REDIS_URL"],
            "SERVICECASE_ENV": "testing", "SERVICECASE_CLOCK": "simulated",
            "SERVICECASE_INSTANCE": str(tmp_path / "instance"), **settings}


# --------------------------------------------------------------------------------------------------
# Web request, test client
# --------------------------------------------------------------------------------------------------
def test_opening_a_case_whose_script_loops_is_422_naming_the_element(budget_processes: Flask,
                                                                      client: FlaskClient) -> None:
    before = counts()
    started = time.monotonic()
    response = client.post("/api/cases", json=case_body("budget_loop_at_start"))
    took = time.monotonic() - started
    assert response.status_code == 422, response.get_data(as_text=True)
    message = response.get_json()["message"]
    assert "spin_at_start" in message and "300 ms budget" in message
    assert took < BUDGET_S * 10
    assert counts() == before  # nothing saved: no case, no event, no work item, no timer


def test_completing_a_task_whose_condition_loops_is_422_and_changes_nothing(budget_processes: Flask,
                                                                            client: FlaskClient) -> None:
    response = client.post("/api/cases", json=case_body("budget_gateway_after_task"))
    assert response.status_code == 201, response.get_json()
    case = response.get_json()
    task_id = case["open_tasks"][0]["id"]
    before = counts()
    stored_before = db.session.scalar(select(Case.state_json).where(Case.id == case["id"]))
    started = time.monotonic()
    response = client.post(f"/api/tasks/{task_id}/complete", json={"data": ANSWER})
    took = time.monotonic() - started
    assert response.status_code == 422, response.get_data(as_text=True)
    message = response.get_json()["message"]
    assert "heavy_check" in message and "300 ms budget" in message
    assert took < BUDGET_S * 10
    assert counts() == before
    db.session.rollback()
    assert db.session.scalar(select(Case.state_json).where(Case.id == case["id"])) == stored_before
    assert db.session.scalar(select(WorkItem.state).where(WorkItem.id == task_id)) == "ready"


# --------------------------------------------------------------------------------------------------
# Web request, a real gunicorn with two processes of four threads
# --------------------------------------------------------------------------------------------------
def _request(url: str, body: dict[str, Any] | None = None, timeout: float = 30, *,
             token: str) -> tuple[int, dict[str, Any], float]:
    """(status, JSON body, seconds) of a GET, or a POST of ``body``, with an API token."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                              "Authorization": f"Bearer {token}"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw or b"{}"), time.monotonic() - started


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and the API token the requests send."""

    base: str
    token: str

    def request(self, path: str, body: dict[str, Any] | None = None,
                timeout: float = 30) -> tuple[int, dict[str, Any], float]:
        """(status, JSON body, seconds) of a GET of ``path``, or a POST of ``body``."""
        return _request(f"{self.base}{path}", body, timeout, token=self.token)


@pytest.fixture
def gunicorn(budget_processes: Flask, app: Flask, database_url: str, tmp_path: Path) -> Iterator[Served]:
    """A real `gunicorn -k gthread --threads 4 -w 2` on a free port, with a token of a signed-in user."""
    served = Served("", user_token("demo", *WORKING_ROLES))
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "2",
                             "-b", f"127.0.0.1:{port}", "--timeout", "60", "wsgi:app"],
                            cwd=ROOT, env=env_for(app, database_url, tmp_path), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _request(f"{base}/api/cases", timeout=5, token=served.token)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gunicorn did not start:\n{(tmp_path / 'gunicorn.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield Served(base, served.token)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_a_threaded_gunicorn_stops_concurrent_looping_requests_and_keeps_serving(gunicorn: Served) -> None:
    before = counts()
    results: list[tuple[int, dict[str, Any], float]] = []
    lock = threading.Lock()

    def looping() -> None:
        result = gunicorn.request("/api/cases", case_body("budget_loop_at_start"))
        with lock:
            results.append(result)

    threads = [threading.Thread(target=looping) for _ in range(6)]
    for thread in threads:
        thread.start()
    # Meanwhile the server still answers ordinary requests.
    status, listing, took = gunicorn.request("/api/cases")
    assert status == 200 and took < BUDGET_S * 10
    for thread in threads:
        thread.join(30)
    assert len(results) == 6
    for status, body, took in results:
        assert status == 422, body
        assert "spin_at_start" in body["message"] and "300 ms budget" in body["message"]
        assert took < BUDGET_S * 10, f"a looping request took {took:.2f} s"
    assert counts() == before
    status, case, took = gunicorn.request("/api/cases", case_body("one_task"))
    assert status == 201, case
    assert case["open_tasks"][0]["task_spec"] == "answer"


# --------------------------------------------------------------------------------------------------
# Timer worker
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def worker(budget_processes: Flask, app: Flask, database_url: str,
           tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a real `flask worker` process (its own process group); killed at the end."""
    processes = WorkerProcesses()

    def start(**settings: str) -> subprocess.Popen[bytes]:
        env = worker_env(database_url=database_url, redis_url=app.config["REDIS_URL"],
                         instance=tmp_path / "instance", **settings)
        return processes.start("budget", env, tmp_path / "worker.log")

    yield start
    processes.stop()


def test_a_worker_marks_a_looping_timer_failed_within_seconds_and_fires_the_next(worker) -> None:
    worker(SERVICECASE_TIMER_JOB_TIMEOUT="60")
    looping = open_due_in(1, "looping_timer")
    due = timer_of(looping).due_at
    wait_until(lambda: timer_of(looping).state == "failed", timeout=20)
    timer = timer_of(looping)
    assert "300 ms budget" in (timer.last_error or "") and "spin" in (timer.last_error or "")
    assert (timer.ended_at - due).total_seconds() < 5  # the budget stopped it, not the 60 s job timeout
    fine = open_due_in(1, "timer_then_task")  # the worker is not hung
    wait_until(lambda: timer_of(fine).state == "fired", timeout=20)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def test_clock_advance_with_a_looping_timer_script_finishes_quickly(budget_processes: Flask, app: Flask,
                                                                    database_url: str, tmp_path: Path) -> None:
    looping_case = open_case(actor=SYSTEM, process_id="looping_timer", reported_at=now(), channel="phone",
                             description="Loops in 24 h").id
    other_case = open_case(actor=SYSTEM, process_id="timer_then_task", reported_at=now(), channel="phone",
                           description="Fires in 24 h").id
    db.session.commit()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "clock", "advance", "25h"],
                            cwd=ROOT, env=env_for(app, database_url, tmp_path), capture_output=True, text=True,
                            timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fired 1 timer(s)" in result.stdout  # the other case's timer
    assert took < 20, f"clock advance took {took:.1f} s"  # start-up included; the loop itself ~0.3 s
    timer = timer_of(looping_case)
    assert timer.state == "failed" and "300 ms budget" in (timer.last_error or "")
    assert timer_of(other_case).state == "fired"
