"""The timer worker: an RQ worker with its scheduler, plus a sweep thread that re-arms lost timers."""

from __future__ import annotations

import logging
import os
import socket
import threading

from flask import Flask
from rq import SimpleWorker, Worker

from app.extensions import db, redis_connection, timer_queue

log = logging.getLogger(__name__)

SWEEP_LOCK = "servicecase:sweep-lock"


def sweep_once(app: Flask) -> dict[str, object] | None:
    """Run one sweep unless another worker holds the sweep lock; returns what it did."""
    from app.timers.schedules import arm_schedules, start_due_occurrences
    from app.timers.service import sweep

    interval = app.config["SWEEP_INTERVAL"]
    with app.app_context():
        conn = redis_connection(app)
        me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        if not conn.set(SWEEP_LOCK, me, nx=True, px=max(int(interval * 900), 500)):
            return None
        try:
            report = sweep(horizon=app.config["SWEEP_HORIZON"], grace=app.config["SWEEP_GRACE"],
                           start_occurrences=start_due_occurrences)
            db.session.commit()
            arm_schedules(timer_queue(app))
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
        return {"checked": report.checked, "armed": len(report.armed),
                "rearmed_overdue": len(report.rearmed_overdue), "schedules_started": report.schedules_started}


def _sweep_forever(app: Flask, stop: threading.Event) -> None:
    interval = app.config["SWEEP_INTERVAL"]
    while True:
        try:
            report = sweep_once(app)
            if report and (report["armed"] or report["rearmed_overdue"] or report["schedules_started"]):
                log.info("sweep: %s", report)
        except Exception as exc:  # keep sweeping whatever one round hit (Redis or database down)
            log.warning("sweep failed: %s", exc)
        if stop.wait(interval):
            return


def run_worker(app: Flask, *, burst: bool = False, fork: bool = False, sweep: bool = True,
               name: str | None = None) -> bool:
    """Work the timer queue with RQ's scheduler; with ``sweep``, also sweep every SWEEP_INTERVAL."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    queue = timer_queue(app)
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue], connection=redis_connection(app), name=name)
    stop = threading.Event()
    sweeper = None
    if sweep and not burst:
        sweeper = threading.Thread(target=_sweep_forever, args=(app, stop), name="timer-sweep", daemon=True)
        sweeper.start()
    elif sweep:
        sweep_once(app)
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop.set()
