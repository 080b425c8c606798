"""Recording the daily operating data monitored equipment sends, and reading it back by month with its
anomalies (plan 5.4: the monthly inspection reviews it; an anomaly opens a fault case).

One row per equipment and calendar day. Sending a day again with the same values changes nothing (a feed
may resend after a timeout); different values for a recorded day are refused (409, naming the day) unless
the sender says ``correct``, which overwrites the day and records who corrected it. Out-of-range values
are refused with the reading and the field named; nothing of a refused request is stored."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import Actor, require
from app.engine import now
from app.errors import ConflictError, InvalidDataError, NotFoundError
from app.extensions import db
from app.inputs import MAX_ID, nest_errors
from app.readings.models import MEASURES, Reading
from app.readings.rules import PLAUSIBLE, Finding, Rule, findings, parse_rules
from app.registry.models import Equipment
from app.registry.service import department_today

MAX_READINGS = 1000  # days in one request: nearly three years of one unit, or a day of a thousand
MAX_AGE_DAYS = 400  # a feed catching up after downtime; older data is a wrong date
ALARM_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,19}\Z")
MAX_ALARMS = 50


@dataclass(frozen=True)
class DayValues:
    """One day's values as sent, checked."""

    day: date
    values: dict[str, Any]


@dataclass
class RecordReport:
    """What one delivery did: days created, days already recorded with the same values, days corrected."""

    created: list[Reading] = field(default_factory=list)
    unchanged: list[Reading] = field(default_factory=list)
    corrected: list[Reading] = field(default_factory=list)


def rules() -> tuple[Rule, ...]:
    """The anomaly rules in force (SERVICECASE_READING_RULES over the defaults)."""
    return parse_rules(current_app.config.get("READING_RULES"))


Problems = list[tuple[tuple[str, ...], str]]  # (path in the request, message)


def check_day(raw: Any, *, today: date, where: tuple[str, ...]) -> tuple[DayValues | None, Problems]:
    """One reading from JSON-ish input, or the problems (path, message) that refuse it."""
    problems: list[tuple[tuple[str, ...], str]] = []
    if not isinstance(raw, dict):
        return None, [(where, "must be an object with day, the measures and alarm_codes")]
    unknown = sorted(set(raw) - {"day", *MEASURES, "alarm_codes"})
    for name in unknown:
        problems.append(((*where, str(name)), "unknown field"))
    day: date | None = None
    text = raw.get("day")
    try:
        day = date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        problems.append(((*where, "day"), "must be a date written YYYY-MM-DD"))
    elif day > today:
        problems.append(((*where, "day"), f"is in the future (today is {today.isoformat()})"))
    elif (today - day).days > MAX_AGE_DAYS:
        problems.append(((*where, "day"), f"is more than {MAX_AGE_DAYS} days ago"))
    values: dict[str, Any] = {}
    for measure in MEASURES:
        value = raw.get(measure)
        low, high = PLAUSIBLE[measure]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            problems.append(((*where, measure), "must be a number" if value is not None else "is required"))
        elif not low <= value <= high:
            problems.append(((*where, measure), f"must be from {low:g} to {high:g}; {value:g} is not a reading "
                                                "a UPS can report"))
        else:
            values[measure] = float(value)
    alarms = raw.get("alarm_codes", [])
    if not isinstance(alarms, list) or len(alarms) > MAX_ALARMS or not all(
            isinstance(code, str) and ALARM_CODE.match(code) for code in alarms):
        problems.append(((*where, "alarm_codes"), f"must be a list of at most {MAX_ALARMS} alarm codes (1 to 20 "
                                                  "letters, digits, '_', '.', '-')"))
    else:
        values["alarm_codes"] = sorted(set(alarms))
    if problems or day is None:
        return None, problems
    return DayValues(day, values), []


def _problems_to_errors(problems: Problems) -> dict[str, Any]:
    return nest_errors(list(problems))


def record_readings(*, actor: Actor, equipment_id: int, readings: Sequence[Any], correct: bool = False) -> RecordReport:
    """Store the days one piece of monitored equipment sent (readings.write): all of them or, when one is
    refused, none."""
    require(actor, "readings.write")
    equipment = _monitored(equipment_id)
    if not readings:
        raise InvalidDataError("no readings sent", errors={"readings": ["send at least one day"]})
    if len(readings) > MAX_READINGS:
        raise InvalidDataError("too many readings", errors={"readings": [f"at most {MAX_READINGS} days at once"]})
    today = department_today()
    days: list[DayValues] = []
    problems: list[tuple[tuple[str, ...], str]] = []
    seen: dict[date, int] = {}
    for n, raw in enumerate(readings):
        checked, found = check_day(raw, today=today, where=("readings", str(n)))
        problems.extend(found)
        if checked is not None:
            if checked.day in seen:
                problems.append((("readings", str(n), "day"), f"{checked.day.isoformat()} is sent twice (also "
                                                              f"reading {seen[checked.day]})"))
            seen[checked.day] = n
            days.append(checked)
    if problems:
        raise InvalidDataError("the readings are not valid", errors=_problems_to_errors(problems))
    return _store(actor, equipment, days, correct=correct, positions=seen)


def _store(actor: Actor, equipment: Equipment, days: Sequence[DayValues], *, correct: bool,
           positions: dict[date, int], path: tuple[str, ...] = ("readings",)) -> RecordReport:
    report = RecordReport()
    existing = {r.day: r for r in db.session.scalars(select(Reading).where(
        Reading.equipment_id == equipment.id, Reading.day.in_([d.day for d in days])))}
    current = now()
    conflicts: list[tuple[tuple[str, ...], str]] = []
    for day in days:
        row = existing.get(day.day)
        if row is None:
            row = Reading(equipment_id=equipment.id, day=day.day, received_at=current, received_by=actor.username,
                          **day.values)
            if not _insert(row):
                row = db.session.scalar(select(Reading).where(Reading.equipment_id == equipment.id,
                                                              Reading.day == day.day))
                assert row is not None  # the concurrent insert that beat ours
            else:
                report.created.append(row)
                continue
        if row.values() == day.values:
            report.unchanged.append(row)
        elif correct:
            for name, value in day.values.items():
                setattr(row, name, value)
            row.corrected_at, row.corrected_by = current, actor.username
            report.corrected.append(row)
        else:
            conflicts.append(((*path, str(positions[day.day]), "day"),
                              f"{day.day.isoformat()} is recorded already with other values; send correct=true "
                              "to overwrite it"))
    if conflicts:
        raise ConflictError("some days are recorded already with other values", errors=_problems_to_errors(conflicts))
    db.session.flush()
    return report


def _insert(row: Reading) -> bool:
    """Insert in a savepoint; False when another request stored the same day meanwhile."""
    savepoint = db.session.begin_nested()
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _monitored(equipment_id: int) -> Equipment:
    equipment = db.session.get(Equipment, equipment_id) if 1 <= equipment_id <= MAX_ID else None
    if equipment is None:
        raise NotFoundError(f"equipment {equipment_id} does not exist")
    if not equipment.monitored:
        raise InvalidDataError(f"equipment {equipment.serial_number} is not monitored; its file must say so before "
                               "it sends operating data", errors={"equipment_id": ["is not monitored"]})
    return equipment


def list_readings(*, actor: Actor, equipment_id: int, start: date | None = None,
                  end: date | None = None) -> list[Reading]:
    """The equipment's readings from ``start`` to ``end`` (inclusive), oldest first (readings.read)."""
    require(actor, "readings.read")
    if db.session.get(Equipment, equipment_id) is None:
        raise NotFoundError(f"equipment {equipment_id} does not exist")
    query = select(Reading).where(Reading.equipment_id == equipment_id)
    if start is not None:
        query = query.where(Reading.day >= start)
    if end is not None:
        query = query.where(Reading.day <= end)
    return list(db.session.scalars(query.order_by(Reading.day)))


@dataclass(frozen=True)
class DayFindings:
    """The anomalies of one day."""

    day: date
    findings: list[Finding]


@dataclass(frozen=True)
class EquipmentMonth:
    """One monitored unit's month: its readings, the days with anomalies, the days that sent nothing."""

    equipment: Equipment
    readings: list[Reading]
    anomalies: list[DayFindings]
    missing_days: list[date]


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """The first and last day of a month."""
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def month_review(*, actor: Actor, year: int, month: int,
                 equipment_ids: Iterable[int] | None = None) -> list[EquipmentMonth]:
    """Every monitored unit's month of readings with its anomalies under the rules in force (readings.read):
    what the monthly inspection reviews. Days after today are not missing yet."""
    require(actor, "readings.read")
    if not 1 <= month <= 12 or not 2000 <= year <= 2100:
        raise InvalidDataError("no such month", errors={"month": ["must be a month from 2000-01 to 2100-12"]})
    first, last = month_bounds(year, month)
    today = department_today()
    query = select(Equipment).where(Equipment.monitored.is_(True))
    if equipment_ids is not None:
        query = query.where(Equipment.id.in_(list(equipment_ids)))
    units = list(db.session.scalars(query.order_by(Equipment.serial_number)))
    by_unit: dict[int, list[Reading]] = {unit.id: [] for unit in units}
    for reading in db.session.scalars(select(Reading).where(Reading.equipment_id.in_(list(by_unit)),
                                                            Reading.day >= first, Reading.day <= last)
                                      .order_by(Reading.day)):
        by_unit[reading.equipment_id].append(reading)
    active = rules()
    review = []
    for unit in units:
        readings = by_unit[unit.id]
        sent = {r.day for r in readings}
        days = [first + timedelta(days=n) for n in range((min(last, today) - first).days + 1)]
        anomalies = [DayFindings(r.day, found) for r in readings if (found := findings(r.values(), active))]
        review.append(EquipmentMonth(unit, readings, anomalies, [d for d in days if d not in sent]))
    return review


# ------------------------------------------------------------------------------------------ bulk import

CSV_COLUMNS = ("serial_number", "day", *MEASURES, "alarm_codes")
EXTRA_CELLS = "_extra_cells"  # set on a CSV row with more cells than the header has columns


@dataclass(frozen=True)
class RowError:
    """Why one row of an import was refused: its number (the file's line for CSV), the column, the words."""

    row: int
    column: str
    message: str


@dataclass
class ImportReport:
    """What an import did: rows stored (new, unchanged, corrected) and the rows it refused."""

    created: int = 0
    unchanged: int = 0
    corrected: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def refused_rows(self) -> int:
        """How many rows were refused."""
        return len({e.row for e in self.errors})


def _cell_number(text: Any) -> Any:
    """A CSV cell as a number where it reads as one (JSON rows pass through)."""
    if not isinstance(text, str):
        return text
    text = text.strip()
    if text == "":
        return None
    try:
        return int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else float(text)
    except ValueError:
        return text


def import_readings(*, actor: Actor, rows: Iterable[dict[str, Any]], first_row: int = 1,
                    correct: bool = False) -> ImportReport:
    """Import readings of many units (readings.write): rows of serial_number, day, the measures and
    alarm_codes (a list, or text separated by ';'). Good rows are kept, each bad row is reported with its
    number and column; importing the same file again stores nothing new."""
    require(actor, "readings.write")
    report = ImportReport()
    today = department_today()
    units: dict[str, Equipment | None] = {}
    for n, raw in enumerate(rows, start=first_row):
        if n - first_row >= 100_000:
            report.errors.append(RowError(n, "", "at most 100,000 rows per import"))
            break
        if not isinstance(raw, dict):
            report.errors.append(RowError(n, "", "must be an object with the columns " + ", ".join(CSV_COLUMNS)))
            continue
        serial = raw.get("serial_number")
        if not isinstance(serial, str) or not serial.strip():
            report.errors.append(RowError(n, "serial_number", "is required"))
            continue
        serial = serial.strip()
        if serial not in units:
            units[serial] = db.session.scalar(select(Equipment).where(Equipment.serial_number == serial))
        unit = units[serial]
        if unit is None:
            report.errors.append(RowError(n, "serial_number", f"no equipment has serial number {serial!r}"))
            continue
        if not unit.monitored:
            report.errors.append(RowError(n, "serial_number", f"equipment {serial} is not monitored"))
            continue
        alarms = raw.get("alarm_codes", [])
        if isinstance(alarms, str):
            alarms = [code.strip() for code in alarms.split(";") if code.strip()]
        values = {"day": raw.get("day"), **{m: _cell_number(raw.get(m)) for m in MEASURES}, "alarm_codes": alarms}
        unknown = sorted(set(raw) - {*CSV_COLUMNS, EXTRA_CELLS})
        checked, problems = check_day(values, today=today, where=())
        problems = [*(((str(name),), "unknown column") for name in unknown),
                    *([((), "has more cells than the header has columns")] if EXTRA_CELLS in raw else []), *problems]
        if problems or checked is None:
            report.errors.extend(RowError(n, ".".join(path), message) for path, message in problems)
            continue
        savepoint = db.session.begin_nested()
        try:
            stored = _store(actor, unit, [checked], correct=correct, positions={checked.day: n}, path=())
        except ConflictError:
            savepoint.rollback()
            report.errors.append(RowError(n, "day", f"{checked.day.isoformat()} is recorded already for {serial} "
                                                    "with other values; import with correct to overwrite it"))
            continue
        savepoint.commit()
        report.created += len(stored.created)
        report.unchanged += len(stored.unchanged)
        report.corrected += len(stored.corrected)
    return report
