"""RQ jobs: plain importable functions that take ids; they run in any RQ worker (ours or `rq worker`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app, has_app_context

_app: Flask | None = None


@contextmanager
def _app_context() -> Iterator[Flask]:
    """The worker's app: the one already pushed (our worker command) or one built once per process."""
    global _app
    from app.extensions import db

    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        db.session.remove()
        return
    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        yield _app
        db.session.remove()


def fire_timer_job(timer_id: int) -> str:
    """Fire one timer (idempotent: a timer that already fired or was cancelled is left alone). A failure
    outside its script marks it failed; a transient one is retried by RQ, and the last retry marks it
    failed, so no timer stays waiting for ever behind a firing that cannot succeed."""
    from rq import get_current_job

    from app.flows.timers import fire_or_fail

    job = get_current_job()
    final = job is None or not job.retries_left  # RQ counts retries_left down before each retry
    with _app_context() as app:
        return fire_or_fail(timer_id=timer_id, final=final, delay=app.config["TIMER_FIRE_DELAY"])


def sweep_job() -> dict[str, Any]:
    """Run one sweep (normally the worker's own sweep thread does this)."""
    from app.flows.schedules import start_due_occurrences
    from app.timers.service import sweep
    from app.uow import unit_of_work

    with _app_context() as app, unit_of_work():
        report = sweep(horizon=app.config["SWEEP_HORIZON"], grace=app.config["SWEEP_GRACE"],
                       start_occurrences=start_due_occurrences)
        return {"checked": report.checked, "armed": report.armed, "rearmed_overdue": report.rearmed_overdue,
                "schedules_started": report.schedules_started}
