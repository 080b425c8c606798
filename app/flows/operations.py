"""The operations BPMN service tasks may call (see app.engine.operations), installed when the app starts.

Each acts for the step that reached the service task: with that step's actor (whose permissions the
services check as always), on that step's case, in that step's transaction. A step is a case opened, a
task completed or a timer fired; the flows wrap the engine's run in ``acting_for``.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from app.audit.service import record_event
from app.cases.service import latest_event, link_cases
from app.engine import now
from app.engine.operations import REGISTRY, OperationRegistry
from app.errors import InvalidDataError
from app.flows.context import current_step
from app.flows.steps import open_case
from app.readings import service as readings
from app.registry import service as registry
from app.stock import service as stock


def _lines(rows: Any, field: str) -> list[stock.PartLine]:
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise InvalidDataError(f"{field} must be a list of parts", errors={field: ["must be a list of parts"]})
    return stock.parse_lines(rows, field=field)


def _line_dicts(reservations: list[Any]) -> list[dict[str, Any]]:
    return [{"reservation_id": r.id, "part_number": r.stock_level.part.part_number, "quantity": r.quantity,
             "consumed": r.consumed, "state": r.state} for r in reservations]


def check_parts(lines: Any, field: str = "parts_requested", needed: Any = True) -> dict[str, Any]:
    """Every part line is stocked in the case's region and available now (nothing is reserved yet): the
    diagnosis names parts the warehouse can supply, or is refused naming the line. ``needed`` false: no
    parts, nothing to check."""
    step = current_step()
    if not needed:
        return {"region": stock.case_region(step.case), "available": {}}
    wanted = _lines(lines, field)
    if not wanted:
        raise InvalidDataError("name the spare parts the repair needs", errors={field: ["name at least one part"]})
    return {"region": stock.case_region(step.case),
            "available": stock.check_available(actor=step.actor, case=step.case, lines=wanted, field=field)}


def reserve_parts(lines: Any, field: str = "parts_requested") -> list[dict[str, Any]]:
    """Hold exactly these part lines for the case in its region's warehouse (all or none)."""
    step = current_step()
    return _line_dicts(stock.reserve_parts(actor=step.actor, case=step.case, lines=_lines(lines, field),
                                           field=field))


def use_parts(used: Any, field: str = "parts_used") -> list[dict[str, Any]]:
    """Consume what the repair record lists from the parts held for the case; the rest goes back."""
    step = current_step()
    return _line_dicts(stock.use_parts(actor=step.actor, case=step.case, used=_lines(used, field), field=field))


def release_parts(reason: Any) -> list[dict[str, Any]]:
    """Put every part still held for the case back on the shelf, with the reason."""
    step = current_step()
    return _line_dicts(stock.release_parts(actor=step.actor, case=step.case, reason=str(reason)[:500]))


def review_month(before: Any) -> dict[str, Any]:
    """The operating data of the calendar month before ``before`` (an inspection's occurrence time, in the
    department's zone): how many monitored units, and one row per unit with anomalies, its finding in
    words (each day's anomalies under the reading rules)."""
    step = current_step()
    try:
        moment = datetime.fromisoformat(str(before))
    except ValueError:
        raise InvalidDataError(f"{before!r} is not a date and time", errors={"before": ["not an ISO date and time"]}
                               ) from None
    local = moment.astimezone(ZoneInfo(current_app.config.get("TIME_ZONE") or "UTC")).date()
    first = (local.replace(day=1) - timedelta(days=1)).replace(day=1)
    review = readings.month_review(actor=step.actor, year=first.year, month=first.month)
    rows = []
    for unit in review:
        if not unit.anomalies:
            continue
        days = "; ".join(f"{day.day.isoformat()}: " + ", ".join(f.text for f in day.findings) for day in unit.anomalies)
        missing = f" No data on {len(unit.missing_days)} day(s)." if unit.missing_days else ""
        rows.append({"serial_number": unit.equipment.serial_number, "finding": (days + missing)[:3900]})
    return {"label": first.strftime("%B %Y"), "month": first.strftime("%Y-%m"), "equipment_checked": len(review),
            "anomalies": rows,
            "without_data": [unit.equipment.serial_number for unit in review if not unit.readings]}


def open_linked(process: Any, items: Any, kind: Any = "linked") -> list[dict[str, Any]]:
    """Open one case of ``process`` per item ({serial_number, finding}) on that equipment, linked to the
    step's case both ways; the notice time is now and the finding is what was reported."""
    step = current_step()
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidDataError("the items must be a list of {serial_number, finding}",
                               errors={"items": ["must be a list of rows"]})
    opened = []
    for n, item in enumerate(items):
        serial = str(item.get("serial_number") or "").strip()
        finding = str(item.get("finding") or "").strip() or "Anomaly found by the monthly inspection"
        equipment = registry.equipment_by_serial(actor=step.actor, serial_number=serial)
        if equipment is None:
            raise InvalidDataError(f"no equipment has the serial number {serial!r}",
                                   errors={"anomalies": {str(n): {"serial_number": ["no equipment has this serial "
                                                                                    "number"]}}})
        origin = {"case_id": step.case.id, "number": step.case.number, "kind": str(kind)}
        detail = open_case(actor=step.actor, process_id=str(process), reported_at=now(), channel="case",
                           title=f"{step.case.number}: {serial}", description=finding, equipment_id=equipment.id,
                           data={"opened_from": origin})
        link_cases(actor=step.actor, source=step.case, target=detail.case, kind=str(kind))
        opened.append({"case_id": detail.id, "number": detail.number, "serial_number": serial})
    return opened


def sample_users(seed_text: Any, size: Any = None) -> dict[str, Any]:
    """A random sample of users per region for this quarter's return visits: ``size`` per region (the
    configured number by default), drawn with a seed made from ``seed_text`` (the case number), so the same
    case always draws the same users. Users drawn for the previous quarter's visits are left out unless a
    region has too few others; then some are called again and a note says so. The draw is recorded in the
    case's history (visit_sample_drawn)."""
    step = current_step()
    per_region = int(size) if size is not None else int(current_app.config["RETURN_VISIT_SAMPLE"])
    seed = int(hashlib.sha256(str(seed_text).encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    last = latest_event(actor=step.actor, type="visit_sample_drawn", process_id=step.case.process_id,
                        before_case_id=step.case.id)
    earlier = ((last.payload or {}).get("regions") or {}) if last else {}
    called_before = {int(i) for ids in earlier.values() for i in ids}
    drawn: dict[str, list[int]] = {}
    users: list[dict[str, Any]] = []
    notes: list[str] = []
    for region, customers in sorted(registry.customers_by_region(actor=step.actor).items()):
        fresh = [c for c in customers if c.id not in called_before]
        picked = rng.sample(fresh, min(per_region, len(fresh)))
        if len(picked) < per_region and len(customers) > len(fresh):
            again = rng.sample([c for c in customers if c.id in called_before],
                               min(per_region - len(picked), len(customers) - len(fresh)))
            picked += again
            notes.append(f"{region}: only {len(fresh)} user(s) not called last quarter; {len(again)} called again")
        if len(picked) < per_region:
            notes.append(f"{region}: only {len(customers)} user(s) in the region; all are called")
        drawn[region] = sorted(c.id for c in picked)
        users += [{"id": c.id, "name": c.name, "region": region, "phone": c.phone, "contact": c.contact_name}
                  for c in sorted(picked, key=lambda c: c.id)]
    record_event(case=step.case, type="visit_sample_drawn", actor=step.actor.username, payload={
        "seed": seed, "seed_text": str(seed_text), "size": per_region, "regions": drawn, "notes": notes,
        "previous_case_id": last.case_id if last else None})
    return {"seed": seed, "size": per_region, "regions": sorted(drawn), "users": users, "notes": notes}


def install(registry: OperationRegistry = REGISTRY) -> OperationRegistry:
    """Register this installation's operations (idempotent)."""
    registry.register("stock.check", check_parts, required=("lines",), optional=("field", "needed"),
                      description="check that the part lines are stocked and available in the case's region")
    registry.register("stock.reserve", reserve_parts, required=("lines",), optional=("field",),
                      description="reserve the part lines for the case in its region's warehouse")
    registry.register("stock.use", use_parts, required=("used",), optional=("field",),
                      description="consume the parts the repair used; release the rest held for the case")
    registry.register("stock.release", release_parts, required=("reason",),
                      description="release every part still held for the case")
    registry.register("readings.review_month", review_month, required=("before",),
                      description="the month before a date: monitored units and their anomalies")
    registry.register("visits.sample", sample_users, required=("seed_text",), optional=("size",),
                      description="draw this quarter's return-visit sample per region (seeded, recorded)")
    registry.register("cases.open_linked", open_linked, required=("process", "items"), optional=("kind",),
                      description="open a case of a process per item (serial number, finding), linked both ways")
    return registry
