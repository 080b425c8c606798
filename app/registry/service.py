"""Customers and equipment: the after-sales service files."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import case, func, or_, select, union
from sqlalchemy.orm import contains_eager

from app.auth import Actor, require
from app.engine import now
from app.errors import InvalidDataError, NotFoundError
from app.extensions import db
from app.inputs import LIKE_ESCAPE, like_pattern
from app.registry.models import Customer, Equipment

SEARCH_MIN_LENGTH = 2  # one character matches nearly everything and no trigram index can narrow it
SEARCH_MAX_LENGTH = 100  # longer than any serial, name or phone number
# A search that reads as a phone number: digits with the usual separators.
_PHONE_LIKE = re.compile(r"[0-9+()./\s-]+")
_PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "/")


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


def equipment_by_serial(*, actor: Actor, serial_number: str) -> Equipment | None:
    """The piece of equipment with this serial number, if any (registry.read)."""
    require(actor, "registry.read")
    return db.session.scalar(select(Equipment).where(Equipment.serial_number == serial_number))


def customers_by_region(*, actor: Actor) -> dict[str, list[Customer]]:
    """Every customer, by region, in id order within each (registry.read): whom return visits sample."""
    require(actor, "registry.read")
    found: dict[str, list[Customer]] = {}
    for customer in db.session.scalars(select(Customer).order_by(Customer.region, Customer.id)):
        found.setdefault(customer.region, []).append(customer)
    return found


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


def search_equipment(*, actor: Actor, text: str, page: int = 1, per_page: int = 20) -> tuple[list[Equipment], int]:
    """Equipment whose serial number, or whose customer's name, contact person or phone contains ``text``
    (registry.read), one page at a time with the total; serials starting with the text come first.

    A phone number matches whatever separators either side wrote ("55500101" finds "+86 20 5550 0101")."""
    require(actor, "registry.read")
    text = text.strip()
    if not SEARCH_MIN_LENGTH <= len(text) <= SEARCH_MAX_LENGTH:
        raise InvalidDataError("the search text has the wrong length", errors={
            "q": [f"must be from {SEARCH_MIN_LENGTH} to {SEARCH_MAX_LENGTH} characters long"]})
    pattern = like_pattern(text)

    def contains(column: Any) -> Any:
        return column.ilike(pattern, escape=LIKE_ESCAPE)

    customer_match = [contains(Customer.name), contains(Customer.contact_name), contains(Customer.phone)]
    digits = re.sub(r"[^0-9]", "", text)
    if len(digits) >= 3 and _PHONE_LIKE.fullmatch(text):
        phone_digits: Any = Customer.phone
        for separator in _PHONE_SEPARATORS:
            phone_digits = func.replace(phone_digits, separator, "")
        customer_match.append(phone_digits.like(f"%{digits}%"))
    # One branch per table (UNION), so each can use its own trigram index on PostgreSQL.
    ids = union(select(Equipment.id).where(contains(Equipment.serial_number)),
                select(Equipment.id).where(Equipment.customer_id.in_(select(Customer.id).where(or_(*customer_match)))))
    query = select(Equipment).join(Equipment.customer).where(Equipment.id.in_(ids))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    serial_first = case((Equipment.serial_number.ilike(pattern[1:], escape=LIKE_ESCAPE), 0), else_=1)
    items = list(db.session.scalars(query.options(contains_eager(Equipment.customer))
                                    .order_by(serial_first, Customer.name, Equipment.serial_number, Equipment.id)
                                    .offset((page - 1) * per_page).limit(per_page)))
    return items, total


def department_today() -> date:
    """Today's date where the department works: a warranty ends with a calendar day there."""
    # The department's calendar day (SERVICECASE_TIME_ZONE, checked at start-up).
    return now().astimezone(ZoneInfo(current_app.config.get("TIME_ZONE") or "UTC")).date()


# (name, contact, phone, e-mail, region, [(model, serial, site, installed on, warranty ends on, dealer)])
DemoEquipment = tuple[str, str, str, date | None, date | None, str]
DEMO_CUSTOMERS: list[tuple[str, str, str, str, str, list[DemoEquipment]]] = [
    ("Harbour City Data Centre", "Li Wei", "+86 20 5550 0101", "ops@harbourdc.example", "South",
     [("EA990-200K", "EA99020K0001", "Hall A, row 3", date(2024, 3, 1), date(2027, 2, 28), "Pearl Power Systems"),
      ("EA660-60K", "EA66060K0417", "Hall B, network room", date(2021, 6, 15), date(2024, 6, 14),
       "Pearl Power Systems")]),
    ("Northern Railway Signalling", "Zhang Min", "+86 10 5550 0202", "signals@nrs.example", "North",
     [("EA330-20K", "EA33020K0932", "Signal box 7", date(2025, 1, 10), date(2028, 1, 9), "Capital Installers")]),
    ("West Lake Hospital", "Chen Jing", "+86 571 5550 0303", "facilities@wlh.example", "East",
     [("EA990-120K", "EA990120K0077", "Operating theatres, basement", date(2023, 9, 1), date(2026, 8, 31),
       "Lakeside Electrical"),
      # Taken over from another service provider without its papers: warranty not known.
      ("EA330-10K", "EA33010K0215", "Ward 4, nurses' station", None, None, "")]),
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
