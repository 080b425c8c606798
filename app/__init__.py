"""The application factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event

from app.config import PROJECT_ROOT, ConfigError, load_config
from app.extensions import db, migrate


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    """Foreign keys on, WAL so readers do not block the writer, and wait for locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _install_clock(app: Flask) -> None:
    """One clock for the whole process: the wall clock, or the shared simulated clock."""
    from app.engine import OffsetClock, SystemClock, set_clock
    from app.timers.simulation import offset_reader

    if app.config["CLOCK"] == "simulated":
        set_clock(OffsetClock(offset_reader(app)))
    else:
        set_clock(SystemClock())


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment (and ``overrides``, for tests)."""
    config = load_config(overrides)
    from app.readings.rules import RulesError, parse_rules

    try:
        parse_rules(config["READING_RULES"])
    except RulesError as exc:
        raise ConfigError(str(exc)) from None
    app = Flask(__name__, instance_path=config["INSTANCE_DIR"])
    app.config.update(config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from app import models  # noqa: F401  (every model registered before migrations look)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", _sqlite_pragmas)

    _install_clock(app)
    from app.engine import configure_script_budget

    configure_script_budget(time_ms=config["SCRIPT_TIME_BUDGET_MS"], size=config["SCRIPT_SIZE_BUDGET"])
    from app.flows.operations import install as install_operations
    from app.timers.scheduling import install_session_hooks

    install_operations()  # the operations BPMN service tasks call: before any process is deployed or run
    from app.documents.service import install as install_documents

    install_documents()  # the documents a process may name in its settings: before any process is deployed

    install_session_hooks()

    from app.i18n import compile_catalogues

    compile_catalogues()  # the .mo is built from the committed .po, never kept in the repository

    from app.forms import FormRegistry

    app.extensions["servicecase.forms"] = FormRegistry.load(Path(config["FORMS_DIR"]))

    from app.api import register_api
    from app.cli import register_cli
    from app.web import register_web

    register_api(app)
    register_web(app)
    register_cli(app)
    return app
