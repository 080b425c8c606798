"""Timers: every waiting timer event of every case; the database is their source of truth."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db

TIMER_STATES = ("waiting", "fired", "cancelled")


class Timer(db.Model):  # type: ignore[name-defined,misc]
    """One timer event of a case: when it is due and whether it fired."""

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id", name="uq_timers_case_id_task_id"),
        Index("ix_timers_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # owning case
    task_id: Mapped[str] = mapped_column(String(36))  # engine task uuid of the timer event
    task_spec: Mapped[str] = mapped_column(String(100))  # BPMN element id of the timer event
    name: Mapped[str] = mapped_column(String(200))  # BPMN element name, shown as the deadline's name
    kind: Mapped[str] = mapped_column(String(20))  # date | duration | cycle
    interrupting: Mapped[bool] = mapped_column(default=True)  # cancels its activity when it fires
    attached_task_id: Mapped[str | None] = mapped_column(String(36))  # activity a boundary timer guards
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it is due (fixed by the engine)
    state: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | fired | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it started waiting
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it fired or was cancelled
