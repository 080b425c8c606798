"""Where a case stands on its diagram: element states through the engine seam, the service, the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth import Actor
from app.engine import Engine, Instance, ManualClock, ProcessDefinition, set_clock
from app.errors import NotFoundError
from app.flows.diagram import case_diagram
from tests.conftest import ROOT
from tests.support import engine_for_tests, workflow_decisions

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
IN_WARRANTY = {"id": 1, "model": "EA990-200K", "serial_number": "S1", "warranty_ends_on": "2027-02-28"}
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
REMOTE_REPAIRED = {"remote_channel": "network", "work_performed": "Reset the rectifier", "remote_result": "repaired"}
REPORT = {"report_summary": "Fixed", "report_sent_via": "email", "customer_confirmed": True}


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine for the module."""
    return engine_for_tests()


@pytest.fixture(scope="module")
def definition(engine: Engine) -> ProcessDefinition:
    """workflows/fault_handling.bpmn, parsed."""
    return engine.parse((ROOT / "workflows" / "fault_handling.bpmn").read_bytes(), "fault_handling.bpmn",
                        workflow_decisions())


@pytest.fixture
def stopped() -> Iterator[ManualClock]:
    """The engine's clock stopped at T0."""
    manual = ManualClock(T0)
    previous = set_clock(manual)
    yield manual
    set_clock(previous)


def started(engine: Engine, definition: ProcessDefinition) -> Instance:
    """A warranty fault reported at T0."""
    return engine.start(definition, {"case_number": "FH-2026-000001", "reported_at": T0.isoformat(),
                                     "channel": "phone", "priority": "normal", "description": "UPS alarm",
                                     "customer": None, "equipment": IN_WARRANTY})


def complete(engine: Engine, instance: Instance, spec_id: str, data: dict[str, Any]) -> Instance:
    """Complete ``spec_id`` after a store/load round trip, as a request does."""
    loaded = engine.load(instance.definition, instance.dump())
    task = next(t for t in loaded.ready_human_tasks() if t.spec_id == spec_id)
    loaded.complete(task.id, data)
    return engine.load(loaded.definition, loaded.dump())


def test_at_the_start_the_diagnosis_and_its_deadline_are_active(engine: Engine, definition: ProcessDefinition,
                                                                stopped: ManualClock) -> None:
    states = started(engine, definition).element_states()
    assert states == {"fault_reported": "done", "assess_warranty": "done", "diagnose_fault": "active",
                      "diagnosis_deadline": "active"}


def test_after_the_diagnosis_the_removal_runs_inside_its_subprocess(engine: Engine, definition: ProcessDefinition,
                                                                    stopped: ManualClock) -> None:
    instance = complete(engine, started(engine, definition), "diagnose_fault", DIAGNOSIS)
    states = instance.element_states()
    for done in ("fault_reported", "assess_warranty", "diagnose_fault", "plan_removal", "free_of_charge_gateway",
                 "removal_join", "removal_started", "parts_needed_gateway", "parts_join", "support_mode_gateway"):
        assert states.get(done) == "done", done
    assert states["repair_remotely"] == "active"
    assert states["removal_deadline"] == "active"  # the 48 h removal deadline is running
    assert states["remove_fault"] == "waiting"  # the subprocess waits for the repair inside it
    # The diagnosis deadline was cancelled by the diagnosis in time; the paths not taken are absent.
    for absent in ("diagnosis_deadline", "review_overdue_diagnosis", "reserve_parts", "quote_maintenance_cost",
                   "repair_on_site", "write_processing_report", "case_closed"):
        assert absent not in states, absent


def test_at_the_end_everything_walked_is_done_and_nothing_is_active(engine: Engine, definition: ProcessDefinition,
                                                                    stopped: ManualClock) -> None:
    instance = started(engine, definition)
    for spec_id, data in (("diagnose_fault", DIAGNOSIS), ("repair_remotely", REMOTE_REPAIRED),
                          ("write_processing_report", REPORT)):
        instance = complete(engine, instance, spec_id, data)
    assert instance.is_completed
    states = instance.element_states()
    assert set(states.values()) == {"done"}
    for done in ("diagnose_fault", "remove_fault", "repair_remotely", "record_repaired_remotely",
                 "removal_finished", "write_processing_report", "case_closed"):
        assert states.get(done) == "done", done
    assert "removal_deadline" not in states and "repair_on_site" not in states


def test_an_overdue_diagnosis_is_active_beside_its_escalation(engine: Engine, definition: ProcessDefinition,
                                                             stopped: ManualClock) -> None:
    instance = started(engine, definition)
    stopped.set(T0.replace(day=3, hour=8, second=1))  # 24 h and a second later
    instance.run()
    states = instance.element_states()
    assert states["diagnosis_deadline"] == "done"  # fired (non-interrupting): the diagnosis is still due
    assert states["diagnose_fault"] == "active"
    assert states["review_overdue_diagnosis"] == "active"


# -- the service and the endpoint ----------------------------------------------------------------------
@pytest.fixture
def case_id(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> int:
    """A fault case opened through the API by an agent an hour after the call."""
    agent = signed_in("lin", "agent")
    response = agent.post("/api/cases", json={"process": "fault_handling", "channel": "phone",
                                              "reported_at": "2026-03-02T07:00:00+00:00",
                                              "description": "UPS alarm: rectifier fault"})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def test_the_service_gives_the_pinned_versions_source_and_the_states(case_id: int) -> None:
    diagram = case_diagram(actor=Actor("auditor1", frozenset({"auditor"})), case_id=case_id)
    assert diagram.bpmn_xml == (ROOT / "workflows" / "fault_handling.bpmn").read_text(encoding="utf-8")
    assert diagram.process_id == "fault_handling" and diagram.process_version == 1
    assert diagram.states["diagnose_fault"] == "active"
    with pytest.raises(NotFoundError):
        case_diagram(actor=Actor("auditor1", frozenset({"auditor"})), case_id=case_id + 1)


def test_the_service_refuses_a_user_without_cases_read(case_id: int) -> None:
    from app.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError, match="read cases"):
        case_diagram(actor=Actor("owner", frozenset({"process_owner"})), case_id=case_id)


def test_the_endpoint_serves_the_diagram_and_the_states(case_id: int, signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("wang", "engineer")
    response = engineer.get(f"/api/cases/{case_id}/diagram")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["case_id"] == case_id and body["number"].startswith("FH-")
    assert body["bpmn_xml"].startswith("<?xml") and 'id="diagnose_fault"' in body["bpmn_xml"]
    assert body["states"] == {"fault_reported": "done", "assess_warranty": "done", "diagnose_fault": "active",
                              "diagnosis_deadline": "active"}
    task = engineer.get(f"/api/cases/{case_id}").get_json()["open_tasks"][0]
    assert engineer.post(f"/api/tasks/{task['id']}/claim").status_code == 200
    done = engineer.post(f"/api/tasks/{task['id']}/complete", json={"data": DIAGNOSIS})
    assert done.status_code == 200, done.get_json()
    states = engineer.get(f"/api/cases/{case_id}/diagram").get_json()["states"]
    assert states["diagnose_fault"] == "done"
    # Active on the diagram: exactly the case's open tasks and running deadlines (no equipment: a quote).
    case = engineer.get(f"/api/cases/{case_id}").get_json()
    running = {t["task_spec"] for t in case["open_tasks"]} | {t["task_spec"] for t in case["deadlines"]}
    assert {element for element, state in states.items() if state == "active"} == running
    assert "quote_maintenance_cost" in running


def test_the_endpoint_answers_404_403_and_401(case_id: int, signed_in: Callable[..., FlaskClient],
                                             client: FlaskClient) -> None:
    missing = signed_in("wang", "engineer").get(f"/api/cases/{case_id + 99}/diagram")
    assert missing.status_code == 404 and f"case {case_id + 99} does not exist" in missing.get_json()["message"]
    refused = signed_in("olga", "process_owner").get(f"/api/cases/{case_id}/diagram")
    assert refused.status_code == 403 and "read cases" in refused.get_json()["message"]
    anonymous = client.get(f"/api/cases/{case_id}/diagram", headers={"Authorization": "Bearer nonsense"})
    assert anonymous.status_code == 401


def test_the_openapi_document_describes_the_diagram(client: FlaskClient) -> None:
    operation = client.get("/api/openapi.json").get_json()["paths"]["/api/cases/{case_id}/diagram"]["get"]
    assert {"200", "401", "403", "404"} <= set(operation["responses"])
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/CaseDiagram"}
