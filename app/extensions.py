"""Extensions, created unbound; the factory binds them to an app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from redis import Redis
from rq import Queue
from sqlalchemy import JSON, DateTime, Index, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints, so Alembic can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite forgets offsets); naive values are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} cannot be stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_index(name: str, *columns: str, dialect: str, **kwargs: Any) -> Index:
    """An index that exists only on ``dialect`` (a trigram index is PostgreSQL's alone): created only there,
    and left out of Alembic's comparisons on other databases (see ``include_on``)."""
    index = Index(name, *columns, info={"only_on": dialect}, **kwargs)
    index.ddl_if(dialect=dialect)
    return index


def include_on(dialect_name: str) -> Callable[..., bool]:
    """An Alembic ``include_object`` hook for a database of ``dialect_name``: objects made by
    ``dialect_index`` for another dialect are not expected there."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        only_on = (getattr(obj, "info", None) or {}).get("only_on")
        return only_on is None or only_on == dialect_name

    return include


# JSON everywhere, JSONB where PostgreSQL can index it.
JSONData = JSON().with_variant(JSONB(), "postgresql")

# Objects stay readable after commit: a request builds its response from what it just stored.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
babel = Babel()  # the pages' languages; bound by app.web with the locale choice of each request


def new_redis_connection(app: Flask) -> Redis:
    """A Redis client of its own (its own pool) on REDIS_URL, with the app's timeouts."""
    url = app.config.get("REDIS_URL")
    if not url:
        raise RuntimeError(app.config.get("REDIS_URL_PROBLEM") or "REDIS_URL is not set: timers need Redis")
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)


def redis_connection(app: Flask | None = None) -> Redis:
    """The app's Redis connection (one pool per process), from REDIS_URL."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = app.extensions.get("servicecase.redis")
    if conn is None:
        conn = app.extensions["servicecase.redis"] = new_redis_connection(app)
    return conn


def timer_queue(app: Flask | None = None, *, connection: Redis | None = None) -> Queue:
    """The RQ queue timer jobs go through (on the app's Redis connection unless given another)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return Queue(app.config["TIMER_QUEUE"], connection=connection or redis_connection(app),
                 default_timeout=app.config["TIMER_JOB_TIMEOUT"])
