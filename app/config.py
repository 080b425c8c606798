"""Settings from the environment, in one place."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "testing", "production")
DEFAULT_TIME_ZONE = "Asia/Shanghai"


class ConfigError(RuntimeError):
    """The environment does not describe a runnable configuration."""


def _instance_secret(instance_dir: Path) -> str:
    """A per-checkout development secret kept in the instance folder, never in the repo."""
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _recorded_redis(instance_dir: Path) -> tuple[str | None, str | None]:
    """The embedded Redis that `python3 dev.py run` recorded in the instance folder: (URL, None) while its
    redis-server runs, (None, why not) when the record is stale, (None, None) without a record."""
    path = instance_dir / "redis_url"
    try:
        url, pid = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None, None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return None, (f"the embedded Redis that `python3 dev.py run` recorded in {path} is gone (its "
                      f"redis-server, pid {pid}, is not running): start `python3 dev.py run` again, or set REDIS_URL")
    except (PermissionError, ValueError):
        pass
    return url, None


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the app's settings from the environment, then apply ``overrides`` (tests)."""
    env = os.environ
    overrides = overrides or {}
    name = overrides.get("ENV_NAME") or env.get("SERVICECASE_ENV", "development")
    if name not in ENVIRONMENTS:
        raise ConfigError(f"SERVICECASE_ENV must be one of {', '.join(ENVIRONMENTS)}, not {name!r}")
    instance_dir = Path(env.get("SERVICECASE_INSTANCE", PROJECT_ROOT / "instance"))
    cfg: dict[str, Any] = {
        "ENV_NAME": name,
        "TESTING": name == "testing",
        "INSTANCE_DIR": str(instance_dir),
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL") or f"sqlite:///{instance_dir / 'servicecase.db'}",
        "REDIS_URL": env.get("REDIS_URL") or None,
        "WORKFLOWS_DIR": env.get("SERVICECASE_WORKFLOWS", str(PROJECT_ROOT / "workflows")),
        "FORMS_DIR": env.get("SERVICECASE_FORMS", str(PROJECT_ROOT / "forms")),
        "MAX_CONTENT_LENGTH": int(env.get("SERVICECASE_MAX_REQUEST_BYTES", 1_000_000)),
        # Sign-in: a session unused this long must sign in again; failed sign-ins allowed per account and
        # per address (limits' notation, "5 per 15 minutes") before a lock-out, counted in Redis.
        "SESSION_IDLE_MINUTES": int(env.get("SERVICECASE_SESSION_IDLE_MINUTES", 30)),
        "SIGN_IN_ACCOUNT_LIMIT": env.get("SERVICECASE_SIGN_IN_ACCOUNT_LIMIT", "5 per 15 minutes"),
        "SIGN_IN_ADDRESS_LIMIT": env.get("SERVICECASE_SIGN_IN_ADDRESS_LIMIT", "20 per 15 minutes"),
        "SESSION_COOKIE_NAME": "servicecase_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Flask-WTF's CSRF token: valid as long as the session (no separate expiry), checked only where the
        # pages' hook asks (the JSON API with a bearer token needs none).
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_CHECK_DEFAULT": False,
        "WTF_CSRF_FIELD_NAME": "csrf_token",
        # The largest attachment (fax scan, photo) a case accepts; stored under INSTANCE_DIR/attachments.
        "ATTACHMENT_MAX_BYTES": int(env.get("SERVICECASE_ATTACHMENT_MAX_BYTES", 20_000_000)),
        # A customer's notice older than this is a typing mistake (a year of 1990), not a real report.
        "NOTICE_MAX_AGE_DAYS": int(env.get("SERVICECASE_NOTICE_MAX_AGE_DAYS", 366)),
        "API_TITLE": "Service case API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        # Timers: the RQ queue, job timeout (a looping script is stopped), the sweep that re-arms
        # lost jobs, and the clock ("system" in production; "simulated" can be moved by `flask clock`).
        "TIMER_QUEUE": env.get("SERVICECASE_TIMER_QUEUE", "servicecase-timers"),
        "TIMER_JOB_TIMEOUT": int(env.get("SERVICECASE_TIMER_JOB_TIMEOUT", 60)),
        "TIMER_RETRY_INTERVALS": [2, 10, 30, 120, 600],
        "TIMER_DISPATCH_INTERVAL": float(env.get("SERVICECASE_TIMER_DISPATCH_INTERVAL", 0.1)),
        "SWEEP_INTERVAL": float(env.get("SERVICECASE_SWEEP_INTERVAL", 10)),
        "SWEEP_HORIZON": float(env.get("SERVICECASE_SWEEP_HORIZON", 300)),
        "SWEEP_GRACE": float(env.get("SERVICECASE_SWEEP_GRACE", 5)),
        # Testing only: a pause inside the firing job, so a test can kill a worker mid-job.
        "TIMER_FIRE_DELAY": float(env.get("SERVICECASE_TIMER_FIRE_DELAY", 0)) if name == "testing" else 0.0,
        # Every BPMN expression/script call: wall-time budget, and the largest value (items, characters,
        # bytes or bits) one operation may build. Exceeding either stops the script (422 / timer failed).
        "SCRIPT_TIME_BUDGET_MS": int(env.get("SERVICECASE_SCRIPT_TIME_BUDGET_MS", 300)),
        "SCRIPT_SIZE_BUDGET": int(env.get("SERVICECASE_SCRIPT_SIZE_BUDGET", 1_000_000)),
        "CLOCK": env.get("SERVICECASE_CLOCK", "system" if name == "production" else "simulated"),
        # The department's time zone: every time a page shows is in it (storage stays UTC).
        "TIME_ZONE": env.get("SERVICECASE_TIME_ZONE", DEFAULT_TIME_ZONE),
        # Normal ranges of the daily operating data (JSON, see app/readings/rules.py); outside them a day is
        # an anomaly on the monthly inspection.
        "READING_RULES": env.get("SERVICECASE_READING_RULES") or None,
        # Users called back per region each quarter (plan 5.4, 5.11).
        "RETURN_VISIT_SAMPLE": int(env.get("SERVICECASE_RETURN_VISIT_SAMPLE", 3)),
        # The pages' language for a visitor who chose none and whose browser asks for none we have (en, zh).
        "DEFAULT_LOCALE": env.get("SERVICECASE_DEFAULT_LOCALE", "en"),
        # Who the customer-facing documents (the processing report…) speak for, printed on each of them.
        "DEPARTMENT_NAME": env.get("SERVICECASE_DEPARTMENT_NAME", "Customer service department"),
        "EMERGENCY_CONTACT": {
            "name": env.get("SERVICECASE_EMERGENCY_NAME", ""),
            "phone": env.get("SERVICECASE_EMERGENCY_PHONE", ""),
            "email": env.get("SERVICECASE_EMERGENCY_EMAIL", ""),
        },
    }
    if name == "development" and not cfg["REDIS_URL"]:  # `dev.py run`'s embedded Redis, from another shell
        cfg["REDIS_URL"], cfg["REDIS_URL_PROBLEM"] = _recorded_redis(instance_dir)
    url = cfg["SQLALCHEMY_DATABASE_URI"]
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):  # psycopg 3 is the driver we ship
            cfg["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + url[len(prefix):]
    secret = env.get("SECRET_KEY")
    if name == "production":
        if not secret:
            raise ConfigError("SECRET_KEY must be set in production")
        if not env.get("DATABASE_URL"):
            raise ConfigError("DATABASE_URL must be set in production")
        if not cfg["REDIS_URL"]:
            raise ConfigError("REDIS_URL must be set in production: timers need a real Redis")
    cfg["SECRET_KEY"] = secret or (secrets.token_hex(16) if name == "testing" else _instance_secret(instance_dir))
    cfg.update(overrides)
    if "SESSION_COOKIE_SECURE" not in overrides:  # development and tests run on plain http://
        cfg["SESSION_COOKIE_SECURE"] = cfg["ENV_NAME"] == "production"
    if not 1 <= cfg["RETURN_VISIT_SAMPLE"] <= 1000:
        raise ConfigError("SERVICECASE_RETURN_VISIT_SAMPLE must be a whole number from 1 to 1000")
    if cfg["SESSION_IDLE_MINUTES"] < 1:
        raise ConfigError("SERVICECASE_SESSION_IDLE_MINUTES must be at least 1")
    if cfg["ENV_NAME"] == "production" and cfg["CLOCK"] != "system":
        raise ConfigError("the simulated clock exists only in development and testing")
    if cfg["CLOCK"] not in ("system", "simulated"):
        raise ConfigError(f"SERVICECASE_CLOCK must be 'system' or 'simulated', not {cfg['CLOCK']!r}")
    cfg["TIME_ZONE"] = check_time_zone(cfg["TIME_ZONE"]).key
    cfg["DEFAULT_LOCALE"] = check_locale(cfg["DEFAULT_LOCALE"])
    cfg["BABEL_DEFAULT_LOCALE"] = cfg["DEFAULT_LOCALE"]
    if "SQLALCHEMY_ENGINE_OPTIONS" not in overrides:
        cfg["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(cfg["SQLALCHEMY_DATABASE_URI"])
    return cfg


def check_time_zone(name: Any) -> ZoneInfo:
    """The IANA zone ``name`` (``Asia/Shanghai``); ConfigError naming the setting when there is no such zone."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("SERVICECASE_TIME_ZONE must name an IANA time zone such as Asia/Shanghai, not "
                          f"{name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"SERVICECASE_TIME_ZONE names no known time zone: {name!r} (use an IANA name such as "
                          "Asia/Shanghai or Europe/Berlin)") from None


def check_locale(name: Any) -> str:
    """One of the pages' languages (``en``, ``zh``); ConfigError naming the setting otherwise."""
    from app.i18n import LOCALES

    value = name.strip() if isinstance(name, str) else name
    if value not in LOCALES:
        raise ConfigError(f"SERVICECASE_DEFAULT_LOCALE must be one of {', '.join(LOCALES)} (the languages the pages "
                          f"speak), not {name!r}")
    return str(value)


def engine_options(url: str) -> dict[str, Any]:
    """Connection settings per database kind."""
    if url.startswith("sqlite"):
        # SQLite: one writer at a time; wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
