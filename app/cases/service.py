"""Opening, reading and storing cases: every load → run → store of an engine instance goes through here."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, union
from sqlalchemy.orm import selectinload, undefer
from sqlalchemy.orm.attributes import flag_modified

from app.audit.models import CaseEvent
from app.audit.service import record_event
from app.auth import Actor, require
from app.cases.models import CHANNELS, PRIORITIES, Case, CaseLink
from app.engine import (
    Catalogue,
    EngineError,
    ensure_utc,
    now,
)
from app.errors import InvalidDataError, NotFoundError
from app.extensions import db
from app.inputs import ID_MESSAGE, LIKE_ESCAPE, MAX_ID, like_pattern
from app.processes.models import ProcessVersion
from app.registry.models import Customer, Equipment


@dataclass(frozen=True)
class NewCase:
    """A case row just added (flushed, numbered), with what its process starts with."""

    case: Case
    version: ProcessVersion
    start_data: dict[str, Any]
    opened: tuple[str, dict[str, Any]]  # the case_opened event (type, payload)


def new_case(*, actor: Actor, version: ProcessVersion | None, process_id: str, case_prefix: str,
             reported_at: datetime, channel: str, description: str, title: str | None = None,
             priority: str = "normal", customer_id: int | None = None, equipment_id: int | None = None,
             data: dict[str, Any] | None = None) -> NewCase:
    """Check what opening a case needs and add its row on the latest version of the process (cases.open; the
    system opens the cases of recurring processes): the flow that opens it then starts the process."""
    require(actor, "cases.open")
    if version is None:
        raise InvalidDataError(f"process '{process_id}' is not deployed",
                               errors={"process": [f"unknown process '{process_id}'"]})
    if not Catalogue.from_dict(version.catalogue).startable:
        raise InvalidDataError(f"process '{process_id}' is not opened on its own: other processes call it",
                               errors={"process": [f"process '{process_id}' is only run by the processes that call "
                                                   "it (startable=false)"]})
    errors: dict[str, list[str]] = {}
    if channel not in CHANNELS:
        errors["channel"] = [f"must be one of {', '.join(CHANNELS)}"]
    if priority not in PRIORITIES:
        errors["priority"] = [f"must be one of {', '.join(PRIORITIES)}"]
    current = now()
    try:
        reported_at = ensure_utc(reported_at)
    except ValueError:
        errors["reported_at"] = ["must include a UTC offset"]
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        errors["reported_at"] = ["is out of range once converted to UTC"]
    else:
        max_age = timedelta(days=current_app.config["NOTICE_MAX_AGE_DAYS"])
        if reported_at > current:
            errors["reported_at"] = ["cannot be in the future"]
        elif current - reported_at > max_age:
            errors["reported_at"] = [f"is more than {max_age.days} days in the past; enter when the customer "
                                     "actually gave notice"]
    for name, value in (("customer_id", customer_id), ("equipment_id", equipment_id)):
        if value is not None and not 1 <= value <= MAX_ID:  # beyond the id column: no row, and no query
            errors[name] = [ID_MESSAGE]
    if errors:
        raise InvalidDataError("the case cannot be opened", errors=errors)
    customer = db.session.get(Customer, customer_id) if customer_id is not None else None
    if customer_id is not None and customer is None:
        errors["customer_id"] = [f"customer {customer_id} does not exist"]
    equipment = db.session.get(Equipment, equipment_id) if equipment_id is not None else None
    if equipment_id is not None and equipment is None:
        errors["equipment_id"] = [f"equipment {equipment_id} does not exist"]
    if equipment is not None and customer is not None and equipment.customer_id != customer.id:
        errors["equipment_id"] = ["this equipment belongs to another customer"]
    if errors:
        raise InvalidDataError("the case cannot be opened", errors=errors)
    if equipment is not None and customer is None:
        customer = equipment.customer

    case = Case(
        process_id=process_id, process_version=version, process_version_number=version.version, status="open",
        title=(title or next(iter(description.strip().splitlines()), "") or process_id)[:200],
        description=description, channel=channel, priority=priority,
        customer=customer, equipment=equipment,
        reported_at=reported_at, opened_at=current, opened_by=actor.username, updated_at=current,
        state_json="", summary={}, event_count=0,
    )
    db.session.add(case)
    db.session.flush()  # the id makes the number; the row is not touched again until the commit
    number = f"{case_prefix}-{current.year}-{case.id:06d}"
    start_data = {
        **(data or {}),
        "case_number": number, "reported_at": reported_at.isoformat(), "channel": channel,
        "priority": priority, "description": description,
        "customer": {"id": customer.id, "name": customer.name, "region": customer.region,
                     "phone": customer.phone, "email": customer.email} if customer else None,
        "equipment": equipment.snapshot() if equipment else None,
    }
    opened = ("case_opened", {
        "number": number, "process_id": process_id, "process_version": version.version,
        "process_version_id": version.id, "process_sha256": version.sha256,
        "reported_at": reported_at.isoformat(), "channel": channel, "priority": priority,
        "customer_id": case.customer_id, "equipment_id": case.equipment_id, "start_data": start_data,
    })
    case.number = number
    return NewCase(case=case, version=version, start_data=start_data, opened=opened)


def get_case(case_id: int, *, actor: Actor) -> Case:
    """A case by id (cases.read; NotFoundError if unknown)."""
    require(actor, "cases.read")
    case = db.session.get(Case, case_id)
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    return case


def lock_case(case_id: int) -> Case:
    """Load a case for writing, with its engine state: row-locked on PostgreSQL, version-checked everywhere."""
    case = db.session.scalar(select(Case).where(Case.id == case_id).options(undefer(Case.state_json))
                             .with_for_update().execution_options(populate_existing=True))
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist")
    _take_write_lock(case)
    return case


def _take_write_lock(case: Case) -> None:
    if db.session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: take the database write lock now with a version-checked UPDATE,
        # so a concurrent writer fails fast with StaleDataError (409) before it does any work.
        case.updated_at = now()
        flag_modified(case, "updated_at")  # an UPDATE even within one clock tick
        db.session.flush()


def list_cases(*, actor: Actor, status: str | None = None, process_id: str | None = None, text: str | None = None,
               customer_id: int | None = None, equipment_id: int | None = None,
               page: int = 1, per_page: int = 25) -> tuple[list[Case], int]:
    """Cases matching the filters, newest first, one page at a time, with the total count (cases.read)."""
    require(actor, "cases.read")
    query = select(Case)
    if status:
        query = query.where(Case.status == status)
    if process_id:
        query = query.where(Case.process_id == process_id)
    if customer_id:
        query = query.where(Case.customer_id == customer_id)
    if equipment_id:
        query = query.where(Case.equipment_id == equipment_id)
    if text:
        query = query.where(Case.id.in_(_cases_matching(text)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.options(selectinload(Case.process_version))
                                    .order_by(Case.opened_at.desc(), Case.id.desc())
                                    .offset((page - 1) * per_page).limit(per_page)))
    return items, total


def _cases_matching(text: str) -> Any:
    """The ids of cases whose number, title, description, customer name or equipment serial contains
    ``text``, case-insensitively.

    One branch per table, joined by UNION, so each branch can use its own index: on PostgreSQL the trigram
    GIN indexes (ILIKE '%...%'), then the cases' customer and equipment indexes; an OR across the joined
    tables would leave the planner nothing but a scan of every case. SQLite compiles ILIKE to a plain
    ``lower() LIKE lower()``."""
    pattern = like_pattern(text)

    def contains(column: Any) -> Any:
        return column.ilike(pattern, escape=LIKE_ESCAPE)

    return union(
        select(Case.id).where(or_(contains(Case.number), contains(Case.title), contains(Case.description))),
        select(Case.id).where(Case.customer_id.in_(select(Customer.id).where(contains(Customer.name)))),
        select(Case.id).where(Case.equipment_id.in_(select(Equipment.id).where(contains(Equipment.serial_number)))),
    )


def open_cases_of_equipment(*, actor: Actor, equipment_ids: Collection[int]) -> dict[int, list[Case]]:
    """The open cases of each piece of equipment, oldest first (cases.read): intake warns before a second
    case is opened for equipment that already has one."""
    require(actor, "cases.read")
    found: dict[int, list[Case]] = {}
    if not equipment_ids:
        return found
    for case in db.session.scalars(select(Case).where(Case.equipment_id.in_(sorted(set(equipment_ids))),
                                                      Case.status == "open")
                                   .order_by(Case.opened_at, Case.id)):
        if case.equipment_id is not None:  # always, by the filter; says so to the type checker
            found.setdefault(case.equipment_id, []).append(case)
    return found


__all__ = ["EngineError", "NewCase", "get_case", "latest_event", "link_cases", "linked_cases", "list_cases",
           "lock_case", "new_case", "open_cases_of_equipment"]


def latest_event(*, actor: Actor, type: str, process_id: str, before_case_id: int) -> CaseEvent | None:
    """The latest event of ``type`` in an earlier case of the process (cases.read): what the last quarter's
    return visits drew, say."""
    require(actor, "cases.read")
    return db.session.scalar(select(CaseEvent).join(Case, Case.id == CaseEvent.case_id)
                             .where(CaseEvent.type == type, Case.process_id == process_id,
                                    Case.id < before_case_id).order_by(CaseEvent.id.desc()).limit(1))


def link_cases(*, actor: Actor, source: Case, target: Case, kind: str) -> CaseLink:
    """Link ``target`` to the case ``source`` it was opened from (cases.open; the caller holds the source's
    lock and just opened the target), with a ``case_linked`` event in both histories."""
    require(actor, "cases.open")
    link = CaseLink(from_case_id=source.id, to_case_id=target.id, kind=kind, created_at=now(),
                    created_by=actor.username)
    db.session.add(link)
    record_event(case=source, type="case_linked", actor=actor.username, payload={
        "direction": "opened", "case_id": target.id, "number": target.number, "kind": kind})
    record_event(case=target, type="case_linked", actor=actor.username, payload={
        "direction": "opened_from", "case_id": source.id, "number": source.number, "kind": kind})
    return link


def linked_cases(*, actor: Actor, case_id: int) -> list[tuple[CaseLink, Case]]:
    """The cases linked to a case, either way, oldest link first, each with the other case (cases.read)."""
    require(actor, "cases.read")
    links = list(db.session.scalars(select(CaseLink).where(or_(CaseLink.from_case_id == case_id,
                                                                CaseLink.to_case_id == case_id))
                                    .order_by(CaseLink.id)))
    others = {c.id: c for c in db.session.scalars(select(Case).where(Case.id.in_(
        [link.to_case_id if link.from_case_id == case_id else link.from_case_id for link in links])))}
    return [(link, others[link.to_case_id if link.from_case_id == case_id else link.from_case_id]) for link in links]
