"""The users service: argon2id passwords, reserved names, roles, tokens stored hashed, and its history."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import event, select

from app.auth import ROLES, Actor, AuthenticationError
from app.engine import ManualClock
from app.errors import ConflictError, InvalidDataError, NotFoundError, PermissionDeniedError
from app.extensions import db
from app.users import service as users
from app.users.models import ApiToken, ImmutableUserEventError, User, UserEvent

ADMIN = Actor("root-admin", frozenset({"admin"}))
PASSWORD = "correct horse battery"


def _new(name: str = "alice", *roles: str) -> User:
    return users.create_user(username=name, password=PASSWORD, roles=roles or ("engineer",), actor=ADMIN)


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL statements run inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_the_password_is_hashed_with_argon2id_and_verifies(ctx: Flask) -> None:
    user = _new()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert users.verify_password(user=user, password=PASSWORD)
    assert not users.verify_password(user=user, password=PASSWORD + "!")
    assert not users.verify_password(user=user, password="")
    assert not users.verify_password(user=user, password="x" * 5000)  # refused before any hashing


def test_two_users_with_one_password_get_different_hashes(ctx: Flask) -> None:
    assert _new("alice").password_hash != _new("bob").password_hash  # salted


@pytest.mark.parametrize("name", ["system", "timer", "System", "TIMER", "ｓｙｓｔｅｍ", "system."])
def test_reserved_names_are_refused(ctx: Flask, name: str) -> None:
    with pytest.raises(InvalidDataError, match="reserved"):
        _new(name)
    assert db.session.scalar(select(User)) is None


@pytest.mark.parametrize("name, problem", [("", "empty"), ("   ", "empty"), ("a b", "spaces"),
                                           ("tab\there", "spaces"), ("nul\0", "control"), ("x" * 101, "longer")])
def test_unusable_names_are_refused(ctx: Flask, name: str, problem: str) -> None:
    with pytest.raises(InvalidDataError, match=problem):
        _new(name)


def test_unknown_roles_are_refused_naming_them_and_the_known_roles(ctx: Flask) -> None:
    with pytest.raises(InvalidDataError) as refused:
        _new("alice", "engineer", "wizard", "janitor")
    assert "'janitor', 'wizard'" in refused.value.message
    assert all(role in refused.value.message for role in ROLES)
    assert db.session.scalar(select(User)) is None


def test_a_taken_name_is_a_conflict(ctx: Flask) -> None:
    _new("alice")
    with pytest.raises(ConflictError, match="already exists"):
        _new("alice")


def test_a_short_password_is_refused(ctx: Flask) -> None:
    with pytest.raises(InvalidDataError, match="shorter than 8"):
        users.create_user(username="alice", password="short", roles=["agent"], actor=ADMIN)


def test_only_admins_manage_users(ctx: Flask) -> None:
    engineer = Actor("eve", frozenset({"engineer", "supervisor"}))
    with pytest.raises(PermissionDeniedError, match="eve may not manage users and tokens: that needs the role admin"):
        users.create_user(username="mallory", password=PASSWORD, roles=["admin"], actor=engineer)
    _new("alice")
    for call in (lambda: users.create_token(username="alice", actor=engineer),
                 lambda: users.disable_user(username="alice", actor=engineer)):
        with pytest.raises(PermissionDeniedError):
            call()


def test_a_user_holds_any_number_of_roles(ctx: Flask) -> None:
    user = _new("alice", "supervisor", "engineer", "auditor", "engineer")
    db.session.commit()
    db.session.expire_all()
    assert users.get_user(username="alice").role_names == ["auditor", "engineer", "supervisor"]
    assert users.actor_for(user) == Actor("alice", frozenset({"auditor", "engineer", "supervisor"}))


def test_a_non_ascii_name_round_trips_through_the_database(ctx: Flask) -> None:
    users.create_user(username="王磊", display_name="王磊 (华东区)", password="密码很安全的密码", roles=["engineer"],
                      actor=ADMIN)
    db.session.commit()
    db.session.remove()  # a fresh session: read back from the database, not the identity map
    user = users.get_user(username="王磊")
    assert (user.username, user.display_name) == ("王磊", "王磊 (华东区)")
    assert users.verify_password(user=user, password="密码很安全的密码")
    # A decomposed spelling of an accented name is the same user (names are stored NFC).
    users.create_user(username="Zoé", password=PASSWORD, roles=["agent"], actor=ADMIN)
    db.session.commit()
    assert users.get_user(username="Zoe\u0301").username == "Zoé"


def test_services_flush_and_leave_the_commit_to_the_caller(ctx: Flask) -> None:
    _new("alice")
    assert db.session.scalar(select(User.username)) == "alice"  # flushed: visible in this transaction
    db.session.rollback()
    assert db.session.scalar(select(User)) is None


def test_every_change_is_recorded_without_secrets(ctx: Flask) -> None:
    _new("alice", "agent")
    token, secret = users.create_token(username="alice", actor=ADMIN)
    users.revoke_token(token_id=token.public_id, actor=ADMIN)
    users.disable_user(username="alice", actor=ADMIN)
    db.session.commit()
    events = list(db.session.scalars(select(UserEvent).order_by(UserEvent.id)))
    assert [(e.type, e.username, e.actor) for e in events] == [
        ("user_created", "alice", "root-admin"), ("token_created", "alice", "root-admin"),
        ("token_revoked", "alice", "root-admin"), ("user_disabled", "alice", "root-admin")]
    assert events[0].payload == {"roles": ["agent"], "display_name": ""}
    assert events[1].payload == {"token_id": token.public_id}
    assert all(secret.split("_")[-1] not in str(e.payload) for e in events)
    events[0].type = "user_deleted"
    with pytest.raises(ImmutableUserEventError):
        db.session.flush()


def test_a_token_is_stored_only_as_a_hash_of_its_secret(ctx: Flask) -> None:
    _new("alice")
    token, secret = users.create_token(username="alice", actor=ADMIN)
    db.session.commit()
    assert secret.startswith(f"sct_{token.public_id}_")
    random_part = secret.removeprefix(f"sct_{token.public_id}_")
    assert len(random_part) >= 43  # 32 random bytes
    stored = db.session.scalars(select(ApiToken)).one()
    assert stored.secret_hash == hashlib.sha256(random_part.encode()).hexdigest()
    assert random_part not in (stored.public_id, stored.secret_hash)


def test_a_token_authenticates_as_its_user_in_one_query(ctx: Flask, clock: ManualClock) -> None:
    _new("alice", "engineer", "warehouse")
    _, secret = users.create_token(username="alice", actor=ADMIN)
    db.session.commit()
    db.session.remove()
    with _statements() as first:
        actor = users.authenticate_token(token=secret)
    assert actor == Actor("alice", frozenset({"engineer", "warehouse"}))
    assert len([s for s in first if s.lstrip().upper().startswith("SELECT")]) == 1
    assert len([s for s in first if s.lstrip().upper().startswith("UPDATE")]) == 1  # first use: last_used_at
    db.session.commit()
    db.session.remove()
    clock.advance(timedelta(seconds=59))
    with _statements() as again:
        users.authenticate_token(token=secret)
    assert [s.split()[0].upper() for s in again] == ["SELECT"]  # within the minute: no write


@pytest.mark.parametrize("token, message", [
    ("", "malformed"), ("abc", "malformed"), ("sct_short_x", "malformed"), ("sct_ABCDEFGHIJ_x", "malformed"),
    ("sct_abcdefghij", "malformed"), ("sct_abcdefghij_nothing-like-it", "not known")])
def test_bad_tokens_are_refused(ctx: Flask, token: str, message: str) -> None:
    with pytest.raises(AuthenticationError, match=message):
        users.authenticate_token(token=token)


def test_a_right_id_with_a_wrong_secret_is_unknown(ctx: Flask) -> None:
    _new("alice")
    token, secret = users.create_token(username="alice", actor=ADMIN)
    with pytest.raises(AuthenticationError, match="not known"):
        users.authenticate_token(token=f"sct_{token.public_id}_{'A' * 43}")
    assert users.authenticate_token(token=secret).username == "alice"


def test_revoked_tokens_and_disabled_users_are_refused(ctx: Flask) -> None:
    _new("alice")
    _new("bob")
    revoked, revoked_secret = users.create_token(username="alice", actor=ADMIN)
    _, bobs = users.create_token(username="bob", actor=ADMIN)
    users.revoke_token(token_id=revoked.public_id, actor=ADMIN)
    users.disable_user(username="bob", actor=ADMIN)
    with pytest.raises(AuthenticationError, match="revoked"):
        users.authenticate_token(token=revoked_secret)
    with pytest.raises(AuthenticationError, match="'bob' is disabled"):
        users.authenticate_token(token=bobs)
    with pytest.raises(ConflictError, match="already revoked"):
        users.revoke_token(token_id=revoked.public_id, actor=ADMIN)
    with pytest.raises(ConflictError, match="disabled"):
        users.create_token(username="bob", actor=ADMIN)
    with pytest.raises(ConflictError, match="already disabled"):
        users.disable_user(username="bob", actor=ADMIN)
    with pytest.raises(NotFoundError):
        users.revoke_token(token_id="nosuchtokn", actor=ADMIN)


# -- roles, sign-in, sessions, demo users --------------------------------------------------------------------
def test_set_roles_gives_exactly_the_roles_and_records_the_change(ctx: Flask) -> None:
    _new("alice", "engineer", "warehouse")
    user = users.set_roles(username="alice", roles=["supervisor", "engineer", "engineer"], actor=ADMIN)
    assert user.role_names == ["engineer", "supervisor"]
    db.session.commit()
    db.session.expire_all()
    assert users.get_user(username="alice").role_names == ["engineer", "supervisor"]
    last = db.session.scalars(select(UserEvent).order_by(UserEvent.id.desc())).first()
    assert last is not None and (last.type, last.payload) == (
        "user_roles_set", {"before": ["engineer", "warehouse"], "roles": ["engineer", "supervisor"]})
    with pytest.raises(InvalidDataError, match="unknown role 'wizard'"):
        users.set_roles(username="alice", roles=["wizard"], actor=ADMIN)
    with pytest.raises(PermissionDeniedError, match="needs the role admin"):
        users.set_roles(username="alice", roles=["admin"], actor=Actor("eve", frozenset({"supervisor"})))
    with pytest.raises(NotFoundError):
        users.set_roles(username="nobody", roles=[], actor=ADMIN)


def test_reading_users_needs_users_read(ctx: Flask) -> None:
    _new("alice")
    assert [u.username for u in users.list_users(actor=Actor("audrey", frozenset({"auditor"})))] == ["alice"]
    with pytest.raises(PermissionDeniedError, match="may not read users"):
        users.list_users(actor=Actor("eve", frozenset({"engineer"})))


def test_sign_in_checks_the_password_and_records_the_outcome(ctx: Flask, clock: ManualClock) -> None:
    _new("alice", "engineer")
    user = users.sign_in(username=" alice ", password=PASSWORD, address="10.0.0.1")
    assert user.username == "alice" and user.last_sign_in_at == clock.now()
    for name, password, message in [("alice", "wrong", "the user name or the password is wrong"),
                                    ("bob", PASSWORD, "the user name or the password is wrong"),
                                    ("", PASSWORD, "the user name or the password is wrong")]:
        with pytest.raises(users.SignInRefusedError, match=message):
            users.sign_in(username=name, password=password, address="10.0.0.1")
    users.disable_user(username="alice", actor=ADMIN)
    with pytest.raises(users.SignInRefusedError, match="disabled"):
        users.sign_in(username="alice", password=PASSWORD, address="10.0.0.1")
    types = [e.type for e in db.session.scalars(select(UserEvent).order_by(UserEvent.id))]
    assert types == ["user_created", "signed_in", "sign_in_failed", "sign_in_failed", "sign_in_failed",
                     "user_disabled", "sign_in_failed"]


def test_a_session_acts_with_the_current_roles_until_its_generation_ends(ctx: Flask) -> None:
    user = _new("alice", "engineer")
    db.session.commit()
    generation = user.session_generation
    assert users.session_actor(user_id=user.id, generation=generation) == Actor("alice", frozenset({"engineer"}))
    users.set_roles(username="alice", roles=["engineer", "supervisor"], actor=ADMIN)
    assert users.session_actor(user_id=user.id, generation=generation).roles == {"engineer", "supervisor"}
    users.sign_out(actor=Actor("alice", frozenset({"engineer"})), address="10.0.0.1")
    assert users.session_actor(user_id=user.id, generation=generation) is None
    assert users.session_actor(user_id=user.id, generation=generation + 1) is not None
    users.disable_user(username="alice", actor=ADMIN)
    assert users.session_actor(user_id=user.id, generation=user.session_generation) is None
    assert users.session_actor(user_id=99999, generation=0) is None


def test_demo_users_are_one_per_role_and_created_once(ctx: Flask) -> None:
    first = users.ensure_demo_users(password="demo-password", actor=ADMIN)
    assert [(u.username, u.role_names) for u in first] == [(role, [role]) for role in ROLES]
    assert all(u.display_name for u in first)
    assert users.sign_in(username="auditor", password="demo-password", address="x").username == "auditor"
    again = users.ensure_demo_users(password="another-password", actor=ADMIN)
    assert [u.id for u in again] == [u.id for u in first]
    assert users.verify_password(user=again[0], password="demo-password")  # existing users keep their password
