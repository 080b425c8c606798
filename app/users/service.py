"""Creating users, checking their passwords, issuing, checking and revoking API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import unicodedata
from collections.abc import Iterable
from datetime import timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.auth import RESERVED_NAMES, ROLE_NAMES, ROLES, Actor, AuthenticationError, is_reserved_name, require
from app.engine import now
from app.errors import ConflictError, InvalidDataError, NotFoundError
from app.extensions import db
from app.i18n import LOCALES
from app.users.models import ApiToken, User, UserEvent, UserRole

ANONYMOUS = Actor("anonymous", frozenset())  # who a failed sign-in's event names as its actor
MAX_USERNAME = 100  # the history's actor column holds 100 characters
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # hashing is deliberately slow; do not let a request make it hash megabytes
TOKEN_PREFIX = "sct_"  # "servicecase token": recognisable in logs and by secret scanners
PUBLIC_ID_ALPHABET = string.ascii_lowercase + string.digits
PUBLIC_ID_LENGTH = 10
TOUCH_INTERVAL = timedelta(minutes=1)  # last_used_at is written at most this often per token

# argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile), spelled out so it cannot drift.
_hasher = PasswordHasher(type=Type.ID)


def _require_admin(actor: Actor) -> None:
    require(actor, "users.manage")


class SignInRefusedError(AuthenticationError):
    """A sign-in with a wrong user name or password, or of a disabled user."""


def _record(*, type: str, username: str, actor: Actor, payload: dict[str, Any] | None = None) -> UserEvent:
    event = UserEvent(type=type, username=username, actor=actor.username, occurred_at=now(), payload=payload or {})
    db.session.add(event)
    return event


def normalize_username(name: str) -> str:
    """The stored form of a user name: NFC, no surrounding space."""
    return unicodedata.normalize("NFC", name).strip()


def check_new_user(*, username: str, roles: Iterable[str]) -> str:
    """Refuse a name that is empty, too long, has spaces or control characters, is reserved or taken, and
    roles that do not exist; the normalized name."""
    name = normalize_username(username)
    if not name:
        raise InvalidDataError("the user name is empty", errors={"username": ["must not be empty"]})
    if len(name) > MAX_USERNAME:
        raise InvalidDataError(f"the user name is longer than {MAX_USERNAME} characters",
                               errors={"username": [f"at most {MAX_USERNAME} characters"]})
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidDataError(f"the user name {name!r} contains spaces or control characters",
                               errors={"username": ["no spaces or control characters"]})
    if is_reserved_name(name):
        raise InvalidDataError(f"the user name {name!r} is reserved: {', '.join(sorted(RESERVED_NAMES))} "
                               "are the system's own names", errors={"username": ["reserved"]})
    check_roles(roles)
    if db.session.scalar(select(User.id).where(User.username == name)) is not None:
        raise ConflictError(f"a user named {name!r} already exists", errors={"username": ["taken"]})
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidDataError(f"the password is shorter than {MIN_PASSWORD} characters",
                               errors={"password": [f"at least {MIN_PASSWORD} characters"]})
    if len(password) > MAX_PASSWORD:
        raise InvalidDataError(f"the password is longer than {MAX_PASSWORD} characters",
                               errors={"password": [f"at most {MAX_PASSWORD} characters"]})


def create_user(*, username: str, password: str, roles: Iterable[str], actor: Actor,
                display_name: str = "") -> User:
    """A new user holding ``roles``, with an argon2id hash of ``password``."""
    _require_admin(actor)
    roles = sorted(set(roles))
    name = check_new_user(username=username, roles=roles)
    _check_password(password)
    user = User(username=name, display_name=display_name.strip()[:200], password_hash=_hasher.hash(password),
                disabled=False, created_at=now(), roles=[UserRole(role=role) for role in roles])
    db.session.add(user)
    _record(type="user_created", username=name, actor=actor,
            payload={"roles": roles, "display_name": user.display_name})
    db.session.flush()
    return user


def get_user(*, username: str) -> User:
    """A user by name (NotFoundError if there is none)."""
    name = normalize_username(username)
    user = db.session.scalar(select(User).where(User.username == name))
    if user is None:
        raise NotFoundError(f"there is no user named {name!r}")
    return user


def list_users(*, actor: Actor) -> list[User]:
    """Every user with their roles and tokens, by name."""
    require(actor, "users.read")
    return list(db.session.scalars(select(User).options(joinedload(User.tokens)).order_by(User.username))
                .unique())


def verify_password(*, user: User, password: str) -> bool:
    """True when ``password`` is the user's (rehashing it if the hash parameters changed)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.flush()
    return True


def disable_user(*, username: str, actor: Actor) -> User:
    """Stop the user signing in or using any token (their history stays)."""
    _require_admin(actor)
    user = get_user(username=username)
    if user.disabled:
        raise ConflictError(f"user {user.username!r} is already disabled")
    user.disabled = True
    user.session_generation += 1  # every signed-in session of the user ends with its next request
    _record(type="user_disabled", username=user.username, actor=actor)
    db.session.flush()
    return user


def check_roles(roles: Iterable[str]) -> list[str]:
    """``roles`` sorted and without repeats; InvalidDataError naming the ones that do not exist."""
    chosen = sorted(set(roles))
    unknown = [role for role in chosen if role not in ROLES]
    if unknown:
        raise InvalidDataError(f"unknown role{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                               f"the roles are: {', '.join(ROLES)}", errors={"roles": unknown})
    return chosen


def set_roles(*, username: str, roles: Iterable[str], actor: Actor) -> User:
    """Give the user exactly ``roles`` (none is allowed: the user then may do nothing); their sessions and
    tokens act with the new roles from their next request."""
    _require_admin(actor)
    chosen = check_roles(roles)
    user = get_user(username=username)
    before = user.role_names
    if before == chosen:
        return user
    user.roles = [role for role in user.roles if role.role in chosen]
    user.roles.extend(UserRole(role=role) for role in chosen if role not in before)
    _record(type="user_roles_set", username=user.username, actor=actor, payload={"before": before, "roles": chosen})
    db.session.flush()
    return user


def set_locale(*, actor: Actor, locale: str) -> User:
    """The signed-in user chooses the language of their own pages (one of app.i18n.LOCALES); recorded as
    ``user_locale_set``. Choosing the language already chosen records nothing."""
    require(actor, "users.own_locale")
    if locale not in LOCALES:
        raise InvalidDataError(f"the language {locale!r} is not one the pages speak; choose one of "
                               f"{', '.join(LOCALES)}", errors={"locale": [f"must be one of {', '.join(LOCALES)}"]})
    user = get_user(username=actor.username)
    previous = user.locale
    if previous == locale:
        return user
    user.locale = locale
    _record(type="user_locale_set", username=user.username, actor=actor,
            payload={"locale": locale, "previous": previous})
    db.session.flush()
    return user


def actor_for(user: User) -> Actor:
    """The actor a user acts as: their name and roles."""
    return Actor(user.username, frozenset(user.role_names), user.display_name, user.locale)


# The demo users of a development installation: one per role, with the name of the role.
DEMO_USERS = {
    "agent": "Li Na", "engineer": "Wang Lei", "regional_engineer": "Zhang Wei", "technical_dept": "Chen Jing",
    "supervisor": "Liu Yang", "warehouse": "Zhao Min", "process_owner": "Sun Hao", "admin": "Zhou Xin",
    "auditor": "Wu Fang",
}


def ensure_demo_users(*, password: str, actor: Actor) -> list[User]:
    """The demo users (one per role, named after it), created with ``password`` where missing; existing ones
    are left as they are. Development only: the caller checks the environment."""
    _require_admin(actor)
    found = []
    for role, display_name in DEMO_USERS.items():
        user = db.session.scalar(select(User).where(User.username == role))
        if user is None:
            user = create_user(username=role, password=password, roles=[role], actor=actor,
                               display_name=f"{display_name} ({ROLE_NAMES[role].lower()})")
        found.append(user)
    return found


@cache
def _dummy_hash() -> str:
    """An argon2id hash no password matches, so an unknown user name costs the same time as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(16))


def sign_in(*, username: str, password: str, address: str) -> User:
    """The user whose name and password these are, their last sign-in time set and ``signed_in`` recorded;
    SignInRefusedError (``sign_in_failed`` recorded, with the reason and address) for an unknown name, a
    wrong password or a disabled user. Unknown names hash a dummy password so they take as long as wrong
    passwords. Called by the sign-in page, before anyone acts, so it takes no actor."""
    name = normalize_username(username)[:MAX_USERNAME]
    user = db.session.scalar(select(User).where(User.username == name)) if name else None
    if user is None:
        try:
            _hasher.verify(_dummy_hash(), password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            pass
        reason = "unknown user name"
    elif not verify_password(user=user, password=password):
        reason = "wrong password"
    elif user.disabled:
        reason = "user disabled"
    else:
        user.last_sign_in_at = now()
        _record(type="signed_in", username=user.username, actor=actor_for(user), payload={"address": address})
        db.session.flush()
        return user
    _record(type="sign_in_failed", username=name or "?", actor=ANONYMOUS,
            payload={"reason": reason, "address": address})
    db.session.flush()
    if reason == "user disabled":
        raise SignInRefusedError(f"the user {name!r} is disabled; ask an administrator")
    raise SignInRefusedError("the user name or the password is wrong")


def sign_out(*, actor: Actor, address: str) -> None:
    """End every session of the acting user (its generation moves on) and record ``signed_out``."""
    user = db.session.scalar(select(User).where(User.username == actor.username)) if actor.username else None
    if user is None:
        return
    user.session_generation += 1
    _record(type="signed_out", username=user.username, actor=actor, payload={"address": address})
    db.session.flush()


def session_actor(*, user_id: int, generation: int) -> Actor | None:
    """The actor of a signed-in session: the user with the roles they hold now; None when the user is gone or
    disabled or the session's generation is over (signed out, disabled). One indexed query."""
    rows = db.session.execute(
        select(User.username, User.display_name, User.disabled, User.session_generation, User.locale, UserRole.role)
        .outerjoin(UserRole, UserRole.user_id == User.id).where(User.id == user_id)).all()
    if not rows or rows[0].disabled or rows[0].session_generation != generation:
        return None
    return Actor(rows[0].username, _roles_of(rows), rows[0].display_name, rows[0].locale)


def _digest(secret: str) -> str:
    # A token's secret is 256 random bits, so one fast hash suffices (no salt or slow hash needed):
    # nobody can guess a preimage, and the lookup stays one indexed query.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(*, username: str, actor: Actor) -> tuple[ApiToken, str]:
    """A new API token for the user; the token itself, which is not stored, is returned only here."""
    _require_admin(actor)
    user = get_user(username=username)
    if user.disabled:
        raise ConflictError(f"user {user.username!r} is disabled; a disabled user gets no tokens")
    public_id = "".join(secrets.choice(PUBLIC_ID_ALPHABET) for _ in range(PUBLIC_ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    token = ApiToken(public_id=public_id, secret_hash=_digest(secret), user=user, created_at=now())
    db.session.add(token)
    _record(type="token_created", username=user.username, actor=actor, payload={"token_id": public_id})
    db.session.flush()
    return token, f"{TOKEN_PREFIX}{public_id}_{secret}"


def revoke_token(*, token_id: str, actor: Actor) -> ApiToken:
    """Refuse the token from now on (``token_id`` is its public id, as listed)."""
    _require_admin(actor)
    token = db.session.scalar(select(ApiToken).where(ApiToken.public_id == token_id.strip().lower()))
    if token is None:
        raise NotFoundError(f"there is no token with id {token_id!r} (see `users list`)")
    if token.revoked_at is not None:
        raise ConflictError(f"token {token.public_id} was already revoked at {token.revoked_at:%Y-%m-%d %H:%M}")
    token.revoked_at = now()
    _record(type="token_revoked", username=token.user.username, actor=actor, payload={"token_id": token.public_id})
    db.session.flush()
    return token


def _parse_token(token: str) -> tuple[str, str]:
    body = token.removeprefix(TOKEN_PREFIX)
    public_id, _, secret = body.partition("_")
    if (body == token or len(public_id) != PUBLIC_ID_LENGTH or not secret
            or any(ch not in PUBLIC_ID_ALPHABET for ch in public_id)):
        raise AuthenticationError(f"the bearer token is malformed: tokens look like "
                                  f"{TOKEN_PREFIX}<{PUBLIC_ID_LENGTH} letters or digits>_<secret>")
    return public_id, secret


def _roles_of(rows: Iterable[Any]) -> frozenset[str]:
    return frozenset(row.role for row in rows if row.role is not None)


def authenticate_token(*, token: str) -> Actor:
    """The actor a bearer token acts as; AuthenticationError if it is malformed, unknown, revoked, or its
    user disabled. One indexed query (columns, not ORM objects: it runs on every API request); last_used_at is
    written at most once a minute (an UPDATE in the caller's transaction)."""
    public_id, secret = _parse_token(token)
    rows = db.session.execute(
        select(ApiToken.id, ApiToken.secret_hash, ApiToken.revoked_at, ApiToken.last_used_at, User.username,
               User.display_name, User.disabled, User.locale, UserRole.role)
        .join(User, ApiToken.user_id == User.id).outerjoin(UserRole, UserRole.user_id == User.id)
        .where(ApiToken.public_id == public_id)).all()
    if not rows or not hmac.compare_digest(rows[0].secret_hash, _digest(secret)):
        raise AuthenticationError("the bearer token is not known")
    found = rows[0]
    if found.revoked_at is not None:
        raise AuthenticationError(f"the bearer token {public_id} was revoked")
    if found.disabled:
        raise AuthenticationError(f"the bearer token's user {found.username!r} is disabled")
    moment = now()
    if found.last_used_at is None or abs(moment - found.last_used_at) >= TOUCH_INTERVAL:  # a reset clock too
        db.session.execute(update(ApiToken).where(ApiToken.id == found.id).values(last_used_at=moment)
                           .execution_options(synchronize_session=False))
    return Actor(found.username, _roles_of(rows), found.display_name, found.locale)
