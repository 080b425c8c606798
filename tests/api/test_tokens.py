"""Bearer tokens on the JSON API: a valid token acts as its user; anything else is a 401 that says why."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import Actor
from app.extensions import db
from app.users import service as users
from app.users.models import ApiToken

ADMIN = Actor("root-admin", frozenset({"admin"}))


def _user_with_token(name: str, *roles: str) -> str:
    users.create_user(username=name, password="long enough password", roles=roles, actor=ADMIN)
    _, token = users.create_token(username=name, actor=ADMIN)
    db.session.commit()
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _last_used(token: str) -> Any:
    db.session.rollback()
    return db.session.scalar(select(ApiToken.last_used_at).where(ApiToken.public_id == token.split("_")[1]))


def _assert_401(response: Any, message: str) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["status"] == 401 and message in body["message"], body
    assert set(body) <= {"status", "message", "errors"}


def test_a_valid_token_acts_as_its_user(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("王磊", "engineer")
    response = anonymous.post("/api/cases", json=api.case_body(), headers=_bearer(token))
    assert response.status_code == 201, response.get_json()
    case = response.get_json()
    assert api.events(case["id"])[0]["type"] == "case_opened"
    assert api.events(case["id"])[0]["actor"] == "王磊"
    task = case["open_tasks"][0]
    claimed = anonymous.post(f"/api/tasks/{task['id']}/claim", headers=_bearer(token))
    assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "王磊"


def test_the_token_decides_whatever_x_actor_says(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("lina", "agent")
    response = anonymous.post("/api/cases", json=api.case_body(), headers={**_bearer(token), "X-Actor": "mallory"})
    assert response.status_code == 201
    assert api.events(response.get_json()["id"])[0]["actor"] == "lina"


def test_the_token_users_roles_are_the_ones_that_count(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("audrey", "auditor")  # a demo user could open cases; an auditor cannot
    before = api.counts()
    response = anonymous.post("/api/cases", json=api.case_body(), headers=_bearer(token))
    assert response.status_code == 403
    assert api.counts() == before


def test_without_a_token_the_api_is_a_401_whatever_x_actor_says(api, anonymous: FlaskClient) -> None:
    before = api.counts()
    for response in (anonymous.post("/api/cases", json=api.case_body(), headers={"X-Actor": "bob"}),
                     anonymous.get("/api/cases"), anonymous.get("/api/processes")):
        _assert_401(response, "needs credentials")
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="servicecase"'
    assert api.counts() == before
    assert anonymous.get("/api/openapi.json").status_code == 200  # the one public document


def _bad_tokens() -> dict[str, tuple[dict[str, str], str]]:
    """Headers that must be refused, and what the message says (the valid ones are made in the test)."""
    return {
        "malformed": ({"Authorization": "Bearer not-a-token"}, "malformed"),
        "empty bearer": ({"Authorization": "Bearer "}, "must be 'Bearer <token>'"),
        "other scheme": ({"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="}, "must be 'Bearer <token>'"),
        "unknown": ({"Authorization": "Bearer sct_abcdefghij_" + "x" * 43}, "not known"),
    }


@pytest.mark.parametrize("kind", ["malformed", "empty bearer", "other scheme", "unknown", "revoked", "disabled",
                                  "wrong secret"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_refused_token_is_a_401_and_changes_nothing(api, anonymous: FlaskClient, kind: str, method: str) -> None:
    token = _user_with_token("alice", "engineer")
    public_id = token.split("_")[1]
    if kind == "revoked":
        users.revoke_token(token_id=public_id, actor=ADMIN)
        headers, message = _bearer(token), f"token {public_id} was revoked"
    elif kind == "disabled":
        users.disable_user(username="alice", actor=ADMIN)
        headers, message = _bearer(token), "user 'alice' is disabled"
    elif kind == "wrong secret":
        headers, message = _bearer(f"sct_{public_id}_{'y' * 43}"), "not known"
    else:
        headers, message = _bad_tokens()[kind]
    db.session.commit()
    before = api.counts()
    if method == "post":
        response = anonymous.post("/api/cases", json=api.case_body(), headers=headers)
    else:
        response = anonymous.get("/api/cases", headers=headers)
    _assert_401(response, message)
    assert api.counts() == before
    assert _last_used(token) is None


def test_a_sent_and_refused_token_says_invalid_token(anonymous: FlaskClient, ctx: Flask) -> None:
    response = anonymous.get("/api/cases", headers={"Authorization": "Bearer sct_abcdefghij_zzz"})
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="servicecase", error="invalid_token"'
    response = anonymous.get("/api/cases", headers={"Authorization": "Basic abc"})
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="servicecase"'


def test_last_use_is_recorded_at_most_once_a_minute(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("alice", "engineer")
    assert _last_used(token) is None
    assert anonymous.get("/api/cases", headers=_bearer(token)).status_code == 200  # a read: no commit of its own
    first = _last_used(token)
    assert first == api.clock.now()
    api.clock.advance(timedelta(seconds=59))
    assert anonymous.get("/api/cases", headers=_bearer(token)).status_code == 200
    assert _last_used(token) == first
    api.clock.advance(timedelta(seconds=1))
    assert anonymous.get("/api/processes", headers=_bearer(token)).status_code == 200
    assert _last_used(token) == first + timedelta(seconds=60)


def test_a_request_refused_after_authentication_still_records_the_use(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("alice", "engineer")
    response = anonymous.post("/api/cases", json={"process": "fault_handling"}, headers=_bearer(token))
    assert response.status_code == 422
    assert _last_used(token) == api.clock.now()


@pytest.mark.parametrize("name", ["system", "timer", "System", " TIMER ", "ｓｙｓｔｅｍ", "sys-tem"])
def test_x_actor_cannot_name_the_system(api, anonymous: FlaskClient, name: str) -> None:
    """X-Actor is ignored: without a token it is a 401, with one the history names the token's user."""
    case = api.open_case()
    task = case["open_tasks"][0]
    before = api.snapshot(case["id"])
    for response in (anonymous.post(f"/api/tasks/{task['id']}/claim", headers={"X-Actor": name}),
                     anonymous.post("/api/cases", json=api.case_body(), headers={"X-Actor": name}),
                     anonymous.get("/api/cases", headers={"X-Actor": name})):
        _assert_401(response, "needs credentials")
    assert api.snapshot(case["id"]) == before
    token = _user_with_token("wang", "engineer")
    claimed = anonymous.post(f"/api/tasks/{task['id']}/claim", headers={**_bearer(token), "X-Actor": name})
    assert claimed.status_code == 200 and claimed.get_json()["assignee"] == "wang"
    assert api.events(case["id"])[-1]["actor"] == "wang"
    assert api.counts()["cases"] == 1


def test_pages_follow_the_same_rule(api, anonymous: FlaskClient) -> None:
    token = _user_with_token("王磊", "engineer")
    page = anonymous.get("/", headers=_bearer(token))
    assert page.status_code == 200 and "王磊" in page.get_data(as_text=True)
    refused = anonymous.get("/", headers={"Authorization": "Bearer sct_abcdefghij_nope"})
    assert refused.status_code == 401 and "not known" in refused.get_data(as_text=True)
    sent_away = anonymous.get("/", headers={"X-Actor": "timer"})
    assert sent_away.status_code == 302 and sent_away.headers["Location"] == "/sign-in"


def test_every_operation_documents_the_401(anonymous: FlaskClient, ctx: Flask) -> None:
    document = anonymous.get("/api/openapi.json").get_json()
    operations = [(path, method, operation) for path, item in document["paths"].items()
                  for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]
    assert len(operations) >= 10
    for path, method, operation in operations:
        response = operation["responses"].get("401")
        assert response, f"{method.upper()} {path} does not document 401"
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "WWW-Authenticate" in response["headers"]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API token from `flask --app wsgi users token NAME`"}
