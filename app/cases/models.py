"""Cases: one running (or ended) process instance about one customer request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.choices import CASE_STATUSES, CHANNELS, INTAKE_CHANNELS, PRIORITIES
from app.extensions import JSONData, UTCDateTime, db, dialect_index
from app.processes.models import ProcessVersion
from app.registry.models import Customer, Equipment

# The choice lists are app.choices'; they are re-exported here for the models' readers.
__all__ = ["CASE_STATUSES", "CHANNELS", "INTAKE_CHANNELS", "PRIORITIES", "Case", "CaseLink"]


class Case(db.Model):  # type: ignore[name-defined,misc]
    """A case and its engine state; ``lock_version`` makes every store a compare-and-set."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_opened_at", "status", "opened_at"),
        Index("ix_cases_process_id_status", "process_id", "status"),
        # Search by number or words of the title or description: ILIKE '%...%' on PostgreSQL uses trigrams
        # (one index per column: a BitmapOr over small indexes beats one multi-column index).
        *(dialect_index(f"ix_cases_{column}_trgm", column, dialect="postgresql", postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"}) for column in ("number", "title", "description")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    number: Mapped[str | None] = mapped_column(String(40), unique=True)  # human number, FH-2026-000123
    process_id: Mapped[str] = mapped_column(String(100))  # BPMN process id, denormalised for filters
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)  # pinned
    process_version_number: Mapped[int] = mapped_column()  # that version's number, for display without a join
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed | cancelled
    title: Mapped[str] = mapped_column(String(200))  # one-line summary for lists
    description: Mapped[str] = mapped_column(Text, default="")  # what the customer reported
    channel: Mapped[str] = mapped_column(String(20))  # phone | email | fax | web | schedule | case
    priority: Mapped[str] = mapped_column(String(20), default="normal")  # normal | high | emergency
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)  # who reported
    equipment_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id"), index=True)  # what failed
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the customer's notice: deadlines run from it
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was entered
    opened_by: Mapped[str] = mapped_column(String(100))  # who entered it
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the process ended
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # last change of any kind
    state_json: Mapped[str] = deferred(mapped_column(Text))  # engine state without the spec
    summary: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)  # process data shown in lists
    event_count: Mapped[int] = mapped_column(default=0)  # seq of the last event appended
    lock_version: Mapped[int] = mapped_column(default=0)  # optimistic lock: stores are compare-and-set

    __mapper_args__ = {"version_id_col": lock_version}

    process_version: Mapped[ProcessVersion] = relationship()
    customer: Mapped[Customer | None] = relationship()
    equipment: Mapped[Equipment | None] = relationship()


class CaseLink(db.Model):  # type: ignore[name-defined,misc]
    """One case opened from, or escalated to, another: read both ways (each case lists the other)."""

    __tablename__ = "case_links"
    __table_args__ = (Index("ix_case_links_to_case_id", "to_case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    from_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # the case that opened the other
    to_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))  # the case it opened
    kind: Mapped[str] = mapped_column(String(30))  # why: anomaly (inspection → fault), escalation, ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the link was made
    created_by: Mapped[str] = mapped_column(String(100))  # who (or what) made it
