"""The operations BPMN service tasks may call (see app.engine.operations), installed when the app starts.

Each acts for the step that reached the service task: with that step's actor (whose permissions the
services check as always), on that step's case, in that step's transaction. A step is a case opened, a
task completed or a timer fired; the flows wrap the engine's run in ``acting_for``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from app.auth import Actor
from app.cases.models import Case
from app.engine.operations import REGISTRY, OperationRegistry
from app.errors import InvalidDataError
from app.stock import service as stock


@dataclass(frozen=True)
class Step:
    """Who is acting, on which case, while the engine runs."""

    actor: Actor
    case: Case


_STEP: ContextVar[Step | None] = ContextVar("servicecase_step", default=None)


@contextmanager
def acting_for(actor: Actor, case: Case) -> Iterator[Step]:
    """Run the engine for ``actor`` on ``case``: the operations its service tasks call act as them."""
    step = Step(actor, case)
    token = _STEP.set(step)
    try:
        yield step
    finally:
        _STEP.reset(token)


def current_step() -> Step:
    """The step the engine is running for (RuntimeError outside ``acting_for``: a bug in a flow)."""
    step = _STEP.get()
    if step is None:
        raise RuntimeError("a service task ran outside a case step; run the engine inside acting_for()")
    return step


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
    return registry
