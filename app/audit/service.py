"""Appending to and reading a case's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.audit.models import CaseEvent
from app.auth import Actor, require
from app.engine import now
from app.extensions import db


def record_event(*, case: Any, type: str, actor: str, payload: dict[str, Any] | None = None) -> CaseEvent:
    """Append an event to the case's history (the caller holds the case's lock)."""
    case.event_count = (case.event_count or 0) + 1
    event = CaseEvent(case=case, seq=case.event_count, type=type, actor=actor,
                      occurred_at=now(), payload=payload or {})
    db.session.add(event)
    return event


def completed_task_data(*, actor: Actor, case_id: int, work_item_id: int) -> dict[str, Any] | None:
    """The record submitted when a work item was completed, from the case's history (cases.read; None if
    never)."""
    require(actor, "cases.read")
    events = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                        CaseEvent.type == "task_completed")
                                .order_by(CaseEvent.seq.desc()))
    for event in events:
        if (event.payload or {}).get("work_item_id") == work_item_id:
            data = event.payload.get("data")
            return data if isinstance(data, dict) else {}
    return None


def list_events(*, actor: Actor, case_id: int, after_seq: int = 0, limit: int | None = None) -> list[CaseEvent]:
    """The case's events in order, optionally after a sequence number (cases.read)."""
    require(actor, "cases.read")
    query = (select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.seq > after_seq)
             .order_by(CaseEvent.seq))
    if limit:
        query = query.limit(limit)
    return list(db.session.scalars(query))
