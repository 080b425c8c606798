"""Case search at 100,000 cases on PostgreSQL: median and p95 of list_cases(text=...) per kind of search.

    .venv/bin/python bench/bench_search.py --db postgresql://postgres@127.0.0.1:5432/bench [--cases 100000]

Everything lives in a schema of its own, ``bench_search``, dropped and rebuilt from the migrations at the
start (nothing else in the database is touched). The rows are cheap but shaped like real ones: 2,000
customers, 5,000 pieces of equipment, case numbers FH-2026-000001…, titles and descriptions from a small
vocabulary plus random hex, so a word like "rectifier" matches an eighth of all cases and a hex fragment a
handful. The timings are the whole service call (count, page of 25, process versions), warm, in-process.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from bench.common import fmt, summarize  # noqa: E402

SCHEMA = "bench_search"
WORDS = ["UPS alarm", "Battery fault", "Rectifier failure", "Fan noise", "Bypass overload", "Inverter trip",
         "Display error", "Overheating"]


def reset_schema(url: str) -> None:
    """Drop and recreate the benchmark's own schema."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    engine.dispose()


def fill(db: object, cases: int) -> None:
    """Customers, equipment and ``cases`` cases in a few INSERT … SELECT statements, then VACUUM ANALYZE."""
    from app.extensions import db as database

    words = "ARRAY[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    session = database.session
    session.execute(text(
        "INSERT INTO customers (name, contact_name, phone, email, region, address, created_at) "
        "SELECT 'Customer ' || md5(g::text), 'Contact ' || g, '+86 10 ' || lpad(g::text, 8, '0'), '', "
        "'North', '', now() FROM generate_series(1, 2000) g"))
    session.execute(text(
        "INSERT INTO equipment (customer_id, model, serial_number, site, region, dealer, monitored) "
        "SELECT (SELECT min(id) FROM customers) + g % 2000, 'EA990-200K', 'SN' || md5(g::text), '', 'North', "
        "'', false FROM generate_series(1, 5000) g"))
    version = session.execute(text("SELECT id FROM process_versions WHERE process_id = 'fault_handling'")).scalar_one()
    session.execute(text(
        "INSERT INTO cases (number, process_id, process_version_id, process_version_number, status, title, "
        "description, channel, priority, customer_id, equipment_id, reported_at, opened_at, opened_by, "
        "updated_at, state_json, summary, event_count, lock_version) "
        f"SELECT 'FH-2026-' || lpad(g::text, 6, '0'), 'fault_handling', :version, 1, "
        "CASE WHEN g % 3 = 0 THEN 'closed' ELSE 'open' END, "
        f"({words})[1 + g % 8] || ' ' || substr(md5(g::text), 1, 6), "
        f"'The customer reports ' || lower(({words})[1 + (g / 8) % 8]) || ' at ' || md5((g * 7)::text), "
        "'phone', 'normal', e.customer_id, e.id, now() - g * interval '1 minute', "
        "now() - g * interval '1 minute', 'bench', now(), '', '{}', 0, 0 "
        "FROM generate_series(1, :rows) g JOIN equipment e ON e.id = (SELECT min(id) FROM equipment) + g % 5000"),
        {"version": version, "rows": cases})
    session.commit()
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE cases, customers, equipment")


def searches(rng: random.Random, cases: int) -> dict[str, list[str]]:
    """Search texts per kind, drawn from the rows actually inserted."""
    from app.extensions import db as database

    session = database.session
    serials = session.execute(text("SELECT serial_number FROM equipment ORDER BY random() LIMIT 40")).scalars()
    names = session.execute(text("SELECT name FROM customers ORDER BY random() LIMIT 40")).scalars()
    hexes = session.execute(text("SELECT substr(description, length(description) - 11, 8) FROM cases "
                                 "ORDER BY random() LIMIT 40")).scalars()
    return {
        "number (1 match)": [f"FH-2026-{rng.randint(1, cases):06d}" for _ in range(40)],
        "serial fragment": [s[4:14] for s in serials],
        "customer name fragment": [n[12:22] for n in names],
        "rare text (hex in description)": list(hexes),
        "common word (1/8 of cases)": ["rectifier"] * 40,
    }


def main(argv: list[str] | None = None) -> int:
    """Build the data, time each kind of search, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("BENCH_DATABASE_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/bench"))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="times each search text is run")
    args = parser.parse_args(argv)
    if not args.db.startswith(("postgresql", "postgres")):
        raise SystemExit("the search benchmark is about PostgreSQL's trigram indexes: give a postgresql:// URL")
    url = "postgresql+psycopg://" + args.db.split("://", 1)[1]
    reset_schema(url)

    from flask_migrate import upgrade

    from app import create_app
    from app.auth import SYSTEM
    from app.cases.service import list_cases
    from app.extensions import db
    from app.processes.service import deploy_path

    app = create_app({"ENV_NAME": "testing", "TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={SCHEMA},public"}},
                      "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), "CLOCK": "simulated",
                      "INSTANCE_DIR": str(ROOT / "instance" / "bench_search")})
    with app.app_context():
        upgrade()
        deploy_path(ROOT / "workflows" / "fault_handling.bpmn", actor=SYSTEM)
        db.session.commit()
        started = time.perf_counter()
        fill(db, args.cases)
        print(f"{args.cases} cases inserted and analysed in {time.perf_counter() - started:.1f} s "
              f"(schema {SCHEMA} of {args.db.rsplit('/', 1)[-1]})\n")
        kinds = searches(random.Random(7), args.cases)
        print("| search | n | matches (median) | median ms | p95 ms |")
        print("|---|---|---|---|---|")
        for kind, texts in kinds.items():
            list_cases(text=texts[0])  # warm the statement and the cache
            seconds, totals = [], []
            for _ in range(args.rounds):
                for query in texts:
                    begun = time.perf_counter()
                    _items, total = list_cases(text=query)
                    seconds.append(time.perf_counter() - begun)
                    totals.append(total)
                    db.session.rollback()
            stats = summarize(seconds)
            totals.sort()
            print(f"| {kind} | {stats['n']} | {totals[len(totals) // 2]} | {fmt(stats['median_ms'])} | "
                  f"{fmt(stats['p95_ms'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
