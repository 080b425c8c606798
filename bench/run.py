"""Run every benchmark: the floor, then the system through HTTP on SQLite and PostgreSQL; print markdown.

Run: .venv/bin/python -m bench [--quick] [--no-postgres] [--profile]
     .venv/bin/python bench/run.py --quick
Raw numbers go to bench/results/latest.json (git-ignored). Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from bench import engine_floor, http_bench  # noqa: E402
from bench.common import RESULTS_DIR, fmt  # noqa: E402

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/bench"
RATIO_TARGET = 2.5  # per-request median ÷ floor (issue)
THROUGHPUT_TARGET = 100.0  # one-task cases/s on this 2-core machine (issue)


def targets(floor: dict[str, Any], http: list[dict[str, Any]]) -> list[str]:
    """One line per target and database: the measured value, the target, met or missed and by how much."""
    lines = []
    for db in http:
        for run in db["runs"]:
            if run["threads"] != 1:
                continue
            for kind in http_bench.KINDS:
                p50 = run["latency"][kind]["median_ms"]
                parts = []
                for variant in ("plain", "seam"):
                    base = floor["processes"][run["process"]][variant][kind]["median_ms"]
                    ratio = p50 / base
                    verdict = "met" if ratio <= RATIO_TARGET else f"missed by {ratio / RATIO_TARGET:.1f}×"
                    parts.append(f"{ratio:.1f}× the {variant} floor ({base:.2f} ms, {verdict})")
                lines.append(f"- {db['database']}, {run['process']} {kind}: p50 {p50:.1f} ms = " + "; ".join(parts))
        one_task = max((r["cases_per_s"] for r in db["runs"] if r["process"] == "one_task"), default=0.0)
        verdict = "met" if one_task >= THROUGHPUT_TARGET else f"missed: {one_task / THROUGHPUT_TARGET:.0%} of target"
        lines.append(f"- {db['database']}, one_task throughput: {one_task:.1f} cases/s "
                     f"(target ≥ {THROUGHPUT_TARGET:.0f}, {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Floor, HTTP on each database, optional profile; print markdown, write latest.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and cases (about a minute)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_POSTGRES),
                        help=f"PostgreSQL URL; its database must be named 'bench' (default {DEFAULT_POSTGRES})")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--clients", type=int, default=4, help="client threads of the concurrent runs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run a disturbed HTTP scenario up to N times, keep the least disturbed attempt")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each HTTP scenario wait up to SECONDS for other load to drop below 15%%")
    parser.add_argument("--profile", action="store_true", help="also profile in-process (bench/profile_requests.py)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    http_bench.quiet_wait_s = args.wait_quiet

    print("## Floor (SpiffWorkflow alone and through the engine seam)\n", flush=True)
    floor = engine_floor.measure(100 if args.quick else 300)
    print(engine_floor.table(floor))
    print(f"\nOther load before the floor run: {floor['meta']['background_busy_pct']:.0f}%\n", flush=True)

    databases = ["sqlite"] + ([] if args.no_postgres else [args.postgres])
    plan = http_bench.Plan.quick(args.clients) if args.quick else http_bench.Plan(threads=args.clients)
    http = [http_bench.bench_database(url, plan=plan, workers=args.workers, worker_class=args.worker_class,
                                      threads_per_worker=2, repeat=args.repeat) for url in databases]
    print(f"\n## Through HTTP (gunicorn -w {args.workers} {args.worker_class}, {args.clients} clients "
          f"in the concurrent rows)\n")
    print(http_bench.table(http, floor))
    print("\n## Targets\n")
    print("\n".join(targets(floor, http)))

    profiles = []
    if args.profile:
        from bench import profile_requests

        for url in databases:
            label = http_bench.database_label(url)
            out = RESULTS_DIR / f"profile-{label}.json"
            profile_requests.main(["--db", url, "--cases", "20" if args.quick else "40", "--json", str(out)])
            profiles.append(json.loads(out.read_text()))

    errors = http_bench.print_errors(http)
    latest: dict[str, Any] = {
        "meta": {"at": datetime.now(UTC).isoformat(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "quick": args.quick, "workers": args.workers,
                 "worker_class": args.worker_class, "clients": args.clients,
                 "duration_s": time.perf_counter() - started},
        "floor": floor, "http": http, "targets": targets(floor, http), "profiles": profiles,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(latest, indent=2))
    print(f"\nwrote {RESULTS_DIR / 'latest.json'} ({fmt(latest['meta']['duration_s'], 0)} s)")
    if errors:
        print(f"FAILED: {errors} request(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
