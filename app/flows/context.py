"""The step a case is in while the engine runs: who acts, on which case. The operations service tasks call
(app.flows.operations) act for it; the flows set it around every run of the engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from app.auth import Actor
from app.cases.models import Case


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
