"""Replacement updates the equipment file (issue 8), through the API on the real database: the fault
process's replacement path registers the new unit (the arrangement's model, the old unit's customer, site,
dealer and warranty end), retires the old one naming it, records it in both files and in the case's history;
a serial number that exists is refused naming new_serial_number with nothing saved; retired units are listed
last and marked in the intake search and take no new case."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import Actor
from app.cases.models import Case
from app.engine import ManualClock
from app.errors import ConflictError, InvalidDataError, PermissionDeniedError
from app.extensions import db
from app.registry import service as registry
from app.registry.models import Equipment, EquipmentEvent, ImmutableRegistryEventError
from app.registry.service import seed_demo_data
from tests.api.conftest import case_snapshot

SERIAL = "EA99020K0001"  # in warranty until 2027-02-28: a quality fault is free, no quote on the way
DIAGNOSIS = {"diagnosis": "Inverter board burnt", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
NOT_REPAIRABLE = {"remote_channel": "network", "work_performed": "Board does not start",
                  "remote_result": "not_repairable"}
ARRANGEMENT = {"dealer_name": "Pearl Power Systems", "replacement_agreed": True, "replacement_model": "EA990-200K",
               "delivery_planned_at": "2026-03-03T08:00:00+00:00"}
INSTALLED_AT = "2026-03-02T20:00:00+00:00"  # 04:00 on 3 March in the department's zone (Asia/Shanghai)
INSTALLED_BY = datetime(2026, 3, 2, 21, tzinfo=UTC)  # the clock when the installation is recorded
Client = Callable[..., FlaskClient]


def unit(serial: str) -> Equipment:
    db.session.rollback()
    found = db.session.scalar(select(Equipment).where(Equipment.serial_number == serial)
                              .execution_options(populate_existing=True))
    assert found is not None, serial
    return found


def unit_events(equipment_id: int) -> list[tuple[str, str, int | None, dict[str, Any]]]:
    db.session.rollback()
    return [(e.type, e.actor, e.case_id, e.payload) for e in db.session.scalars(
        select(EquipmentEvent).where(EquipmentEvent.equipment_id == equipment_id).order_by(EquipmentEvent.id))]


def task_of(client: FlaskClient, case_id: int, spec: str) -> int:
    return next(t["id"] for t in client.get(f"/api/cases/{case_id}").get_json()["open_tasks"] if t["task_spec"] == spec)


def complete(client: FlaskClient, case_id: int, spec: str, data: dict[str, Any]) -> Any:
    return client.post(f"/api/tasks/{task_of(client, case_id, spec)}/complete", json={"data": data})


@pytest.fixture
def case_id(deployed: Flask, clock: ManualClock, signed_in: Client) -> int:
    """A fault case on SERIAL, walked to the installation of its replacement."""
    seed_demo_data()
    db.session.commit()
    response = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "phone", "reported_at": clock.now().isoformat(),
        "description": "UPS dead after a surge", "equipment_id": unit(SERIAL).id})
    assert response.status_code == 201, response.get_json()
    number = int(response.get_json()["id"])
    assert complete(signed_in("wang", "engineer"), number, "diagnose_fault", DIAGNOSIS).status_code == 200
    assert complete(signed_in("wang", "engineer"), number, "repair_remotely", NOT_REPAIRABLE).status_code == 200
    arranged = complete(signed_in("boss", "supervisor"), number, "arrange_replacement", ARRANGEMENT)
    assert arranged.status_code == 200, arranged.get_json()
    clock.set(INSTALLED_BY)  # an installation is recorded once it has happened
    return number


def test_the_replacement_path_registers_the_new_unit_and_retires_the_old_one(case_id: int, signed_in: Client,
                                                                          clock: ManualClock) -> None:
    regional = signed_in("li", "regional_engineer")
    old = unit(SERIAL)
    installed = complete(regional, case_id, "install_replacement", {
        "installed_at": INSTALLED_AT, "new_serial_number": "EA99020K0002", "installation_note": "Old unit taken away"})
    assert installed.status_code == 200, installed.get_json()

    new, old = unit("EA99020K0002"), unit(SERIAL)
    assert (new.customer_id, new.site, new.region, new.dealer, new.monitored) == (
        old.customer_id, old.site, old.region, old.dealer, old.monitored)
    assert new.model == "EA990-200K"  # what the arrangement agreed
    assert new.warranty_ends_on == old.warranty_ends_on == date(2027, 2, 28)  # the warranty continues
    assert new.installed_on == date(2026, 3, 3)  # the department's calendar day of the installation
    assert (new.status, new.retired_at, new.replaced_by_id) == ("in_service", None, None)
    assert (old.status, old.retired_at, old.replaced_by_id) == ("retired", datetime(2026, 3, 2, 20, tzinfo=UTC), new.id)

    old_events = unit_events(old.id)
    assert [(type_, actor, case) for type_, actor, case, _ in old_events] == [
        ("registered", "system", None), ("replaced", "li", case_id), ("retired", "li", case_id)]
    assert old_events[1][3]["new_serial_number"] == "EA99020K0002"
    assert old_events[2][3] == {"reason": "replaced", "replaced_by_id": new.id, "retired_at": INSTALLED_AT}
    new_events = unit_events(new.id)
    assert [(type_, actor, case) for type_, actor, case, _ in new_events] == [
        ("installed_as_replacement", "li", case_id)]
    assert new_events[0][3]["replaces_serial_number"] == SERIAL

    db.session.rollback()
    replaced = db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                          CaseEvent.type == "equipment_replaced")).all()
    assert [(e.actor, e.payload["old_serial_number"], e.payload["new_serial_number"]) for e in replaced] == [
        ("li", SERIAL, "EA99020K0002")]
    case = db.session.get(Case, case_id)
    assert case is not None and case.equipment_id == old.id  # the case stays with the unit it was about
    report = complete(signed_in("lin", "agent"), case_id, "write_processing_report", {
        "report_summary": "Replaced", "report_sent_via": "email", "customer_confirmed": True})
    assert report.status_code == 200
    assert report.get_json()["summary"]["outcome"] == "replaced"

    # The files through the API: the old unit names its replacement and lists the case, the new one what it replaced.
    reader = signed_in("audrey", "auditor")
    old_file = reader.get(f"/api/registry/equipment/{old.id}").get_json()
    assert old_file["status"] == "retired"
    assert old_file["replaced_by"] == {"id": new.id, "serial_number": "EA99020K0002", "model": "EA990-200K",
                                       "status": "in_service"}
    assert old_file["replaces"] is None
    assert [e["type"] for e in old_file["events"]] == ["registered", "replaced", "retired"]
    assert [(c["id"], c["status"], c["process"]) for c in old_file["cases"]] == [(case_id, "closed", "fault_handling")]
    assert old_file["customer"]["name"] == "Harbour City Data Centre"
    assert old_file["warranty"]["state"] == "in_warranty"
    new_file = reader.get(f"/api/registry/equipment/{new.id}").get_json()
    assert new_file["replaces"]["serial_number"] == SERIAL
    assert (new_file["cases"], new_file["cases_total"]) == ([], 0)
    assert reader.get("/api/registry/equipment/999999").status_code == 404

    # Intake lists the retired unit after those in service, marked, and opens no case on it.
    found = reader.get("/api/registry/equipment?q=EA99020K").get_json()["items"]
    assert [(f["serial_number"], f["status"]) for f in found] == [("EA99020K0002", "in_service"), (SERIAL, "retired")]
    assert found[1]["replaced_by"]["serial_number"] == "EA99020K0002"
    refused = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "phone", "reported_at": clock.now().isoformat(),
        "description": "Again", "equipment_id": old.id})
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {"equipment_id": [
        f"equipment {SERIAL} is retired: open the case on EA99020K0002, which replaced it"]}


def test_a_serial_number_that_exists_is_refused_naming_the_field_and_nothing_is_saved(
        case_id: int, signed_in: Client) -> None:
    regional = signed_in("li", "regional_engineer")
    taken = unit("EA66060K0417")
    before = case_snapshot(case_id)
    units = db.session.scalar(select(func.count()).select_from(Equipment))
    events = db.session.scalar(select(func.count()).select_from(EquipmentEvent))
    refused = complete(regional, case_id, "install_replacement", {
        "installed_at": INSTALLED_AT, "new_serial_number": " EA66060K0417 "})
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["errors"] == {"new_serial_number": [
        f"equipment {taken.id} has this serial number already"]}
    assert case_snapshot(case_id) == before
    assert db.session.scalar(select(func.count()).select_from(Equipment)) == units
    assert db.session.scalar(select(func.count()).select_from(EquipmentEvent)) == events
    assert unit(SERIAL).status == "in_service"
    assert task_of(regional, case_id, "install_replacement")  # still ready: send the right serial
    assert complete(regional, case_id, "install_replacement", {
        "installed_at": INSTALLED_AT, "new_serial_number": "EA99020K0003"}).status_code == 200
    assert unit(SERIAL).replaced_by_id == unit("EA99020K0003").id


def test_the_service_refuses_a_case_without_equipment_a_retired_unit_and_those_who_do_not_install(
        ctx: Flask, clock: ManualClock) -> None:
    seed_demo_data()
    db.session.commit()
    old = unit(SERIAL)
    case = Case(id=None, number="FH-TEST-1", equipment_id=None, event_count=0)
    engineer = Actor("li", frozenset({"regional_engineer"}))
    when = datetime(2026, 3, 2, 10, tzinfo=UTC)
    with pytest.raises(InvalidDataError) as no_unit:
        registry.replace_equipment(actor=engineer, case=case, new_serial="X1", model="M", installed_at=when)
    assert "equipment_id" in no_unit.value.errors
    with pytest.raises(PermissionDeniedError):
        registry.replace_equipment(actor=Actor("lin", frozenset({"agent"})), case=case, new_serial="X1", model="M",
                                   installed_at=when)
    case.equipment_id = old.id
    with pytest.raises(InvalidDataError) as empty:
        registry.replace_equipment(actor=engineer, case=case, new_serial=" ", model="x" * 101, installed_at=when)
    assert set(empty.value.errors) == {"new_serial_number", "replacement_model"}
    old.status, old.retired_at = "retired", when
    db.session.flush()
    with pytest.raises(ConflictError) as retired:
        registry.replace_equipment(actor=engineer, case=case, new_serial="X1", model="M", installed_at=when)
    assert retired.value.errors == {"equipment_id": ["is retired already"]}


def test_equipment_events_are_history(ctx: Flask, clock: ManualClock) -> None:
    seed_demo_data()
    db.session.commit()
    event = db.session.scalars(select(EquipmentEvent)).first()
    assert event is not None
    event.payload = {"changed": True}
    with pytest.raises(ImmutableRegistryEventError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.scalars(select(EquipmentEvent)).first())
    with pytest.raises(ImmutableRegistryEventError):
        db.session.flush()
