"""Every role × every endpoint and page: allowed → 2xx/3xx, refused → 403 naming what is missing, anonymous →
401 (API) or the sign-in page (pages; the sign-in and sign-out pages themselves are open to anonymous visitors).

The table ``MATRIX`` has one entry per rule of ``app.url_map`` (endpoint and method) saying which roles may
use it and how to make a request that succeeds; a new endpoint without an entry fails
``test_every_endpoint_has_an_entry``. Each role acts as a real user with a token (``signed_in``), on data of
its own made once per role: the cases, tasks and failed timers its requests need, so an allowed request
succeeds (no 404 for a missing id, no 422 for a bad body) and a refused one is refused by the permission
decision itself.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.attachments.service import add_attachment
from app.auth import ROLES, STAFF_ROLES, SYSTEM, Actor
from app.cases.models import Case
from app.documents.service import make_documents
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.service import deploy_sources
from app.registry.models import Customer, Equipment
from app.registry.service import seed_demo_data
from app.stock import service as stock
from app.stock.models import Warehouse
from app.tasks.models import WorkItem
from app.tasks.service import claim_work_item, forms
from app.timers.models import Timer
from app.timers.service import mark_failed
from app.users import service as users
from app.users.models import User
from tests.support import user_token

# Rules that are not the application's to protect: static files and the OpenAPI document.
# The browser libraries (bpmn-js) are static files too.
EXCLUDED_ENDPOINTS = frozenset({"static", "web.static", "vendor.bpmn_js"})
EXCLUDED_PREFIXES = ("api-docs.",)

EVERYONE = frozenset(ROLES)
READERS = frozenset({*STAFF_ROLES, "admin", "auditor"})  # cases, tasks and customer files: not process owners
OPENERS = frozenset({"agent", "engineer", "regional_engineer", "supervisor"})
WORKERS = frozenset(STAFF_ROLES)  # on a task of their own role; supervisors on anyone's (an engineer's here)
TIMER_READERS = frozenset({"admin", "auditor"})
USER_READERS = frozenset({"admin", "auditor"})
PASSWORD = "correct horse battery"  # every user tests.support.user_token creates has it
ADMINS = frozenset({"admin"})
STOCK_MANAGERS = frozenset({"warehouse", "admin"})
STOCK_RESERVERS = frozenset({"warehouse", "supervisor"})
STOCK_USERS = frozenset({"engineer", "regional_engineer", "warehouse", "supervisor"})
READING_SENDERS = frozenset({"engineer", "regional_engineer", "technical_dept", "admin"})
PARTS_REGION = "Matrix"  # the region of the matrix's warehouse and of each role's parts case
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"  # a tiny attachment


@dataclass
class World:
    """What one role's requests act on: made for that role before its requests run."""

    case_id: int
    read_task_id: int
    claim_task_ids: dict[str, int]  # "page"/"api" -> a ready task of the role's task role
    complete_task_ids: dict[str, int]
    failed_timer_ids: dict[str, int]
    equipment_id: int
    release_task_ids: dict[str, int] = field(default_factory=dict)  # claimed by the role's user (or another)
    assign_task_ids: dict[str, int] = field(default_factory=dict)
    assignee: str = ""  # a user holding the task role, whom a supervisor may assign tasks to
    attachment_id: int = 0  # an attachment of case_id
    document_id: int = 0  # a document of case_id (its processing report as PDF)
    username: str = ""  # who signs in on the sign-in page
    target_users: dict[str, str] = field(default_factory=dict)  # admin change -> a user of its own to change
    token_to_revoke: str = ""
    parts_case_id: int = 0  # an open case on equipment of PARTS_REGION, whose warehouse stocks MX-FUSE
    role: str = ""

    @staticmethod
    def reported_at() -> Any:
        return now() - timedelta(hours=1)


@dataclass(frozen=True)
class Entry:
    """Who may use one rule, and the request that succeeds when they may."""

    allowed: frozenset[str]
    path: Callable[[World], str]
    body: Callable[[World], dict[str, Any]] | None = None  # JSON for /api, form fields for pages
    public: bool = False  # anonymous visitors may use it too (the sign-in and sign-out pages)
    upload: bool = False  # a multipart upload of one small PDF in the field "file"
    csv: bool = False  # a multipart upload of a CSV of operating data in the field "file"
    csv_file: Callable[[World], bytes] | None = None  # a multipart upload of this CSV in the field "file"


def _day(world: World) -> dict[str, Any]:
    """A normal day of operating data, yesterday."""
    return {"day": (now() - timedelta(days=1)).date().isoformat(), "input_voltage": 221, "output_voltage": 220,
            "load_percent": 40, "battery_health_percent": 95, "temperature_c": 25}


CSV_READINGS = (b"serial_number,day,input_voltage,output_voltage,load_percent,battery_health_percent,temperature_c\n"
                b"MATRIX-agent,2026-01-05,221,220,40,95,25\n")


def _no_fields(world: World) -> dict[str, Any]:
    return {}


def _case_body(world: World) -> dict[str, Any]:
    return {"process": "fault_handling", "reported_at": world.reported_at().isoformat(), "channel": "phone",
            "description": "UPS alarm: rectifier fault", "equipment_id": world.equipment_id}


def _case_form(world: World) -> dict[str, Any]:
    return {"process": "fault_handling", "reported_at": world.reported_at().strftime("%Y-%m-%dT%H:%M"),
            "channel": "phone", "priority": "normal", "equipment_id": str(world.equipment_id),
            "description": "UPS alarm: battery fault, load on bypass",
            "confirm_open_case": "true"}  # the role's own case is open on this equipment already


MATRIX: dict[tuple[str, str], Entry] = {
    # pages
    ("worklist.index", "GET"): Entry(READERS, lambda w: "/"),
    ("cases.index", "GET"): Entry(READERS, lambda w: "/cases"),
    ("cases.detail", "GET"): Entry(READERS, lambda w: f"/cases/{w.case_id}"),
    ("cases.new", "GET"): Entry(OPENERS, lambda w: "/cases/new"),
    ("cases.new", "POST"): Entry(OPENERS, lambda w: "/cases/new", _case_form),
    ("cases.upload_attachment", "POST"): Entry(WORKERS, lambda w: f"/cases/{w.case_id}/attachments", upload=True),
    ("cases.download_attachment", "GET"): Entry(READERS,
                                                lambda w: f"/cases/{w.case_id}/attachments/{w.attachment_id}"),
    ("cases.download_document", "GET"): Entry(READERS, lambda w: f"/cases/{w.case_id}/documents/{w.document_id}"),
    ("tasks.detail", "GET"): Entry(READERS, lambda w: f"/tasks/{w.read_task_id}"),
    ("tasks.claim", "POST"): Entry(WORKERS, lambda w: f"/tasks/{w.claim_task_ids['page']}/claim", _no_fields),
    ("tasks.complete", "POST"): Entry(WORKERS, lambda w: f"/tasks/{w.complete_task_ids['page']}", _no_fields),
    ("worklist.claim", "POST"): Entry(WORKERS, lambda w: f"/worklist/{w.claim_task_ids['worklist']}/claim",
                                      _no_fields),
    ("worklist.release", "POST"): Entry(WORKERS, lambda w: f"/worklist/{w.release_task_ids['page']}/release",
                                        _no_fields),
    ("worklist.assign", "POST"): Entry(frozenset({"supervisor"}), lambda w: f"/worklist/{w.assign_task_ids['page']}"
                                       "/assign", lambda w: {"assignee": w.assignee}),
    ("admin.timers_page", "GET"): Entry(TIMER_READERS, lambda w: "/admin/timers"),
    ("admin.retry", "POST"): Entry(ADMINS, lambda w: f"/admin/timers/{w.failed_timer_ids['page']}/retry", _no_fields),
    ("admin.advance_clock", "POST"): Entry(ADMINS, lambda w: "/admin/clock", lambda w: {"by": "1m"}),
    ("admin.users_page", "GET"): Entry(USER_READERS, lambda w: "/admin/users"),
    ("admin.create_user", "POST"): Entry(ADMINS, lambda w: "/admin/users", lambda w: {
        "username": "matrixnewcomer", "password": PASSWORD, "roles": ["agent"], "display_name": "New"}),
    ("admin.set_roles", "POST"): Entry(ADMINS, lambda w: "/admin/users/roles", lambda w: {
        "username": w.target_users["roles"], "roles": ["agent", "engineer"]}),
    ("admin.disable_user", "POST"): Entry(ADMINS, lambda w: "/admin/users/disable",
                                          lambda w: {"username": w.target_users["disable"]}),
    ("admin.issue_token", "POST"): Entry(ADMINS, lambda w: "/admin/users/tokens",
                                         lambda w: {"username": w.target_users["token"]}),
    ("admin.revoke_token", "POST"): Entry(ADMINS, lambda w: "/admin/tokens/revoke",
                                          lambda w: {"token_id": w.token_to_revoke}),
    ("signin.sign_in", "GET"): Entry(EVERYONE, lambda w: "/sign-in", public=True),
    ("signin.sign_in_submit", "POST"): Entry(
        EVERYONE, lambda w: "/sign-in", lambda w: {"username": w.username, "password": PASSWORD}, public=True),
    ("signin.sign_out", "POST"): Entry(EVERYONE, lambda w: "/sign-out", _no_fields, public=True),
    ("language.choose", "POST"): Entry(EVERYONE, lambda w: "/language", lambda w: {"locale": "en", "next": "/"},
                                       public=True),  # every user chooses their own; anonymous: the cookie
    # the JSON API
    ("api_cases.Cases", "GET"): Entry(READERS, lambda w: "/api/cases"),
    ("api_cases.Cases", "POST"): Entry(OPENERS, lambda w: "/api/cases", _case_body),
    ("api_cases.CaseResource", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.case_id}"),
    ("api_cases.CaseEvents", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.case_id}/events"),
    ("api_cases.CaseDiagramResource", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.case_id}/diagram"),
    ("api_cases.CaseAttachments", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.case_id}/attachments"),
    ("api_cases.CaseAttachments", "POST"): Entry(WORKERS, lambda w: f"/api/cases/{w.case_id}/attachments",
                                                 upload=True),
    ("api_cases.CaseAttachmentDownload", "GET"): Entry(
        READERS, lambda w: f"/api/cases/{w.case_id}/attachments/{w.attachment_id}/download"),
    ("api_cases.CaseDocuments", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.case_id}/documents"),
    ("api_cases.CaseDocumentFile", "GET"): Entry(
        READERS, lambda w: f"/api/cases/{w.case_id}/documents/{w.document_id}"),
    ("api_tasks.Tasks", "GET"): Entry(READERS, lambda w: "/api/tasks"),
    ("api_tasks.TaskResource", "GET"): Entry(READERS, lambda w: f"/api/tasks/{w.read_task_id}"),
    ("api_tasks.TaskClaim", "POST"): Entry(WORKERS, lambda w: f"/api/tasks/{w.claim_task_ids['api']}/claim"),
    ("api_tasks.TaskComplete", "POST"): Entry(
        WORKERS, lambda w: f"/api/tasks/{w.complete_task_ids['api']}/complete", lambda w: {"data": {}}),
    ("api_tasks.TaskRelease", "POST"): Entry(WORKERS, lambda w: f"/api/tasks/{w.release_task_ids['api']}/release"),
    ("api_tasks.TaskAssign", "POST"): Entry(frozenset({"supervisor"}),
                                            lambda w: f"/api/tasks/{w.assign_task_ids['api']}/assign",
                                            lambda w: {"assignee": w.assignee}),
    ("api_processes.Processes", "GET"): Entry(EVERYONE, lambda w: "/api/processes"),
    ("api_registry.EquipmentSearch", "GET"): Entry(READERS, lambda w: "/api/registry/equipment?q=EA"),
    ("api_processes.ProcessVersions", "GET"): Entry(EVERYONE, lambda w: "/api/processes/fault_handling/versions"),
    ("api_admin.Timers", "GET"): Entry(TIMER_READERS, lambda w: "/api/admin/timers"),
    ("api_admin.TimerRetry", "POST"): Entry(ADMINS, lambda w: f"/api/admin/timers/{w.failed_timer_ids['api']}/retry"),
    ("api_admin.Clock", "GET"): Entry(EVERYONE, lambda w: "/api/admin/clock"),  # the time, shown on every page
    ("api_admin.ClockAdvance", "POST"): Entry(ADMINS, lambda w: "/api/admin/clock/advance", lambda w: {"by": "1m"}),
    ("api_stock.Warehouses", "GET"): Entry(READERS, lambda w: "/api/stock/warehouses"),
    ("api_stock.Warehouses", "POST"): Entry(STOCK_MANAGERS, lambda w: "/api/stock/warehouses", lambda w: {
        "code": w.role.upper(), "name": f"Warehouse of {w.role}", "region": f"Region of {w.role}"}),
    ("api_stock.Parts", "GET"): Entry(READERS, lambda w: "/api/stock/parts?q=MX"),
    ("api_stock.Parts", "POST"): Entry(STOCK_MANAGERS, lambda w: "/api/stock/parts", lambda w: {
        "part_number": f"MX-{w.role}", "name": f"Part of {w.role}"}),
    ("api_stock.StockLevels", "GET"): Entry(READERS, lambda w: f"/api/stock?region={PARTS_REGION}"),
    ("api_stock.StockReceipts", "POST"): Entry(STOCK_MANAGERS, lambda w: "/api/stock/receipts", lambda w: {
        "region": PARTS_REGION, "part_number": "MX-FUSE", "quantity": 1, "note": "matrix delivery"}),
    ("api_stock.StockCounts", "POST"): Entry(STOCK_MANAGERS, lambda w: "/api/stock/counts", lambda w: {
        "region": PARTS_REGION, "part_number": "MX-FUSE", "on_hand": 1000, "note": "matrix stocktake"}),
    ("api_stock.StockMovements", "GET"): Entry(READERS, lambda w: "/api/stock/movements"),
    ("api_stock.CaseParts", "GET"): Entry(READERS, lambda w: f"/api/cases/{w.parts_case_id}/parts"),
    ("api_stock.CaseParts", "POST"): Entry(STOCK_RESERVERS, lambda w: f"/api/cases/{w.parts_case_id}/parts",
                                           lambda w: {"lines": [{"part_number": "MX-FUSE", "quantity": 1}]}),
    ("api_stock.CasePartsUsed", "POST"): Entry(STOCK_USERS, lambda w: f"/api/cases/{w.parts_case_id}/parts/used",
                                               lambda w: {"used": []}),
    ("api_readings.EquipmentReadings", "GET"): Entry(READERS, lambda w: f"/api/equipment/{w.equipment_id}/readings"),
    ("api_readings.EquipmentReadings", "POST"): Entry(
        READING_SENDERS, lambda w: f"/api/equipment/{w.equipment_id}/readings", lambda w: {"readings": [_day(w)]}),
    ("api_readings.ReadingsImport", "POST"): Entry(READING_SENDERS, lambda w: "/api/readings/import", lambda w: {
        "rows": [{"serial_number": "MATRIX-" + w.role, **_day(w)}]}),
    ("api_readings.ReadingsCsvImport", "POST"): Entry(READING_SENDERS, lambda w: "/api/readings/import.csv",
                                                      csv=True),
    ("api_registry.EquipmentFileView", "GET"): Entry(READERS, lambda w: f"/api/registry/equipment/{w.equipment_id}"),
    ("api_registry.CustomersImport", "POST"): Entry(
        ADMINS, lambda w: "/api/registry/import/customers", csv_file=lambda w: (
            f"name,region,phone\nImported customer of {w.role},{PARTS_REGION},+86 10 5550 0000\n".encode())),
    ("api_registry.EquipmentImport", "POST"): Entry(
        ADMINS, lambda w: "/api/registry/import/equipment", csv_file=lambda w: (
            f"serial_number,model,customer,region\nMX-IMPORT-{w.role},EA330-10K,Matrix customer of {w.role},"
            f"{PARTS_REGION}\n".encode())),
    ("api_registry.StockImport", "POST"): Entry(
        STOCK_MANAGERS, lambda w: "/api/registry/import/stock", csv_file=lambda w: (
            f"region,part_number,part_name,on_hand\n{PARTS_REGION},MX-COUNT-{w.role},Counted part,5\n".encode())),
    ("api_readings.MonthReview", "GET"): Entry(READERS, lambda w: "/api/readings/review?month=2026-01"),
    ("api_stock.CasePartsRelease", "POST"): Entry(STOCK_USERS,
                                                  lambda w: f"/api/cases/{w.parts_case_id}/parts/release",
                                                  lambda w: {"reason": "matrix release"}),
}


def _rules(app: Flask) -> set[tuple[str, str]]:
    """(endpoint, method) of every rule the matrix must cover."""
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules()
            if rule.endpoint not in EXCLUDED_ENDPOINTS and not rule.endpoint.startswith(EXCLUDED_PREFIXES)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})}


def test_every_endpoint_has_an_entry(app: Flask, record_property: Callable[[str, object], None]) -> None:
    rules = _rules(app)
    missing = sorted(rules - MATRIX.keys())
    assert not missing, ("these rules have no entry in tests/test_authorization_matrix.py MATRIX (say which roles "
                         "may use them): " + ", ".join(f"{method} {endpoint}" for endpoint, method in missing))
    stale = sorted(MATRIX.keys() - rules)
    assert not stale, "MATRIX names rules the app does not have: " + ", ".join(f"{m} {e}" for e, m in stale)
    size = len(ROLES) * len(MATRIX)
    record_property("authorization_matrix", f"{len(ROLES)} roles x {len(MATRIX)} rules = {size} (+{len(MATRIX)} "
                                            "anonymous)")
    print(f"authorization matrix: {len(ROLES)} roles × {len(MATRIX)} rules = {size} requests, "
          f"+ {len(MATRIX)} anonymous")


# -- the data each role acts on ---------------------------------------------------------------------------------

def _one_task_process(role: str) -> tuple[str, bytes]:
    """A process whose only task is for ``role`` (no form, no deadline): a task that role may work."""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="defs_matrix_{role}" targetNamespace="http://example.org/servicecase/tests">
  <bpmn:process id="matrix_{role}" name="Matrix {role}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <bpmn:manualTask id="work" name="Work of {role}" camunda:candidateGroups="{role}"/>
    <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>"""
    return f"matrix_{role}.bpmn", xml.encode()


def _task_role(role: str) -> str:
    """Whose task the role works in the matrix: its own; a supervisor an engineer's (stepping in); the roles
    that work no tasks an engineer's (refused either way)."""
    return role if role in STAFF_ROLES and role != "supervisor" else "engineer"


def _ready_task(process_id: str) -> int:
    case = open_case(actor=SYSTEM, process_id=process_id, reported_at=now() - timedelta(hours=1),
                     channel="phone", description="Matrix case")
    return db.session.scalars(select(WorkItem.id).where(WorkItem.case_id == case.id)).one()


def _failed_timer() -> int:
    case = open_case(actor=SYSTEM, process_id="one_task", reported_at=now() - timedelta(hours=1),
                     channel="phone", description="Matrix timer")
    timer_id = db.session.scalars(select(Timer.id).where(Timer.case_id == case.id)).one()
    mark_failed(timer_id=timer_id, error="the matrix failed it")
    return timer_id


def _target_user(change: str) -> str:
    """A user of its own for one admin change (roles, disable, token)."""
    return users.create_user(username=f"matrixtarget{change}", password=PASSWORD, roles=["agent"],
                             actor=SYSTEM).username


def _claimed_task(process: str, role: str, username: str) -> int:
    """A ready task of ``process`` claimed by the role's user when the role works tasks, else by someone."""
    task_id = _ready_task(process)
    someone = Actor("matrixsomeone", frozenset({"supervisor"}))
    claimer = Actor(username, frozenset({role})) if role in WORKERS else someone
    claim_work_item(work_item_id=task_id, actor=claimer)
    return task_id


def _parts_case(role: str) -> int:
    """An open case on equipment of PARTS_REGION, whose warehouse (made once) stocks MX-FUSE."""
    if not db.session.scalar(select(Warehouse.id).where(Warehouse.region == PARTS_REGION)):
        stock.create_warehouse(actor=SYSTEM, code="MATRIX", name="Matrix warehouse", region=PARTS_REGION)
        stock.create_part(actor=SYSTEM, part_number="MX-FUSE", name="Matrix fuse")
    stock.receive_stock(actor=SYSTEM, region=PARTS_REGION, part_number="MX-FUSE", quantity=10)
    customer = Customer(name=f"Matrix customer of {role}", region=PARTS_REGION, created_at=now())
    equipment = Equipment(customer=customer, model="UPS-10K", serial_number=f"MATRIX-{role}", region=PARTS_REGION,
                          monitored=True)
    db.session.add_all([customer, equipment])
    db.session.flush()
    return open_case(actor=SYSTEM, process_id="one_task", reported_at=now() - timedelta(hours=1), channel="phone",
                     description="Matrix parts case", equipment_id=equipment.id).id


def _world(role: str, username: str) -> World:
    """The cases, tasks and failed timers of one role's requests, committed."""
    seed_demo_data()
    deploy_sources([_one_task_process(r) for r in STAFF_ROLES], actor=SYSTEM)
    task_role = _task_role(role)
    process = f"matrix_{task_role}"
    assignee = f"matrixassignee{task_role.replace('_', '')}"
    if db.session.scalar(select(User.id).where(User.username == assignee)) is None:
        users.create_user(username=assignee, password=PASSWORD, roles=[task_role], actor=SYSTEM)
    read_task = _ready_task(process)
    world = World(
        case_id=db.session.scalar(select(WorkItem.case_id).where(WorkItem.id == read_task)) or 0,
        read_task_id=read_task,
        claim_task_ids={"page": _ready_task(process), "api": _ready_task(process), "worklist": _ready_task(process)},
        release_task_ids={where: _claimed_task(process, role, username) for where in ("page", "api")},
        assign_task_ids={"page": _ready_task(process), "api": _ready_task(process)}, assignee=assignee,
        complete_task_ids={"page": _ready_task(process), "api": _ready_task(process)},
        failed_timer_ids={"page": _failed_timer(), "api": _failed_timer()},
        equipment_id=db.session.scalars(select(Equipment.id).order_by(Equipment.id)).first() or 0,
        username=username, target_users={change: _target_user(change) for change in ("roles", "disable", "token")})
    world.role = role
    world.parts_case_id = _parts_case(role)
    world.attachment_id = add_attachment(actor=SYSTEM, case_id=world.case_id, filename="scan.pdf", content=PDF).id
    world.document_id = make_documents(actor=SYSTEM, case=db.session.get(Case, world.case_id),
                                       kinds=("processing_report",), forms=forms())[0].id
    token, _ = users.create_token(username=world.target_users["token"], actor=SYSTEM)
    world.token_to_revoke = token.public_id
    db.session.commit()
    return world


# -- making the requests ----------------------------------------------------------------------------------------

def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _with_csrf(client: FlaskClient, form: dict[str, Any]) -> dict[str, Any]:
    """The form with the session's CSRF token, read afresh (signing in or out starts a new session) from a page
    as a browser would: the sign-in form, or, once signed in, any page's sign-out form (an error page too)."""
    for path in ("/sign-in", "/"):
        match = CSRF_FIELD.search(client.get(path).get_data(as_text=True))
        if match:
            return {**form, "csrf_token": match.group(1)}
    raise AssertionError("no page offers a CSRF token to this client")


def _request(client: FlaskClient, method: str, entry: Entry, world: World) -> TestResponse:
    path = entry.path(world)
    body = entry.body(world) if entry.body is not None else None
    if method == "GET":
        return client.get(path)
    if entry.csv or entry.csv_file:
        content = entry.csv_file(world) if entry.csv_file else CSV_READINGS
        return client.open(path, method=method, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), "import.csv")})
    if entry.upload:
        files = {"file": (io.BytesIO(PDF), "scan.pdf")}
        return client.open(path, method=method, content_type="multipart/form-data",
                           data=files if _is_api(path) else _with_csrf(client, files))
    if _is_api(path):
        return client.open(path, method=method, json=body) if body is not None else client.open(path, method=method)
    return client.open(path, method=method, data=_with_csrf(client, body or {}))


def _text(response: TestResponse) -> str:
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def _problem(role: str, username: str, endpoint: str, method: str, path: str, allowed: bool,
             response: TestResponse) -> str | None:
    """What is wrong with the response to one request, or None."""
    status = response.status_code
    where = f"{role:17} {method:4} {path} ({endpoint}): {status}"
    if allowed:
        return None if 200 <= status < 400 else f"{where}, expected 2xx/3xx: {_text(response)[:300]}"
    if status != 403:
        return f"{where}, expected 403"
    if _is_api(path):
        body = response.get_json(silent=True) or {}
        message = str(body.get("message", ""))
        if body.get("status") != 403 or f"{username} may not" not in message or "permission" not in (
                body.get("errors") or {}):
            return f"{where}: the JSON does not name what is missing: {body}"
    elif f"{username} may not" not in _text(response):
        return f"{where}: the error page does not say what is missing: {_text(response)[:300]}"
    return None


def _username(role: str) -> str:
    return f"matrix{role.replace('_', '')}"


@pytest.mark.parametrize("role", ROLES)
def test_role_against_every_endpoint(deployed: Flask, signed_in: Callable[..., FlaskClient], role: str) -> None:
    username = _username(role)
    client = signed_in(username, role)
    world = _world(role, username)
    problems = []
    for (endpoint, method), entry in MATRIX.items():
        response = _request(client, method, entry, world)
        problem = _problem(role, username, endpoint, method, entry.path(world), role in entry.allowed, response)
        if problem:
            problems.append(problem)
    assert not problems, f"{len(problems)} of {len(MATRIX)} requests as {role} went wrong:\n" + "\n".join(problems)


def test_anonymous_requests_are_sent_to_sign_in(deployed: Flask) -> None:
    user_token("matrixanonymous", "engineer")  # the user the sign-in page's request signs in
    world = _world("engineer", "matrixanonymous")
    problems = []
    for (endpoint, method), entry in MATRIX.items():
        path = entry.path(world)
        client = deployed.test_client()  # anonymous again (the sign-in request signed the last one in)
        response = _request(client, method, entry, world)
        if entry.public:
            if not 200 <= response.status_code < 400:
                problems.append(f"{method} {path} ({endpoint}): {response.status_code}, expected 2xx/3xx")
        elif _is_api(path):
            body = response.get_json(silent=True) or {}
            if response.status_code != 401 or body.get("status") != 401:
                problems.append(f"{method} {path} ({endpoint}): {response.status_code} {body}, expected 401 JSON")
        else:
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or not re.search(r"sign.?in|login", location):
                problems.append(f"{method} {path} ({endpoint}): {response.status_code} to {location!r}, "
                                "expected a redirect to the sign-in page")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role,task_role", [("engineer", "warehouse"), ("warehouse", "engineer"),
                                            ("agent", "technical_dept")])
def test_staff_may_not_work_the_tasks_of_another_role(deployed: Flask, signed_in: Callable[..., FlaskClient],
                                                      role: str, task_role: str) -> None:
    deploy_sources([_one_task_process(task_role)], actor=SYSTEM)
    task_id = _ready_task(f"matrix_{task_role}")
    db.session.commit()
    client = signed_in(_username(role), role)
    for path in (f"/api/tasks/{task_id}/claim", f"/api/tasks/{task_id}/complete"):
        response = client.post(path, json={"data": {}} if path.endswith("complete") else None)
        assert response.status_code == 403, (path, response.get_json())
        body = response.get_json()
        assert f"it is for the role {task_role}" in body["message"]
        assert body["errors"]["roles_needed"] == sorted({task_role, "supervisor"})
    db.session.rollback()
    item = db.session.get(WorkItem, task_id)
    assert item is not None and item.state == "ready" and item.assignee is None


def test_an_admin_completes_a_staff_task_only_when_also_holding_its_role(
        deployed: Flask, signed_in: Callable[..., FlaskClient]) -> None:
    deploy_sources([_one_task_process("engineer")], actor=SYSTEM)
    task_id = _ready_task("matrix_engineer")
    db.session.commit()
    refused = signed_in("adminonly", "admin").post(f"/api/tasks/{task_id}/complete", json={"data": {}})
    assert refused.status_code == 403
    assert refused.get_json()["errors"]["permission"] == ["tasks.work"]
    done = signed_in("adminengineer", "admin", "engineer").post(f"/api/tasks/{task_id}/complete", json={"data": {}})
    assert done.status_code == 200, done.get_json()
    db.session.rollback()
    item = db.session.get(WorkItem, task_id)
    assert item is not None and item.state == "completed" and item.completed_by == "adminengineer"
