"""Users of the system, the roles they hold, their API tokens, and the log of changes to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import JSONData, UTCDateTime, db


class User(db.Model):  # type: ignore[name-defined,misc]
    """A person who signs in or calls the API; acts with the roles they hold."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    username: Mapped[str] = mapped_column(String(100), unique=True)  # sign-in name, as the history shows it
    display_name: Mapped[str] = mapped_column(String(200), default="")  # full name for pages; may be empty
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, in argon2's encoded form
    disabled: Mapped[bool] = mapped_column(default=False)  # a disabled user cannot sign in or use tokens
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the user was created
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last successful sign-in
    # Sessions carry the generation they began in; raising it (sign-out, disabling) ends them all.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    locale: Mapped[str | None] = mapped_column(String(10))  # the language the user chose for pages (en, zh), or None

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                 lazy="selectin", order_by="UserRole.role")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", order_by="ApiToken.id")

    @property
    def role_names(self) -> list[str]:
        """The roles held, sorted."""
        return sorted(role.role for role in self.roles)


class UserRole(db.Model):  # type: ignore[name-defined,misc]
    """One role one user holds."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)  # the holder
    role: Mapped[str] = mapped_column(String(50), primary_key=True)  # one of app.auth.ROLES

    user: Mapped[User] = relationship(back_populates="roles")


class ApiToken(db.Model):  # type: ignore[name-defined,misc]
    """A bearer token of the JSON API; only a hash of its secret is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    public_id: Mapped[str] = mapped_column(String(20), unique=True)  # short id inside the token, for lookup
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the token's random secret part
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)  # whose token
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was issued
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last request (to the minute)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set once; a revoked token is refused

    user: Mapped[User] = relationship(back_populates="tokens")


class UserEvent(db.Model):  # type: ignore[name-defined,misc]
    """One change to users, roles or tokens (the case history's counterpart); never updated or deleted."""

    __tablename__ = "user_events"

    id: Mapped[int] = mapped_column(primary_key=True)  # order of appends
    type: Mapped[str] = mapped_column(String(50))  # subject_past_tense_verb, e.g. user_created
    username: Mapped[str] = mapped_column(String(100), index=True)  # the user it concerns
    actor: Mapped[str] = mapped_column(String(100))  # who made the change
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)  # system clock time of the change
    payload: Mapped[dict[str, Any]] = mapped_column(JSONData, default=dict)  # what changed (never secrets)


class ImmutableUserEventError(RuntimeError):
    """Raised when code tries to change or delete a recorded user event."""


@event.listens_for(UserEvent, "before_update")
def _refuse_update(mapper: Any, connection: Any, target: UserEvent) -> None:
    raise ImmutableUserEventError(f"user event {target.id} is history and cannot be changed")


@event.listens_for(UserEvent, "before_delete")
def _refuse_delete(mapper: Any, connection: Any, target: UserEvent) -> None:
    raise ImmutableUserEventError(f"user event {target.id} is history and cannot be deleted")
