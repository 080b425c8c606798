"""The case page's diagram, attachments and timeline, and the earlier records on task pages (signed-in users)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.web import vendor
from tests.support import stocked_region

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
DIAGNOSIS = {"diagnosis": "Battery string 2 failed the load test", "fault_class": "common",
             "removal_target_hours": 48, "cause": "quality", "support_mode": "remote", "parts_needed": True,
             "parts_requested": [{"part_number": "BAT-12V-100", "quantity": 8}]}
PARTS = {"reservation_note": "Packed on shelf B3 of the South regional stock"}
REMOTE = {"remote_channel": "network", "work_performed": "Reset the charger", "remote_result": "repaired"}


def text_of(response: TestResponse) -> str:
    """The page as a person reads it: tags removed, whitespace collapsed."""
    html = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def csrf_of(client: FlaskClient, path: str) -> str:
    """The CSRF token from a page's form, as a browser would send it back."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


@pytest.fixture
def case_id(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> int:
    """A fault case opened by an agent on out-of-warranty equipment of the South region, whose warehouse stocks
    batteries."""
    seed_demo_data()
    stocked_region("South", {"BAT-12V-100": 8})
    equipment = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == "EA66060K0417"))
    response = signed_in("lin", "agent").post("/api/cases", json={
        "process": "fault_handling", "channel": "phone", "reported_at": "2026-03-02T07:00:00+00:00",
        "description": "UPS alarm: battery fault", "equipment_id": equipment})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def work(client: FlaskClient, case_id: int, spec: str, data: dict) -> None:
    """Claim and complete the open task ``spec`` through the API."""
    open_tasks = client.get(f"/api/cases/{case_id}").get_json()["open_tasks"]
    task = next(t for t in open_tasks if t["task_spec"] == spec)
    assert client.post(f"/api/tasks/{task['id']}/claim").status_code == 200
    done = client.post(f"/api/tasks/{task['id']}/complete", json={"data": data})
    assert done.status_code == 200, done.get_json()


def open_task(client: FlaskClient, case_id: int, spec: str) -> int:
    """The work item id of the open task ``spec``."""
    return next(t["id"] for t in client.get(f"/api/cases/{case_id}").get_json()["open_tasks"]
                if t["task_spec"] == spec)


# -- the diagram ---------------------------------------------------------------------------------------
def test_the_case_page_carries_the_diagram_container_and_its_scripts(case_id: int,
                                                                     signed_in: Callable[..., FlaskClient]) -> None:
    html = signed_in("wang", "engineer").get(f"/cases/{case_id}").get_data(as_text=True)
    container = re.search(r'<div id="case-diagram"[^>]*>', html)
    assert container, "no diagram container"
    assert f'data-source="/api/cases/{case_id}/diagram"' in container.group(0)
    assert 'data-state="loading"' in container.group(0)
    section = html[html.index('class="case-diagram-section"'):html.index('id="attachments"')]
    scripts = re.findall(r"<script[^>]*>", section)
    assert scripts == ['<script src="/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js" defer>',
                       '<script src="/static/web/js/case-diagram.js" defer>']  # files only, nothing inline
    assert "onclick" not in section and "onload" not in section
    for words in ("Completed", "Active: a task ready for someone", "Waiting: reached", "Not reached",
                  "Fit to view"):
        assert words in section, words


def test_the_viewer_and_our_script_are_served_by_the_app(app: Flask, client: FlaskClient) -> None:
    if not vendor.viewer_installed():
        pytest.fail("node_modules/bpmn-js is missing: run `python3 dev.py test` (it runs npm ci) first")
    viewer = client.get("/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js")
    assert viewer.status_code == 200 and "javascript" in viewer.mimetype and b"BpmnJS" in viewer.data
    for asset in ("assets/diagram-js.css", "assets/bpmn-js.css", "assets/bpmn-font/css/bpmn.css"):
        assert client.get(f"/static/vendor/bpmn-js/{asset}").status_code == 200, asset
    ours = client.get("/static/web/js/case-diagram.js")
    assert ours.status_code == 200 and b"addMarker" in ours.data and b'"ready"' in ours.data
    assert client.get("/static/web/case.css").status_code == 200
    assert client.get("/static/vendor/bpmn-js/../../package.json").status_code == 404
    assert client.get("/static/vendor/bpmn-js/nothing.js").status_code == 404


def test_without_the_viewer_a_clear_404_and_a_note_instead_of_the_diagram(
        case_id: int, client: FlaskClient, signed_in: Callable[..., FlaskClient], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vendor, "BPMN_JS_DIST", tmp_path / "absent")
    missing = client.get("/static/vendor/bpmn-js/bpmn-navigated-viewer.production.min.js")
    assert missing.status_code == 404
    assert "bpmn-js diagram viewer is not installed" in missing.get_data(as_text=True)
    page = signed_in("wang", "engineer").get(f"/cases/{case_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="case-diagram"' not in html and "/static/vendor/" not in html
    assert "The process diagram cannot be shown" in text_of(page)


# -- attachments on the page ---------------------------------------------------------------------------
def test_uploading_on_the_page_lists_the_file_and_downloads_it(case_id: int,
                                                               signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("王磊", "engineer")
    page = engineer.get(f"/cases/{case_id}")
    assert 'enctype="multipart/form-data"' in page.get_data(as_text=True)
    assert "Attach a file (fax scan, photo, document)" in text_of(page)
    sent = engineer.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(engineer, f"/cases/{case_id}"), "file": (io.BytesIO(PDF), "传真 扫描.pdf")})
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/cases/{case_id}#attachments")
    page = engineer.get(f"/cases/{case_id}")
    words = text_of(page)
    assert "传真 扫描.pdf PDF 77 bytes" in words
    assert "Attachment '传真 扫描.pdf' added by 王磊" in words
    link = re.search(rf'href="(/cases/{case_id}/attachments/\d+)" download>传真 扫描.pdf', page.get_data(as_text=True))
    assert link
    download = engineer.get(link.group(1))
    assert download.status_code == 200 and download.data == PDF and download.mimetype == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"] == (
        f"attachment; filename=\"attachment.pdf\"; filename*=UTF-8''{quote('传真 扫描.pdf')}")


def test_page_uploads_need_the_csrf_token_a_file_and_an_allowed_size(
        app: Flask, case_id: int, signed_in: Callable[..., FlaskClient], monkeypatch: pytest.MonkeyPatch) -> None:
    engineer = signed_in("wang", "engineer")
    token = csrf_of(engineer, f"/cases/{case_id}")
    no_token = engineer.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data",
                             data={"file": (io.BytesIO(PDF), "a.pdf")})
    assert no_token.status_code == 400
    no_file = engineer.post(f"/cases/{case_id}/attachments", data={"csrf_token": token})
    assert no_file.status_code == 422 and "Choose a file" in text_of(no_file)
    refused = engineer.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data",
                            data={"csrf_token": token, "file": (io.BytesIO(b"MZ" + b"\x00" * 80), "a.pdf")})
    assert refused.status_code == 415 and "application/x-msdownload" in text_of(refused)
    monkeypatch.setitem(app.config, "ATTACHMENT_MAX_BYTES", 1000)
    too_big = engineer.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data",
                            data={"csrf_token": token, "file": (io.BytesIO(PDF + b"x" * 200_000), "a.pdf")})
    assert too_big.status_code == 413 and "limit of 1 KB (1000 bytes)" in text_of(too_big)
    assert "No attachments yet." in text_of(engineer.get(f"/cases/{case_id}"))


def test_a_page_upload_may_be_far_larger_than_the_apps_request_limit(
        app: Flask, case_id: int, signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("wang", "engineer")
    scan = PDF + b"0" * (3 * app.config["MAX_CONTENT_LENGTH"])  # a 3 MB fax scan; forms stop at 1 MB
    sent = engineer.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data", data={
        "csrf_token": csrf_of(engineer, f"/cases/{case_id}"), "file": (io.BytesIO(scan), "fax.pdf")})
    assert sent.status_code == 302
    assert "fax.pdf PDF 3 MB" in text_of(engineer.get(f"/cases/{case_id}"))
    too_large_form = engineer.post(f"/cases/{case_id}", data={"x": "y" * (2 * app.config["MAX_CONTENT_LENGTH"])})
    assert too_large_form.status_code in (405, 413)  # other routes keep the app's limit


def test_an_auditor_sees_attachments_but_no_upload_form(case_id: int, signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("wang", "engineer")
    assert engineer.post(f"/api/cases/{case_id}/attachments", content_type="multipart/form-data",
                         data={"file": (io.BytesIO(PDF), "scan.pdf")}).status_code == 201
    page = signed_in("audrey", "auditor").get(f"/cases/{case_id}")
    assert "scan.pdf" in text_of(page)
    assert 'name="file"' not in page.get_data(as_text=True)


# -- the timeline and the records each task needs ---------------------------------------------------------
def test_the_timeline_says_who_did_what_in_words(case_id: int, signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("王磊", "engineer")
    work(engineer, case_id, "diagnose_fault", DIAGNOSIS)
    history = text_of(engineer.get(f"/cases/{case_id}"))
    history = history[history.index("History"):]
    expected = ["Case FH-2026-000001 opened by lin from a report by telephone",
                "Task 'Diagnose fault' ready for the technical support engineer",
                "Deadline '24 h diagnosis deadline' scheduled, due 2026-03-03 15:00",
                "Task 'Diagnose fault' claimed by 王磊",
                "Fault diagnosis recorded by 王磊 (task 'Diagnose fault')",
                "Battery string 2 failed the load test",  # the record, read-only, with the form's labels
                "Deadline '24 h diagnosis deadline' cleared"]
    positions = [history.index(words) for words in expected]
    assert positions == sorted(positions)
    assert "Product quality problem" in history  # a choice's label, not its code "quality"
    assert "task_completed" not in history and "timer_scheduled" not in history


def test_the_warehouse_keeper_and_the_report_writer_see_the_earlier_records(
        case_id: int, signed_in: Callable[..., FlaskClient]) -> None:
    work(signed_in("王磊", "engineer"), case_id, "diagnose_fault", DIAGNOSIS)
    work(signed_in("lin", "agent"), case_id, "quote_maintenance_cost",
         {"quote_amount": 1250, "quote_currency": "CNY", "quote_accepted": "yes"})
    keeper = signed_in("zhao", "warehouse")
    reserve = text_of(keeper.get(f"/tasks/{open_task(keeper, case_id, 'reserve_parts')}"))
    assert "Records of earlier tasks" in reserve
    assert "Fault diagnosis — Diagnose fault, recorded" in reserve and "by 王磊" in reserve
    assert "Battery string 2 failed the load test" in reserve
    work(keeper, case_id, "reserve_parts", PARTS)
    work(signed_in("王磊", "engineer"), case_id, "repair_remotely", REMOTE)
    writer = signed_in("lin", "agent")
    report_id = open_task(writer, case_id, "write_processing_report")
    page = writer.get(f"/tasks/{report_id}")
    report = text_of(page)
    for words in ("Fault diagnosis — Diagnose fault", "Spare parts reservation — Reserve spare parts",
                  "BAT-12V-100", "Packed on shelf B3", "Remote repair record — Repair remotely",
                  "Reset the charger"):
        assert words in report, words
    html = page.get_data(as_text=True)
    section = html[html.index('class="earlier-records"'):]
    section = section[:section.index("</section>")]
    assert section.count("<details open>") == 4  # ready task: every record open, each one collapsible
    assert "<input" not in section and "<textarea" not in section  # read-only


def test_a_completed_task_shows_only_the_records_before_it(case_id: int,
                                                           signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("王磊", "engineer")
    diagnosis_id = open_task(engineer, case_id, "diagnose_fault")
    work(engineer, case_id, "diagnose_fault", DIAGNOSIS)
    page = text_of(engineer.get(f"/tasks/{diagnosis_id}"))
    assert "Records of earlier tasks" not in page  # nothing was recorded before the diagnosis


def test_every_page_and_api_answer_carries_the_security_headers(case_id: int,
                                                                signed_in: Callable[..., FlaskClient]) -> None:
    client = signed_in("wang", "engineer")
    for response in (client.get(f"/cases/{case_id}"), client.get("/"), client.get("/api/cases"),
                     client.get("/sign-in")):
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy, policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
