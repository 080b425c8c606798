"""The server-rendered pages, driven through the Flask test client: worklist, cases, tasks, errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.cases.models import Case
from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem
from app.web.filters import deadline_clock, format_duration, format_utc
from tests.support import WORKING_ROLES, stocked_region

IN_WARRANTY = "EA99020K0001"  # warranty to 2027-02-28
OUT_OF_WARRANTY = "EA66060K0417"  # warranty ended 2024-06-14


@pytest.fixture
def seeded(deployed: Flask, clock: ManualClock) -> Flask:
    """Processes deployed and the demo customers and equipment on file, at T0 (2026-03-02 08:00 UTC)."""
    seed_demo_data()
    db.session.commit()
    return deployed


# ---------------------------------------------------------------------------------------------- helpers


def text_of(response: TestResponse) -> str:
    """The response's HTML with tags removed and whitespace collapsed, for reading like a person."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def csrf_token(client: FlaskClient) -> str:
    """The session's CSRF token, read from a page as a browser would."""
    html = client.get("/cases/new").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the new-case page"
    return match.group(1)


def equipment_id(serial: str) -> int:
    """The id of a demo equipment by serial number."""
    item = db.session.scalar(db.select(Equipment).where(Equipment.serial_number == serial))
    assert item is not None
    return item.id


def post_new_case(client: FlaskClient, **fields: Any) -> TestResponse:
    """Submit the new-case form with sensible values, overridden by ``fields``."""
    form = {"process": "fault_handling", "reported_at": "2026-03-02T07:00", "channel": "phone",
            "priority": "normal", "equipment_id": str(equipment_id(IN_WARRANTY)),
            "description": "UPS alarm: battery fault, load on bypass", "csrf_token": csrf_token(client),
            "confirm_open_case": "true"}  # several cases per equipment here; the warning is tests/web/test_intake.py
    form.update({key: str(value) for key, value in fields.items()})
    form["reported_at"] = department_time(form["reported_at"])
    return client.post("/cases/new", data=form)


def department_time(utc_typed: str) -> str:
    """The tests write notice times in UTC; the form takes them in the department's zone (Asia/Shanghai,
    UTC+8, no daylight saving): what an agent would type for that UTC moment. Malformed values pass as they are."""
    try:
        moment = datetime.strptime(utc_typed, "%Y-%m-%dT%H:%M")
    except ValueError:
        return utc_typed
    return (moment + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M")


def open_case(client: FlaskClient, **fields: Any) -> int:
    """Open a case through the form and return its id (from the redirect)."""
    response = post_new_case(client, **fields)
    assert response.status_code == 302, text_of(response)
    match = re.fullmatch(r".*/cases/(\d+)", response.headers["Location"])
    assert match
    return int(match.group(1))


def ready_task(case_id: int, spec: str) -> int:
    """The id of the case's ready work item of a BPMN task."""
    db.session.expire_all()
    item = db.session.scalar(db.select(WorkItem).where(WorkItem.case_id == case_id, WorkItem.task_spec == spec,
                                                       WorkItem.state == "ready"))
    assert item is not None, f"no ready {spec} on case {case_id}"
    return item.id


def submit_task(client: FlaskClient, task_id: int, fields: dict[str, str], *,
                token: str | None = None) -> TestResponse:
    """Press "Complete" on the task page with ``fields`` filled in."""
    data = {**fields, "csrf_token": token if token is not None else csrf_token(client)}
    return client.post(f"/tasks/{task_id}", data=data)


def work(client: FlaskClient, case_id: int, spec: str, fields: dict[str, str]) -> None:
    """Open the task from the case page, check its form is drawn, and complete it."""
    task_id = ready_task(case_id, spec)
    case_page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert f'href="/tasks/{task_id}"' in case_page
    page = client.get(f"/tasks/{task_id}")
    assert page.status_code == 200
    response = submit_task(client, task_id, fields)
    assert response.status_code == 302, text_of(response)
    assert response.headers["Location"].endswith(f"/cases/{case_id}")


DIAGNOSIS = {"diagnosis": "Battery string 2 failed the load test.", "fault_class": "common",
             "removal_target_hours": "48", "cause": "quality", "support_mode": "remote"}
REPORT = {"report_summary": "Fault removed; the UPS runs on mains again.", "report_sent_via": "email",
          "customer_confirmed": "true"}


# ---------------------------------------------------------------------------------------------- worklist


def test_worklist_renders_with_the_acting_user_and_navigation(seeded: Flask, client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    page = text_of(response)
    assert "Worklist" in page and "Cases" in page and "New case" in page
    assert "Signed in as demo" in page and ">Sign out</button>" in response.get_data(as_text=True)
    assert "No ready tasks" in page
    assert 'href="/static/web/web.css"' in response.get_data(as_text=True)
    assert client.get("/static/web/web.css").status_code == 200


def test_worklist_lists_ready_tasks_and_filters_by_role_and_mine(seeded: Flask, client: FlaskClient,
                                                                  signed_in: Callable[..., FlaskClient]) -> None:
    fault = open_case(client)
    open_case(client, process="one_task", equipment_id="", description="How often should batteries be tested?")
    page = text_of(client.get("/"))
    assert "Diagnose fault" in page and "Answer the question" in page
    assert "FH-2026-" in page and "Harbour City Data Centre" in page
    assert "Technical support engineer" in page and "Customer service agent" in page

    engineer = text_of(client.get("/?role=engineer"))
    assert "Diagnose fault" in engineer and "Answer the question" not in engineer
    agent = text_of(client.get("/?role=agent"))
    assert "Answer the question" in agent and "Diagnose fault" not in agent
    assert "No ready tasks match the filter" in text_of(client.get("/?role=auditor"))

    assert "No ready tasks match the filter" in text_of(client.get("/?mine=1"))
    task_id = ready_task(fault, "diagnose_fault")
    claimed = client.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf_token(client)})
    assert claimed.status_code == 302
    mine = text_of(client.get("/?mine=1"))
    assert "Diagnose fault" in mine and "Answer the question" not in mine
    assert "Diagnose fault" not in text_of(signed_in("bob", *WORKING_ROLES).get("/?mine=1"))


def test_worklist_orders_most_urgent_first_and_paginates(seeded: Flask, client: FlaskClient) -> None:
    open_case(client, reported_at="2026-03-01T12:00", description="older notice")
    open_case(client, reported_at="2026-03-02T06:00", description="newer notice")
    open_case(client, reported_at="2026-03-01T20:00", description="middle notice")
    html = client.get("/").get_data(as_text=True)
    numbers = re.findall(r">(FH-2026-\d+)<", html)
    assert numbers == ["FH-2026-000001", "FH-2026-000003", "FH-2026-000002"]
    first = client.get("/?per_page=2")
    assert re.findall(r">(FH-2026-\d+)<", first.get_data(as_text=True)) == numbers[:2]
    assert "1–2 of 3 tasks, page 1 of 2" in text_of(first)
    assert 'href="/?per_page=2&amp;page=2"' in first.get_data(as_text=True)
    second = client.get("/?per_page=2&page=2")
    assert re.findall(r">(FH-2026-\d+)<", second.get_data(as_text=True)) == numbers[2:]
    steered = client.get("/?per_page=2&_external=1&_scheme=javascript").get_data(as_text=True)
    assert 'href="/?per_page=2&amp;page=2"' in steered and "javascript:" not in steered


@pytest.mark.parametrize("query", ["role=nobody", "page=0", "page=abc", "per_page=1000", "mine=perhaps"])
def test_worklist_bad_filters_are_a_400_page(seeded: Flask, client: FlaskClient, query: str) -> None:
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "text/html" in response.content_type
    assert "invalid values" in text_of(response)


# ---------------------------------------------------------------------------------------------- new case


def test_new_case_form_offers_processes_equipment_and_now(seeded: Flask, client: FlaskClient) -> None:
    response = client.get("/cases/new")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<option value="fault_handling" selected>Fault handling (v1)</option>' in html
    assert 'name="reported_at" value="2026-03-02T16:00"' in html  # 08:00 UTC in Asia/Shanghai
    assert 'name="q"' in html  # the equipment is searched for (tests/web/test_intake.py)
    page = text_of(response)
    assert "Customer's notice time (Asia/Shanghai)" in page and "not when you type it in" in page
    assert 'type="hidden" name="csrf_token"' in html


def test_new_case_without_description_keeps_values_and_marks_the_field(seeded: Flask,
                                                                       client: FlaskClient) -> None:
    response = post_new_case(client, description="   ", title="Beeping UPS", channel="fax",
                             reported_at="2026-03-01T23:15")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<p class="field-error" id="description-error">Describe what the customer reported.</p>' in html
    assert 'aria-describedby="description-error"' in html and 'aria-invalid="true"' in html
    assert 'value="Beeping UPS"' in html
    assert 'value="2026-03-02T07:15"' in html
    assert 'id="channel-fax" name="channel" value="fax" checked' in html
    assert f'name="equipment_id" value="{equipment_id(IN_WARRANTY)}" checked' in html
    assert "The case was not opened" in text_of(response)
    assert "Error: New case" in html


def test_new_case_with_a_malformed_time_shows_the_error_at_the_field(seeded: Flask, client: FlaskClient) -> None:
    response = post_new_case(client, reported_at="2026-13-45T25:99", description="Alarm after storm")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="reported_at-error">Enter a date and time such as 2026-03-02 08:00.</p>' in html
    assert 'value="2026-13-45T25:99"' in html
    assert "Alarm after storm</textarea>" in html


def test_new_case_in_the_future_is_refused_at_the_field(seeded: Flask, client: FlaskClient) -> None:
    response = post_new_case(client, reported_at="2026-03-02T09:00", description="Reported tomorrow?")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="reported_at-error">cannot be in the future</p>' in html
    assert 'value="2026-03-02T17:00"' in html  # as typed, in the department's zone
    assert "Reported tomorrow?</textarea>" in html
    assert "No ready tasks" in text_of(client.get("/"))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("process", "no_such_process", "unknown process"),
    ("channel", "pigeon", "Must be one of"),
    ("equipment_id", "abc", "Choose equipment from the list."),
    ("equipment_id", "99999999999999999999", "a whole number from 1 to 2147483647"),
    ("equipment_id", "2147483648", "a whole number from 1 to 2147483647"),
    ("equipment_id", "\u0661", "Choose equipment from the list."),  # an Arabic-Indic 1 is not an id
    ("equipment_id", "999", "does not exist"),
])
def test_new_case_bad_choices_are_field_errors_not_500(seeded: Flask, client: FlaskClient, field: str,
                                                       value: str, message: str) -> None:
    response = post_new_case(client, **{field: value})
    assert response.status_code == 422
    assert f'id="{field}-error">' in response.get_data(as_text=True)
    assert message in text_of(response)


def test_new_case_opened_via_the_form_appears_on_the_worklist(seeded: Flask, client: FlaskClient) -> None:
    response = post_new_case(client)
    assert response.status_code == 302
    case_page = client.get(response.headers["Location"])
    page = text_of(case_page)
    assert "Case FH-2026-000001 opened." in page
    assert "Customer's notice 2026-03-02 15:00" in page
    assert "Entered 2026-03-02 16:00 by demo (1 h after the notice)" in page
    assert "Diagnose fault" in page and "24 h diagnosis deadline" in page
    worklist = text_of(client.get("/"))
    assert ("FH-2026-000001 Harbour City Data Centre South EA990-200K EA99020K0001 Diagnose fault "
            "Technical support engineer — due in 23 h") in worklist


# ---------------------------------------------------------------------------------------------- case pages


def test_fault_case_worked_to_closed_remotely_through_the_pages(seeded: Flask, client: FlaskClient) -> None:
    case_id = open_case(client)
    work(client, case_id, "diagnose_fault", DIAGNOSIS)
    page = text_of(client.get(f"/cases/{case_id}"))
    assert "Repair remotely" in page and "Removal deadline" in page
    assert "Free of charge Yes" in page
    work(client, case_id, "repair_remotely", {"remote_channel": "network", "work_performed": "Reset the charger.",
                                              "remote_result": "repaired"})
    work(client, case_id, "write_processing_report", REPORT)

    response = client.get(f"/cases/{case_id}")
    page = text_of(response)
    assert "Case FH-2026-000001 closed" in page
    assert "Status Closed, closed 2026-03-02 16:00" in page
    assert "No open tasks." in page and "No deadlines waiting." in page
    assert "Outcome repaired remotely" in page
    history = page[page.index("History"):]
    expected = ["Case FH-2026-000001 opened by demo", "Task 'Diagnose fault' ready",
                "Deadline '24 h diagnosis deadline' scheduled",
                "Fault diagnosis recorded by demo", "Battery string 2 failed the load test.", "Product quality problem",
                "Remote (telephone / network)", "Deadline '24 h diagnosis deadline' cleared",
                "Remote repair record recorded by demo", "Reset the charger.",
                "Processing report to the customer recorded by demo", "Case closed"]
    positions = [history.index(words) for words in expected]
    assert positions == sorted(positions)
    assert history.count("recorded by demo") == 3
    worklist = text_of(client.get("/"))
    assert "No ready tasks" in worklist
    closed = text_of(client.get("/cases?status=closed"))
    assert "FH-2026-000001" in closed


def test_quote_accepted_on_site_path_with_parts_through_the_pages(seeded: Flask, client: FlaskClient,
                                                                  clock: ManualClock) -> None:
    stocked_region("South", {"BAT-12V-100": 10})
    case_id = open_case(client, equipment_id=equipment_id(OUT_OF_WARRANTY), channel="email",
                        description="UPS in the network room shuts down under load")
    page = text_of(client.get(f"/cases/{case_id}"))
    assert "warranty expired" in page
    clock.advance(timedelta(hours=2))
    work(client, case_id, "diagnose_fault", {**DIAGNOSIS, "cause": "wear", "support_mode": "on_site",
                                             "parts_needed": "true", "parts_requested-0-part_number": "BAT-12V-100",
                                             "parts_requested-0-quantity": "8"})
    assert "Free of charge No" in text_of(client.get(f"/cases/{case_id}"))
    quote = text_of(client.get(f"/tasks/{ready_task(case_id, 'quote_maintenance_cost')}"))
    assert "Role Customer service agent" in quote and "Deadline none" in quote
    # The quote says why the repair is charged: the warranty table's reason, in the form's text.
    assert "outside the free warranty : warranty ended (the warranty rule" in quote
    work(client, case_id, "quote_maintenance_cost", {"quote_amount": "1250.00", "quote_currency": "CNY",
                                                     "quote_accepted": "yes"})
    clock.advance(timedelta(hours=1))
    reserve = text_of(client.get(f"/tasks/{ready_task(case_id, 'reserve_parts')}"))
    assert "Reserve exactly the parts the diagnosis named" in reserve and "BAT-12V-100 x 8" in reserve
    work(client, case_id, "reserve_parts", {"reservation_note": "Shelf B3"})
    assert _stock("BAT-12V-100") == (10, 8)
    clock.advance(timedelta(hours=3))
    onsite = client.get(f"/tasks/{ready_task(case_id, 'repair_on_site')}").get_data(as_text=True)
    assert 'name="parts_used-0-part_number" value="BAT-12V-100"' in onsite  # prefilled with what was reserved
    work(client, case_id, "repair_on_site", {"engineer_name": "Wang Lei", "arrived_at": "2026-03-02T12:30",
                                             "work_performed": "Replaced battery string 2.",
                                             "parts_used-0-part_number": "BAT-12V-100",
                                             "parts_used-0-quantity": "6", "onsite_result": "repaired"})
    assert _stock("BAT-12V-100") == (4, 0)  # six used, two back on the shelf
    work(client, case_id, "write_processing_report", REPORT)

    page = text_of(client.get(f"/cases/{case_id}"))
    assert "Status Closed, closed 2026-03-02 22:00" in page
    assert "Outcome repaired on site" in page
    assert "2026-03-02 18:00 Fault diagnosis recorded by demo (task 'Diagnose fault') Task Diagnose fault" in page
    for words in ("Maintenance cost quote", "1250.00", "Spare parts reservation", "Shelf B3",
                  "On-site maintenance record", "Wang Lei", "2026-03-02 12:30 UTC", "Replaced battery string 2."):
        assert words in page, words


def _stock(part_number: str) -> tuple[int, int]:
    """(on hand, reserved) of a part in the South warehouse, read afresh."""
    from app.stock.models import Part, StockLevel

    db.session.rollback()
    level = db.session.scalar(select(StockLevel).join(StockLevel.part).where(Part.part_number == part_number)
                              .execution_options(populate_existing=True))
    assert level is not None
    return level.on_hand, level.reserved


def test_cases_list_filters_by_status_process_and_text(seeded: Flask, client: FlaskClient) -> None:
    open_case(client, description="Inverter fan noise")
    open_case(client, process="one_task", equipment_id="", description="Question about batteries")
    everything = text_of(client.get("/cases"))
    assert "Inverter fan noise" in everything and "Question about batteries" in everything
    by_process = text_of(client.get("/cases?process=one_task"))
    assert "Question about batteries" in by_process and "Inverter fan noise" not in by_process
    by_text = text_of(client.get("/cases?text=FAN"))
    assert "Inverter fan noise" in by_text and "Question about batteries" not in by_text
    assert "No cases match the filter" in text_of(client.get("/cases?status=closed"))
    assert client.get("/cases?status=lost").status_code == 400


# ---------------------------------------------------------------------------------------------- task pages


def test_task_page_shows_case_summary_form_and_claim(seeded: Flask, client: FlaskClient,
                                                     signed_in: Callable[..., FlaskClient]) -> None:
    case_id = open_case(client)
    task_id = ready_task(case_id, "diagnose_fault")
    response = client.get(f"/tasks/{task_id}")
    html = response.get_data(as_text=True)
    page = text_of(response)
    assert "Diagnose fault" in page and "Technical support engineer" in page
    assert "Due 2026-03-03 15:00 Clock due in 23 h" in page
    assert "Case FH-2026-000001" in page and "Harbour City Data Centre" in page
    assert 'name="fault_class"' in html and 'name="removal_target_hours"' in html
    assert f'action="/tasks/{task_id}/claim"' in html and ">Claim</button>" in html
    assert ">Complete</button>" in html

    client.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf_token(client)})
    claimed = client.get(f"/tasks/{task_id}")
    assert "Assignee demo" in text_of(claimed)
    assert ">Claim</button>" not in claimed.get_data(as_text=True)
    other = signed_in("bob", *WORKING_ROLES).get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Claim (take over from demo)" in other


def test_task_form_with_a_bad_value_is_a_422_with_the_error_at_the_field(seeded: Flask,
                                                                         client: FlaskClient) -> None:
    case_id = open_case(client)
    task_id = ready_task(case_id, "diagnose_fault")
    response = submit_task(client, task_id, {**DIAGNOSIS, "removal_target_hours": "9999",
                                             "diagnosis": "Charger board burnt"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    field = re.search(r'<div class="form-field form-field-number has-error">.*?</div>', html, flags=re.S)
    assert field, "the number field is not marked"
    assert 'name="removal_target_hours" value="9999"' in field.group(0)
    assert 'class="field-error" id="f-fault_diagnosis-removal_target_hours-error"' in field.group(0)
    assert "Charger board burnt</textarea>" in html
    assert 'value="remote" checked' in html
    assert "Please correct the fields marked below." in text_of(response)
    assert ready_task(case_id, "diagnose_fault") == task_id  # nothing moved on

    missing = submit_task(client, task_id, {**DIAGNOSIS, "cause": ""})
    assert missing.status_code == 422
    assert 'id="f-fault_diagnosis-cause-error"' in missing.get_data(as_text=True)


def test_posting_to_a_completed_task_is_a_409_that_links_to_the_case(seeded: Flask,
                                                                    client: FlaskClient) -> None:
    case_id = open_case(client)
    task_id = ready_task(case_id, "diagnose_fault")
    assert submit_task(client, task_id, DIAGNOSIS).status_code == 302
    again = submit_task(client, task_id, DIAGNOSIS)
    assert again.status_code == 409
    page = text_of(again)
    assert "This task can no longer be done" in page and "completed" in page
    assert f'href="/cases/{case_id}"' in again.get_data(as_text=True)
    claim = client.post(f"/tasks/{task_id}/claim", data={"csrf_token": csrf_token(client)})
    assert claim.status_code == 409

    done = client.get(f"/tasks/{task_id}")
    assert done.status_code == 200
    html = done.get_data(as_text=True)
    assert f'action="/tasks/{task_id}"' not in html and ">Complete</button>" not in html
    assert "Battery string 2 failed the load test." in text_of(done)
    assert "Completed 2026-03-02 16:00 by demo" in text_of(done)


def test_missing_or_wrong_csrf_token_is_a_400(seeded: Flask, client: FlaskClient) -> None:
    no_token = client.post("/cases/new", data={"process": "fault_handling", "reported_at": "2026-03-02T07:00",
                                               "channel": "phone", "description": "x"})
    assert no_token.status_code == 400
    assert "security token is missing or out of date" in text_of(no_token)
    assert "text/html" in no_token.content_type
    csrf_token(client)  # the session now has a token; a different one is still refused
    wrong = client.post("/cases/new", data={"csrf_token": "forged"})
    assert wrong.status_code == 400
    case_id = open_case(client)
    task_id = ready_task(case_id, "diagnose_fault")
    assert submit_task(client, task_id, DIAGNOSIS, token="").status_code == 400
    assert client.post(f"/tasks/{task_id}/claim").status_code == 400
    assert ready_task(case_id, "diagnose_fault") == task_id


# ---------------------------------------------------------------------------------------------- clocks


def test_deadline_clock_counts_down_then_overdue_on_the_system_clock(seeded: Flask, client: FlaskClient,
                                                                    clock: ManualClock) -> None:
    case_id = open_case(client)  # notice 07:00, diagnosis due next day 07:00; now 08:00
    html = client.get("/").get_data(as_text=True)
    assert ('<span class="deadline deadline-ok" data-due="2026-03-03T07:00:00+00:00" data-text-due="due in {span}" '
            'data-text-overdue="overdue by {span}" title="Due 2026-03-03 15:00">due in 23 h</span>') in html
    clock.advance(timedelta(hours=19, minutes=40))
    soon = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<span class="deadline deadline-soon"' in soon and "due in 3 h 20 min</span>" in soon
    clock.advance(timedelta(hours=5, minutes=25))  # 2026-03-03 09:05, past the 24 h
    overdue = client.get("/").get_data(as_text=True)
    assert '<span class="deadline deadline-overdue overdue"' in overdue and "overdue by 2 h 5 min</span>" in overdue
    assert 'data-now="2026-03-03T09:05:00+00:00"' in overdue


@pytest.mark.parametrize(("minutes", "text", "state"), [
    (200, "due in 3 h 20 min", "soon"),
    (240, "due in 4 h", "ok"),
    (45, "due in 45 min", "soon"),
    (0, "overdue by less than 1 min", "overdue"),
    (-65, "overdue by 1 h 5 min", "overdue"),
    (60 * 47, "due in 47 h", "ok"),
    (60 * 50 + 7, "due in 2 d 2 h", "ok"),
])
def test_deadline_clock_words(minutes: int, text: str, state: str) -> None:
    current = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    clock = deadline_clock(current + timedelta(minutes=minutes), current)
    assert (clock.text, clock.state) == (text, state)


def test_time_formats() -> None:
    assert format_utc(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)) == "2026-03-02 17:00"  # Asia/Shanghai, UTC+8
    assert format_utc("2026-03-02T10:00:00+02:00") == "2026-03-02 16:00"
    assert format_utc(None) == "—"
    assert format_duration(timedelta(seconds=59)) == "less than 1 min"
    assert deadline_clock(None).text == "none"


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("path", ["/cases/999", "/cases/abc", "/tasks/999", "/tasks/99999999999999999999",
                                  "/no/such/page"])
def test_unknown_pages_are_a_404_inside_the_layout(seeded: Flask, client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "text/html" in response.content_type
    page = text_of(response)
    assert "Not found" in page and "Signed in as demo" in page and "Back to the worklist" in page


def test_the_json_api_keeps_its_json_errors(seeded: Flask, client: FlaskClient) -> None:
    response = client.get("/api/cases/999")
    assert response.status_code == 404 and response.is_json
    assert client.get("/api/no-such-thing").is_json


def test_wrong_method_is_a_405_page_with_allow(seeded: Flask, client: FlaskClient) -> None:
    response = client.get("/tasks/1/claim")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "Not allowed here" in text_of(response)


# ---------------------------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/cases/2147483648", 404),
    ("get", "/cases/\u0661", 404),  # an Arabic-Indic 1 is not case 1
    ("get", "/tasks/99999999999", 404),
    ("get", "/tasks/" + "9" * 5000, 404),
    ("get", "/tasks/\uff11", 404),  # a full-width 1
    ("post", "/tasks/2147483648/claim", 404),
    ("post", "/admin/timers/2147483648/retry", 404),
    ("get", "/cases?text=%00", 400),
    ("get", "/cases?process=x%00", 400),
    ("get", "/?role=%00", 400),
    ("get", "/cases?page=\u0661", 400),
    ("get", "/cases?page=" + "9" * 5000, 400),
    ("get", "/cases?text=%ED%A0%80", 200),  # a percent-encoded lone surrogate arrives as U+FFFD: harmless
])
def test_hostile_addresses_are_a_4xx_page(seeded: Flask, client: FlaskClient, method: str, path: str,
                                          status: int) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert "text/html" in response.content_type and "Signed in as demo" in text_of(response)


def test_search_text_on_the_case_list_is_literal(seeded: Flask, client: FlaskClient) -> None:
    open_case(client, description="Discount of 50% agreed", title="Discount of 50% agreed")
    open_case(client, description="Nothing special", title="Nothing special")
    page = text_of(client.get("/cases?text=%25"))
    assert "Discount of 50% agreed" in page and "Nothing special" not in page


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"reported_at": "0001-01-01T00:00+14:00"}, 422, "Enter a date and time"),
    ({"reported_at": "9999-12-31T23:00-14:00"}, 422, "Enter a date and time"),
    ({"reported_at": "1990-01-01T00:00"}, 422, "more than 366 days in the past"),
    ({"description": "a\x00b"}, 400, "NUL"),
    ({"equipment_id": "2147483648"}, 422, "a whole number from 1 to 2147483647"),
])
def test_hostile_new_case_forms_are_refused_and_save_nothing(seeded: Flask, client: FlaskClient,
                                                            fields: dict[str, str], status: int,
                                                            message: str) -> None:
    def stored() -> tuple[int, int]:
        db.session.rollback()
        return (db.session.scalar(db.select(db.func.count()).select_from(Case)) or 0,
                db.session.scalar(db.select(db.func.count()).select_from(WorkItem)) or 0)

    before = stored()
    response = post_new_case(client, **fields)
    assert response.status_code == status
    assert message in text_of(response)
    assert stored() == before


def test_a_task_form_with_nul_is_a_400_page_and_completes_nothing(seeded: Flask, client: FlaskClient) -> None:
    case_id = open_case(client)
    task_id = ready_task(case_id, "diagnose_fault")
    response = submit_task(client, task_id, {**DIAGNOSIS, "diagnosis": "fuse\x00blown"})
    assert response.status_code == 400 and "NUL" in text_of(response)
    db.session.expire_all()
    assert db.session.get(WorkItem, task_id).state == "ready"
