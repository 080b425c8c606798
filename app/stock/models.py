"""Warehouses, parts, stock levels, reservations and the movements that changed them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import UTCDateTime, db

RESERVATION_STATES = ("held", "consumed", "released")
MOVEMENT_KINDS = ("received", "adjusted", "reserved", "released", "consumed")


class Warehouse(db.Model):  # type: ignore[name-defined,misc]
    """The spare-parts store of one service region (plan 5.6: regions that reach a certain scale keep one)."""

    __tablename__ = "warehouses"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    code: Mapped[str] = mapped_column(String(20), unique=True)  # short name on labels and in imports, e.g. EAST
    name: Mapped[str] = mapped_column(String(200))  # e.g. "East China regional warehouse"
    region: Mapped[str] = mapped_column(String(100), unique=True)  # the service region it supplies
    address: Mapped[str] = mapped_column(String(500), default="")  # where the parts are picked up
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was set up


class Part(db.Model):  # type: ignore[name-defined,misc]
    """A spare part by its manufacturer's part number."""

    __tablename__ = "parts"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    part_number: Mapped[str] = mapped_column(String(50), unique=True)  # as printed on the part, e.g. FUS-125A
    name: Mapped[str] = mapped_column(String(200))  # what it is, e.g. "Rectifier fuse 125 A"
    unit: Mapped[str] = mapped_column(String(20), default="pcs")  # unit of the quantities: pcs, m, set
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was added to the catalogue


class StockLevel(db.Model):  # type: ignore[name-defined,misc]
    """How many of one part one warehouse holds, and how many of those are reserved for cases.

    The database itself keeps the counts sane: nothing negative, never more reserved than on hand. Every
    change is a conditional UPDATE (see app.stock.service), so two reservations of the last unit cannot
    both succeed, on PostgreSQL or SQLite."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("warehouse_id", "part_id", name="uq_stock_levels_warehouse_id_part_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouses.id"), index=True)  # where
    part_id: Mapped[int] = mapped_column(ForeignKey("parts.id"), index=True)  # what
    on_hand: Mapped[int] = mapped_column(default=0)  # units physically in the warehouse
    reserved: Mapped[int] = mapped_column(default=0)  # of those, units held for open cases
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # last movement

    warehouse: Mapped[Warehouse] = relationship(lazy="joined", innerjoin=True)
    part: Mapped[Part] = relationship(lazy="joined", innerjoin=True)

    @property
    def available(self) -> int:
        """Units that may still be reserved."""
        return self.on_hand - self.reserved


class Reservation(db.Model):  # type: ignore[name-defined,misc]
    """Units of one part held in one warehouse for one case, until the repair uses them or lets them go."""

    __tablename__ = "reservations"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # the case the parts are for
    stock_level_id: Mapped[int] = mapped_column(ForeignKey("stock_levels.id"), index=True)  # warehouse and part
    quantity: Mapped[int] = mapped_column()  # units held
    state: Mapped[str] = mapped_column(String(20), default="held")  # held | consumed | released
    consumed: Mapped[int] = mapped_column(default=0)  # units the repair used (the rest went back on release)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when they were reserved
    created_by: Mapped[str] = mapped_column(String(100))  # who reserved them
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when they were used or released
    ended_by: Mapped[str | None] = mapped_column(String(100))  # who used or released them

    stock_level: Mapped[StockLevel] = relationship(lazy="joined", innerjoin=True)


class StockMovement(db.Model):  # type: ignore[name-defined,misc]
    """One change to one stock level: received, counted (adjusted), reserved, released or consumed.

    Append-only, like a case's history: the stock's story can be replayed from these rows."""

    __tablename__ = "stock_movements"

    id: Mapped[int] = mapped_column(primary_key=True)  # global order of movements
    stock_level_id: Mapped[int] = mapped_column(ForeignKey("stock_levels.id"), index=True)  # warehouse and part
    kind: Mapped[str] = mapped_column(String(20))  # received | adjusted | reserved | released | consumed
    quantity: Mapped[int] = mapped_column()  # units moved (for adjusted: the change of on_hand, may be negative)
    on_hand_after: Mapped[int] = mapped_column()  # the level's on_hand once moved
    reserved_after: Mapped[int] = mapped_column()  # the level's reserved once moved
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)  # the case, if for one
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"))  # the reservation, if any
    actor: Mapped[str] = mapped_column(String(100))  # who moved it (user name, or "system")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # system clock time
    note: Mapped[str] = mapped_column(String(500), default="")  # delivery note, count sheet, reason

    stock_level: Mapped[StockLevel] = relationship(lazy="joined", innerjoin=True)


class ImmutableMovementError(RuntimeError):
    """Raised when code tries to change or delete a recorded stock movement."""


@event.listens_for(StockMovement, "before_update")
@event.listens_for(StockMovement, "before_delete")
def _refuse_change(mapper: object, connection: object, target: StockMovement) -> None:
    raise ImmutableMovementError(f"stock movement {target.id} is recorded and cannot change")
