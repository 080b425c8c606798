"""Case history: an append-only log of every change to every case."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import JSONData, UTCDateTime, db

if TYPE_CHECKING:
    from app.cases.models import Case


class CaseEvent(db.Model):  # type: ignore[name-defined,misc]
    """One thing that happened to a case; never updated, never deleted."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_case_events_case_id_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # global order of appends
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # the case it belongs to
    seq: Mapped[int] = mapped_column()  # 1, 2, 3... within the case: replay order
    type: Mapped[str] = mapped_column(String(50), index=True)  # subject_past_tense_verb, e.g. task_completed
    actor: Mapped[str] = mapped_column(String(100))  # user name, or "system" / "timer"
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # system clock time of the change
    payload: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)  # what changed, with its data

    # Lets the unit of work write the (version-checked) case row before its events.
    case: Mapped[Case] = relationship("Case")


class ImmutableEventError(RuntimeError):
    """Raised when code tries to change or delete a recorded event."""


@event.listens_for(CaseEvent, "before_update")
def _refuse_update(mapper: Any, connection: Any, target: CaseEvent) -> None:
    raise ImmutableEventError(f"case event {target.id} is history and cannot be changed")


@event.listens_for(CaseEvent, "before_delete")
def _refuse_delete(mapper: Any, connection: Any, target: CaseEvent) -> None:
    raise ImmutableEventError(f"case event {target.id} is history and cannot be deleted")
