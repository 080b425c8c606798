"""The new-case (intake) page: finding the equipment without JavaScript, warranty and open cases shown,
the second case for the same equipment confirmed, the notice time in the department's zone, bad input."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.cases.models import INTAKE_CHANNELS, Case
from app.engine import ManualClock
from app.extensions import db
from app.registry.models import Customer, Equipment
from app.registry.service import seed_demo_data
from app.tasks.models import WorkItem

HARBOUR = "EA99020K0001"  # Harbour City Data Centre, warranty to 2027-02-28
RAILWAY = "EA33020K0932"  # Northern Railway Signalling


@pytest.fixture
def agent(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    """An agent signed in; processes deployed, the demo files on record, at T0 (2026-03-02 08:00 UTC)."""
    seed_demo_data()
    db.session.commit()
    return signed_in("amy", "agent")


@pytest.fixture
def zone(app: Flask) -> Iterator[Callable[[str], None]]:
    """Set the department's time zone for one test."""
    before = app.config.get("TIME_ZONE")

    def set_zone(name: str) -> None:
        app.config["TIME_ZONE"] = name

    yield set_zone
    app.config["TIME_ZONE"] = before


def text_of(response: TestResponse) -> str:
    html = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def equipment_id(serial: str) -> int:
    found = db.session.scalar(db.select(Equipment.id).where(Equipment.serial_number == serial))
    assert found is not None
    return found


def csrf_token(client: FlaskClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/cases/new").get_data(as_text=True))
    assert match
    return match.group(1)


def post(client: FlaskClient, **fields: Any) -> TestResponse:
    """Send the form as an agent would fill it in for a call an hour ago, with ``fields`` changed."""
    form = {"process": "fault_handling", "reported_at": "2026-03-02T07:00", "channel": "phone",
            "priority": "normal", "equipment_id": str(equipment_id(HARBOUR)), "q": "",
            "description": "UPS alarm: battery fault, load on bypass", "csrf_token": csrf_token(client)}
    form.update({key: str(value) for key, value in fields.items()})
    return client.post("/cases/new", data=form)


def stored() -> tuple[int, int]:
    db.session.rollback()
    return (db.session.scalar(db.select(db.func.count()).select_from(Case)) or 0,
            db.session.scalar(db.select(db.func.count()).select_from(WorkItem)) or 0)


def opened_id(response: TestResponse) -> int:
    assert response.status_code == 302, text_of(response)
    match = re.fullmatch(r".*/cases/(\d+)", response.headers["Location"])
    assert match
    return int(match.group(1))


# ------------------------------------------------------------------------------------------- the page


def test_the_page_has_the_labelled_fields_and_its_script_as_a_file(agent: FlaskClient) -> None:
    response = agent.get("/cases/new")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for name, label in (("q", "Equipment (serial, customer or phone)"), ("reported_at", "Customer's notice time"),
                        ("description", "Description")):
        match = re.search(rf'<label for="{name}">(.*?)</label>', html, flags=re.S)
        assert match and label in unescape(match.group(1)), name
        assert f'id="{name}"' in html
    assert "<legend>Channel" in html and "Open case</button>" in html
    assert re.search(r'<script src="/static/web/js/intake\.js" defer></script>', html)
    main = html[html.index("<main"):html.index("</main>")]
    assert not re.search(r"<script(?![^>]*\bsrc=)", main), "inline script on the page"
    assert not re.search(r"\son[a-z]+=", main), "inline event handler on the page"
    assert 'data-search-url="/api/registry/equipment"' in html
    assert agent.get("/static/web/js/intake.js").status_code == 200


def test_the_channels_offered_are_the_ones_the_api_accepts(agent: FlaskClient) -> None:
    html = agent.get("/cases/new").get_data(as_text=True)
    assert re.findall(r'name="channel" value="([a-z]+)"', html) == list(INTAKE_CHANNELS)
    response = post(agent, channel="schedule")
    assert response.status_code == 422 and 'id="channel-error"' in response.get_data(as_text=True)


def test_search_without_javascript_lists_matches_and_keeps_what_was_typed(agent: FlaskClient) -> None:
    before = stored()
    response = post(agent, intent="search", q="harbour", description="Caller: smoke from cabinet", equipment_id="",
                    title="Smoke", channel="fax")
    assert response.status_code == 200
    assert stored() == before  # a search opens nothing
    html = response.get_data(as_text=True)
    page = text_of(response)
    assert "2 found for “harbour”" in page
    assert f'name="equipment_id" value="{equipment_id(HARBOUR)}"' in html
    assert f'name="equipment_id" value="{equipment_id("EA66060K0417")}"' in html
    assert "In warranty until 2027-02-28" in page and "Out of warranty since 2024-06-15" in page
    assert "Caller: smoke from cabinet</textarea>" in html and 'value="Smoke"' in html
    assert 'id="channel-fax" name="channel" value="fax" checked' in html
    assert 'id="equipment-none" name="equipment_id" value="" checked' in html  # nothing chosen for the agent


def test_the_plain_search_form_works_as_a_get_too(agent: FlaskClient) -> None:
    response = agent.get("/cases/new", query_string={"q": "5550 0202"})
    assert response.status_code == 200
    page = text_of(response)
    assert "1 found for “5550 0202”" in page and RAILWAY in page and "Northern Railway Signalling" in page
    assert "No equipment matches" in text_of(agent.get("/cases/new", query_string={"q": "zz-nothing"}))


def test_unknown_warranty_is_said_so(agent: FlaskClient) -> None:
    page = text_of(agent.get("/cases/new", query_string={"q": "EA33010K0215"}))
    assert "Warranty unknown" in page


def test_a_chosen_equipment_is_kept_when_the_form_comes_back(agent: FlaskClient) -> None:
    response = post(agent, description="")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert f'name="equipment_id" value="{equipment_id(HARBOUR)}" checked' in html
    assert "In warranty until 2027-02-28" in text_of(response)


def test_a_case_opens_with_the_equipment_and_its_customer(agent: FlaskClient) -> None:
    case_id = opened_id(post(agent))
    case = db.session.get(Case, case_id)
    assert case is not None and case.equipment is not None and case.customer is not None
    assert case.equipment.serial_number == HARBOUR and case.customer.name == "Harbour City Data Centre"
    assert case.channel == "phone" and case.opened_by == "amy"


# ------------------------------------------------------------------------------------ the open case warning


def test_a_second_case_for_the_same_equipment_needs_a_confirmation(agent: FlaskClient) -> None:
    first = opened_id(post(agent, description="Rectifier alarm"))
    number = db.session.get(Case, first).number  # type: ignore[union-attr]

    # While choosing: the open case is shown at the equipment, with a link to it.
    listing = agent.get("/cases/new", query_string={"q": HARBOUR})
    html = listing.get_data(as_text=True)
    assert f'<a href="/cases/{first}">{number}</a>' in html
    assert "Already open for this equipment" in text_of(listing)
    assert 'id="duplicate-confirm" hidden' not in html  # the box is offered

    before = stored()
    refused = post(agent, description="Rectifier alarm again")
    assert refused.status_code == 422
    assert stored() == before
    page = text_of(refused)
    assert f"case {number} is still open" in page
    assert 'id="confirm_open_case-error"' in refused.get_data(as_text=True)
    assert f'href="/cases/{first}"' in refused.get_data(as_text=True)
    assert "Rectifier alarm again</textarea>" in refused.get_data(as_text=True)

    second = opened_id(post(agent, description="A different fault: fan noise", confirm_open_case="true"))
    assert second != first
    assert stored()[0] == before[0] + 1


def test_no_confirmation_is_asked_when_the_equipment_has_no_open_case(agent: FlaskClient) -> None:
    html = agent.get("/cases/new", query_string={"q": RAILWAY}).get_data(as_text=True)
    assert 'id="duplicate-confirm" hidden' in html
    opened_id(post(agent, equipment_id=equipment_id(RAILWAY)))


def test_a_closed_case_does_not_count(agent: FlaskClient) -> None:
    first = opened_id(post(agent))
    case = db.session.get(Case, first)
    assert case is not None
    case.status = "closed"
    db.session.commit()
    opened_id(post(agent))


# ------------------------------------------------------------------------------ the notice time and its zone


def test_the_notice_time_is_read_in_the_departments_zone(agent: FlaskClient, zone: Callable[[str], None]) -> None:
    zone("Asia/Shanghai")
    page = agent.get("/cases/new")
    assert 'name="reported_at" value="2026-03-02T16:00"' in page.get_data(as_text=True)  # T0 is 08:00 UTC
    assert "Customer's notice time (Asia/Shanghai)" in text_of(page)
    case = db.session.get(Case, opened_id(post(agent, reported_at="2026-03-02T15:30")))
    assert case is not None and case.reported_at.isoformat() == "2026-03-02T07:30:00+00:00"
    future = post(agent, reported_at="2026-03-02T16:30", confirm_open_case="true")  # 08:30 UTC: 30 min ahead
    assert future.status_code == 422 and "cannot be in the future" in text_of(future)


def test_by_default_the_page_works_in_the_departments_zone(agent: FlaskClient) -> None:
    page = agent.get("/cases/new")
    assert 'name="reported_at" value="2026-03-02T16:00"' in page.get_data(as_text=True)  # 08:00 UTC
    assert "Customer's notice time (Asia/Shanghai)" in text_of(page)


def test_a_time_that_does_not_exist_in_the_zone_is_refused(agent: FlaskClient, zone: Callable[[str], None]) -> None:
    zone("Europe/Berlin")  # on 2025-03-30 the clocks went from 02:00 straight to 03:00
    before = stored()
    response = post(agent, reported_at="2025-03-30T02:30")
    assert response.status_code == 422
    assert "2025-03-30 02:30 does not exist in Europe/Berlin" in text_of(response)
    assert stored() == before


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("fields", "status", "field", "message"), [
    ({"equipment_id": "999999"}, 422, "equipment_id", "equipment 999999 does not exist"),
    ({"equipment_id": "2147483648"}, 422, "equipment_id", "a whole number from 1 to 2147483647"),
    ({"equipment_id": "abc"}, 422, "equipment_id", "Choose equipment from the list."),
    ({"reported_at": "2026-03-02T17:00"}, 422, "reported_at", "cannot be in the future"),
    ({"reported_at": "2024-01-01T00:00"}, 422, "reported_at", "more than 366 days in the past"),
    ({"reported_at": "yesterday"}, 422, "reported_at", "Enter a date and time"),
    ({"q": "E" * 1000}, 422, "q", "from 2 to 100 characters"),
    ({"q": "E" * 1000, "intent": "search"}, 422, "q", "from 2 to 100 characters"),
    ({"q": "E", "intent": "search"}, 422, "q", "from 2 to 100 characters"),
    ({"description": "fan\x00noise"}, 400, None, "The value of 'description' must not contain the NUL"),
    ({"q": "EA\x00", "intent": "search"}, 400, None, "The value of 'q' must not contain the NUL"),
])
def test_bad_input_is_a_4xx_naming_the_field_and_saves_nothing(agent: FlaskClient, fields: dict[str, str],
                                                               status: int, field: str | None, message: str) -> None:
    before = stored()
    response = post(agent, **fields)
    assert response.status_code == status
    assert message in text_of(response)
    if field:
        assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert stored() == before


def test_a_customer_that_does_not_own_the_equipment_is_refused(agent: FlaskClient) -> None:
    railway = db.session.scalar(db.select(Customer.id).where(Customer.name == "Northern Railway Signalling"))
    before = stored()
    response = post(agent, customer_id=str(railway))  # the Harbour City UPS, said to be the railway's
    assert response.status_code == 422
    assert "this equipment belongs to another customer" in text_of(response)
    assert 'id="equipment_id-error"' in response.get_data(as_text=True)
    assert stored() == before


def test_a_page_search_that_is_too_short_or_long_in_the_address_is_a_4xx(agent: FlaskClient) -> None:
    assert agent.get("/cases/new", query_string={"q": "E"}).status_code == 422
    assert agent.get("/cases/new", query_string={"q": "E" * 1000}).status_code == 422
    assert agent.get("/cases/new", query_string={"q": "EA\x00"}).status_code == 400
    assert agent.get("/cases/new", query_string={"equipment_id": "nope"}).status_code == 200  # shown as nothing chosen
