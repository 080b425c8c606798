"""Customers and equipment: the after-sales service files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import case, func, or_, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app.audit.service import record_event
from app.auth import Actor, require
from app.engine import now
from app.errors import ConflictError, InvalidDataError, NotFoundError
from app.extensions import db
from app.imports import EXTRA_CELLS, ImportReport, RowError
from app.inputs import LIKE_ESCAPE, like_pattern, text_problem
from app.registry.models import Customer, CustomerEvent, Equipment, EquipmentEvent

if TYPE_CHECKING:
    from app.cases.models import Case

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
    # Retired units are listed (the caller may read an old serial off a label) but after those in service,
    # marked: a new case is opened on the unit that replaced them.
    in_service_first = case((Equipment.status == "in_service", 0), else_=1)
    items = list(db.session.scalars(query.options(contains_eager(Equipment.customer))
                                    .order_by(in_service_first, serial_first, Customer.name, Equipment.serial_number,
                                              Equipment.id)
                                    .offset((page - 1) * per_page).limit(per_page)))
    return items, total


def department_today() -> date:
    """Today's date where the department works: a warranty ends with a calendar day there."""
    return _department_day(now())


def _department_day(moment: datetime) -> date:
    """The department's calendar day (SERVICECASE_TIME_ZONE, checked at start-up) at ``moment``."""
    return moment.astimezone(ZoneInfo(current_app.config.get("TIME_ZONE") or "UTC")).date()


def equipment_events(*, actor: Actor, equipment_id: int) -> list[EquipmentEvent]:
    """A unit's file history, oldest first (registry.read)."""
    require(actor, "registry.read")
    return list(db.session.scalars(select(EquipmentEvent).where(EquipmentEvent.equipment_id == equipment_id)
                                   .order_by(EquipmentEvent.id)))


def _equipment_event(unit: Equipment, type_: str, *, actor: Actor, case_id: int | None = None,
                     payload: dict[str, Any] | None = None) -> EquipmentEvent:
    event = EquipmentEvent(equipment_id=unit.id, type=type_, case_id=case_id, occurred_at=now(),
                           actor=actor.username, payload=payload or {})
    db.session.add(event)
    return event


def _customer_event(customer: Customer, type_: str, *, actor: Actor, payload: dict[str, Any]) -> None:
    db.session.add(CustomerEvent(customer_id=customer.id, type=type_, occurred_at=now(), actor=actor.username,
                                 payload=payload))


# ------------------------------------------------------------------------------------------ replacement

def replace_equipment(*, actor: Actor, case: Case, new_serial: str, model: str, installed_at: datetime,
                      dealer: str = "") -> Equipment:
    """Put the unit that replaced the case's equipment in the file (registry.replace), for a fault that
    could not be repaired: the new unit takes the old one's customer, site, region, dealer, monitoring
    and warranty end (a replacement continues the warranty, it does not start a new one), with the
    model the arrangement agreed; the old unit is retired and names it. Both files and the case record
    it. The case keeps its equipment (the old unit: its history). Errors name the installation form's
    fields: 409 for a serial number that exists or a unit retired already, 422 for bad values or a case
    without equipment."""
    require(actor, "registry.replace")
    if case.equipment_id is None:
        raise InvalidDataError("the case names no equipment to replace", errors={
            "equipment_id": ["the case has no equipment; record it on the case before replacing it"]})
    old = db.session.scalar(select(Equipment).where(Equipment.id == case.equipment_id).with_for_update()
                            .execution_options(populate_existing=True))
    if old is None:
        raise NotFoundError(f"equipment {case.equipment_id} does not exist")
    serial, model, dealer = (new_serial or "").strip(), (model or "").strip(), (dealer or "").strip()
    errors: dict[str, list[str]] = {}
    for name, value, longest in (("new_serial_number", serial, 100), ("replacement_model", model, 100)):
        problem = text_problem(value)
        if not value:
            errors[name] = ["is required"]
        elif len(value) > longest:
            errors[name] = [f"must be at most {longest} characters long"]
        elif problem:
            errors[name] = [problem]
    if not isinstance(installed_at, datetime) or installed_at.tzinfo is None:
        errors["installed_at"] = ["must be a date and time with its UTC offset"]
    if errors:
        raise InvalidDataError("the replacement cannot be recorded", errors=errors)
    if old.retired:
        raise ConflictError(f"equipment {old.serial_number} was retired already"
                            + (f" (replaced by {old.replaced_by.serial_number})" if old.replaced_by else ""),
                            errors={"equipment_id": ["is retired already"]})
    taken = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == serial))
    conflict = ConflictError(f"equipment with serial number {serial} exists already", errors={
        "new_serial_number": [f"equipment {taken} has this serial number already" if taken is not None else
                              "another unit has this serial number already"]})
    if taken is not None:
        raise conflict
    new = Equipment(customer_id=old.customer_id, model=model, serial_number=serial, site=old.site, region=old.region,
                    installed_on=_department_day(installed_at), warranty_ends_on=old.warranty_ends_on,
                    dealer=old.dealer or dealer[:200], monitored=old.monitored, status="in_service")
    savepoint = db.session.begin_nested()
    db.session.add(new)
    try:
        db.session.flush()
    except IntegrityError:  # another request took the serial meanwhile
        savepoint.rollback()
        raise conflict from None
    savepoint.commit()
    old.status, old.retired_at, old.replaced_by = "retired", installed_at, new
    db.session.flush()
    installed = installed_at.isoformat()
    warranty = old.warranty_ends_on.isoformat() if old.warranty_ends_on else None
    _equipment_event(old, "replaced", actor=actor, case_id=case.id, payload={
        "case_number": case.number, "new_equipment_id": new.id, "new_serial_number": serial, "model": model,
        "installed_at": installed})
    _equipment_event(old, "retired", actor=actor, case_id=case.id, payload={
        "reason": "replaced", "replaced_by_id": new.id, "retired_at": installed})
    _equipment_event(new, "installed_as_replacement", actor=actor, case_id=case.id, payload={
        "case_number": case.number, "replaces_id": old.id, "replaces_serial_number": old.serial_number,
        "model": model, "installed_at": installed, "warranty_ends_on": warranty,
        "warranty": "continues the replaced unit's warranty"})
    record_event(case=case, type="equipment_replaced", actor=actor.username, payload={
        "old_equipment_id": old.id, "old_serial_number": old.serial_number, "new_equipment_id": new.id,
        "new_serial_number": serial, "model": model, "installed_at": installed, "warranty_ends_on": warranty})
    return new


# ---------------------------------------------------------------------------------------------- imports

# The columns of the CSV imports; the first ones of each are required. A customer's natural key is its
# name and region together (two customers of one name in different regions are two files); a unit's is its
# serial number. An import creates what is missing, updates what differs, and leaves the rest alone, so the
# same file imported again changes nothing.
CUSTOMER_COLUMNS = ("name", "region", "contact_name", "phone", "email", "address")
CUSTOMER_REQUIRED = ("name", "region")
EQUIPMENT_COLUMNS = ("serial_number", "model", "customer", "region", "site", "installed_on", "warranty_ends_on",
                     "dealer", "monitored")
EQUIPMENT_REQUIRED = ("serial_number", "model", "customer", "region")
_LENGTHS = {"name": 200, "region": 100, "contact_name": 200, "phone": 50, "email": 200, "address": 500,
            "serial_number": 100, "model": 100, "customer": 200, "site": 300, "dealer": 200}
_YES, _NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def _texts(n: int, raw: dict[str, str], columns: Sequence[str], required: Sequence[str],
           errors: list[RowError]) -> dict[str, str]:
    """The row's text cells, trimmed, checked for presence, length and storable text."""
    found = len(errors)
    if EXTRA_CELLS in raw:
        errors.append(RowError(n, "", "has more cells than the header has columns"))
    values: dict[str, str] = {}
    for column in columns:
        if column not in raw:
            continue
        value = raw[column].strip()
        problem = text_problem(value)
        if problem:
            errors.append(RowError(n, column, problem))
        elif column in required and not value:
            errors.append(RowError(n, column, "is required"))
        elif column in _LENGTHS and len(value) > _LENGTHS[column]:
            errors.append(RowError(n, column, f"must be at most {_LENGTHS[column]} characters long"))
        values[column] = value
    return values if len(errors) == found else {}


def _apply(record: Any, wanted: dict[str, Any]) -> dict[str, list[Any]]:
    """Set the fields of ``record`` that differ from ``wanted``; what changed, as {field: [before, after]}."""
    changes: dict[str, list[Any]] = {}
    for name, value in wanted.items():
        before = getattr(record, name)
        if before != value:
            changes[name] = [before.isoformat() if isinstance(before, date) else before,
                             value.isoformat() if isinstance(value, date) else value]
            setattr(record, name, value)
    return changes


def import_customers(*, actor: Actor, rows: Sequence[tuple[int, dict[str, str]]]) -> ImportReport:
    """Create or update customers from CSV rows (registry.manage), found by name and region; good rows are
    kept, each bad row is reported with its line and column; the same rows again change nothing."""
    require(actor, "registry.manage")
    report = ImportReport()
    seen: dict[tuple[str, str], int] = {}
    for n, raw in rows:
        values = _texts(n, raw, CUSTOMER_COLUMNS, CUSTOMER_REQUIRED, report.errors)
        if not values:
            continue
        key = (values["name"].casefold(), values["region"].casefold())
        if key in seen:
            report.errors.append(RowError(n, "name", f"the customer {values['name']} of region {values['region']} "
                                                     f"is in line {seen[key]} already"))
            continue
        seen[key] = n
        matches = list(db.session.scalars(select(Customer).where(func.lower(Customer.name) == key[0],
                                                                 func.lower(Customer.region) == key[1]).limit(2)))
        if len(matches) > 1:
            report.errors.append(RowError(n, "name", f"several customers are called {values['name']} in region "
                                                     f"{values['region']}; change them one by one"))
            continue
        wanted = {name: value for name, value in values.items()}
        if not matches:
            customer = Customer(**{"contact_name": "", "phone": "", "email": "", "address": "", **wanted},
                                created_at=now())
            db.session.add(customer)
            db.session.flush()
            _customer_event(customer, "registered", actor=actor, payload={"source": "import", "row": n, **wanted})
            report.created += 1
            continue
        # The key is matched without regard to case: the file's spelling of name and region is kept as is.
        changes = _apply(matches[0], wanted)
        if changes:
            _customer_event(matches[0], "updated", actor=actor, payload={"source": "import", "row": n,
                                                                         "changes": changes})
            report.updated += 1
        else:
            report.unchanged += 1
    db.session.flush()
    return report


def _day_cell(n: int, column: str, text: str, errors: list[RowError]) -> date | None:
    if not text:
        return None
    try:
        if not _DAY.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        errors.append(RowError(n, column, "must be a date written YYYY-MM-DD"))
        return None


def import_equipment(*, actor: Actor, rows: Sequence[tuple[int, dict[str, str]]]) -> ImportReport:
    """Create or update equipment from CSV rows (registry.manage), found by serial number; its customer
    (by name and region) must be in the registry already. Good rows are kept, each bad row is reported
    with its line and column; the same rows again change nothing."""
    require(actor, "registry.manage")
    report = ImportReport()
    seen: dict[str, int] = {}
    customers: dict[tuple[str, str], list[Customer]] = {}
    for n, raw in rows:
        values = _texts(n, raw, EQUIPMENT_COLUMNS, EQUIPMENT_REQUIRED, report.errors)
        if not values:
            continue
        found = len(report.errors)
        serial = values["serial_number"]
        if serial in seen:
            report.errors.append(RowError(n, "serial_number", f"{serial} is in line {seen[serial]} already"))
            continue
        seen[serial] = n
        installed = _day_cell(n, "installed_on", values.get("installed_on", ""), report.errors)
        warranty_end = _day_cell(n, "warranty_ends_on", values.get("warranty_ends_on", ""), report.errors)
        if installed and warranty_end and warranty_end < installed:
            report.errors.append(RowError(n, "warranty_ends_on", "must not be before installed_on"))
        monitored = values.get("monitored", "").casefold()
        if monitored not in (*_YES, *_NO):
            report.errors.append(RowError(n, "monitored", "must be yes or no"))
        key = (values["customer"].casefold(), values["region"].casefold())
        if key not in customers:
            customers[key] = list(db.session.scalars(select(Customer).where(
                func.lower(Customer.name) == key[0], func.lower(Customer.region) == key[1]).limit(2)))
        owners = customers[key]
        if not owners:
            report.errors.append(RowError(n, "customer", f"no customer {values['customer']} in region "
                                                         f"{values['region']}; import the customers first"))
        elif len(owners) > 1:
            report.errors.append(RowError(n, "customer", f"several customers are called {values['customer']} in "
                                                         f"region {values['region']}"))
        if len(report.errors) > found:
            continue
        wanted: dict[str, Any] = {"model": values["model"], "customer_id": owners[0].id, "region": owners[0].region}
        for column, value in (("site", values.get("site")), ("dealer", values.get("dealer"))):
            if value is not None:
                wanted[column] = value
        for column, day in (("installed_on", installed), ("warranty_ends_on", warranty_end)):
            if column in values:
                wanted[column] = day
        if "monitored" in values:
            wanted["monitored"] = monitored in _YES
        unit = db.session.scalar(select(Equipment).where(Equipment.serial_number == serial))
        if unit is None:
            unit = Equipment(serial_number=serial, **{"site": "", "dealer": "", "monitored": False, **wanted},
                             status="in_service")
            savepoint = db.session.begin_nested()
            db.session.add(unit)
            try:
                db.session.flush()
            except IntegrityError:  # another import took the serial meanwhile
                savepoint.rollback()
                report.errors.append(RowError(n, "serial_number", f"{serial} was registered at the same moment"))
                continue
            savepoint.commit()
            _equipment_event(unit, "registered", actor=actor, payload={
                "source": "import", "row": n, "serial_number": serial,
                **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in wanted.items()}})
            report.created += 1
            continue
        changes = _apply(unit, wanted)
        if changes:
            _equipment_event(unit, "updated", actor=actor, payload={"source": "import", "row": n,
                                                                    "changes": changes})
            report.updated += 1
        else:
            report.unchanged += 1
    db.session.flush()
    return report


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
    for unit in db.session.scalars(select(Equipment)):
        db.session.add(EquipmentEvent(equipment_id=unit.id, type="registered", occurred_at=current, actor="system",
                                      payload={"source": "demo data", "serial_number": unit.serial_number}))
    db.session.flush()
    return len(DEMO_CUSTOMERS)
