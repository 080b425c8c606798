"""The unit of work: the one place a transaction is committed or rolled back.

Requests, jobs, CLI commands and the worker's sweep each run their writes in ``unit_of_work()``: it
commits on success and rolls back on any error. Services only flush. What must wait until the data is
committed (arming timers in Redis) is deferred with ``defer``/``after_commit``: it runs after the outermost
commit, never after a rollback. A savepoint that rolls back drops only what was deferred inside it;
what the enclosing transaction deferred before (or in savepoints that were kept) still runs once it commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

log = logging.getLogger(__name__)

JOURNAL_KEY = "servicecase.uow.journal"  # [(kind, entry)] deferred in this transaction, in order
MARKS_KEY = "servicecase.uow.marks"  # savepoint → journal length when it began
OPEN_KEY = "servicecase.uow.open"  # a unit of work is running on this session
FLUSHED_KEY = "servicecase.uow.flushed"  # the open transaction has written something
CALLBACK = "callback"

# kind → what runs, once the outermost transaction committed, with every entry of that kind in order.
_handlers: dict[str, Callable[[list[Any]], None]] = {}


class NestedUnitOfWorkError(RuntimeError):
    """A unit of work was opened inside another: only the outermost edge owns the transaction."""


def on_commit(kind: str, handler: Callable[[list[Any]], None]) -> None:
    """Register what runs after a commit with the entries of ``kind`` deferred in that transaction."""
    _handlers[kind] = handler


def defer(kind: str, entry: Any) -> None:
    """Keep ``entry`` for the ``kind`` handler until the current transaction commits (dropped on rollback,
    and by the rollback of the savepoint it was deferred in)."""
    db.session.info.setdefault(JOURNAL_KEY, []).append((kind, entry))


def after_commit(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the current transaction commits; never if it (or its savepoint) rolls back."""
    defer(CALLBACK, callback)


def _run_callbacks(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the data is committed: a failing follow-up must not turn it into an error
            log.exception("after-commit callback %r failed", callback)


on_commit(CALLBACK, _run_callbacks)


def _has_writes(session: Session) -> bool:
    return bool(session.info.get(FLUSHED_KEY) or session.new or session.dirty or session.deleted)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back if it raises, then run what was deferred.

    A transaction already open is joined (and committed with the rest). On SQLite the unit of work
    starts with ``BEGIN IMMEDIATE``: the database's one write lock is taken at the start, so a concurrent
    writer waits for it and then reads what the first one stored. A SQLite transaction that has only
    read holds nothing in the database (pysqlite begins at the first write), so it is ended first.
    """
    session = db.session()  # this context's session
    if session.info.get(OPEN_KEY):
        raise NestedUnitOfWorkError("a unit of work is already open; only the outermost edge commits")
    if session.get_bind().dialect.name == "sqlite":
        if session.in_transaction() and not _has_writes(session):
            session.commit()  # nothing written: nothing to commit but the session's bookkeeping
        if not session.in_transaction():
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    session.info[OPEN_KEY] = True
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(OPEN_KEY, None)


# -- bookkeeping on the session's events ----------------------------------------------------------------
def _after_flush(session: Session, context: Any) -> None:
    session.info[FLUSHED_KEY] = True


def _after_transaction_create(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(MARKS_KEY, {})[transaction] = len(session.info.get(JOURNAL_KEY, ()))


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:  # drop only what this savepoint deferred
        mark = session.info.get(MARKS_KEY, {}).pop(previous, None)
        journal = session.info.get(JOURNAL_KEY)
        if mark is not None and journal is not None:
            del journal[mark:]
    else:
        session.info.pop(JOURNAL_KEY, None)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: its entries wait for the outer commit
        return
    journal = session.info.pop(JOURNAL_KEY, None) or []
    by_kind: dict[str, list[Any]] = {}
    for kind, entry in journal:
        by_kind.setdefault(kind, []).append(entry)
    for kind, entries in by_kind.items():
        handler = _handlers.get(kind)
        if handler is None:
            log.error("nothing handles deferred %r entries after commit", kind)
            continue
        try:
            handler(entries)
        except Exception:
            log.exception("after-commit handler for %r failed", kind)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's mark stays until the root ends: SQLAlchemy reports a savepoint's end before its
    # soft rollback, which still needs the mark.
    if transaction.parent is None:  # committed, rolled back or closed: nothing carries over
        for key in (JOURNAL_KEY, MARKS_KEY, FLUSHED_KEY):
            session.info.pop(key, None)


def install_session_hooks() -> None:
    """Keep the deferred entries in step with the session's transactions and savepoints (once)."""
    hooks: list[tuple[str, Callable[..., None]]] = [
        ("after_flush", _after_flush), ("after_transaction_create", _after_transaction_create),
        ("after_soft_rollback", _after_soft_rollback), ("after_commit", _after_commit),
        ("after_transaction_end", _after_transaction_end)]
    for name, hook in hooks:
        if not event.contains(db.session, name, hook):
            event.listen(db.session, name, hook)
