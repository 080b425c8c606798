"""The `flask --app wsgi users ...` commands: exit codes, messages, the token as the last line, the prompt."""

from __future__ import annotations

import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import func, select

from app.auth import ROLES
from app.engine import now
from app.extensions import db
from app.registry.models import Equipment
from app.registry.service import seed_demo_data
from app.users import service as users
from app.users.models import ApiToken, User
from tests.conftest import REDIS_URL, ROOT
from tests.support import worker_env

PASSWORD = "s3cret-enough"


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    """One users command through Flask's CLI runner; never a traceback, whatever the outcome."""
    result = app.test_cli_runner().invoke(args=["users", *args], input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def stored(username: str) -> User | None:
    """The user as committed (a fresh read)."""
    db.session.rollback()
    return db.session.scalar(select(User).where(User.username == username))


def test_create_with_a_password(app: Flask, ctx: Flask) -> None:
    result = run(app, "create", "王磊", "--role", "engineer", "--role", "supervisor", "--password", PASSWORD,
                 "--display-name", "Wang Lei")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created user 王磊 with roles engineer, supervisor\n"
    user = stored("王磊")
    assert user is not None and user.role_names == ["engineer", "supervisor"] and user.display_name == "Wang Lei"
    assert users.verify_password(user=user, password=PASSWORD)


def test_create_prompts_twice_hidden_when_no_password_is_given(app: Flask, ctx: Flask) -> None:
    result = run(app, "create", "alice", "--role", "agent", input=f"{PASSWORD}\nother-one\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password:") == 2 and result.output.count("Repeat for confirmation:") == 2
    assert "do not match" in result.output
    assert PASSWORD not in result.output  # hidden: not echoed
    user = stored("alice")
    assert user is not None and users.verify_password(user=user, password=PASSWORD)


@pytest.mark.parametrize("args, message", [
    (["system", "--role", "admin"], "'system' is reserved"),
    (["Timer", "--role", "admin"], "'Timer' is reserved"),
    (["bob", "--role", "engineer", "--role", "wizard"], "unknown role 'wizard'; the roles are: " + ", ".join(ROLES)),
    (["two words", "--role", "agent"], "spaces"),
])
def test_create_refuses_bad_input_before_asking_for_a_password(app: Flask, ctx: Flask, args: list[str],
                                                              message: str) -> None:
    result = run(app, "create", *args, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Password" not in result.output
    db.session.rollback()
    assert db.session.scalar(select(User)) is None


def test_create_refuses_a_taken_name_and_a_short_password(app: Flask, ctx: Flask) -> None:
    assert run(app, "create", "alice", "--role", "agent", "--password", PASSWORD).exit_code == 0
    taken = run(app, "create", "alice", "--role", "engineer", "--password", PASSWORD)
    assert (taken.exit_code, taken.stderr) == (1, "Error: a user named 'alice' already exists\n")
    short = run(app, "create", "bob", "--role", "engineer", "--password", "short")
    assert short.exit_code == 1 and "shorter than 8 characters" in short.stderr
    assert stored("bob") is None


def test_create_needs_a_role(app: Flask, ctx: Flask) -> None:
    result = run(app, "create", "alice", "--password", PASSWORD)
    assert result.exit_code == 2 and "Missing option '--role'" in result.stderr


def test_token_prints_the_token_as_the_last_line(app: Flask, ctx: Flask) -> None:
    run(app, "create", "alice", "--role", "engineer", "--password", PASSWORD)
    result = run(app, "token", "alice")
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[-1]
    db.session.rollback()
    stored_token = db.session.scalars(select(ApiToken)).one()
    assert token.startswith(f"sct_{stored_token.public_id}_")
    assert stored_token.public_id in result.stdout.splitlines()[0]
    assert users.authenticate_token(token=token).username == "alice"
    missing = run(app, "token", "nobody")
    assert (missing.exit_code, missing.stderr) == (1, "Error: there is no user named 'nobody'\n")


def test_list_disable_and_revoke(app: Flask, ctx: Flask) -> None:
    assert run(app, "list").stdout == "no users\n"
    run(app, "create", "alice", "--role", "engineer", "--role", "warehouse", "--password", PASSWORD)
    run(app, "create", "bob", "--role", "auditor", "--password", PASSWORD)
    token = run(app, "token", "alice").stdout.splitlines()[-1]
    second = run(app, "token", "alice").stdout.splitlines()[-1]
    users.authenticate_token(token=token)  # a use, as a request would make it
    db.session.commit()
    public_id, second_id = token.split("_")[1], second.split("_")[1]

    listed = run(app, "list").stdout.splitlines()
    assert listed[0].startswith("alice  active  roles: engineer, warehouse")
    assert listed[1].startswith(f"    token {public_id}  created ") and f"last used {now():%Y-%m-%d}" in listed[1]
    assert listed[1].endswith("valid")
    assert listed[2].startswith(f"    token {second_id}") and "last used never" in listed[2]
    assert listed[3].startswith("bob  active  roles: auditor")

    revoked = run(app, "tokens", "revoke", public_id)
    assert (revoked.exit_code, revoked.stdout) == (0, f"revoked token {public_id} of alice\n")
    again = run(app, "tokens", "revoke", public_id)
    assert again.exit_code == 1 and "already revoked" in again.stderr
    unknown = run(app, "tokens", "revoke", "nosuchthing")
    assert unknown.exit_code == 1 and "no token with id 'nosuchthing'" in unknown.stderr

    disabled = run(app, "disable", "bob")
    assert (disabled.exit_code, disabled.stdout) == (0, "disabled user bob\n")
    assert run(app, "disable", "bob").exit_code == 1
    assert run(app, "disable", "nobody").exit_code == 1
    listed = run(app, "list").stdout.splitlines()
    assert "revoked" in listed[1] and listed[2].endswith("valid")
    assert listed[3].startswith("bob  DISABLED")


def test_a_token_from_the_real_commands_authenticates_an_api_request(deployed: Flask, database_url: str,
                                                                       tmp_path: Path) -> None:
    seed_demo_data()
    db.session.commit()
    equipment_id = db.session.scalars(select(Equipment.id)).first()
    flask = f"{shlex.quote(sys.executable)} -m flask --app wsgi"
    script = (f"{flask} users create 李娜 --role agent --role engineer --password {PASSWORD} && "
              f"{flask} users token 李娜")
    env = worker_env(database_url=database_url, redis_url=REDIS_URL, instance=tmp_path)
    done = subprocess.run(["sh", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    token = done.stdout.splitlines()[-1]

    client = deployed.test_client()
    body = {"process": "fault_handling", "reported_at": (now() - timedelta(hours=1)).isoformat(),
            "channel": "phone", "description": "UPS alarm", "equipment_id": equipment_id}
    response = client.post("/api/cases", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.get_json()
    events = client.get(f"/api/cases/{response.get_json()['id']}/events",
                        headers={"Authorization": f"Bearer {token}"}).get_json()["items"]
    assert (events[0]["type"], events[0]["actor"]) == ("case_opened", "李娜")


def test_a_database_without_the_users_tables_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = worker_env(database_url=f"sqlite:///{tmp_path / 'empty.db'}", redis_url=REDIS_URL, instance=tmp_path)
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "users", "create", "alice", "--role",
                           "agent", "--password", PASSWORD], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "nothing changed: the database refused: no such table: users" in done.stderr


def test_setup_in_development_creates_and_prints_the_demo_users(app: Flask, deployed: Flask,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "ENV_NAME", "development")
    result = app.test_cli_runner().invoke(args=["setup", "--no-demo"])
    assert result.exit_code == 0, result.output
    password = (Path(app.instance_path) / "demo_password").read_text().strip()
    assert f"password for all of them: {password}" in result.output
    for role in ROLES:
        assert f"  {role} " in result.output
    again = app.test_cli_runner().invoke(args=["setup", "--no-demo"])
    assert f"password for all of them: {password}" in again.output  # the same password, kept
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(User)) == len(ROLES)


@pytest.mark.parametrize("environment", ["production", "testing"])
def test_no_demo_users_outside_development(app: Flask, deployed: Flask, monkeypatch: pytest.MonkeyPatch,
                                          environment: str) -> None:
    monkeypatch.setitem(app.config, "ENV_NAME", environment)
    result = app.test_cli_runner().invoke(args=["setup", "--no-demo"])
    assert result.exit_code == 0, result.output
    assert "Demo users" not in result.output
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(User)) == 0
