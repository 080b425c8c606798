"""Timer firing under load: how late BPMN timers fire through RQ with 1 and 2 real workers.

For each worker count, on a fresh schema of the database ``bench_timers`` and a flushed Redis database 12:

1. ``flask --app wsgi setup`` with ``workflows/*.bpmn`` plus ``timer_then_task``, ``one_task`` and a tiny
   timer-less ``task_only`` process;
2. the load is created through the real code path (``open_case`` in an app context, committed in batches
   so the after-commit hook enqueues the RQ jobs): a *spread* of timers due evenly over a window and a
   *burst* of timers due in the same second, all due after creation has finished and the workers are up;
3. ``flask --app wsgi worker --name bN`` subprocesses (own process groups, killed by group at the end, even
   on error) fire them; the bench waits (bounded) until every timer has fired;
4. lateness is read from ``timers.fired_late_by_ms``, and split into its parts with the RQ job's own
   timestamps: rounding (due time → whole second), scheduler pickup, queue wait, the job itself.

Before the first load it also measures what a timer adds to storing a case (``task_only`` vs ``one_task``,
the same process plus a boundary timer) and what one sweep costs over the waiting timers.

Run: .venv/bin/python bench/timers_bench.py [--quick] [--workers 1,2]
Prints markdown; raw numbers go to bench/results/timers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from bench.common import RESULTS_DIR, ROOT, fmt, percentile, run_setup  # noqa: E402

BENCH_DATABASE = "bench_timers"  # the only PostgreSQL database this bench will wipe
BENCH_REDIS_DB = 12  # the only Redis database this bench will flush
DEFAULT_DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
DEFAULT_REDIS_URL = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
LOAD_PROCESS = "timer_then_task"  # start → 24 h timer (reported_at + PT24H) → user task
LATENESS_TARGET_MS = 1000.0  # p99 lateness of the spread load (issue)
SWEEP_COST_ESTIMATE = 0.0005  # s per waiting timer of the one sweep timed before the first due time
CLK_TCK = os.sysconf("SC_CLK_TCK")

# start → user task → end: one_task without its boundary timer, to price what a timer adds to a store.
TASK_ONLY_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="defs_task_only" targetNamespace="http://example.org/servicecase/bench">
  <bpmn:process id="task_only" name="One task, no timer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:userTask id="answer" name="Answer the question" camunda:formKey="escalation_review"
                   camunda:candidateGroups="agent"/>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""
COMPARED = ("task_only", "one_task", LOAD_PROCESS)


@dataclass
class Plan:
    """The load of one run and the bench's bounds."""

    # The rate (10,000 timers per 10 minutes) in half the time, so that both worker counts and the
    # creation of their loads fit in 15 minutes; --spread-timers 10000 --spread-seconds 600 for the literal load.
    spread_timers: int = 5000
    spread_seconds: float = 300.0
    burst_timers: int = 1000
    compare_cases: int = 200  # per compared process
    batch: int = 100  # cases per commit
    settle_seconds: float = 120.0  # how long after the last due time the bench waits for stragglers
    startup_margin: float = 4.0  # seconds between the estimated end of creation and the first due time

    @classmethod
    def quick(cls) -> Plan:
        """About three minutes: 1,000 timers over one minute and a smaller burst, per worker count."""
        return cls(spread_timers=1000, spread_seconds=60.0, burst_timers=300, compare_cases=60,
                   settle_seconds=60.0, startup_margin=2.0)


def say(*args: Any, **kwargs: Any) -> None:
    """A progress line with the wall-clock time."""
    kwargs.setdefault("flush", True)
    print(time.strftime("%H:%M:%S"), *args, **kwargs)


# --------------------------------------------------------------------------------------------------
# Environment, database, Redis
# --------------------------------------------------------------------------------------------------
def check_targets(database_url: str, redis_url: str) -> None:
    """Refuse to wipe anything but the bench's own database and Redis database."""
    parts = urlsplit(database_url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise SystemExit(f"this bench needs PostgreSQL, not {database_url!r}")
    if parts.path.lstrip("/") != BENCH_DATABASE:
        raise SystemExit(f"refusing to wipe database {parts.path.lstrip('/')!r}: only {BENCH_DATABASE!r}")
    if urlsplit(redis_url).path.lstrip("/") != str(BENCH_REDIS_DB):
        raise SystemExit(f"refusing to flush {redis_url!r}: only Redis database {BENCH_REDIS_DB}")


def write_workflows(workdir: Path) -> Path:
    """workflows/*.bpmn plus the test processes with timers and the timer-less task_only."""
    workflows = workdir / "workflows"
    workflows.mkdir(exist_ok=True)
    for bpmn in [*sorted((ROOT / "workflows").glob("*.bpmn")), ROOT / "tests" / "data" / "timer_then_task.bpmn",
                 ROOT / "tests" / "data" / "one_task.bpmn"]:
        shutil.copy(bpmn, workflows / bpmn.name)
    (workflows / "task_only.bpmn").write_text(TASK_ONLY_BPMN)
    return workflows


def app_environment(database_url: str, redis_url: str, workdir: Path) -> dict[str, str]:
    """The environment of `flask setup`, the workers and this process: our database, Redis, the wall clock."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVICECASE_", "TEST_DATABASE"))}
    env.update({
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SERVICECASE_ENV": "development",
        "SERVICECASE_CLOCK": "system",  # as in production: no simulated-clock offset read from Redis
        "SERVICECASE_WORKFLOWS": str(write_workflows(workdir)),
        "SERVICECASE_INSTANCE": str(workdir / "instance"),
        "SECRET_KEY": "bench-only-secret",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def reset_database(database_url: str) -> None:
    """Drop and recreate schema public of bench_timers."""
    from sqlalchemy import create_engine, text

    engine = create_engine("postgresql+psycopg://" + database_url.split("://", 1)[1], isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# CPU accounting from /proc
# --------------------------------------------------------------------------------------------------
def _is_bench_backend(pid: str) -> bool:
    """A PostgreSQL backend serving bench_timers (its title names the database)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return f" {BENCH_DATABASE} ".encode() in fh.read()
    except OSError:
        return False


def _proc_stats() -> Iterator[tuple[str, int, float]]:
    """(command, process group, CPU seconds incl. reaped children) of every process; our PostgreSQL
    backends are named "postgres:bench" (others' databases are not our load)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                raw = fh.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        if name == "postgres" and _is_bench_backend(entry.name):
            name = "postgres:bench"
        fields = raw[raw.rindex(")") + 2:].split()
        yield name, int(fields[2]), sum(int(v) for v in fields[11:15]) / CLK_TCK


def cpu_snapshot(pgids: Iterable[int]) -> dict[str, float]:
    """CPU seconds so far: of the worker process groups, of bench_timers' PostgreSQL backends, of the machine."""
    groups = set(pgids)
    workers = postgres = 0.0
    for name, pgrp, seconds in _proc_stats():
        if pgrp in groups:
            workers += seconds
        elif name == "postgres:bench":
            postgres += seconds
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    total = sum(values[:8]) / CLK_TCK
    return {"workers": workers, "postgres": postgres, "busy": total - (values[3] + values[4]) / CLK_TCK,
            "total": total, "self": time.process_time()}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU use between two snapshots; ``busy_pct`` is the whole machine (all cores = 100 %)."""
    span = max(1e-9, after["total"] - before["total"])
    delta = {"workers_s": after["workers"] - before["workers"], "postgres_s": after["postgres"] - before["postgres"],
             "bench_s": after["self"] - before["self"], "busy_s": after["busy"] - before["busy"]}
    others = delta["busy_s"] - delta["workers_s"] - delta["postgres_s"] - delta["bench_s"]
    return {**delta, "busy_pct": 100 * delta["busy_s"] / span, "others_pct": max(0.0, 100 * others / span)}


def background_busy_pct(seconds: float = 1.0) -> float:
    """How busy the machine is while the bench sits idle (others' tests skew every number)."""
    before = cpu_snapshot(())
    time.sleep(seconds)
    return cpu_delta(before, cpu_snapshot(()))["busy_pct"]


# --------------------------------------------------------------------------------------------------
# Creating cases through open_case, with the store and the after-commit enqueue timed
# --------------------------------------------------------------------------------------------------
@dataclass
class Timings:
    """Durations (s) recorded while creating cases."""

    open_case: list[float] = field(default_factory=list)  # per case, open_case incl. its flushes
    store: list[float] = field(default_factory=list)  # per case, store_instance inside open_case
    commit: list[float] = field(default_factory=list)  # per batch, commit incl. the after-commit hook
    enqueue: list[float] = field(default_factory=list)  # per timer, arm_timers (ZADD) in the after-commit hook
    cases: int = 0
    wall: float = 0.0


@contextlib.contextmanager
def instrumented() -> Iterator[dict[str, list[float] | None]]:
    """Time ``store_instance`` and ``arm_timers`` where the real code calls them (module globals)."""
    import app.flows.steps as step_flow
    import app.timers.scheduling as scheduling

    sinks: dict[str, list[float] | None] = {"store": None, "enqueue": None}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sink = sinks[name]
                if sink is not None:
                    elapsed = time.perf_counter() - started
                    if name == "enqueue":  # arm_timers(conn, {id: due, ...}) arms a batch: per timer
                        elapsed /= max(1, len(args[1]) if len(args) > 1 else 1)
                    sink.append(elapsed)
        return wrapper

    originals = (step_flow.store_instance, scheduling.arm_timers)
    step_flow.store_instance = timed("store", originals[0])  # type: ignore[assignment]
    scheduling.arm_timers = timed("enqueue", originals[1])  # type: ignore[assignment]
    try:
        yield sinks
    finally:
        step_flow.store_instance, scheduling.arm_timers = originals  # type: ignore[assignment]


def open_cases(sinks: dict[str, list[float] | None], specs: Iterable[tuple[str, datetime]], *, batch: int,
               timings: Timings, description: str) -> list[int]:
    """Open a case per (process, reported_at) with ``open_case``, committing every ``batch`` cases."""
    from app.auth import SYSTEM
    from app.extensions import db
    from app.flows.steps import open_case

    sinks["store"], sinks["enqueue"] = timings.store, timings.enqueue
    ids: list[int] = []
    started = time.perf_counter()

    def commit() -> None:
        t = time.perf_counter()
        db.session.commit()  # the after-commit hook enqueues this batch's timers
        timings.commit.append(time.perf_counter() - t)
        db.session.remove()

    try:
        pending = 0
        for process_id, reported_at in specs:
            t = time.perf_counter()
            case = open_case(actor=SYSTEM, process_id=process_id, reported_at=reported_at, channel="phone",
                             description=description)
            timings.open_case.append(time.perf_counter() - t)
            ids.append(case.id)
            pending += 1
            if pending == batch:
                commit()
                pending = 0
        if pending:
            commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        sinks["store"] = sinks["enqueue"] = None
    timings.cases += len(ids)
    timings.wall += time.perf_counter() - started
    return ids


def compare_store_cost(sinks: dict[str, list[float] | None], *, cases: int, batch: int = 50) -> dict[str, Timings]:
    """Open ``cases`` cases of each compared process, interleaved in batches so noise hits them alike."""
    from app.engine import now

    results = {p: Timings() for p in COMPARED}
    for round_no in range(math.ceil(cases / batch)):
        size = min(batch, cases - round_no * batch)
        order = COMPARED[round_no % 3:] + COMPARED[:round_no % 3]
        for process_id in order:
            at = now()  # timers due in 24 h: beyond the sweep horizon, they never fire during the bench
            open_cases(sinks, ((process_id, at) for _ in range(size)), batch=size, timings=results[process_id],
                       description="timer bench: store cost")
    return results


def timings_summary(t: Timings, *, timers_per_case: int) -> dict[str, Any]:
    """Per-case costs in ms (commit spread over the cases of its batch)."""
    per_case_commit = sum(t.commit) / max(1, t.cases)
    ms = lambda values, q: percentile(sorted(values), q) * 1e3 if values else math.nan  # noqa: E731
    return {
        "cases": t.cases, "wall_s": t.wall, "cases_per_s": t.cases / t.wall if t.wall else math.nan,
        "wall_ms_per_case": t.wall / max(1, t.cases) * 1e3,
        "open_case_p50_ms": ms(t.open_case, 0.5), "open_case_p99_ms": ms(t.open_case, 0.99),
        "open_case_mean_ms": statistics.fmean(t.open_case) * 1e3 if t.open_case else math.nan,
        "store_p50_ms": ms(t.store, 0.5),
        "store_mean_ms": statistics.fmean(t.store) * 1e3 if t.store else math.nan,
        "commit_ms_per_case": per_case_commit * 1e3,
        "commit_ms_per_batch_p50": ms(t.commit, 0.5),
        "enqueue_p50_ms": ms(t.enqueue, 0.5), "enqueue_p99_ms": ms(t.enqueue, 0.99),
        "enqueue_ms_per_case": sum(t.enqueue) / max(1, t.cases) * 1e3,
        "timers_enqueued": len(t.enqueue), "timers_per_case": timers_per_case,
    }


# --------------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------------
def start_workers(count: int, env: dict[str, str], workdir: Path, *,
                  sweep: bool = True) -> list[subprocess.Popen[bytes]]:
    """`flask --app wsgi worker --name bN`, each in its own process group."""
    procs = []
    for n in range(1, count + 1):
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--name", f"b{n}"]
        log = open(workdir / f"worker-{count}w-b{n}.log", "ab")  # noqa: SIM115 (the child keeps its own fd)
        procs.append(subprocess.Popen(command + ([] if sweep else ["--no-sweep"]), cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()  # the child has its own descriptor
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every worker's process group (worker, scheduler child), SIGKILL what lingers."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group: a scheduler child may outlive its parent
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def wait_workers_ready(app: Any, count: int, procs: list[subprocess.Popen[bytes]], workdir: Path,
                       timeout: float = 45.0) -> None:
    """Until every worker is registered and one of them holds the scheduler lock."""
    from rq import Worker
    from rq.scheduler import RQScheduler

    from app.extensions import redis_connection, timer_queue

    conn = redis_connection(app)
    queue = timer_queue(app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                logs = "\n".join(p.read_text()[-2000:] for p in sorted(workdir.glob("worker-*.log")))
                raise SystemExit(f"a worker exited with {proc.returncode}:\n{logs}")
        if Worker.count(queue=queue) >= count and conn.exists(RQScheduler.get_locking_key(queue.name)):
            return
        time.sleep(0.1)
    raise SystemExit(f"{count} worker(s) not ready within {timeout:.0f} s; see {workdir}/worker-*.log")


# --------------------------------------------------------------------------------------------------
# Reading what happened
# --------------------------------------------------------------------------------------------------
JOB_FIELDS = ("enqueued_at", "started_at", "ended_at", "status", "worker_name")


def _parse_rq_time(value: bytes | None) -> float | None:
    if not value:
        return None
    from rq.utils import utcparse

    return utcparse(value.decode()).replace(tzinfo=UTC).timestamp()


class JobTimes:
    """RQ's timestamps of each timer's job, read while the jobs still exist (result_ttl is 600 s)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.times: dict[int, tuple[float | None, float | None, float | None]] = {}
        self.worker: dict[int, str] = {}

    def collect(self, timer_ids: Iterable[int]) -> None:
        """Read the job hashes of finished jobs not read yet (pipelined)."""
        from app.timers.scheduling import job_id_for

        todo = [t for t in timer_ids if t not in self.times]
        for start in range(0, len(todo), 500):
            chunk = todo[start:start + 500]
            with self.conn.pipeline(transaction=False) as pipe:
                for timer_id in chunk:
                    pipe.hmget(f"rq:job:{job_id_for(timer_id)}", *JOB_FIELDS)
                rows = pipe.execute()
            for timer_id, (enqueued, started, ended, status, worker) in zip(chunk, rows, strict=True):
                if status == b"finished":
                    self.times[timer_id] = (_parse_rq_time(enqueued), _parse_rq_time(started),
                                            _parse_rq_time(ended))
                    self.worker[timer_id] = (worker or b"?").decode()


@dataclass
class TimerRow:
    """One timer of the load as the database has it."""

    id: int
    case_id: int
    due: float  # epoch seconds
    state: str
    fired_at: float | None
    late_ms: int | None


def load_timers(app: Any, lo: int, hi: int) -> list[TimerRow]:
    """The timers of the cases lo..hi."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        rows = db.session.execute(text(
            "SELECT id, case_id, due_at, state, ended_at, fired_late_by_ms FROM timers "
            "WHERE case_id BETWEEN :lo AND :hi ORDER BY id"), {"lo": lo, "hi": hi}).all()
        db.session.remove()
    return [TimerRow(r[0], r[1], r[2].timestamp(), r[3], r[4].timestamp() if r[4] else None, r[5]) for r in rows]


def count_waiting(app: Any, lo: int, hi: int) -> int:
    """Waiting timers left among the cases lo..hi."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        n = db.session.scalar(text("SELECT count(*) FROM timers WHERE state = 'waiting' "
                                   "AND case_id BETWEEN :lo AND :hi"), {"lo": lo, "hi": hi})
        db.session.remove()
    return int(n or 0)


def fired_events(app: Any, lo: int, hi: int) -> int:
    """timer_fired events among the cases lo..hi (more than the timers = a timer fired twice)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        n = db.session.scalar(text("SELECT count(*) FROM case_events WHERE type = 'timer_fired' "
                                   "AND case_id BETWEEN :lo AND :hi"), {"lo": lo, "hi": hi})
        db.session.remove()
    return int(n or 0)


def dist(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean of values (any unit), NaN when empty."""
    v = sorted(values)
    if not v:
        return {"n": 0, "p50": math.nan, "p90": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan}
    return {"n": len(v), "p50": percentile(v, 0.5), "p90": percentile(v, 0.9), "p99": percentile(v, 0.99),
            "max": v[-1], "mean": statistics.fmean(v)}


def decompose(rows: list[TimerRow], jobs: JobTimes, scheduled_at: dict[int, float | None]) -> dict[str, Any]:
    """Split each fired timer's lateness (ms) into rounding, scheduler pickup, queue wait and the job."""
    parts: dict[str, list[float]] = {"rounding": [], "pickup": [], "queue": [], "job": []}
    for row in rows:
        times = jobs.times.get(row.id)
        scheduled = scheduled_at.get(row.id)
        if row.fired_at is None or times is None or None in times or scheduled is None:
            continue
        enqueued, started, _ended = times
        assert enqueued is not None and started is not None
        parts["rounding"].append((scheduled - row.due) * 1e3)  # wall_time_for: due → a whole second
        parts["pickup"].append((enqueued - scheduled) * 1e3)  # RQ scheduler moved it to the queue
        parts["queue"].append((started - enqueued) * 1e3)  # waited for a free worker
        parts["job"].append((row.fired_at - started) * 1e3)  # job start → store_instance's now()
    mine = [jobs.times[r.id] for r in rows if r.id in jobs.times]
    job_runs = [(t[2] - t[1]) * 1e3 for t in mine if t[1] is not None and t[2] is not None]
    unrounded = [p + q + j for p, q, j in zip(parts["pickup"], parts["queue"], parts["job"], strict=True)]
    return {**{k: dist(v) for k, v in parts.items()}, "job_total_ms": dist(job_runs),
            "rounded_a_whole_second": sum(1 for x in parts["rounding"] if x >= 999.0),
            "late_without_rounding_ms": dist(unrounded),
            "between_jobs_ms": dist(between_jobs(rows, jobs)),
            "raw": {k: [round(x, 1) for x in v] for k, v in parts.items()}}


def between_jobs(rows: list[TimerRow], jobs: JobTimes) -> list[float]:
    """Per worker, ms from one job's end to the next job's start while jobs were waiting (RQ's own work)."""
    by_worker: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        t = jobs.times.get(row.id)
        if t and None not in t:
            by_worker.setdefault(jobs.worker.get(row.id, "?"), []).append(t)  # type: ignore[arg-type]
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda t: t[1])
        for (_, _, ended), (enqueued, started, _) in pairwise(runs):
            if enqueued < ended:  # the next job was already queued: the gap is the worker's bookkeeping
                gaps.append((started - ended) * 1e3)
    return gaps


def scheduler_ticks(jobs: JobTimes) -> dict[str, Any]:
    """When RQ's scheduler moved jobs to the queue: tick gaps and each tick's offset past the whole second."""
    stamps = sorted(t[0] for t in jobs.times.values() if t[0] is not None)
    ticks = stamps[:1]
    for before, after in pairwise(stamps):
        if after - before > 0.05:
            ticks.append(after)
    gaps = [b - a for a, b in pairwise(ticks) if b - a < 1.5]  # idle stretches have no jobs to show
    return {"ticks": len(ticks), "gap_s": dist(gaps), "late_gaps": sum(1 for g in gaps if g > 1.05),
            "phase_s": dist([t % 1 for t in ticks]), "raw_ticks": [round(t, 3) for t in ticks]}


def count_sweep_refires(conn: Any) -> int:
    """Jobs the sweep enqueued under a second id because a timer looked stuck (``timer-N-sweep-T``)."""
    return sum(1 for _ in conn.scan_iter(match="rq:job:timer-*-sweep-*", count=1000))


# --------------------------------------------------------------------------------------------------
# One run: fresh schema, the load, N workers, results
# --------------------------------------------------------------------------------------------------
def measure_sweep(app: Any) -> dict[str, Any]:
    """One sweep, timed in this process, before any worker runs (every job is scheduled: it changes nothing)."""
    from app.extensions import db
    from app.timers.service import sweep

    with app.app_context():
        started = time.perf_counter()
        report = sweep(horizon=app.config["SWEEP_HORIZON"], grace=app.config["SWEEP_GRACE"])
        seconds = time.perf_counter() - started
        db.session.commit()
        db.session.remove()
    return {"seconds": seconds, "checked": report.checked, "armed": len(report.armed),
            "interval_s": app.config["SWEEP_INTERVAL"], "horizon_s": app.config["SWEEP_HORIZON"]}


def run_once(app: Any, *, workers: int, plan: Plan, env: dict[str, str], database_url: str, workdir: Path,
             per_case_estimate: float, compare: bool, sweep: bool = True) -> dict[str, Any]:
    """Prepare, start the workers, create the load, let them fire it, and read the results."""
    from rq.registry import FailedJobRegistry

    from app.extensions import db, redis_connection, timer_queue
    from app.timers.scheduling import job_id_for

    label = f"{workers} worker{'s' if workers > 1 else ''}"
    say(f"[{label}] fresh schema in {BENCH_DATABASE}, flask setup, FLUSHDB on Redis db {BENCH_REDIS_DB}",
          flush=True)
    with app.app_context():
        db.engine.dispose()  # no pooled connection survives the schema it was opened on
    reset_database(database_url)
    run_setup(env, workdir / "setup.log")
    conn = redis_connection(app)
    conn.flushdb()
    result: dict[str, Any] = {"workers": workers, "sweep_thread": sweep,
                              "background_busy_pct": background_busy_pct(0.5)}

    if compare:  # before any worker runs: nothing else of ours uses the CPU
        say(f"[{label}] store cost: {plan.compare_cases} cases each of {', '.join(COMPARED)}", flush=True)
        with instrumented() as sinks, app.app_context():
            compared = compare_store_cost(sinks, cases=plan.compare_cases)
        result["store_cost"] = {p: timings_summary(t, timers_per_case=0 if p == "task_only" else 1)
                                for p, t in compared.items()}
        per_case_estimate = compared[LOAD_PROCESS].wall / max(1, compared[LOAD_PROCESS].cases)

    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The workers start first and sit idle while the load is created: no timer is due before it exists.
        procs = start_workers(workers, env, workdir, sweep=sweep)
        wait_workers_ready(app, workers, procs, workdir)
        pgids = [p.pid for p in procs]

        # Every due time lies after creation (and after the one sweep timed below): start = now + estimate.
        total = plan.spread_timers + plan.burst_timers
        created_from = time.time()
        factor = 1.3 if compare else 1.2  # the previous run's creation predicts this one better than 3 × 50 cases
        start = math.ceil(created_from + total * (per_case_estimate * factor + SWEEP_COST_ESTIMATE)
                          + plan.startup_margin)
        step = plan.spread_seconds / plan.spread_timers
        spread_due = [start + i * step for i in range(plan.spread_timers)]
        burst_second = math.ceil(start + plan.spread_seconds) + 2  # after the spread, on a whole second
        day = timedelta(hours=24)

        def reported(due: float) -> datetime:
            return datetime.fromtimestamp(due, UTC) - day  # due = reported_at + PT24H

        say(f"[{label}] creating {plan.spread_timers} spread cases (due over {plan.spread_seconds:.0f} s from "
              f"+{start - created_from:.0f} s) and {plan.burst_timers} burst cases (due at one second)", flush=True)
        creation = Timings()
        with instrumented() as sinks, app.app_context():
            spread_ids = open_cases(sinks, ((LOAD_PROCESS, reported(d)) for d in spread_due), batch=plan.batch,
                                    timings=creation, description="timer bench: spread")
            burst_ids = open_cases(sinks, ((LOAD_PROCESS, reported(burst_second)) for _ in range(plan.burst_timers)),
                                   batch=plan.batch, timings=creation, description="timer bench: burst")
        result["creation"] = timings_summary(creation, timers_per_case=1)
        result["creation"]["estimate_ms_per_case"] = per_case_estimate * 1e3
        say(f"[{label}] created {creation.cases} cases in {creation.wall:.1f} s "
              f"({creation.cases / creation.wall:.0f}/s); first due in {start - time.time():.1f} s", flush=True)

        spread_rows = load_timers(app, spread_ids[0], spread_ids[-1])
        burst_rows = load_timers(app, burst_ids[0], burst_ids[-1])
        assert len(spread_rows) == plan.spread_timers and len(burst_rows) == plan.burst_timers, "one timer a case"
        # Every committed timer must be armed in the due set (or already dispatched to a job).
        from app.timers.scheduling import DUE_KEY

        with conn.pipeline(transaction=False) as pipe:
            for row in spread_rows + burst_rows:
                pipe.zscore(DUE_KEY, str(row.id))
                pipe.exists(f"rq:job:{job_id_for(row.id)}")
            answers = pipe.execute()
        # The wall-clock moment each timer was armed for (its score in the due set).
        scheduled_at: dict[int, float | None] = {
            row.id: (float(armed) if armed is not None else None)
            for row, armed in zip(spread_rows + burst_rows, answers[0::2], strict=True)}
        result["jobs_missing_after_creation"] = sum(
            1 for armed, job in zip(answers[0::2], answers[1::2], strict=True) if armed is None and not job)
        result["sweep"] = measure_sweep(app)
        result["first_due_after_creation_s"] = start - time.time()
        if time.time() > start - 0.2:
            say(f"[{label}] WARNING: creation overran the first due time by {time.time() - start:.1f} s: "
                  "the earliest timers are late because of the bench, not the system", flush=True)

        jobs = JobTimes(conn)
        all_ids = [r.id for r in spread_rows + burst_rows]
        due_of = {r.id: r.due for r in spread_rows + burst_rows}
        while time.time() < start - 0.5:
            time.sleep(0.1)
        cpu0 = cpu_snapshot(pgids)
        deadline = burst_second + plan.settle_seconds
        last_collect = time.time()
        spread_end_cpu: dict[str, float] | None = None
        waiting = len(all_ids)
        while time.time() < deadline:
            now_s = time.time()
            if spread_end_cpu is None and now_s >= burst_second - 0.5:
                spread_end_cpu = cpu_snapshot(pgids)
            if now_s - last_collect >= 10:  # finished jobs expire after result_ttl (600 s): read as we go
                jobs.collect(i for i in all_ids if due_of[i] < now_s - 5)
                last_collect = now_s
            if now_s > burst_second:
                waiting = count_waiting(app, spread_ids[0], burst_ids[-1])
                if waiting == 0:
                    break
            time.sleep(0.5 if now_s > burst_second else 0.25)
        cpu1 = cpu_snapshot(pgids)
        if spread_end_cpu is None:
            spread_end_cpu = cpu1
        jobs.collect(all_ids)
        result["timed_out_waiting"] = waiting
        result["failed_jobs"] = FailedJobRegistry(queue=timer_queue(app)).count
        result["sweep_refires"] = count_sweep_refires(conn)
    finally:
        stop_workers(procs)

    spread_rows = load_timers(app, spread_ids[0], spread_ids[-1])
    burst_rows = load_timers(app, burst_ids[0], burst_ids[-1])
    fired = [r for r in spread_rows if r.state == "fired"]
    spread_cpu = cpu_delta(cpu0, spread_end_cpu)
    result["scheduler"] = scheduler_ticks(jobs)
    result["raw_jobs"] = {  # timer id: [due, scheduled, enqueued, started, ended, fired (store's now), worker]
        r.id: [round(r.due, 3), scheduled_at.get(r.id),
               *(round(x, 4) if x else None for x in jobs.times.get(r.id, (None,) * 3)),
               round(r.fired_at, 4) if r.fired_at else None, jobs.worker.get(r.id)]
        for r in spread_rows + burst_rows}
    result["spread"] = {
        "timers": len(spread_rows), "fired": len(fired), "window_s": plan.spread_seconds,
        "rate_per_s": plan.spread_timers / plan.spread_seconds,
        "late_ms": dist([float(r.late_ms) for r in fired if r.late_ms is not None]),
        "parts_ms": decompose(fired, jobs, scheduled_at),
        "cpu": {**spread_cpu, "worker_cpu_ms_per_timer": spread_cpu["workers_s"] / max(1, len(fired)) * 1e3,
                "postgres_cpu_ms_per_timer": spread_cpu["postgres_s"] / max(1, len(fired)) * 1e3},
        "raw_late_ms": [r.late_ms for r in spread_rows],
        "states": {s: sum(1 for r in spread_rows if r.state == s) for s in {r.state for r in spread_rows}},
    }
    bfired = [r for r in burst_rows if r.fired_at is not None and r.state == "fired"]
    offsets = sorted(r.fired_at - burst_second for r in bfired if r.fired_at is not None)
    burst_cpu = cpu_delta(spread_end_cpu, cpu1)
    span = (offsets[-1] - offsets[0]) if len(offsets) > 1 else math.nan
    result["burst"] = {
        "timers": len(burst_rows), "fired": len(bfired), "due_second": burst_second,
        "first_fire_s": offsets[0] if offsets else math.nan, "drain_s": offsets[-1] if offsets else math.nan,
        "throughput_per_s": (len(offsets) - 1) / span if span and span > 0 else math.nan,
        "late_ms": dist([float(r.late_ms) for r in bfired if r.late_ms is not None]),
        "parts_ms": decompose(bfired, jobs, scheduled_at),
        "cpu": {**burst_cpu, "worker_cpu_ms_per_timer": burst_cpu["workers_s"] / max(1, len(bfired)) * 1e3,
                "postgres_cpu_ms_per_timer": burst_cpu["postgres_s"] / max(1, len(bfired)) * 1e3},
        "raw_fire_offsets_s": [round(x, 4) for x in offsets],
    }
    events = fired_events(app, spread_ids[0], burst_ids[-1])
    result["timer_fired_events"] = events
    result["fired_twice"] = events - (len(fired) + len(bfired))
    late = result["spread"]["late_ms"]
    say(f"[{label}] spread p50 {late['p50']:.0f} ms, p99 {late['p99']:.0f} ms, max {late['max']:.0f} ms; "
          f"burst drained in {result['burst']['drain_s']:.2f} s "
          f"({result['burst']['throughput_per_s']:.0f} timers/s)", flush=True)
    return result


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------
def tables(runs: list[dict[str, Any]], plan: Plan) -> str:
    """Markdown tables: firing, where the lateness goes, creation, store cost."""
    out = [f"Spread: {plan.spread_timers:,} timers due evenly over {plan.spread_seconds:.0f} s "
           f"({plan.spread_timers / plan.spread_seconds:.1f}/s); burst: {plan.burst_timers:,} timers due in "
           "the same second. Lateness = `fired_late_by_ms`.\n",
           "| workers | spread p50 ms | p99 ms | max ms | p99 ≤ 1 s | burst drain s | burst first fire s | "
           "burst p50 / p99 ms | burst timers/s | CPU ms/timer, workers + PostgreSQL (spread / burst) | "
           "other load % (spread / burst) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        s, b = r["spread"], r["burst"]
        verdict = "met" if s["late_ms"]["p99"] <= LATENESS_TARGET_MS else "**missed**"
        cpu = " / ".join(f"{fmt(x['cpu']['worker_cpu_ms_per_timer'], 1)} + "
                         f"{fmt(x['cpu']['postgres_cpu_ms_per_timer'], 1)}" for x in (s, b))
        out.append(f"| {r['workers']}{'' if r.get('sweep_thread', True) else ' (no sweep)'} | "
                   f"{fmt(s['late_ms']['p50'], 0)} | {fmt(s['late_ms']['p99'], 0)} | "
                   f"{fmt(s['late_ms']['max'], 0)} | {verdict} | {fmt(b['drain_s'])} | {fmt(b['first_fire_s'])} | "
                   f"{fmt(b['late_ms']['p50'], 0)} / {fmt(b['late_ms']['p99'], 0)} | "
                   f"{fmt(b['throughput_per_s'], 0)} | {cpu} | {fmt(s['cpu']['others_pct'], 0)} / "
                   f"{fmt(b['cpu']['others_pct'], 0)} |")
    out += ["", "Where the spread's lateness goes (ms, p50 / p99; from the RQ job's timestamps):\n",
            "| workers | rounding up to a whole second | scheduler pickup | queue wait | job start → store | "
            "lateness minus rounding | scheduler tick gap p50 / max s (ticks > 1.05 s) | "
            "whole job (RQ) | RQ between jobs (burst) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        p, tick = r["spread"]["parts_ms"], r["scheduler"]
        cells = [f"{fmt(p[k]['p50'], 0)} / {fmt(p[k]['p99'], 0)}"
                 for k in ("rounding", "pickup", "queue", "job", "late_without_rounding_ms")]
        cells.append(f"{fmt(tick['gap_s']['p50'], 3)} / {fmt(tick['gap_s']['max'], 3)} ({tick['late_gaps']})")
        cells.append(f"{fmt(p['job_total_ms']['p50'], 1)} / {fmt(p['job_total_ms']['p99'], 1)}")
        between = r["burst"]["parts_ms"]["between_jobs_ms"]
        cells.append(f"{fmt(between['p50'], 1)} / {fmt(between['p99'], 1)}")
        out.append(f"| {r['workers']} | " + " | ".join(cells) + " |")
    out += ["", "Creating the load (`open_case` + commit every 100 cases; the commit's after-commit hook "
            "enqueues the batch's RQ jobs):\n",
            "| workers run | cases | s | cases/s | open_case p50 / p99 ms | commit ms/case | "
            "enqueue ms/timer p50 / p99 | one sweep (timers checked) |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        c, sw = r["creation"], r["sweep"]
        out.append(f"| {r['workers']} | {c['cases']:,} | {fmt(c['wall_s'], 1)} | {fmt(c['cases_per_s'], 0)} | "
                   f"{fmt(c['open_case_p50_ms'])} / {fmt(c['open_case_p99_ms'])} | {fmt(c['commit_ms_per_case'])} | "
                   f"{fmt(c['enqueue_p50_ms'], 3)} / {fmt(c['enqueue_p99_ms'], 3)} | "
                   f"{fmt(sw['seconds'] * 1e3, 0)} ms ({sw['checked']:,}) |")
    store = next((r["store_cost"] for r in runs if "store_cost" in r), None)
    if store:
        out += ["", "What a timer adds to storing a case (ms per case, same run, interleaved batches of 50):\n",
                "| process | open_case p50 | open_case mean | of which `store_instance` | "
                "commit incl. enqueue, per case | of which enqueue | wall per case |", "|---|---|---|---|---|---|---|"]
        for name in COMPARED:
            s = store[name]
            out.append(f"| {name} | {fmt(s['open_case_p50_ms'])} | {fmt(s['open_case_mean_ms'])} | "
                       f"{fmt(s['store_mean_ms'], 3)} | {fmt(s['commit_ms_per_case'], 3)} | "
                       f"{fmt(s['enqueue_ms_per_case'], 3)} | {fmt(s['wall_ms_per_case'])} |")
    return "\n".join(out)


def notes(runs: list[dict[str, Any]]) -> list[str]:
    """Checks a reader needs before trusting the numbers."""
    lines = []
    for r in runs:
        w = r["workers"]
        if r["timed_out_waiting"]:
            lines.append(f"- {w} worker(s): {r['timed_out_waiting']} timers had not fired when the bench gave up")
        if r["first_due_after_creation_s"] < 0:
            lines.append(f"- {w} worker(s): creation overran the first due time by "
                         f"{-r['first_due_after_creation_s']:.1f} s: the earliest timers are late because of the bench")
        if r["jobs_missing_after_creation"]:
            lines.append(f"- {w} worker(s): {r['jobs_missing_after_creation']} timers were neither armed nor queued "
                         "after creation (the after-commit hook missed them)")
        for load in ("spread", "burst"):
            n = r[load]["parts_ms"]["rounded_a_whole_second"]
            if n:
                lines.append(f"- {w} worker(s): {n} {load} timers due exactly on a whole second were scheduled "
                             "a whole second later (`wall_time_for`)")
        if r["fired_twice"]:
            lines.append(f"- {w} worker(s): {r['fired_twice']} extra timer_fired events (a timer fired twice)")
        if r["failed_jobs"] or r["sweep_refires"]:
            lines.append(f"- {w} worker(s): {r['failed_jobs']} failed jobs, {r['sweep_refires']} sweep re-fires")
        others = max(r["spread"]["cpu"]["others_pct"], r["burst"]["cpu"]["others_pct"])
        if others > 15:
            lines.append(f"- {w} worker(s): other processes used {others:.0f} % of the machine during the run "
                         "(others' tests): latencies and throughput are inflated")
    return lines or ["- every timer fired exactly once; no failed jobs, no sweep re-fires; workers were up "
                     "before the first due time"]


def code_version() -> dict[str, Any]:
    """The commit and how many files of app/ differ from it (others edit the working tree while we run)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD"),
            "app_files_changed": len(git("status", "--porcelain", "--", "app").splitlines())}


def main(argv: list[str] | None = None) -> int:
    """Run the timer benchmark for each worker count; print markdown, write bench/results/timers.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 timers over one minute (about 3 minutes)")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated (default 1,2)")
    parser.add_argument("--spread-timers", type=int, help="timers in the spread load")
    parser.add_argument("--spread-seconds", type=float, help="window the spread's due times cover")
    parser.add_argument("--burst-timers", type=int, help="timers due in the same second")
    parser.add_argument("--compare-cases", type=int, help="cases per process for the store-cost comparison (0: skip)")
    parser.add_argument("--no-sweep", action="store_true", help="diagnostic: workers without the sweep thread")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_TIMERS_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_TIMERS_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "timers.json")
    args = parser.parse_args(argv)
    check_targets(args.database_url, args.redis_url)
    plan = Plan.quick() if args.quick else Plan()
    for name in ("spread_timers", "spread_seconds", "burst_timers", "compare_cases"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: workers are stopped
    began = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix="timers-bench-"))
    env = app_environment(args.database_url, args.redis_url, workdir)
    os.environ.update(env)  # this process opens the cases with the same settings as the workers
    from app import create_app

    app = create_app()
    runs = []
    estimate = 0.008  # s per case until the store-cost comparison (or the previous run) measured it
    for i, count in enumerate(counts):
        run = run_once(app, workers=count, plan=plan, env=env, database_url=args.database_url, workdir=workdir,
                       per_case_estimate=estimate, compare=(i == 0 and plan.compare_cases > 0),
                       sweep=not args.no_sweep)
        estimate = run["creation"]["wall_s"] / run["creation"]["cases"]
        runs.append(run)

    import redis
    import rq
    import sqlalchemy

    report = {
        "benchmark": "timers", "quick": args.quick, "finished_at": datetime.now(UTC).isoformat(),
        "duration_s": time.monotonic() - began, "plan": asdict(plan), "lateness_target_ms": LATENESS_TARGET_MS,
        "code": code_version(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "rq": rq.__version__,
                    "redis_py": redis.__version__, "sqlalchemy": sqlalchemy.__version__},
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1, default=str))
    print(f"\n## Timers ({'quick' if args.quick else 'full'}, {time.monotonic() - began:.0f} s)\n")
    print(tables(runs, plan))
    print("\nChecks:\n" + "\n".join(notes(runs)))
    print(f"\nRaw numbers: {args.output}; worker logs: {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
