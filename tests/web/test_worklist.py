"""The worklist pages as real users see them: views with counts, rows with live clocks that stay visible
once the deadline passed, escalations that say which deadline was missed, filters, claim, release, assign."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.engine import ManualClock
from app.extensions import db
from app.flows.clock import fire_due_timers
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.web.filters import deadline_outcome

Client = Callable[..., FlaskClient]
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}


def text_of(response: TestResponse) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    html = response.get_data(as_text=True)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def rows(response: TestResponse) -> list[str]:
    """The worklist's rows, as HTML."""
    return re.findall(r'<tr class="work-item.*?</tr>', response.get_data(as_text=True), flags=re.S)


def csrf(client: FlaskClient, task_id: int) -> str:
    """The session's CSRF token, read from a task page as a browser would."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/tasks/{task_id}").get_data(as_text=True))
    assert match, "no CSRF field on the task page"
    return match.group(1)


@pytest.fixture
def people(deployed: Flask, clock: ManualClock, signed_in: Client) -> dict[str, Any]:
    """Demo data, and an agent, an engineer (bob), a second engineer (cho), a supervisor (sue)."""
    seed_demo_data()
    db.session.commit()
    equipment = {e.serial_number: e.id for e in db.session.scalars(db.select(Equipment))}
    return {"equipment": equipment, "agent": signed_in("ann", "agent"), "bob": signed_in("bob", "engineer"),
            "cho": signed_in("cho", "engineer"), "sue": signed_in("sue", "supervisor"), "clock": clock}


def open_fault(people: dict[str, Any], serial: str = "EA99020K0001", *, hours_ago: float = 1,
               **fields: Any) -> dict[str, Any]:
    """Open a fault case through the API as the agent; the case."""
    body = {"process": "fault_handling", "channel": "phone", "description": "UPS alarm",
            "reported_at": (people["clock"].now() - timedelta(hours=hours_ago)).isoformat(),
            "equipment_id": people["equipment"][serial], **fields}
    response = people["agent"].post("/api/cases", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def task_of(case: dict[str, Any], spec: str) -> int:
    """The id of the case's open task ``spec``."""
    return next(t["id"] for t in case["open_tasks"] if t["task_spec"] == spec)


def test_views_show_my_tasks_and_one_queue_per_role_held_with_counts(people: dict[str, Any]) -> None:
    first = open_fault(people)
    open_fault(people, "EA33020K0932", hours_ago=26)  # overdue: escalated to the supervisor at entry
    bob = people["bob"]
    bob.post(f"/api/tasks/{task_of(first, 'diagnose_fault')}/claim")
    page = bob.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    views = re.search(r'<nav class="worklist-views".*?</nav>', html, flags=re.S)
    assert views
    words = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", views.group(0)))).strip()
    assert words == "My tasks 1 Technical support engineer 2 1 overdue All ready tasks"  # bob holds one role
    supervisor = text_of(people["sue"].get("/"))
    assert "Supervisor 1 1 overdue" not in supervisor  # the escalation itself has no deadline of its own
    assert "Supervisor 1" in supervisor and "Technical support engineer" not in supervisor.split("All ready")[0]
    mine = people["bob"].get("/?mine=1")
    assert len(rows(mine)) == 1 and "My tasks" in text_of(mine)


def test_each_row_has_case_customer_equipment_task_and_a_live_clock(people: dict[str, Any]) -> None:
    open_fault(people)  # notice at 07:00 UTC, due 2026-03-03 07:00 UTC = 15:00 in Shanghai
    [row] = rows(people["bob"].get("/?role=engineer"))
    assert re.search(r'<td class="case-number"><a href="/cases/\d+">FH-2026-000001</a></td>', row)
    assert "Harbour City Data Centre" in row and "EA990-200K" in row and "EA99020K0001" in row
    assert ">Diagnose fault</a>" in row
    assert ('<span class="deadline deadline-ok" data-due="2026-03-03T07:00:00+00:00" data-text-due="due in {span}" '
            'data-text-overdue="overdue by {span}" title="Due 2026-03-03 15:00">due in 23 h</span>') in row


def test_a_passed_deadline_stays_on_the_worklist_in_red_with_words(people: dict[str, Any]) -> None:
    case = open_fault(people)
    people["clock"].advance(timedelta(hours=25, minutes=5))  # 2026-03-03 09:05 UTC: 2 h 5 min past
    page = people["bob"].get("/")
    html = page.get_data(as_text=True)
    assert 'data-now="2026-03-03T09:05:00+00:00"' in html
    [row] = [r for r in rows(page) if "Diagnose fault" in r]
    assert 'class="work-item work-item-overdue"' in row
    assert re.search(r'<span class="deadline deadline-overdue overdue" data-due="2026-03-03T07:00:00\+00:00"[^>]*>'
                     r"overdue by 2 h 5 min</span>", row)
    # The case page and the task page say the same.
    case_page = people["bob"].get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "overdue by 2 h 5 min</span>" in case_page and 'class="deadline deadline-overdue overdue"' in case_page
    task_page = people["bob"].get(f"/tasks/{task_of(case, 'diagnose_fault')}").get_data(as_text=True)
    assert "overdue by 2 h 5 min</span>" in task_page


def test_overdue_work_sorts_first(people: dict[str, Any]) -> None:
    open_fault(people, hours_ago=1, description="fresh")  # due in 23 h
    open_fault(people, "EA33020K0932", hours_ago=25, description="late")  # overdue by 1 h
    open_fault(people, "EA990120K0077", hours_ago=20, description="soon")  # due in 4 h
    numbers = re.findall(r">(FH-2026-\d+)</a></td>", people["bob"].get("/?role=engineer").get_data(as_text=True))
    assert numbers == ["FH-2026-000002", "FH-2026-000003", "FH-2026-000001"]


def test_the_escalation_says_which_deadline_was_missed_and_by_how_much(people: dict[str, Any]) -> None:
    case = open_fault(people)
    people["clock"].advance(timedelta(hours=23, minutes=10))  # the 24 h deadline passed 10 min ago
    assert fire_due_timers()  # the worker would do this; the escalation task is now ready
    people["clock"].advance(timedelta(minutes=55))  # 1 h 5 min past the deadline
    sue = people["sue"]
    queue = sue.get("/?role=supervisor")
    [row] = rows(queue)
    assert "Review overdue diagnosis" in row
    assert re.search(r'<span class="deadline missed deadline-overdue overdue" data-due="2026-03-03T07:00:00\+00:00"'
                     r'[^>]*>24 h diagnosis deadline missed by 1 h 5 min</span>', row)
    assert 'data-text-overdue="24 h diagnosis deadline missed by {span}"' in row
    escalation = next(t["id"] for t in sue.get(f"/api/cases/{case['id']}").get_json()["open_tasks"]
                      if t["task_spec"] == "review_overdue_diagnosis")
    assert "24 h diagnosis deadline missed by 1 h 5 min" in text_of(sue.get(f"/tasks/{escalation}"))
    # Once the diagnosis is done, the miss is fixed: it no longer grows.
    assert people["bob"].post(f"/api/tasks/{task_of(case, 'diagnose_fault')}/complete",
                              json={"data": DIAGNOSIS}).status_code == 200
    people["clock"].advance(timedelta(hours=2))
    page = text_of(sue.get(f"/tasks/{escalation}"))
    assert "24 h diagnosis deadline missed by 1 h 5 min" in page


def test_a_completed_task_page_says_whether_the_deadline_was_kept(people: dict[str, Any]) -> None:
    case = open_fault(people)
    people["clock"].advance(timedelta(hours=20, minutes=20))
    task_id = task_of(case, "diagnose_fault")
    assert people["bob"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200
    page = text_of(people["bob"].get(f"/tasks/{task_id}"))
    assert "Completed 2 h 40 min before the deadline “24 h diagnosis deadline”" in page


@pytest.mark.parametrize(("outcome", "text"), [
    ({"name": "24 h diagnosis deadline", "due_at": "x", "margin_ms": 9_600_000, "met": True},
     "Completed 2 h 40 min before the deadline “24 h diagnosis deadline”"),
    ({"name": "Removal deadline", "due_at": "x", "margin_ms": -18_000_000, "met": False},
     "Completed 5 h late: the deadline “Removal deadline” was missed"),
    (None, ""), ({"margin_ms": "soon"}, ""),
])
def test_the_deadline_outcome_filter_reads_the_completion_payload(outcome: Any, text: str) -> None:
    assert deadline_outcome(outcome) == text


def test_filters_narrow_the_list_and_bad_values_are_a_400_page(people: dict[str, Any]) -> None:
    open_fault(people, "EA99020K0001")  # South, phone, normal
    open_fault(people, "EA33020K0932", priority="high", channel="email")  # North
    open_fault(people, "EA990120K0077", channel="fax", hours_ago=30)  # East, overdue
    bob = people["bob"]

    def numbers(query: str) -> list[str]:
        response = bob.get(f"/?role=engineer&{query}")
        assert response.status_code == 200, text_of(response)
        return re.findall(r">(FH-2026-\d+)</a></td>", response.get_data(as_text=True))

    assert numbers("region=North") == ["FH-2026-000002"]
    assert numbers("priority=high") == ["FH-2026-000002"]
    assert numbers("channel=fax") == ["FH-2026-000003"]
    assert numbers("overdue=true") == ["FH-2026-000003"]
    assert numbers("overdue=false") == ["FH-2026-000001", "FH-2026-000002"]
    assert numbers("process=fault_handling&region=South") == ["FH-2026-000001"]
    assert "No ready tasks match the filter." in text_of(bob.get("/?region=Mars"))
    page = bob.get("/?region=North").get_data(as_text=True)
    assert '<option value="North" selected>North</option>' in page
    for query in ("role=wizard", "priority=urgent", "channel=pigeon", "overdue=perhaps", "mine=maybe"):
        assert bob.get(f"/?{query}").status_code == 400, query


def test_claim_and_release_from_the_worklist_return_to_it(people: dict[str, Any]) -> None:
    case = open_fault(people)
    task_id = task_of(case, "diagnose_fault")
    bob = people["bob"]
    token = csrf(bob, task_id)
    claimed = bob.post(f"/worklist/{task_id}/claim", data={"csrf_token": token, "next": "/?role=engineer"})
    assert claimed.status_code == 302 and claimed.headers["Location"] == "/?role=engineer"
    assert "Release" in rows(bob.get("/?mine=1"))[0]
    # Another engineer may not release it; the page says why.
    cho = people["cho"]
    refused = cho.post(f"/worklist/{task_id}/release", data={"csrf_token": csrf(cho, task_id)})
    assert refused.status_code == 403 and "claimed by bob" in text_of(refused)
    released = bob.post(f"/worklist/{task_id}/release", data={"csrf_token": token, "next": "//evil.example/"})
    assert released.status_code == 302 and released.headers["Location"] == f"/tasks/{task_id}"
    assert rows(bob.get("/?mine=1")) == []
    assert bob.post(f"/worklist/{task_id}/release", data={"csrf_token": token}).status_code == 409
    assert bob.post(f"/worklist/{task_id}/claim").status_code == 400  # no CSRF token


def test_a_supervisor_assigns_from_the_task_page_and_a_wrong_name_is_a_422_page(people: dict[str, Any]) -> None:
    case = open_fault(people)
    task_id = task_of(case, "diagnose_fault")
    sue = people["sue"]
    page = sue.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert f'action="/worklist/{task_id}/assign"' in page and '<label for="assignee">' in page
    token = csrf(sue, task_id)
    for name, message in (("zed", "there is no user named 'zed'"),
                          ("ann", "user 'ann' does not hold the role engineer")):
        refused = sue.post(f"/worklist/{task_id}/assign", data={"csrf_token": token, "assignee": name})
        assert refused.status_code == 422 and message in text_of(refused)
    assert sue.post(f"/worklist/{task_id}/assign", data={"csrf_token": token}).status_code == 422
    people["cho"]  # exists
    done = sue.post(f"/worklist/{task_id}/assign", data={"csrf_token": token, "assignee": "cho"})
    assert done.status_code == 302
    assert "Diagnose fault" in rows(people["cho"].get("/?mine=1"))[0]
    # An engineer sees no assign form, and posting one anyway is refused.
    bob = people["bob"]
    assert f'action="/worklist/{task_id}/assign"' not in bob.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert bob.post(f"/worklist/{task_id}/assign",
                    data={"csrf_token": csrf(bob, task_id), "assignee": "bob"}).status_code == 403


def test_pages_name_the_time_zone_and_load_the_clock_script(people: dict[str, Any]) -> None:
    response = people["bob"].get("/")
    html = response.get_data(as_text=True)
    assert "Times in Asia/Shanghai (UTC+8)" in text_of(response)
    assert "System time 2026-03-02 16:00" in text_of(response)  # T0 is 08:00 UTC
    assert '<script src="/static/web/js/clock.js" defer></script>' in html
    assert "<script>" not in html and " onclick=" not in html
    script = people["bob"].get("/static/web/js/clock.js")
    assert script.status_code == 200 and b"data-text-overdue" in script.data and b"30000" in script.data
    css = people["bob"].get("/static/web/web.css").get_data(as_text=True)
    assert ".case-number, .case-number a, .serial { white-space: nowrap; }" in css


def test_the_case_history_says_who_released_assigned_and_whether_the_deadline_was_kept(
        people: dict[str, Any]) -> None:
    case = open_fault(people, hours_ago=29)  # the 24 h deadline passed 5 h ago
    task_id = task_of(case, "diagnose_fault")
    people["bob"].post(f"/api/tasks/{task_id}/claim")
    people["sue"].post(f"/api/tasks/{task_id}/release")
    people["cho"]  # exists
    people["sue"].post(f"/api/tasks/{task_id}/assign", json={"assignee": "cho"})
    assert people["cho"].post(f"/api/tasks/{task_id}/complete", json={"data": DIAGNOSIS}).status_code == 200
    history = text_of(people["bob"].get(f"/cases/{case['id']}"))
    assert ("Task 'Diagnose fault' released by sue: back in the queue Task Diagnose fault Previous assignee bob "
            "Assigned to — (back in the queue)") in history
    assert ("Task 'Diagnose fault' assigned to cho by sue Task Diagnose fault Previous assignee — Assigned to cho"
            in history)
    assert ("Fault diagnosis recorded by cho (task 'Diagnose fault') Task Diagnose fault Deadline Completed 5 h "
            "late: the deadline “24 h diagnosis deadline” was missed") in history
