"""After-sales service files: customers and their equipment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import JSONData, UTCDateTime, db, dialect_index

EQUIPMENT_STATUSES = ("in_service", "retired")
# What can happen to a unit's file; the history of a unit is these events plus its cases.
EQUIPMENT_EVENT_TYPES = ("registered", "updated", "replaced", "retired", "installed_as_replacement")
CUSTOMER_EVENT_TYPES = ("registered", "updated")


@dataclass(frozen=True)
class WarrantyStatus:
    """Whether equipment is under warranty on a given day, in words for the agent taking the call."""

    state: str  # in_warranty | out_of_warranty | unknown
    text: str  # "in warranty until 2027-02-28", "out of warranty since 2024-06-15", "warranty unknown"
    day: date | None  # the last day under warranty, or the first day out of it; None when unknown


class Customer(db.Model):  # type: ignore[name-defined,misc]
    """A customer (user organisation) with its service file."""

    __tablename__ = "customers"
    __table_args__ = (
        # Intake and case search find a customer by any part of its name, contact person or phone.
        *(dialect_index(f"ix_customers_{column}_trgm", column, dialect="postgresql", postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"}) for column in ("name", "contact_name", "phone")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    name: Mapped[str] = mapped_column(String(200), index=True)  # organisation name
    contact_name: Mapped[str] = mapped_column(String(200), default="")  # person to call
    phone: Mapped[str] = mapped_column(String(50), default="")  # contact phone
    email: Mapped[str] = mapped_column(String(200), default="")  # contact e-mail
    region: Mapped[str] = mapped_column(String(100), index=True)  # service region (dispatch, sampling)
    address: Mapped[str] = mapped_column(String(500), default="")  # postal address
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the file was opened

    equipment: Mapped[list[Equipment]] = relationship(back_populates="customer", order_by="Equipment.id")


class Equipment(db.Model):  # type: ignore[name-defined,misc]
    """One installed piece of equipment (a UPS, battery bank or cabinet) with its service file."""

    __tablename__ = "equipment"
    __table_args__ = (
        # Any part of a serial number, as read out on the phone or off a fax.
        dialect_index("ix_equipment_serial_number_trgm", "serial_number", dialect="postgresql",
                      postgresql_using="gin", postgresql_ops={"serial_number": "gin_trgm_ops"}),
        CheckConstraint("status IN ('in_service', 'retired')", name="status_known"),
        # A retired unit says when it left service; a unit in service has no such time.
        CheckConstraint("(status = 'retired') = (retired_at IS NOT NULL)", name="retired_at_with_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)  # owner
    model: Mapped[str] = mapped_column(String(100))  # product model
    serial_number: Mapped[str] = mapped_column(String(100), unique=True)  # manufacturer's serial
    site: Mapped[str] = mapped_column(String(300), default="")  # where it is installed
    region: Mapped[str] = mapped_column(String(100), index=True)  # service region of the site
    installed_on: Mapped[date | None] = mapped_column(Date)  # commissioning date
    warranty_ends_on: Mapped[date | None] = mapped_column(Date)  # last day of the warranty
    dealer: Mapped[str] = mapped_column(String(200), default="")  # dealer or installer
    monitored: Mapped[bool] = mapped_column(default=False)  # sends daily online operating data
    status: Mapped[str] = mapped_column(String(20), default="in_service",
                                        server_default="in_service")  # in_service | retired
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it was taken out of service
    # The unit that took its place (one replacement per unit; the new unit's ``replaces`` is the inverse).
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("equipment.id"), unique=True)

    customer: Mapped[Customer] = relationship(back_populates="equipment")
    replaced_by: Mapped[Equipment | None] = relationship(remote_side="Equipment.id", back_populates="replaces")
    replaces: Mapped[Equipment | None] = relationship(back_populates="replaced_by", uselist=False)

    @property
    def retired(self) -> bool:
        """True once the unit is out of service (replaced); a retired unit takes no new case."""
        return self.status == "retired"

    def warranty_on(self, today: date) -> WarrantyStatus:
        """The warranty as it stands on ``today`` (the department's calendar day)."""
        ends = self.warranty_ends_on
        if ends is None:
            return WarrantyStatus("unknown", "warranty unknown", None)
        if today <= ends:
            return WarrantyStatus("in_warranty", f"in warranty until {ends.isoformat()}", ends)
        since = ends + timedelta(days=1)
        return WarrantyStatus("out_of_warranty", f"out of warranty since {since.isoformat()}", since)

    def snapshot(self) -> dict[str, object]:
        """The equipment's file as process data (JSON-ready, ISO dates)."""
        return {
            "id": self.id, "model": self.model, "serial_number": self.serial_number, "site": self.site,
            "region": self.region, "installed_on": self.installed_on.isoformat() if self.installed_on else None,
            "warranty_ends_on": self.warranty_ends_on.isoformat() if self.warranty_ends_on else None,
            "dealer": self.dealer,
        }


class EquipmentEvent(db.Model):  # type: ignore[name-defined,misc]
    """One thing that happened to a unit's file (registered, updated, replaced, retired...); append-only."""

    __tablename__ = "equipment_events"

    id: Mapped[int] = mapped_column(primary_key=True)  # global order of appends
    equipment_id: Mapped[int] = mapped_column(ForeignKey("equipment.id"), index=True)  # the unit
    type: Mapped[str] = mapped_column(String(50))  # one of EQUIPMENT_EVENT_TYPES
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)  # the case it came from
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # system clock time of the change
    actor: Mapped[str] = mapped_column(String(100))  # user name, or "system"
    payload: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)  # what changed, with its data


class CustomerEvent(db.Model):  # type: ignore[name-defined,misc]
    """One change of a customer's file (registered, updated by an import); append-only."""

    __tablename__ = "customer_events"

    id: Mapped[int] = mapped_column(primary_key=True)  # global order of appends
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)  # the customer
    type: Mapped[str] = mapped_column(String(50))  # one of CUSTOMER_EVENT_TYPES
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # system clock time of the change
    actor: Mapped[str] = mapped_column(String(100))  # user name, or "system"
    payload: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)  # what changed, with its data


class ImmutableRegistryEventError(RuntimeError):
    """Raised when code tries to change or delete a recorded equipment or customer event."""


def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    raise ImmutableRegistryEventError(f"{target.__tablename__} row {target.id} is history and cannot be changed")


for _model in (EquipmentEvent, CustomerEvent):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)
