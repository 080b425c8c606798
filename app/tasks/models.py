"""Work items: each ready human task of a case, indexed so worklists never load an engine state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.cases.models import Case
from app.choices import WORK_ITEM_STATES
from app.extensions import UTCDateTime, db
from app.processes.models import ELEMENT_ID_LENGTH, ELEMENT_NAME_LENGTH, FORM_KEY_LENGTH, ROLE_LENGTH

__all__ = ["WORK_ITEM_STATES", "WorkItem", "WorkItemRole"]  # the choice list lives in app.choices


class WorkItem(db.Model):  # type: ignore[name-defined,misc]
    """A human task of a case, from the moment it became ready until it was completed or cancelled."""

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id", name="uq_work_items_case_id_task_id"),
        Index("ix_work_items_state_role_due_at", "state", "role", "due_at"),
        Index("ix_work_items_assignee_state", "assignee", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key used in URLs
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # owning case
    task_id: Mapped[str] = mapped_column(String(36))  # engine task uuid
    task_spec: Mapped[str] = mapped_column(String(ELEMENT_ID_LENGTH))  # BPMN element id
    name: Mapped[str] = mapped_column(String(ELEMENT_NAME_LENGTH))  # BPMN element name
    role: Mapped[str | None] = mapped_column(String(ROLE_LENGTH))  # its first candidate group (or its lane's role)
    form_key: Mapped[str | None] = mapped_column(String(FORM_KEY_LENGTH))  # record form to fill in
    assignee: Mapped[str | None] = mapped_column(String(100))  # who claimed it, if anyone
    state: Mapped[str] = mapped_column(String(20), default="ready")  # ready | completed | cancelled
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # earliest deadline guarding it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it became ready
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it was claimed
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when completed or cancelled
    completed_by: Mapped[str | None] = mapped_column(String(100))  # who completed it

    case: Mapped[Case] = relationship()
    # The second and further candidate groups of a task, for the few tasks several roles may work; most have
    # one, so the queues keep using the (state, role, due_at) index and look here only for the rest.
    other_roles: Mapped[list[WorkItemRole]] = relationship(
        lazy="selectin", order_by="WorkItemRole.position", cascade="all, delete-orphan")

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role that may work this task, the first one first."""
        return ((self.role,) if self.role else ()) + tuple(other.role for other in self.other_roles)


class WorkItemRole(db.Model):  # type: ignore[name-defined,misc]
    """A further role (candidate group) that may work a work item besides its first one (``WorkItem.role``)."""

    __tablename__ = "work_item_roles"
    __table_args__ = (Index("ix_work_item_roles_role_work_item_id", "role", "work_item_id"),)

    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(ROLE_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column()  # 1 for the second candidate group, 2 for the third…
