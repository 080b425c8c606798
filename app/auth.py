"""Who is acting: the actor every service call takes, and the roles of the department."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.errors import PermissionDeniedError, ServiceError

if TYPE_CHECKING:
    from flask import Flask

STAFF_ROLES = ("agent", "engineer", "regional_engineer", "technical_dept", "supervisor", "warehouse")
ROLES = (*STAFF_ROLES, "process_owner", "admin", "auditor")
ROLE_NAMES = {
    "agent": "Customer service agent",
    "engineer": "Technical support engineer",
    "regional_engineer": "Regional engineer",
    "technical_dept": "Technical department",
    "supervisor": "Supervisor",
    "warehouse": "Warehouse keeper",
    "process_owner": "Process owner",
    "admin": "Administrator",
    "auditor": "Auditor",
}


@dataclass(frozen=True)
class Actor:
    """A user (or the system) acting on cases, with the roles they hold."""

    username: str
    roles: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        """True when the actor holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    def can_work_on(self, role: str | None) -> bool:
        """Staff may work tasks of their own role; supervisors may step in on any staff task."""
        if role is None:
            return self.has_role(*STAFF_ROLES)
        return self.has_role(role, "supervisor")

    @property
    def can_open_cases(self) -> bool:
        """Agents, engineers and supervisors take customers' reports."""
        return self.has_role("agent", "engineer", "regional_engineer", "supervisor")


    def can(self, permission: str) -> bool:
        """True when one of the actor's roles grants ``permission`` (see PERMISSIONS); the system may do
        everything."""
        return "system" in self.roles or bool(self.roles.intersection(PERMISSIONS[permission]))


# Who may do what: each permission and the roles that grant it. Services call require(actor, permission)
# first (reads included); finer rules (a task of the actor's own role, a claim by someone else) follow it in
# the service. Auditors hold every *read* permission and no other; admins manage but do not work tasks.
READERS = frozenset({*STAFF_ROLES, "admin", "auditor"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "cases.read": READERS,  # cases, their history, open tasks, deadlines and attachments
    "cases.open": frozenset({"agent", "engineer", "regional_engineer", "supervisor"}),
    "cases.attach": frozenset(STAFF_ROLES),  # add an attachment (fax scan, photo) to a case
    "tasks.read": READERS,
    "tasks.work": frozenset(STAFF_ROLES),  # claim, release, complete (a task of one's own role, see can_work_on)
    "tasks.assign": frozenset({"supervisor"}),  # assign or reassign any staff task to someone
    "registry.read": READERS,  # customers and equipment files
    "processes.read": frozenset(ROLES),  # process versions and their diagrams
    "processes.deploy": frozenset({"admin"}),
    "processes.edit": frozenset({"process_owner"}),  # edit definitions in the modeller (a later issue)
    "timers.read": frozenset({"admin", "auditor"}),  # the timer queue, pending and failed timers
    "timers.manage": frozenset({"admin"}),  # retry a failed timer, move the simulated clock
    "users.read": frozenset({"admin", "auditor"}),
    "users.manage": frozenset({"admin"}),  # create, set roles, disable, issue and revoke tokens
}
# What each permission lets one do, in the words of a refusal ("… may not <this>").
PERMISSION_WORDS = {
    "cases.read": "read cases", "cases.open": "open cases", "cases.attach": "add attachments to cases",
    "tasks.read": "read tasks", "tasks.work": "work on tasks", "tasks.assign": "assign tasks to others",
    "registry.read": "read customer and equipment files", "processes.read": "read process definitions",
    "processes.deploy": "deploy process versions", "processes.edit": "edit process definitions",
    "timers.read": "read the timer queue", "timers.manage": "retry timers or move the clock",
    "users.read": "read users", "users.manage": "manage users and tokens",
}


SYSTEM = Actor("system", frozenset({"system"}))
TIMER = Actor("timer", frozenset({"system"}))


def demo_actor(username: str) -> Actor:
    """The actor used until sign-in exists: one person holding every staff role."""
    return Actor(username, frozenset(STAFF_ROLES) | {"process_owner", "admin"})


# Names only the system's own actions carry in the history; no user and no X-Actor header may take them.
RESERVED_NAMES = frozenset({SYSTEM.username, TIMER.username})
# Where the app keeps the function that turns a bearer token into an actor (installed by the edge, so this
# bottom layer needs no import of the users service).
TOKEN_RESOLVER = "servicecase.token_resolver"
TokenResolver = Callable[[str], Actor]
ACTOR_KEY = "servicecase.actor"  # where request_actor keeps its decision for the rest of the request
# Who a request is after its credentials were refused: holds no role, so nothing it asks is allowed (the
# error page that reports the refusal still renders its layout with it).
NOBODY = Actor("", frozenset())


class AuthenticationError(ServiceError):
    """The request's credentials are missing, malformed, unknown, revoked, or name a reserved actor."""

    status = 401


def require(actor: Actor, permission: str) -> None:
    """Refuse (AuthenticationError for nobody, PermissionDeniedError otherwise) unless ``actor`` holds a role
    that grants ``permission``; the refusal names what is missing."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    if actor.can(permission):
        return
    if not actor.username:
        raise AuthenticationError("sign in first")
    roles = sorted(PERMISSIONS[permission])
    raise PermissionDeniedError(
        f"{actor.username} may not {PERMISSION_WORDS[permission]}: that needs the role "
        f"{roles[0]}" if len(roles) == 1 else
        f"{actor.username} may not {PERMISSION_WORDS[permission]}: that needs one of the roles {', '.join(roles)}",
        errors={"permission": [permission], "roles_needed": roles})


def is_reserved_name(name: str) -> bool:
    """True when ``name`` reads as a reserved name, ignoring case, width, spacing and punctuation."""
    key = "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
    return key in RESERVED_NAMES


def install_token_resolver(app: Flask, resolver: TokenResolver) -> None:
    """Let ``Authorization: Bearer`` requests of ``app`` act as the token's user (``resolver`` raises
    AuthenticationError for a token it refuses)."""
    app.extensions[TOKEN_RESOLVER] = resolver


def _resolve_actor() -> Actor:
    from flask import current_app, request

    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        resolver: TokenResolver | None = current_app.extensions.get(TOKEN_RESOLVER)
        if resolver is None:
            raise AuthenticationError("this server does not accept API tokens")
        return resolver(token.strip())
    name = (request.headers.get("X-Actor") or current_app.config["DEMO_ACTOR"]).strip()[:100]
    if is_reserved_name(name):
        raise AuthenticationError(f"X-Actor cannot be {name!r}: the names {', '.join(sorted(RESERVED_NAMES))} "
                                  "are reserved for the system's own actions")
    return demo_actor(name or "demo")


def request_actor() -> Actor:
    """The acting user of the current request (pages and API alike), decided once per request.

    With ``Authorization: Bearer <token>`` it is the token's user with that user's roles (AuthenticationError
    when the token is malformed, unknown, revoked, or its user disabled). Without it, until sign-in exists,
    a demo user holding every staff role; ``X-Actor`` names which demo user, so histories show different
    people, but never a reserved name."""
    from flask import request

    # Kept with the request itself: flask.g belongs to the app context, which several requests can share.
    actor: Actor | None = request.environ.get(ACTOR_KEY)
    if actor is None:
        try:
            actor = _resolve_actor()
        except AuthenticationError:
            request.environ[ACTOR_KEY] = NOBODY
            raise
        request.environ[ACTOR_KEY] = actor
    return actor
