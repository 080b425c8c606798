"""A case on its process diagram: the BPMN of the version the case is pinned to, and where the case stands."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import Actor, require
from app.cases.service import get_case
from app.flows.steps import load_instance

ELEMENT_STATES = ("done", "active", "waiting")  # what Instance.element_states() can say of an element
STATE_WORDS = {
    "done": "Completed",
    "active": "Active: a task ready for someone, or a deadline running",
    "waiting": "Waiting: reached, waiting for what runs inside it or for another branch",
}


@dataclass(frozen=True)
class CaseDiagram:
    """What the case page's diagram shows: the pinned version's BPMN source and each element's state."""

    case_id: int
    number: str | None
    process_id: str
    process_version: int
    bpmn_xml: str  # the BPMN source exactly as that version was deployed
    states: dict[str, str]  # BPMN element id → done | active | waiting; elements not reached are absent


def case_diagram(*, actor: Actor, case_id: int) -> CaseDiagram:
    """The diagram of a case's pinned process version with the state of every element the case reached."""
    require(actor, "cases.read")
    case = get_case(case_id, actor=actor)
    version = case.process_version
    # Read-only: the instance is restored and inspected, never run or stored, so no lock is needed.
    states = load_instance(case).element_states()
    return CaseDiagram(case_id=case.id, number=case.number, process_id=case.process_id,
                       process_version=version.version, bpmn_xml=version.bpmn_source, states=states)
