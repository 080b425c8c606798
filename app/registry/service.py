"""Customers and equipment: the after-sales service files."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, or_, select

from app.auth import Actor, require
from app.engine import now
from app.errors import NotFoundError
from app.extensions import db
from app.registry.models import Customer, Equipment


def get_customer(customer_id: int, *, actor: Actor) -> Customer:
    """A customer by id (registry.read; NotFoundError if unknown)."""
    require(actor, "registry.read")
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return customer


def get_equipment(equipment_id: int, *, actor: Actor) -> Equipment:
    """A piece of equipment by id (registry.read; NotFoundError if unknown)."""
    require(actor, "registry.read")
    equipment = db.session.get(Equipment, equipment_id)
    if equipment is None:
        raise NotFoundError(f"equipment {equipment_id} does not exist")
    return equipment


def list_equipment(*, actor: Actor, text: str | None = None, limit: int = 200) -> list[Equipment]:
    """Equipment with its customer, optionally filtered by serial, model, site or customer name
    (registry.read)."""
    require(actor, "registry.read")
    query = select(Equipment).join(Customer)
    if text:
        pattern = f"%{text.lower()}%"
        query = query.where(or_(func.lower(Equipment.serial_number).like(pattern),
                                func.lower(Equipment.model).like(pattern),
                                func.lower(Equipment.site).like(pattern),
                                func.lower(Customer.name).like(pattern)))
    return list(db.session.scalars(query.order_by(Customer.name, Equipment.serial_number).limit(limit)))


DEMO_CUSTOMERS = [
    ("Harbour City Data Centre", "Li Wei", "+86 20 5550 0101", "ops@harbourdc.example", "South",
     [("EA990-200K", "EA99020K0001", "Hall A, row 3", date(2024, 3, 1), date(2027, 2, 28), "Pearl Power Systems"),
      ("EA660-60K", "EA66060K0417", "Hall B, network room", date(2021, 6, 15), date(2024, 6, 14),
       "Pearl Power Systems")]),
    ("Northern Railway Signalling", "Zhang Min", "+86 10 5550 0202", "signals@nrs.example", "North",
     [("EA330-20K", "EA33020K0932", "Signal box 7", date(2025, 1, 10), date(2028, 1, 9), "Capital Installers")]),
    ("West Lake Hospital", "Chen Jing", "+86 571 5550 0303", "facilities@wlh.example", "East",
     [("EA990-120K", "EA990120K0077", "Operating theatres, basement", date(2023, 9, 1), date(2026, 8, 31),
       "Lakeside Electrical")]),
]


def seed_demo_data() -> int:
    """Create the demo customers and equipment if none exist; return how many customers were added."""
    if db.session.scalar(select(func.count()).select_from(Customer)):
        return 0
    current = now()
    for name, contact, phone, email, region, items in DEMO_CUSTOMERS:
        customer = Customer(name=name, contact_name=contact, phone=phone, email=email, region=region,
                            created_at=current)
        db.session.add(customer)
        for model, serial, site, installed, warranty_end, dealer in items:
            customer.equipment.append(Equipment(
                model=model, serial_number=serial, site=site, region=region, installed_on=installed,
                warranty_ends_on=warranty_end, dealer=dealer, monitored=True))
    db.session.flush()
    return len(DEMO_CUSTOMERS)
