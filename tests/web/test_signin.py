"""Signing in and out through the pages: sessions, their expiry, the anonymous redirect, CSRF, the lock-out."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app import auth
from app.auth import Actor
from app.extensions import db
from app.users import service as users
from app.users.models import User, UserEvent
from tests.conftest import sign_in_session

ADMIN = Actor("root-admin", frozenset({"admin"}))
PASSWORD = "correct horse battery"


def text_of(response: TestResponse) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    html = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def make_user(name: str, *roles: str, display_name: str = "") -> None:
    """A user with PASSWORD, committed."""
    users.create_user(username=name, password=PASSWORD, roles=roles, actor=ADMIN, display_name=display_name)
    db.session.commit()


def events(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The user events about ``name``, oldest first (type, payload)."""
    db.session.rollback()
    return [(e.type, e.payload) for e in db.session.scalars(
        select(UserEvent).where(UserEvent.username == name).order_by(UserEvent.id))]


def csrf_of(client: FlaskClient, path: str = "/") -> str:
    """The session's CSRF token, read from a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The wall clock sessions expire by, stopped and moved by the test (``wall[0] += seconds``)."""
    moment = [time.time()]
    monkeypatch.setattr(auth, "wall_time", lambda: moment[0])
    yield moment


# -- sign-in and out -----------------------------------------------------------------------------------------
def test_anonymous_pages_go_to_the_sign_in_page_keeping_where_they_were(ctx: Flask, anonymous: FlaskClient) -> None:
    response = anonymous.get("/cases?status=open")
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/cases?status%3Dopen"
    assert anonymous.get("/").headers["Location"] == "/sign-in"
    assert anonymous.post("/cases/new", data={}).status_code == 302  # before the CSRF check: nothing to forge
    page = anonymous.get("/sign-in?next=/cases")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="username"' in html and 'name="password"' in html and ">Sign in</button>" in html
    assert 'name="next" value="/cases"' in html
    assert "Sign out" not in html and "Worklist</a>" not in html
    assert anonymous.get("/static/web/web.css").status_code == 200


def test_signing_in_starts_a_session_that_acts_as_the_user(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("wang", "engineer", "supervisor", display_name="Wang Lei")
    response = sign_in_session(anonymous, "wang", PASSWORD)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # testing runs on http
    page = text_of(anonymous.get("/"))
    assert "Signed in as Wang Lei (wang) · engineer, supervisor" in page
    assert anonymous.get("/api/cases").status_code == 200  # the API takes the session too
    user = db.session.scalar(select(User).where(User.username == "wang"))
    assert user is not None and user.last_sign_in_at is not None
    assert [kind for kind, _ in events("wang")] == ["user_created", "signed_in"]
    assert events("wang")[-1][1] == {"address": "127.0.0.1"}


def test_the_page_asked_for_comes_after_signing_in_but_never_another_site(ctx: Flask,
                                                                          anonymous: FlaskClient) -> None:
    make_user("lina", "agent")
    page = anonymous.get("/sign-in?next=/cases/new")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)  # type: ignore
    for target, expected in [("/cases/new", "/cases/new"), ("https://evil.example/", "/"), ("//evil.example", "/"),
                             ("/\\evil.example", "/"), ("javascript:alert(1)", "/"), ("", "/")]:
        response = anonymous.post("/sign-in", data={"username": "lina", "password": PASSWORD, "next": target,
                                                    "csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"] == expected, target
        anonymous.post("/sign-out", data={"csrf_token": csrf_of(anonymous)})
        token = csrf_of(anonymous, "/sign-in")


def test_a_wrong_password_or_unknown_name_is_refused_alike_and_recorded(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("lina", "agent")
    wrong = sign_in_session(anonymous, "lina", "not the password")
    unknown = sign_in_session(anonymous, "nobody-here", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The user name or the password is wrong." in text_of(response)
    assert 'value="lina"' in wrong.get_data(as_text=True)  # the name is kept, the password is not
    assert PASSWORD not in unknown.get_data(as_text=True)
    assert anonymous.get("/").status_code == 302
    assert events("lina")[-1] == ("sign_in_failed", {"reason": "wrong password", "address": "127.0.0.1"})
    assert events("nobody-here") == [("sign_in_failed", {"reason": "unknown user name", "address": "127.0.0.1"})]
    empty = anonymous.post("/sign-in", data={"username": "lina", "password": "", "csrf_token": csrf_of(anonymous,
                                                                                                      "/sign-in")})
    assert empty.status_code == 422 and "Enter your password." in text_of(empty)


def test_an_unknown_name_takes_as_long_as_a_wrong_password(ctx: Flask) -> None:
    make_user("lina", "agent")

    def timed(name: str) -> float:
        started = time.perf_counter()
        with pytest.raises(users.SignInRefusedError):
            users.sign_in(username=name, password="not the password", address="test")
        return time.perf_counter() - started

    timed("nobody")  # the dummy hash is made once
    wrong = min(timed("lina") for _ in range(3))
    unknown = min(timed("nobody") for _ in range(3))
    assert unknown > wrong * 0.5, (unknown, wrong)  # both hash with argon2id; without the dummy it is ~1000x


def test_sign_out_ends_the_session_everywhere(ctx: Flask, app: Flask) -> None:
    make_user("wang", "engineer")
    phone, desk = app.test_client(), app.test_client()
    sign_in_session(phone, "wang", PASSWORD)
    sign_in_session(desk, "wang", PASSWORD)
    response = phone.post("/sign-out", data={"csrf_token": csrf_of(phone)})
    assert response.status_code == 303 and response.headers["Location"] == "/sign-in?signed_out=1"
    assert "You are signed out." in text_of(phone.get(response.headers["Location"]))
    assert phone.get("/").status_code == 302
    assert desk.get("/").status_code == 302  # its session's generation is over
    assert [kind for kind, _ in events("wang")][-1] == "signed_out"
    assert phone.post("/sign-out", data={"csrf_token": "forged"}).status_code == 400


def test_a_disabled_user_or_new_roles_take_effect_on_the_next_request(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("wang", "engineer")
    sign_in_session(anonymous, "wang", PASSWORD)
    assert "· engineer" in text_of(anonymous.get("/"))
    users.set_roles(username="wang", roles=["engineer", "supervisor"], actor=ADMIN)
    db.session.commit()
    assert "· engineer, supervisor" in text_of(anonymous.get("/"))
    users.disable_user(username="wang", actor=ADMIN)
    db.session.commit()
    response = anonymous.get("/cases")
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in?next=/cases&expired=1"
    refused = sign_in_session(anonymous, "wang", PASSWORD)
    assert refused.status_code == 401 and "disabled" in text_of(refused)


def test_a_session_expires_after_the_idle_time(ctx: Flask, app: Flask, anonymous: FlaskClient,
                                               wall: list[float]) -> None:
    make_user("wang", "engineer")
    sign_in_session(anonymous, "wang", PASSWORD)
    idle = 60 * app.config["SESSION_IDLE_MINUTES"]
    wall[0] += idle - 5
    assert anonymous.get("/").status_code == 200  # used in time: the idle time starts again
    wall[0] += idle - 5
    assert anonymous.get("/").status_code == 200
    wall[0] += idle + 1
    response = anonymous.get("/cases")
    assert response.status_code == 302 and response.headers["Location"] == "/sign-in?next=/cases&expired=1"
    assert "Your session expired, sign in again." in text_of(anonymous.get(response.headers["Location"]))
    assert anonymous.get("/").status_code == 302


def test_a_user_named_in_chinese_is_stored_and_shown(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("王磊", "engineer")
    assert sign_in_session(anonymous, "王磊", PASSWORD).status_code == 303
    assert "Signed in as 王磊 · engineer" in text_of(anonymous.get("/"))
    assert db.session.scalar(select(User.username).where(User.username == "王磊")) == "王磊"


# -- CSRF ------------------------------------------------------------------------------------------------------
def test_the_sign_in_form_needs_its_csrf_token(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("lina", "agent")
    response = anonymous.post("/sign-in", data={"username": "lina", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token is missing or out of date" in text_of(response)
    assert anonymous.get("/").status_code == 302


def test_the_api_with_a_session_needs_the_csrf_header_for_changes(ctx: Flask, anonymous: FlaskClient) -> None:
    make_user("lina", "agent")
    sign_in_session(anonymous, "lina", PASSWORD)
    refused = anonymous.post("/api/cases", json={})
    assert refused.status_code == 400 and "X-CSRFToken" in refused.get_json()["message"]
    accepted = anonymous.post("/api/cases", json={}, headers={"X-CSRFToken": csrf_of(anonymous)})
    assert accepted.status_code == 422  # past the CSRF check: the body is what is wrong


# -- lock-out --------------------------------------------------------------------------------------------------
def _fail(client: FlaskClient, name: str, *, address: str = "127.0.0.1") -> TestResponse:
    token = csrf_of(client, "/sign-in")
    return client.post("/sign-in", data={"username": name, "password": "wrong password", "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def limiter_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock the failed-sign-in windows (limits' Redis storage, and the page's minutes) read, stopped and
    moved by the test."""
    import limits.storage.redis

    from app.web import signin

    moment = [time.time()]
    fake = SimpleNamespace(time=lambda: moment[0])
    monkeypatch.setattr(limits.storage.redis, "time", fake)
    monkeypatch.setattr(signin, "time", fake)
    return moment


def test_failed_sign_ins_lock_the_account_then_the_lock_ends(app: Flask, ctx: Flask, anonymous: FlaskClient,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             limiter_time: list[float]) -> None:
    monkeypatch.setitem(app.config, "SIGN_IN_ACCOUNT_LIMIT", "3 per 10 minutes")
    make_user("lina", "agent")
    assert sign_in_session(anonymous, "lina", PASSWORD).status_code == 303  # successes do not count
    anonymous.post("/sign-out", data={"csrf_token": csrf_of(anonymous)})
    assert [_fail(anonymous, "lina").status_code for _ in range(2)] == [401, 401]
    third = _fail(anonymous, "lina")
    assert third.status_code == 429
    assert "Too many failed sign-ins for this account; try again in 10 minutes." in text_of(third), text_of(third)
    limiter_time[0] += 9 * 60 + 30
    assert "try again in 1 minute." in text_of(_fail(anonymous, "lina"))
    locked = sign_in_session(anonymous, "lina", PASSWORD)  # even the right password, from anywhere
    assert locked.status_code == 429 and "Too many failed sign-ins for this account" in text_of(locked)
    assert _fail(anonymous, "Lina", address="10.0.0.9").status_code == 429  # the account, whatever the case
    failures = [payload for kind, payload in events("lina") if kind == "sign_in_failed"]
    assert len(failures) == 3  # refused attempts while locked are not even checked
    assert anonymous.get("/").status_code == 302
    limiter_time[0] += 31  # the first failure leaves the window: one more attempt is allowed
    assert sign_in_session(anonymous, "lina", PASSWORD).status_code == 303


def test_failed_sign_ins_from_one_address_lock_that_address(app: Flask, ctx: Flask, anonymous: FlaskClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "SIGN_IN_ADDRESS_LIMIT", "4 per 15 minutes")
    make_user("lina", "agent")
    for name in ("a1", "a2", "a3", "a4"):
        assert _fail(anonymous, name, address="10.0.0.7").status_code in (401, 429)
    response = _fail(anonymous, "a5", address="10.0.0.7")
    assert response.status_code == 429
    assert "Too many failed sign-ins from this address; try again in 15 minutes." in text_of(response)
    assert _fail(anonymous, "a5", address="10.0.0.8").status_code == 401  # another address is not locked
    assert sign_in_session(anonymous, "lina", PASSWORD).status_code == 303  # from 127.0.0.1
