"""Spare-parts stock: receiving and counting it, and the reservations a repair holds, uses or lets go.

Every change of a stock level is one conditional UPDATE whose WHERE states what must still be true
(enough units available, never fewer on hand than reserved). On PostgreSQL a second transaction that
waited for the row re-checks that condition against the committed row, so of two reservations of the
last unit exactly one succeeds; SQLite serialises writers. The database's CHECK constraints are the
last guard. Each change appends a StockMovement naming who made it; changes for a case also go into the
case's history. Services flush; the caller's unit of work commits (or rolls all lines back)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.audit.service import record_event
from app.auth import Actor, require
from app.cases.models import Case
from app.cases.service import lock_case
from app.engine import now
from app.errors import ConflictError, InvalidDataError, NotFoundError, ServiceError
from app.extensions import db
from app.imports import EXTRA_CELLS, ImportReport, RowError
from app.inputs import LIKE_ESCAPE, like_pattern, text_problem
from app.stock.models import Part, Reservation, StockLevel, StockMovement, Warehouse

MAX_QUANTITY = 100_000  # more units than any regional store holds of one part: a typo, not a delivery
MAX_LINES = 50  # parts on one reservation
PART_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,49}\Z")
PART_NUMBER_MESSAGE = ("must be a part number: 1 to 50 letters, digits, '.', '_', '/' or '-', starting with a "
                       "letter or digit")
WAREHOUSE_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,19}\Z")


@dataclass(frozen=True)
class PartLine:
    """A part number and a quantity, as a diagnosis or a repair record names them."""

    part_number: str
    quantity: int


# ---------------------------------------------------------------------------------------------- reading

def list_warehouses(*, actor: Actor) -> list[Warehouse]:
    """Every warehouse, by region (stock.read)."""
    require(actor, "stock.read")
    return list(db.session.scalars(select(Warehouse).order_by(Warehouse.region)))


def list_parts(*, actor: Actor, text: str | None = None, page: int = 1, per_page: int = 50) -> tuple[list[Part], int]:
    """Parts of the catalogue whose number or name contains ``text``, by part number (stock.read)."""
    require(actor, "stock.read")
    query = select(Part)
    if text:
        pattern = like_pattern(text)
        query = query.where(or_(Part.part_number.ilike(pattern, escape=LIKE_ESCAPE),
                                Part.name.ilike(pattern, escape=LIKE_ESCAPE)))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(Part.part_number).offset((page - 1) * per_page).limit(per_page)))
    return items, total


def list_stock(*, actor: Actor, region: str | None = None, part_number: str | None = None,
               available_only: bool = False, page: int = 1, per_page: int = 50) -> tuple[list[StockLevel], int]:
    """Stock levels by region and part number (stock.read): what the diagnosis may ask for."""
    require(actor, "stock.read")
    query = select(StockLevel).join(StockLevel.warehouse).join(StockLevel.part)
    if region:
        query = query.where(Warehouse.region == region)
    if part_number:
        query = query.where(Part.part_number == part_number)
    if available_only:
        query = query.where(StockLevel.on_hand > StockLevel.reserved)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(Warehouse.region, Part.part_number)
                                    .offset((page - 1) * per_page).limit(per_page)))
    return items, total


def list_movements(*, actor: Actor, region: str | None = None, part_number: str | None = None,
                   case_id: int | None = None, page: int = 1, per_page: int = 50) -> tuple[list[StockMovement], int]:
    """Stock movements, newest first (stock.read)."""
    require(actor, "stock.read")
    query = select(StockMovement).join(StockMovement.stock_level).join(StockLevel.warehouse).join(StockLevel.part)
    if region:
        query = query.where(Warehouse.region == region)
    if part_number:
        query = query.where(Part.part_number == part_number)
    if case_id is not None:
        query = query.where(StockMovement.case_id == case_id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(StockMovement.id.desc()).offset((page - 1) * per_page)
                                    .limit(per_page)))
    return items, total


def case_reservations(*, actor: Actor, case_id: int) -> list[Reservation]:
    """The reservations of one case, oldest first (stock.read)."""
    require(actor, "stock.read")
    return list(db.session.scalars(select(Reservation).where(Reservation.case_id == case_id)
                                   .order_by(Reservation.id)))


# ------------------------------------------------------------------------------------ reference data

def create_warehouse(*, actor: Actor, code: str, name: str, region: str, address: str = "") -> Warehouse:
    """Set up the warehouse of a region (stock.manage); one per region, codes unique."""
    require(actor, "stock.manage")
    name, region, address = name.strip(), region.strip(), address.strip()
    errors: dict[str, list[str]] = {}
    if not WAREHOUSE_CODE.match(code):
        errors["code"] = ["must be 1 to 20 capital letters, digits, '_' or '-'"]
    if not name:
        errors["name"] = ["must not be empty"]
    if not region:
        errors["region"] = ["must not be empty"]
    if errors:
        raise InvalidDataError("the warehouse cannot be set up", errors=errors)
    taken = {"code": db.session.scalar(select(Warehouse.id).where(Warehouse.code == code)),
             "region": db.session.scalar(select(Warehouse.id).where(Warehouse.region == region))}
    if taken["code"] is not None:
        raise ConflictError(f"warehouse {code} exists already", errors={"code": ["is taken"]})
    if taken["region"] is not None:
        raise ConflictError(f"region {region} has a warehouse already",
                            errors={"region": ["has a warehouse already"]})
    warehouse = Warehouse(code=code, name=name, region=region, address=address, created_at=now())
    _insert(warehouse, f"warehouse {code} or a warehouse for region {region} was set up at the same moment",
            errors={"code": ["is taken, or the region has a warehouse already"]})
    return warehouse


def create_part(*, actor: Actor, part_number: str, name: str, unit: str = "pcs") -> Part:
    """Add a part to the catalogue (stock.manage)."""
    require(actor, "stock.manage")
    name, unit = name.strip(), unit.strip()
    errors: dict[str, list[str]] = {}
    if not PART_NUMBER.match(part_number):
        errors["part_number"] = [PART_NUMBER_MESSAGE]
    if not name:
        errors["name"] = ["must not be empty"]
    if not unit:
        errors["unit"] = ["must not be empty"]
    if errors:
        raise InvalidDataError("the part cannot be added", errors=errors)
    if _part(part_number) is not None:
        raise ConflictError(f"part {part_number} exists already", errors={"part_number": ["is taken"]})
    part = Part(part_number=part_number, name=name, unit=unit, created_at=now())
    _insert(part, f"part {part_number} was added at the same moment", errors={"part_number": ["is taken"]})
    return part


def _insert(row: Any, conflict: str, *, errors: dict[str, Any]) -> None:
    """Insert ``row`` in a savepoint: a unique value another request took meanwhile is a 409, not a 500."""
    savepoint = db.session.begin_nested()
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        savepoint.rollback()
        raise ConflictError(conflict, errors=errors) from None
    savepoint.commit()


# ------------------------------------------------------------------------------- receiving, counting

def receive_stock(*, actor: Actor, region: str, part_number: str, quantity: int, note: str = "") -> StockLevel:
    """Book units of a part into the region's warehouse (stock.manage): a delivery."""
    require(actor, "stock.manage")
    _check_quantity(quantity, "quantity")
    level = _level_for_update(_warehouse_of(region, field="region"), _known_part(part_number))
    current = now()
    on_hand, reserved = _change(level, on_hand=StockLevel.on_hand + quantity, updated_at=current)
    _movement(level, "received", quantity, on_hand, reserved, actor=actor, note=note)
    return level


def count_stock(*, actor: Actor, region: str, part_number: str, on_hand: int, note: str) -> StockLevel:
    """Set what a stocktake counted (stock.manage); never below what is reserved, and the note says why."""
    require(actor, "stock.manage")
    if not 0 <= on_hand <= MAX_QUANTITY:
        raise InvalidDataError("the count cannot be booked", errors={"on_hand": [f"must be from 0 to {MAX_QUANTITY}"]})
    if not note.strip():
        raise InvalidDataError("the count cannot be booked",
                               errors={"note": ["say why the stock changes (count sheet, damage, loss)"]})
    level = _level_for_update(_warehouse_of(region, field="region"), _known_part(part_number))
    before = level.on_hand
    changed = _try_change(level, StockLevel.reserved <= on_hand, on_hand=on_hand, updated_at=now())
    if changed is None:
        raise ConflictError(f"{level.reserved} of part {part_number} are reserved for cases in {region}; "
                            f"the count cannot be below that",
                            errors={"on_hand": [f"must be at least the {level.reserved} reserved"]})
    _movement(level, "adjusted", on_hand - before, *changed, actor=actor, note=note)
    return level


# --------------------------------------------------------------------------------- for a case's repair

def case_region(case: Case) -> str | None:
    """The service region whose warehouse supplies a case: its equipment's, else its customer's."""
    if case.equipment is not None:
        return case.equipment.region
    return case.customer.region if case.customer is not None else None


def parse_lines(rows: Iterable[Any], *, field: str = "lines") -> list[PartLine]:
    """Part lines from JSON-ish rows ({part_number, quantity}), with errors named by row and field."""
    lines: list[PartLine] = []
    errors: dict[str, Any] = {}
    rows = list(rows)
    if len(rows) > MAX_LINES:
        raise InvalidDataError("too many part lines", errors={field: [f"at most {MAX_LINES} lines"]})
    for n, row in enumerate(rows):
        row_errors: dict[str, list[str]] = {}
        if not isinstance(row, dict):
            errors[str(n)] = ["must be an object with part_number and quantity"]
            continue
        number, quantity = row.get("part_number"), row.get("quantity")
        if not isinstance(number, str) or not PART_NUMBER.match(number):
            row_errors["part_number"] = [PART_NUMBER_MESSAGE]
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            row_errors["quantity"] = [f"must be a whole number from 1 to {MAX_QUANTITY}"]
        if row_errors:
            errors[str(n)] = row_errors
        else:
            lines.append(PartLine(str(number), int(quantity)))  # type: ignore[arg-type]  # checked above
    if errors:
        raise InvalidDataError("the part lines are not valid", errors={field: errors})
    return lines


@dataclass(frozen=True)
class _Wanted:
    """Part lines matched to the stock levels of the case's region's warehouse."""

    region: str
    warehouse: Warehouse
    quantities: dict[str, int]  # part number -> units wanted (duplicate lines added up)
    position: dict[str, int]  # part number -> its first line, for naming it in errors
    levels: dict[str, StockLevel]


def _wanted(case: Case, lines: Sequence[PartLine], field: str) -> _Wanted:
    """The levels that would supply ``lines`` for ``case``, or a refusal naming the first line not stocked."""
    region = case_region(case)
    if region is None:
        raise InvalidDataError("the case has no equipment or customer, so no region's stock can supply it",
                               errors={field: ["the case has no region"]})
    warehouse = _warehouse_of(region, field=field)
    quantities: dict[str, int] = {}
    for line in lines:
        quantities[line.part_number] = quantities.get(line.part_number, 0) + line.quantity
    position = {line.part_number: n for n, line in reversed(list(enumerate(lines)))}
    levels: dict[str, StockLevel] = {}
    missing: dict[str, Any] = {}
    for number in quantities:
        level = _existing_level(warehouse, number)
        if level is None:
            missing[str(position[number])] = {"part_number": [f"the {warehouse.name} does not stock part {number}"]}
        else:
            levels[number] = level
    if missing:
        raise ConflictError(f"the parts are not all stocked in region {region}", errors={field: missing})
    return _Wanted(region, warehouse, quantities, position, levels)


def _short(wanted: _Wanted, number: str, level: StockLevel, field: str) -> ConflictError:
    quantity = wanted.quantities[number]
    return ConflictError(
        f"only {level.available} of part {number} {'is' if level.available == 1 else 'are'} available in "
        f"the {wanted.warehouse.name}; {quantity} {'was' if quantity == 1 else 'were'} asked for",
        errors={field: {str(wanted.position[number]): {"quantity": [
            f"only {level.available} available in region {wanted.region}"]}}})


def check_available(*, actor: Actor, case: Case, lines: Sequence[PartLine], field: str = "lines") -> dict[str, int]:
    """Whether the case's region stocks every line and has it available now, reserving nothing
    (stock.read): {part number: units available}; a refusal names the line (409)."""
    require(actor, "stock.read")
    wanted = _wanted(case, lines, field)
    for number, level in wanted.levels.items():
        if level.available < wanted.quantities[number]:
            raise _short(wanted, number, level, field)
    return {number: level.available for number, level in wanted.levels.items()}


def reserve_parts(*, actor: Actor, case: Case, lines: Sequence[PartLine], field: str = "lines") -> list[Reservation]:
    """Hold exactly these parts for the case in its region's warehouse (stock.reserve; the caller holds the
    case's lock). All lines or none: a line that is not in stock refuses the whole reservation (409, naming
    the line), and the caller's unit of work rolls back the lines before it."""
    require(actor, "stock.reserve")
    if not lines:
        return []
    wanted = _wanted(case, lines, field)
    current = now()
    reservations: list[Reservation] = []
    # One order for every transaction (by level id), so two multi-line reservations cannot deadlock.
    for number, level in sorted(wanted.levels.items(), key=lambda kv: kv[1].id):
        quantity = wanted.quantities[number]
        changed = _try_change(level, StockLevel.on_hand - StockLevel.reserved >= quantity,
                              reserved=StockLevel.reserved + quantity, updated_at=current)
        if changed is None:
            raise _short(wanted, number, level, field)
        reservation = Reservation(case_id=case.id, stock_level=level, stock_level_id=level.id, quantity=quantity,
                                  state="held", created_at=current, created_by=actor.username)
        db.session.add(reservation)
        db.session.flush()
        _movement(level, "reserved", quantity, *changed, actor=actor, case_id=case.id, reservation=reservation)
        reservations.append(reservation)
    record_event(case=case, type="parts_reserved", actor=actor.username, payload={
        "warehouse": wanted.warehouse.code, "region": wanted.region,
        "lines": [_reservation_line(r) for r in reservations]})
    return reservations


def reserve_for_case(*, actor: Actor, case_id: int, lines: Sequence[PartLine]) -> list[Reservation]:
    """Lock an open case and reserve parts for it (stock.reserve): the API's and the pages' way in."""
    require(actor, "stock.reserve")
    return reserve_parts(actor=actor, case=_open_case(case_id), lines=lines)


def use_for_case(*, actor: Actor, case_id: int, used: Sequence[PartLine]) -> list[Reservation]:
    """Lock an open case and settle its held parts (stock.use)."""
    require(actor, "stock.use")
    return use_parts(actor=actor, case=_open_case(case_id), used=used, field="used")


def release_for_case(*, actor: Actor, case_id: int, reason: str) -> list[Reservation]:
    """Lock a case and release its held parts (stock.use); allowed on a closed case, which holds none in
    the normal course but may after an interrupted repair."""
    require(actor, "stock.use")
    return release_parts(actor=actor, case=lock_case(case_id), reason=reason)


def _open_case(case_id: int) -> Case:
    case = lock_case(case_id)
    if case.status != "open":
        raise ConflictError(f"case {case.number} is {case.status}; parts are reserved and used for open cases")
    return case


def use_parts(*, actor: Actor, case: Case, used: Sequence[PartLine], field: str = "parts_used") -> list[Reservation]:
    """Settle the case's held reservations after the repair (stock.use; the caller holds the case's lock):
    the units the repair record lists are consumed (they leave the stock), the rest go back on the shelf.
    A part the record lists beyond what was reserved for it is refused, naming the line."""
    require(actor, "stock.use")
    held = _held(case)
    by_number: dict[str, list[Reservation]] = {}
    for reservation in held:
        by_number.setdefault(reservation.stock_level.part.part_number, []).append(reservation)
    wanted: dict[str, int] = {}
    errors: dict[str, Any] = {}
    for n, line in enumerate(used):
        wanted[line.part_number] = wanted.get(line.part_number, 0) + line.quantity
        have = sum(r.quantity for r in by_number.get(line.part_number, []))
        if wanted[line.part_number] > have:
            errors[str(n)] = {"quantity": [f"only {have} of part {line.part_number} "
                                           f"{'was' if have == 1 else 'were'} reserved for this case"]}
    if errors:
        raise InvalidDataError("the parts used do not match the reservation", errors={field: errors})
    current = now()
    for number, reservations in sorted(by_number.items()):
        left = wanted.get(number, 0)
        for reservation in reservations:
            take = min(left, reservation.quantity)
            left -= take
            _settle(reservation, consumed=take, actor=actor, at=current)
    if held:
        record_event(case=case, type="parts_used", actor=actor.username, payload={
            "lines": [_reservation_line(r) for r in held]})
    return held


def release_parts(*, actor: Actor, case: Case, reason: str) -> list[Reservation]:
    """Put every part still held for the case back on the shelf (stock.use; the caller holds the case's
    lock): the repair went another way (replacement, quote declined) or the case closed."""
    require(actor, "stock.use")
    held = _held(case)
    current = now()
    for reservation in held:
        _settle(reservation, consumed=0, actor=actor, at=current, note=reason)
    if held:
        record_event(case=case, type="parts_released", actor=actor.username, payload={
            "reason": reason, "lines": [_reservation_line(r) for r in held]})
    return held


# ------------------------------------------------------------------------------------------- helpers

def _check_quantity(quantity: int, field: str) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidDataError("the quantity is not valid",
                               errors={field: [f"must be a whole number from 1 to {MAX_QUANTITY}"]})


def _part(part_number: str) -> Part | None:
    return db.session.scalar(select(Part).where(Part.part_number == part_number))


def _known_part(part_number: str, field: str = "part_number") -> Part:
    part = _part(part_number) if PART_NUMBER.match(part_number) else None
    if part is None:
        raise NotFoundError(f"part {part_number!r} is not in the catalogue", errors={field: ["unknown part"]})
    return part


def _warehouse_of(region: str, *, field: str) -> Warehouse:
    warehouse = db.session.scalar(select(Warehouse).where(Warehouse.region == region))
    if warehouse is None:
        raise InvalidDataError(f"no warehouse supplies region {region!r}",
                               errors={field: [f"region {region!r} has no spare-parts warehouse"]})
    return warehouse


def _existing_level(warehouse: Warehouse, part_number: str) -> StockLevel | None:
    return db.session.scalar(select(StockLevel).join(StockLevel.part)
                             .where(StockLevel.warehouse_id == warehouse.id, Part.part_number == part_number))


def _level_for_update(warehouse: Warehouse, part: Part) -> StockLevel:
    """The stock level of a part in a warehouse, created empty when the part was never stocked there."""
    level = db.session.scalar(select(StockLevel).where(StockLevel.warehouse_id == warehouse.id,
                                                       StockLevel.part_id == part.id))
    if level is not None:
        return level
    nested = db.session.begin_nested()  # two first deliveries at once: the loser reads the winner's row
    level = StockLevel(warehouse=warehouse, part=part, warehouse_id=warehouse.id, part_id=part.id,
                       on_hand=0, reserved=0, updated_at=now())
    db.session.add(level)
    try:
        db.session.flush()
    except IntegrityError:
        nested.rollback()
        found = db.session.scalar(select(StockLevel).where(StockLevel.warehouse_id == warehouse.id,
                                                           StockLevel.part_id == part.id))
        if found is None:
            raise
        return found
    nested.commit()
    return level


def _try_change(level: StockLevel, condition: Any, **values: Any) -> tuple[int, int] | None:
    """Apply ``values`` to the level where ``condition`` still holds; (on_hand, reserved) afterwards, or None
    (and the level refreshed, for the refusal's numbers) when it no longer held."""
    row = db.session.execute(update(StockLevel).where(StockLevel.id == level.id, condition).values(**values)
                             .returning(StockLevel.on_hand, StockLevel.reserved)
                             .execution_options(synchronize_session=False)).first()
    db.session.refresh(level)
    if row is None:
        return None
    return int(row[0]), int(row[1])


def _change(level: StockLevel, **values: Any) -> tuple[int, int]:
    changed = _try_change(level, StockLevel.id == level.id, **values)
    if changed is None:  # pragma: no cover - the row exists and the condition is trivially true
        raise ConflictError("the stock level changed under us; try again")
    return changed


def _movement(level: StockLevel, kind: str, quantity: int, on_hand: int, reserved: int, *, actor: Actor,
              case_id: int | None = None, reservation: Reservation | None = None, note: str = "") -> StockMovement:
    movement = StockMovement(stock_level_id=level.id, kind=kind, quantity=quantity, on_hand_after=on_hand,
                             reserved_after=reserved, case_id=case_id,
                             reservation_id=reservation.id if reservation else None,
                             actor=actor.username, occurred_at=now(), note=note[:500])
    db.session.add(movement)
    return movement


def _held(case: Case) -> list[Reservation]:
    """The case's held reservations; they change only under the case's lock, which the caller holds."""
    return list(db.session.scalars(select(Reservation).where(Reservation.case_id == case.id,
                                                             Reservation.state == "held")
                                   .order_by(Reservation.id)))


def _settle(reservation: Reservation, *, consumed: int, actor: Actor, at: Any, note: str = "") -> None:
    """End a held reservation: ``consumed`` units leave the stock, the rest are released."""
    level = reservation.stock_level
    returned = reservation.quantity - consumed
    on_hand, reserved = _change(level, on_hand=StockLevel.on_hand - consumed,
                                reserved=StockLevel.reserved - reservation.quantity, updated_at=at)
    if consumed:
        _movement(level, "consumed", consumed, on_hand, reserved + returned if returned else reserved,
                  actor=actor, case_id=reservation.case_id, reservation=reservation, note=note)
    if returned:
        _movement(level, "released", returned, on_hand, reserved, actor=actor, case_id=reservation.case_id,
                  reservation=reservation, note=note)
    reservation.consumed = consumed
    reservation.state = "consumed" if consumed else "released"
    reservation.ended_at, reservation.ended_by = at, actor.username


def _reservation_line(reservation: Reservation) -> dict[str, Any]:
    return {"reservation_id": reservation.id, "part_number": reservation.stock_level.part.part_number,
            "quantity": reservation.quantity, "consumed": reservation.consumed, "state": reservation.state}


# ------------------------------------------------------------------------------------------ CSV import

STOCK_COLUMNS = ("region", "part_number", "part_name", "on_hand")
STOCK_REQUIRED = STOCK_COLUMNS
STOCKTAKE_NOTE = "stocktake import"


def import_stock(*, actor: Actor, rows: Sequence[tuple[int, dict[str, str]]]) -> ImportReport:
    """Book a stocktake from CSV rows (stock.manage): each row sets what the region's warehouse holds of a
    part (a count, never below what is reserved), adding the part to the catalogue when it is missing. Good
    rows are kept, each bad row is reported with its line and column; the same file again changes nothing."""
    require(actor, "stock.manage")
    report = ImportReport()
    seen: dict[tuple[str, str], int] = {}
    for n, raw in rows:
        found = len(report.errors)
        if EXTRA_CELLS in raw:
            report.errors.append(RowError(n, "", "has more cells than the header has columns"))
        region, number, name, count = (raw.get(c, "").strip() for c in STOCK_COLUMNS)
        for column, value in (("region", region), ("part_number", number), ("part_name", name)):
            if problem := text_problem(value):
                report.errors.append(RowError(n, column, problem))
        if not region:
            report.errors.append(RowError(n, "region", "is required"))
        if not PART_NUMBER.match(number):
            report.errors.append(RowError(n, "part_number", PART_NUMBER_MESSAGE))
        if len(name) > 200:
            report.errors.append(RowError(n, "part_name", "must be at most 200 characters long"))
        on_hand = int(count) if re.fullmatch(r"[0-9]{1,7}", count) else -1
        if not 0 <= on_hand <= MAX_QUANTITY:
            report.errors.append(RowError(n, "on_hand", f"must be a whole number from 0 to {MAX_QUANTITY}"))
        if len(report.errors) > found:
            continue
        if (region, number) in seen:
            report.errors.append(RowError(n, "part_number", f"{number} of region {region} is in line "
                                                            f"{seen[(region, number)]} already"))
            continue
        seen[(region, number)] = n
        savepoint = db.session.begin_nested()
        try:
            outcome = _count_row(actor, region=region, number=number, name=name, on_hand=on_hand)
        except ServiceError as exc:
            savepoint.rollback()
            fields = exc.errors or {"": [exc.message]}
            for column, messages in fields.items():
                column = {"name": "part_name", "note": ""}.get(column, column)
                report.errors.extend(RowError(n, column, str(m)) for m in messages)
            continue
        savepoint.commit()
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _count_row(actor: Actor, *, region: str, number: str, name: str, on_hand: int) -> str:
    """One stocktake row: 'created' (a part or level new to the warehouse), 'updated' or 'unchanged'."""
    warehouse = _warehouse_of(region, field="region")
    part = _part(number)
    created = part is None
    if part is None:
        if not name:
            raise InvalidDataError(f"part {number} is not in the catalogue",
                                   errors={"part_name": [f"part {number} is not in the catalogue: name it to add it"]})
        part = create_part(actor=actor, part_number=number, name=name)
    level = _existing_level(warehouse, number)
    if level is None:
        created = True
        level = _level_for_update(warehouse, part)
    if level.on_hand == on_hand:
        return "created" if created else "unchanged"
    count_stock(actor=actor, region=region, part_number=number, on_hand=on_hand, note=STOCKTAKE_NOTE)
    return "created" if created else "updated"
