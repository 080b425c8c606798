"""The timer worker: an RQ worker with its scheduler, plus a sweep thread that re-arms lost timers."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

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


def _dispatch_forever(app: Flask, stop: threading.Event, worker_name: str) -> None:
    """Every TIMER_DISPATCH_INTERVAL (100 ms), hand the timers that came due to the queue; every second,
    say this worker is alive (the sweep re-fires jobs of workers that stopped saying so)."""
    from app.timers.scheduling import dispatch_due_timers
    from app.timers.service import ALIVE_KEY

    interval = app.config["TIMER_DISPATCH_INTERVAL"]
    alive_key, said_at = ALIVE_KEY.format(worker_name), 0.0
    while not stop.wait(interval):
        try:
            if time.monotonic() - said_at >= 1:
                redis_connection(app).set(alive_key, "1", ex=5)
                said_at = time.monotonic()
            while dispatch_due_timers(app) >= 500:  # a burst: drain it before sleeping again
                pass
        except Exception as exc:  # Redis away for a moment: try again next tick
            log.warning("timer dispatch failed: %s", exc)
            stop.wait(1)


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
    """Work the timer queue (RQ's scheduler runs the retries), dispatch due timers every 100 ms and,
    with ``sweep``, sweep every SWEEP_INTERVAL. In burst mode: dispatch what is due, sweep once, drain."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("spiff").setLevel(logging.WARNING)  # it logs every task state change at INFO
    queue = timer_queue(app)
    worker_class = Worker if fork else SimpleWorker
    worker = worker_class([queue], connection=redis_connection(app), name=name)
    stop = threading.Event()
    if burst:
        from app.timers.scheduling import dispatch_due_timers

        if sweep:
            sweep_once(app)
        dispatch_due_timers(app)
    else:
        threading.Thread(target=_dispatch_forever, args=(app, stop, worker.name), name="timer-dispatch",
                         daemon=True).start()
        if sweep:
            threading.Thread(target=_sweep_forever, args=(app, stop), name="timer-sweep", daemon=True).start()
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        stop.set()
