"""Pages and API agree on every choice list: each value of each list is accepted by both edges, and a value
outside it is refused by both (a 400/422 page, a 422 JSON error). The lists come from app.choices only."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import choices
from app.auth import ROLES, SYSTEM
from app.cases import models as case_models
from app.engine import ManualClock
from app.errors import InvalidDataError
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.tasks import models as task_models
from app.tasks.service import WorkFilters, list_work_items


def _csrf(client: FlaskClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/cases/new").get_data(as_text=True))
    assert match
    return match.group(1)


@pytest.fixture
def edges(deployed: Flask, clock: ManualClock, signed_in: Callable[..., FlaskClient]) -> dict[str, Any]:
    """A user holding every staff role, and the id of a demo equipment."""
    seed_demo_data()
    db.session.commit()
    equipment = db.session.scalar(select(Equipment.id).where(Equipment.serial_number == "EA99020K0001"))
    return {"client": signed_in("alice"), "equipment": equipment}


def _open_case(edges: dict[str, Any], **fields: str) -> tuple[bool, bool]:
    """(page accepted, API accepted) for opening a case with ``fields`` changed."""
    client = edges["client"]
    form = {"process": "fault_handling", "reported_at": "2026-03-02T07:00", "channel": "phone", "priority": "normal",
            "equipment_id": str(edges["equipment"]), "description": "UPS alarm", "csrf_token": _csrf(client),
            **fields}
    page = client.post("/cases/new", data=form).status_code
    body = {"process": "fault_handling", "reported_at": "2026-03-02T07:00:00+00:00", "channel": "phone",
            "priority": "normal", "equipment_id": edges["equipment"], "description": "UPS alarm", **fields}
    api = client.post("/api/cases", json=body).status_code
    assert page in (302, 422) and api in (201, 422), (page, api)
    return page == 302, api == 201


def _query(edges: dict[str, Any], page_path: str, api_path: str) -> tuple[bool, bool]:
    """(page accepted, API accepted) for a list address."""
    client = edges["client"]
    page, api = client.get(page_path).status_code, client.get(api_path).status_code
    assert page in (200, 400) and api in (200, 422), (page, api)
    return page == 200, api == 200


def _cases(values: tuple[str, ...], *refused: str) -> list[tuple[str, bool]]:
    return [(value, True) for value in values] + [(value, False) for value in refused]


@pytest.mark.parametrize(("value", "valid"), _cases(choices.INTAKE_CHANNELS, "schedule", "pigeon", "Phone"))
def test_intake_channels_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _open_case(edges, channel=value) == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.PRIORITIES, "urgent", "HIGH"))
def test_priorities_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _open_case(edges, priority=value) == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.CASE_STATUSES, "lost", "Open"))
def test_case_statuses_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _query(edges, f"/cases?status={value}", f"/api/cases?status={value}") == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.ROLES, "wizard", "system", "Engineer"))
def test_role_filters_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _query(edges, f"/?role={value}", f"/api/tasks?role={value}") == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.FLAG_TRUE + choices.FLAG_FALSE, "perhaps", "2"))
def test_overdue_flags_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _query(edges, f"/?overdue={value}", f"/api/tasks?overdue={value}") == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.PRIORITIES, "urgent"))
def test_priority_filters_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _query(edges, f"/?priority={value}", f"/api/tasks?priority={value}") == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.CHANNELS, "pigeon"))
def test_channel_filters_agree(edges: dict[str, Any], value: str, valid: bool) -> None:
    assert _query(edges, f"/?channel={value}", f"/api/tasks?channel={value}") == (valid, valid)


@pytest.mark.parametrize(("value", "valid"), _cases(choices.WORK_ITEM_STATES, "lost"))
def test_task_states_agree_between_the_api_and_the_service(edges: dict[str, Any], value: str, valid: bool) -> None:
    api = edges["client"].get(f"/api/tasks?state={value}").status_code
    try:
        list_work_items(actor=SYSTEM, state=value)
        service = True
    except InvalidDataError:
        service = False
    assert (api == 200, service) == (valid, valid)


def test_the_service_refuses_what_the_edges_refuse(ctx: Flask) -> None:
    for kwargs, field in (({"role": "wizard"}, "role"), ({"filters": WorkFilters(priority="urgent")}, "priority"),
                          ({"filters": WorkFilters(channel="pigeon")}, "channel")):
        with pytest.raises(InvalidDataError) as caught:
            list_work_items(actor=SYSTEM, **kwargs)
        assert field in caught.value.errors


def test_each_list_is_defined_once() -> None:
    # The domain modules re-export the one definition; nothing defines its own copy.
    assert case_models.INTAKE_CHANNELS is choices.INTAKE_CHANNELS
    assert case_models.CHANNELS is choices.CHANNELS and case_models.PRIORITIES is choices.PRIORITIES
    assert case_models.CASE_STATUSES is choices.CASE_STATUSES
    assert task_models.WORK_ITEM_STATES is choices.WORK_ITEM_STATES
    assert choices.ROLES is ROLES
    assert "schedule" in choices.CHANNELS and "schedule" not in choices.INTAKE_CHANNELS
    assert "case" in choices.CHANNELS and "case" not in choices.INTAKE_CHANNELS
    for values, labels in ((choices.CHANNELS, choices.CHANNEL_LABELS), (choices.PRIORITIES, choices.PRIORITY_LABELS),
                           (choices.CASE_STATUSES, choices.CASE_STATUS_LABELS),
                           (choices.WORK_ITEM_STATES, choices.WORK_ITEM_STATE_LABELS)):
        assert set(labels) == set(values)
