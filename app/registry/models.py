"""After-sales service files: customers and their equipment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import UTCDateTime, db, dialect_index


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

    customer: Mapped[Customer] = relationship(back_populates="equipment")

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
