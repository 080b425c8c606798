"""The admin pages of users: list, create, set roles, disable, issue and revoke tokens; who may see them."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.auth import Actor
from app.extensions import db
from app.users import service as users
from app.users.models import ApiToken, User

ADMIN = Actor("root-admin", frozenset({"admin"}))
PASSWORD = "correct horse battery"


def text_of(response: TestResponse) -> str:
    html = re.sub(r"<script.*?</script>", " ", response.get_data(as_text=True), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def csrf_of(client: FlaskClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/users").get_data(as_text=True))
    assert match
    return match.group(1)


@pytest.fixture
def admin(ctx: Flask, signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    """A signed-in admin (only the admin role)."""
    return signed_in("ada", "admin")


def post(client: FlaskClient, path: str, **form: str | list[str]) -> TestResponse:
    return client.post(path, data={**form, "csrf_token": csrf_of(client)})


def user(name: str) -> User:
    db.session.rollback()
    found = db.session.scalar(select(User).where(User.username == name))
    assert found is not None
    return found


def test_an_admin_creates_a_user_who_then_signs_in(admin: FlaskClient, app: Flask) -> None:
    response = post(admin, "/admin/users", username="王磊", display_name="Wang Lei", password=PASSWORD,
                    roles=["engineer", "regional_engineer"])
    assert response.status_code == 303
    page = text_of(admin.get("/admin/users"))
    assert "Created user 王磊 with roles engineer, regional_engineer." in page
    assert "王磊 Wang Lei" in page and "never" in page
    assert user("王磊").role_names == ["engineer", "regional_engineer"]
    browser = app.test_client()
    from tests.conftest import sign_in_session
    assert sign_in_session(browser, "王磊", PASSWORD).status_code == 303
    assert "Signed in as Wang Lei (王磊)" in text_of(browser.get("/"))


@pytest.mark.parametrize("form, status, message", [
    ({"username": "system", "password": PASSWORD, "roles": ["agent"]}, 422, "is reserved"),
    ({"username": "ada", "password": PASSWORD, "roles": ["agent"]}, 409, "already exists"),
    ({"username": "neu", "password": "short", "roles": ["agent"]}, 422, "shorter than 8"),
    ({"username": "neu", "password": PASSWORD, "roles": ["wizard"]}, 422, "unknown role 'wizard'"),
])
def test_a_refused_new_user_is_a_4xx_page_keeping_the_values(admin: FlaskClient, form: dict[str, str | list[str]],
                                                             status: int, message: str) -> None:
    response = post(admin, "/admin/users", display_name="Kept Name", **form)
    assert response.status_code == status
    assert message in text_of(response)
    assert 'value="Kept Name"' in response.get_data(as_text=True)
    db.session.rollback()
    assert db.session.scalar(select(User).where(User.username == "neu")) is None


def test_an_admin_sets_roles_disables_and_manages_tokens(admin: FlaskClient) -> None:
    users.create_user(username="lina", password=PASSWORD, roles=["agent"], actor=ADMIN)
    db.session.commit()
    assert post(admin, "/admin/users/roles", username="lina", roles=["agent", "supervisor"]).status_code == 303
    assert user("lina").role_names == ["agent", "supervisor"]

    issued = post(admin, "/admin/users/tokens", username="lina")
    assert issued.status_code == 200
    secret = re.search(r'id="new-token" class="token" readonly value="([^"]+)"', issued.get_data(as_text=True))
    assert secret and secret.group(1).startswith("sct_")
    assert "shown only now" in text_of(issued)
    assert secret.group(1) not in admin.get("/admin/users").get_data(as_text=True)  # only that once
    assert admin.get("/api/cases", headers={"Authorization": f"Bearer {secret.group(1)}"}).status_code == 200
    public_id = db.session.scalar(select(ApiToken.public_id).join(User).where(User.username == "lina"))
    assert f"{public_id} created" in text_of(admin.get("/admin/users"))

    assert post(admin, "/admin/tokens/revoke", token_id=str(public_id)).status_code == 303
    assert admin.get("/api/cases", headers={"Authorization": f"Bearer {secret.group(1)}"}).status_code == 401
    again = post(admin, "/admin/tokens/revoke", token_id=str(public_id))
    assert again.status_code == 409 and "already revoked" in text_of(again)

    assert post(admin, "/admin/users/disable", username="lina").status_code == 303
    assert user("lina").disabled
    assert post(admin, "/admin/users/disable", username="lina").status_code == 409
    assert post(admin, "/admin/users/roles", roles=["agent"]).status_code == 400  # which user?


def test_auditors_read_the_users_page_but_change_nothing(ctx: Flask, signed_in: Callable[..., FlaskClient]) -> None:
    auditor = signed_in("audrey", "auditor")
    page = auditor.get("/admin/users")
    assert page.status_code == 200 and "audrey" in text_of(page)
    assert "Create user" not in page.get_data(as_text=True)
    refused = post(auditor, "/admin/users", username="neu", password=PASSWORD, roles=["admin"])
    assert refused.status_code == 403 and "audrey may not manage users and tokens" in text_of(refused)
    db.session.rollback()
    assert db.session.scalar(select(User).where(User.username == "neu")) is None


def test_staff_may_not_see_the_users_page(ctx: Flask, signed_in: Callable[..., FlaskClient]) -> None:
    engineer = signed_in("eve", "engineer", "supervisor")
    refused = engineer.get("/admin/users")
    assert refused.status_code == 403
    assert "eve may not read users: that needs one of the roles admin, auditor" in text_of(refused)
    assert "/admin/users" not in engineer.get("/").get_data(as_text=True)  # no link in the header either
