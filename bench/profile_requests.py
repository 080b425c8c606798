"""Where a request's time goes: the same cases in-process through ``app.test_client()``, timed and profiled.

No HTTP server and no sockets: the difference to bench/http_bench.py is gunicorn + HTTP. Prints the
in-process latency per request kind, SQL statements per request, the cost of the main steps (cumulative,
as a share of all request time) and the top functions by own time, grouped by layer.

cProfile slows Python-heavy code roughly 1.5-2×, unevenly: read the shares, not the absolute numbers.

Run: .venv/bin/python bench/profile_requests.py [--db sqlite|postgresql://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from bench.common import (  # noqa: E402
    PATHS,
    RESULTS_DIR,
    fmt,
    run_setup,  # noqa: E402
    summarize,
)
from bench.http_bench import app_environment, in_warranty_equipment, prepare_database  # noqa: E402

# (label, file suffix, function name): inclusive time of the steps a request goes through.
STEPS: list[tuple[str, str, str]] = [
    ("whole request (Flask.wsgi_app)", "flask/app.py", "wsgi_app"),
    ("  request body parsing + validation (webargs)", "webargs/core.py", "parse"),
    ("  open_case", "app/flows/steps.py", "open_case"),
    ("  complete_work_item", "app/flows/tasks.py", "complete_work_item"),
    ("    validate_task_data (record form)", "app/tasks/service.py", "validate_task_data"),
    ("    lock_case (SELECT … FOR UPDATE)", "app/cases/service.py", "lock_case"),
    ("    load_instance", "app/flows/steps.py", "load_instance"),
    ("      Engine.load (JSON → workflow)", "app/engine/runtime.py", "load"),
    ("    Engine.start", "app/engine/runtime.py", "start"),
    ("    Instance.complete (engine steps)", "app/engine/runtime.py", "complete"),
    ("    store_instance", "app/flows/steps.py", "store_instance"),
    ("      Instance.dump (workflow → JSON)", "app/engine/runtime.py", "dump"),
    ("      Instance.ready_human_tasks", "app/engine/runtime.py", "ready_human_tasks"),
    ("      Instance.waiting_timers", "app/engine/runtime.py", "waiting_timers"),
    ("      record_event", "app/audit/service.py", "record_event"),
    ("  session.commit", "sqlalchemy/orm/session.py", "commit"),
    ("  case_detail (response queries)", "app/flows/steps.py", "case_detail"),
    ("  response serialization (marshmallow dump)", "marshmallow/schema.py", "dump"),
    ("SQLAlchemy: session flush (all)", "sqlalchemy/orm/session.py", "_flush"),
    ("SQLAlchemy: statement execution (all)", "sqlalchemy/engine/base.py", "_execute_context"),
    ("SQLAlchemy: pool checkout (incl. pre-ping)", "sqlalchemy/pool/base.py", "_checkout"),
    ("restricted scripts (evaluate + execute)", "app/engine/restricted.py", "evaluate"),
    ("restricted scripts: execute", "app/engine/restricted.py", "execute"),
    ("copy.deepcopy (all)", "copy.py", "deepcopy"),
]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("SpiffWorkflow", ("SpiffWorkflow/",)),
    ("RestrictedPython + app/engine/restricted", ("RestrictedPython/", "app/engine/restricted")),
    ("app/engine (seam)", ("app/engine/",)),
    ("app services + api", ("/app/",)),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("DB driver (psycopg / sqlite3)", ("psycopg", "sqlite3")),
    ("marshmallow / webargs / smorest", ("marshmallow/", "webargs/", "flask_smorest/", "apispec/")),
    ("Flask / Werkzeug", ("flask/", "werkzeug/", "flask_sqlalchemy/")),
    ("json", ("json/", "_json")),
    ("copy", ("copy.py", "deepcopy")),
]


def layer_of(filename: str, function: str) -> str:
    """The layer a profiled function belongs to (built-ins by their name)."""
    text = f"{filename} {function}"
    for name, needles in LAYERS:
        if any(n in text for n in needles):
            return name
    if filename == "~":
        return "other built-ins"
    return "other Python"


def make_app(url: str, workdir: Path) -> tuple[Any, int]:
    """A migrated, deployed, seeded app exactly as `flask setup` makes it, and an in-warranty equipment id."""
    database_url = prepare_database(url, workdir)
    env = app_environment(database_url, workdir)
    run_setup(env, workdir / "setup.log")
    os.environ.update(env)
    from app import create_app

    return create_app(), in_warranty_equipment(database_url)


def run_case(client: Any, process_id: str, equipment_id: int | None,
             latencies: dict[str, list[float]] | None) -> None:
    """One case through the test client; raise on any non-2xx answer."""
    body: dict[str, Any] = {"process": process_id, "channel": "phone", "description": "profiled case",
                            "reported_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    if equipment_id is not None:
        body["equipment_id"] = equipment_id
    t0 = time.perf_counter()
    response = client.post("/api/cases", json=body)
    elapsed = time.perf_counter() - t0
    if response.status_code != 201:
        raise RuntimeError(f"start: HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")
    if latencies is not None:
        latencies["start"].append(elapsed)
    case = response.get_json()
    for step, data in PATHS[process_id]:
        task = next(t for t in case["open_tasks"] if t["task_spec"] == step)
        t0 = time.perf_counter()
        response = client.post(f"/api/tasks/{task['id']}/complete", json={"data": data})
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            raise RuntimeError(f"{step}: HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")
        if latencies is not None:
            latencies["complete"].append(elapsed)
        case = response.get_json()
    if case["status"] != "closed":
        raise RuntimeError(f"case {case['number']} not closed")


def count_statements(app: Any) -> dict[str, Any]:
    """Count SQL statements the app's engine executes from now on (and log them while "log" is a list)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app.extensions import db

    counts: dict[str, Any] = {"statements": 0, "flushes": 0, "log": None}
    with app.app_context():
        engine = db.engine

    @event.listens_for(Session, "after_flush")
    def _flushed(*_: Any) -> None:
        counts["flushes"] += 1

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        counts["statements"] += 1
        if counts["log"] is not None:
            counts["log"].append(" ".join(statement.split())[:160])

    return counts


def steps_table(stats: pstats.Stats, total: float) -> list[dict[str, Any]]:
    """Inclusive time of each STEP, as ms per request and share of all request time."""
    rows = []
    entries = stats.stats  # type: ignore[attr-defined]
    for label, suffix, name in STEPS:
        cumulative, calls = 0.0, 0
        for (filename, _line, function), (_cc, nc, _tt, ct, _callers) in entries.items():
            if function == name and filename.replace(os.sep, "/").endswith(suffix):
                cumulative += ct
                calls += nc
        rows.append({"step": label, "cumulative_s": cumulative, "calls": calls,
                     "share": cumulative / total if total else 0.0})
    return rows


def layers_table(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time per layer, largest first."""
    own: dict[str, float] = defaultdict(float)
    for (filename, _line, function), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        own[layer_of(filename, function)] += tt
    return sorted(own.items(), key=lambda item: -item[1])


def profile_process(app: Any, process_id: str, cases: int, equipment_id: int | None,
                    counts: dict[str, Any]) -> dict[str, Any]:
    """Time ``cases`` cases plainly, then profile as many again; return latencies, SQL counts, profile."""
    client = app.test_client()
    equipment = equipment_id if process_id == "fault_handling" else None
    for _ in range(5):
        run_case(client, process_id, equipment, None)
    latencies: dict[str, list[float]] = {"start": [], "complete": []}
    before, flushes_before = counts["statements"], counts["flushes"]
    for _ in range(cases):
        run_case(client, process_id, equipment, latencies)
    requests = sum(len(v) for v in latencies.values())
    statements = (counts["statements"] - before) / requests
    flushes = (counts["flushes"] - flushes_before) / requests
    counts["log"] = []
    run_case(client, process_id, equipment, None)
    sql_of_one_case, counts["log"] = counts["log"], None
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(cases):
        run_case(client, process_id, equipment, None)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = next((ct for (f, _l, fn), (_cc, _nc, _tt, ct, _c) in stats.stats.items()  # type: ignore[attr-defined]
                  if fn == "wsgi_app" and f.replace(os.sep, "/").endswith("flask/app.py")), 0.0)
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(25)
    return {"process": process_id, "cases": cases, "requests": requests,
            "latency": {k: summarize(v) for k, v in latencies.items()},
            "sql_statements_per_request": statements, "flushes_per_request": flushes,
            "sql_of_one_case": sql_of_one_case,
            "profiled_request_s": total / requests if requests else 0.0,
            "steps": steps_table(stats, total),
            "layers": [{"layer": name, "own_s": s, "share": s / total if total else 0.0}
                       for name, s in layers_table(stats)],
            "top_own_time": top.getvalue()}


def report(result: dict[str, Any], db_label: str) -> str:
    """One process's profile as text (markdown tables)."""
    lines = [f"### {result['process']} on {db_label} (in-process test client, {result['cases']} cases)", "",
             "| request | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|"]
    for kind, lat in result["latency"].items():
        lines.append(f"| {kind} | {fmt(lat['median_ms'])} | {fmt(lat['p95_ms'])} | {fmt(lat['p99_ms'])} |")
    lines += ["", f"SQL statements per request: {result['sql_statements_per_request']:.1f}; "
              f"session flushes per request: {result['flushes_per_request']:.1f}; "
              f"profiled time per request {result['profiled_request_s'] * 1e3:.1f} ms", "",
              "| step (inclusive; averaged over all requests of the process) | ms/request (profiled) | share |",
              "|---|---:|---:|"]
    requests = result["requests"]
    for row in result["steps"]:
        if row["calls"]:
            lines.append(f"| {row['step']} | {row['cumulative_s'] / requests * 1e3:.2f} | {row['share']:.0%} |")
    lines += ["", "| layer (own time) | ms/request (profiled) | share |", "|---|---:|---:|"]
    for row in result["layers"]:
        lines.append(f"| {row['layer']} | {row['own_s'] / requests * 1e3:.2f} | {row['share']:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Profile both processes on one database and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", help="'sqlite' or postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--cases", type=int, default=40, help="cases per process (timed, then profiled)")
    parser.add_argument("--top", action="store_true", help="also print cProfile's top 25 by own time")
    parser.add_argument("--show-sql", action="store_true", help="also print the SQL of one case per process")
    parser.add_argument("--json", type=Path, default=None, help="where to write the numbers")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="servicecase-profile-"))
    label = "sqlite" if args.db.startswith("sqlite") else "postgresql"
    try:
        app, equipment_id = make_app(args.db, workdir)
        counts = count_statements(app)
        results = [profile_process(app, process_id, args.cases, equipment_id, counts)
                   for process_id in ("fault_handling", "one_task")]
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for result in results:
        print(report(result, label))
        if args.show_sql:
            print("\nSQL of one case (start, then each complete):")
            print("\n".join(f"  {line}" for line in result["sql_of_one_case"]))
        if args.top:
            print(result["top_own_time"])
        print()
    out = args.json or RESULTS_DIR / f"profile-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"database": label, "results": results}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
