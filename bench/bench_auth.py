"""What sign-in costs the server per request: the bearer-token check, the session check, the permission decision.

    .venv/bin/python bench/bench_auth.py [--requests 3000] [--database-url postgresql://…/bench]

Each measurement runs inside a real request context of the app on a migrated database (a temporary SQLite
file unless --database-url names one; only a database called ``bench`` is ever wiped):

- token: pushing the request context (about 0.2 ms of it is the test request's own set-up, which a real
  request pays anyway) and ``request_actor()`` for ``Authorization: Bearer <token>`` (parse the
  token, one indexed SELECT of token, user and roles, a constant-time compare; the last-use write happens at
  most once a minute, so not in the steady state measured here);
- session: pushing the request context with a signed session cookie (itsdangerous verifies and decodes it)
  and ``request_actor()`` (the idle check and one indexed SELECT of the user and roles);
- permission: ``require(actor, "tasks.work")`` for that actor;
- baseline: the same request with no credentials (the request context, the unit of work, an anonymous
  ``request_actor()``): what every request costs without sign-in, subtracted to judge the target.

Prints the median, p95 and p99 in milliseconds of each, as CPU time of the serving thread (the cost to the
server, steady on a shared machine) and as wall time; the target is at most 1 ms of CPU time for a check
plus the decision (judged on the medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

from app import create_app  # noqa: E402
from app.auth import SESSION_GENERATION, SESSION_SEEN, SESSION_USER, Actor, request_actor, require  # noqa: E402

TARGET_MS = 1.0


def _app(database_url: str | None, folder: Path) -> Flask:
    from flask_migrate import upgrade

    url = database_url or f"sqlite:///{folder / 'bench_auth.db'}"
    if not url.startswith("sqlite"):
        from sqlalchemy import create_engine, text

        if url.rsplit("/", 1)[-1] != "bench":
            raise SystemExit("refusing to wipe a database not called 'bench'")
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = create_app({"ENV_NAME": "testing", "TESTING": True, "SQLALCHEMY_DATABASE_URI": url,
                      "INSTANCE_DIR": str(folder), "REDIS_URL": None})
    with app.app_context():
        upgrade()
    return app


def _credentials(app: Flask) -> tuple[str, str]:
    """A user holding two roles: their API token, and a signed session cookie as the sign-in page sets it."""
    from app.extensions import db
    from app.users import service as users

    admin = Actor("bench-admin", frozenset({"admin"}))
    with app.app_context():
        user = users.create_user(username="bench", password="bench-only-password", roles=["engineer", "agent"],
                                 actor=admin)
        _, token = users.create_token(username="bench", actor=admin)
        db.session.commit()
        session = {SESSION_USER: user.id, SESSION_GENERATION: user.session_generation,
                   SESSION_SEEN: int(time.time())}
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    return token, serializer.dumps(session)


def _timed(requests: int, one: Callable[[], object], clock: Callable[[], float]) -> list[float]:
    for _ in range(min(200, requests)):  # warm up: code paths, connection pool, statement cache
        one()
    samples = []
    for _ in range(requests):
        started = clock()
        one()
        samples.append((clock() - started) * 1000)
    return samples


def _in_request(app: Flask, headers: dict[str, str]) -> Callable[[], Actor]:
    """One request's check, as app.api.common.authenticate_request runs it: in a unit of work, which commits
    the token's last use when (once a minute) it is written."""
    from app.uow import unit_of_work

    def check() -> Actor:
        context = app.test_request_context("/api/tasks", headers=headers)
        context.push()  # opens the session: the cookie is verified and decoded here
        try:
            with unit_of_work():
                return request_actor()
        finally:
            context.pop()

    return check


def _report(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return (f"{name:<11} median {statistics.median(ordered):6.3f} ms   p95 {at(0.95):6.3f} ms   "
            f"p99 {at(0.99):6.3f} ms   ({len(ordered)} requests)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        app = _app(args.database_url, Path(folder))
        token, cookie = _credentials(app)
        cookie_name = app.config["SESSION_COOKIE_NAME"]
        token_check = _in_request(app, {"Authorization": f"Bearer {token}"})
        session_check = _in_request(app, {"Cookie": f"{cookie_name}={cookie}"})
        assert token_check().username == "bench" and session_check().username == "bench"
        actor = token_check()
        checks = {"baseline": _in_request(app, {}), "token": token_check, "session": session_check,
                  "permission": lambda: require(actor, "tasks.work")}
        # CPU time of this thread (what the check costs the server, whatever else the machine runs), and
        # wall time (which includes waiting for the CPU on a busy machine).
        results = {name: _timed(args.requests, check, time.thread_time) for name, check in checks.items()}
        walls = {name: _timed(args.requests, check, time.perf_counter) for name, check in checks.items()}
        database = app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0]
    print(f"sign-in cost per request on {database} (server side, in-process; target ≤ {TARGET_MS:g} ms for a "
          "check plus the decision)")
    print("CPU time:")
    for name, samples in results.items():
        print("  " + _report(name, samples))
    print("wall time (includes waiting for a busy CPU):")
    for name, samples in walls.items():
        print("  " + _report(name, samples))
    base = statistics.median(results["baseline"])
    worst = max(statistics.median(results["token"]), statistics.median(results["session"])) - base
    worst += statistics.median(results["permission"])
    print(f"median CPU of the slower check beyond the baseline, plus the decision: {worst:.3f} ms -> "
          f"{'within' if worst <= TARGET_MS else 'OVER'} the {TARGET_MS:g} ms target")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
