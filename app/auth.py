"""Who is acting: the actor every service call takes, and the roles of the department."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
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
    display_name: str = field(default="", compare=False)  # the full name pages show; may be empty
    locale: str | None = field(default=None, compare=False)  # the pages' language the user chose, if any

    def has_role(self, *roles: str) -> bool:
        """True when the actor holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    def can_work_on(self, roles: str | tuple[str, ...] | None) -> bool:
        """Staff may work tasks of one of their own roles; supervisors may step in on any staff task. A task
        without a role is any staff member's."""
        wanted = (roles,) if isinstance(roles, str) else tuple(roles or ())
        if not wanted:
            return self.has_role(*STAFF_ROLES)
        return self.has_role(*wanted, "supervisor")

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
    "attachments.manage": frozenset({"admin"}),  # sweep the attachment folder of files no attachment names
    # make a closing case's documents (the system's own step) and sweep the documents folder
    "documents.make": frozenset({"admin"}),
    "tasks.read": READERS,
    "tasks.work": frozenset(STAFF_ROLES),  # claim, release, complete (a task of one's own role, see can_work_on)
    "tasks.assign": frozenset({"supervisor"}),  # assign or reassign any staff task to someone
    "registry.read": READERS,  # customers and equipment files
    # put a replacement unit in the equipment file (who installs it: the fault process's install step)
    "registry.replace": frozenset({"regional_engineer", "engineer", "supervisor"}),
    "registry.manage": frozenset({"admin"}),  # import customers and equipment (CSV)
    "readings.read": READERS,  # equipment's daily operating data and its anomalies
    # send operating data: a monitoring feed runs under a token of a user holding one of these roles
    "readings.write": frozenset({"engineer", "regional_engineer", "technical_dept", "admin"}),
    "stock.read": READERS,  # warehouses, parts, stock levels, reservations and movements
    "stock.manage": frozenset({"warehouse", "admin"}),  # warehouses, the parts catalogue, deliveries, stocktakes
    "stock.reserve": frozenset({"warehouse", "supervisor"}),  # hold parts for a case's repair
    "stock.use": frozenset({"engineer", "regional_engineer", "warehouse", "supervisor"}),  # settle a repair's parts
    "processes.read": frozenset(ROLES),  # process versions and their diagrams
    "processes.deploy": frozenset({"admin"}),
    "processes.edit": frozenset({"process_owner"}),  # edit definitions in the modeller (a later issue)
    "timers.read": frozenset({"admin", "auditor"}),  # the timer queue, pending and failed timers
    "timers.manage": frozenset({"admin"}),  # retry a failed timer, move the simulated clock
    "users.read": frozenset({"admin", "auditor"}),
    "users.manage": frozenset({"admin"}),  # create, set roles, disable, issue and revoke tokens
    "users.own_locale": frozenset(ROLES),  # choose the language of one's own pages
}
# What each permission lets one do, in the words of a refusal ("… may not <this>").
PERMISSION_WORDS = {
    "cases.read": "read cases", "cases.open": "open cases", "cases.attach": "add attachments to cases",
    "attachments.manage": "sweep the attachment folder",
    "documents.make": "make case documents or sweep the documents folder",
    "tasks.read": "read tasks", "tasks.work": "work on tasks", "tasks.assign": "assign tasks to others",
    "registry.read": "read customer and equipment files",
    "registry.replace": "record replacement equipment", "registry.manage": "import customers and equipment",
    "stock.read": "read the spare-parts stock",
    "readings.read": "read operating data", "readings.write": "send operating data",
    "stock.manage": "manage warehouses, parts and stock", "stock.reserve": "reserve spare parts for cases",
    "stock.use": "book the spare parts a repair used", "processes.read": "read process definitions",
    "processes.deploy": "deploy process versions", "processes.edit": "edit process definitions",
    "timers.read": "read the timer queue", "timers.manage": "retry timers or move the clock",
    "users.read": "read users", "users.manage": "manage users and tokens",
    "users.own_locale": "choose the language of their pages",
}


SYSTEM = Actor("system", frozenset({"system"}))
TIMER = Actor("timer", frozenset({"system"}))


# Names only the system's own actions carry in the history; no user may take them.
RESERVED_NAMES = frozenset({SYSTEM.username, TIMER.username})
# Where the app keeps the functions that turn a bearer token, or a signed-in session's user, into an actor
# (installed by the edge, so this bottom layer needs no import of the users service).
TOKEN_RESOLVER = "servicecase.token_resolver"
SESSION_RESOLVER = "servicecase.session_resolver"
TokenResolver = Callable[[str], Actor]
# (user id, session generation) -> the user's actor now, or None when the user is gone, disabled, or the
# generation moved on (signed out everywhere, roles or password changed).
SessionResolver = Callable[[int, int], "Actor | None"]
ACTOR_KEY = "servicecase.actor"  # where request_actor keeps its decision for the rest of the request
SOURCE_KEY = "servicecase.actor_source"  # how it was decided: "token", "session" or "" (anonymous)
EXPIRED_KEY = "servicecase.session_expired"  # True when the request came with a session that ran out
# Who a request is without credentials (or after they were refused): holds no role, so nothing it asks is
# allowed; pages send it to the sign-in page, the API answers 401.
NOBODY = Actor("", frozenset())
# What the signed session cookie holds: the user's id, their session generation, when it was last used.
SESSION_USER = "uid"
SESSION_GENERATION = "gen"
SESSION_SEEN = "seen"
CSRF_TOKEN_CACHE = "csrf_token"  # where Flask-WTF keeps the current request's CSRF token (flask.g)
SEEN_RESOLUTION = 60  # seconds: the last-use time is rewritten (a new cookie) at most this often


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


def install_session_resolver(app: Flask, resolver: SessionResolver) -> None:
    """Let requests of ``app`` with a signed-in session act as the session's user (see SessionResolver)."""
    app.extensions[SESSION_RESOLVER] = resolver


def wall_time() -> float:
    """Seconds since the epoch by the wall clock: sessions expire in real time, whatever the simulated
    clock of the cases says (tests replace this to move time)."""
    return time.time()


def _clear_session() -> None:
    """Empty the session; a CSRF token already derived from it for this request (Flask-WTF keeps it in g)
    goes too, so the next form carries the new session's token."""
    from flask import g, session

    session.clear()
    g.pop(CSRF_TOKEN_CACHE, None)


def start_session(user_id: int, generation: int) -> None:
    """Make the current request's session that of a signed-in user (a fresh session: nothing from the
    anonymous one, its CSRF token included, survives, so a planted session cannot be taken over)."""
    from flask import session

    _clear_session()
    session[SESSION_USER] = user_id
    session[SESSION_GENERATION] = generation
    session[SESSION_SEEN] = int(wall_time())
    session.permanent = False  # a browser-session cookie; the idle limit is enforced here, not by expiry


def end_session() -> None:
    """Forget the signed-in user of the current request's session."""
    from flask import request

    _clear_session()
    request.environ[ACTOR_KEY] = NOBODY
    request.environ[SOURCE_KEY] = ""


def _token_actor(header: str) -> Actor:
    from flask import current_app

    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
    resolver: TokenResolver | None = current_app.extensions.get(TOKEN_RESOLVER)
    if resolver is None:
        raise AuthenticationError("this server does not accept API tokens")
    return resolver(token.strip())


def _session_actor() -> Actor | None:
    """The session's user, or None (no session, expired after inactivity, or no longer valid)."""
    from flask import current_app, request, session

    user_id, generation, seen = (session.get(SESSION_USER), session.get(SESSION_GENERATION),
                                 session.get(SESSION_SEEN))
    if user_id is None:
        return None
    resolver: SessionResolver | None = current_app.extensions.get(SESSION_RESOLVER)
    moment = int(wall_time())
    idle_limit = 60 * int(current_app.config["SESSION_IDLE_MINUTES"])
    if (not isinstance(user_id, int) or not isinstance(generation, int) or not isinstance(seen, int)
            or resolver is None):
        _clear_session()
        return None
    if moment - seen > idle_limit:
        _clear_session()
        request.environ[EXPIRED_KEY] = True
        return None
    actor = resolver(user_id, generation)
    if actor is None:  # disabled, removed, signed out elsewhere
        _clear_session()
        request.environ[EXPIRED_KEY] = True
        return None
    if moment - seen >= SEEN_RESOLUTION or moment < seen:
        session[SESSION_SEEN] = moment
    return actor


def _resolve_actor() -> tuple[Actor, str]:
    from flask import request

    header = request.headers.get("Authorization")
    if header is not None:
        return _token_actor(header), "token"
    actor = _session_actor()
    return (actor, "session") if actor is not None else (NOBODY, "")


def request_actor() -> Actor:
    """The acting user of the current request (pages and API alike), decided once per request.

    With ``Authorization: Bearer <token>`` it is the token's user with that user's roles (AuthenticationError
    when the token is malformed, unknown, revoked, or its user disabled). Otherwise the signed-in session's
    user with the roles they hold now (a disabled user, or one whose session generation moved on, is signed
    out). Otherwise NOBODY: the hooks of pages and API turn that into the sign-in page or a 401. No header
    can name the actor (an ``X-Actor`` header, once the demo mode's, is ignored)."""
    from flask import request

    # Kept with the request itself: flask.g belongs to the app context, which several requests can share.
    actor: Actor | None = request.environ.get(ACTOR_KEY)
    if actor is None:
        try:
            actor, source = _resolve_actor()
        except AuthenticationError:
            request.environ[ACTOR_KEY] = NOBODY
            request.environ[SOURCE_KEY] = ""
            raise
        request.environ[ACTOR_KEY] = actor
        request.environ[SOURCE_KEY] = source
    return actor


def actor_source() -> str:
    """How the current request's actor was decided: "token", "session", or "" (anonymous)."""
    from flask import request

    request_actor()
    return str(request.environ.get(SOURCE_KEY, ""))


def session_expired() -> bool:
    """True when the current request came with a signed-in session that is no longer valid (idle too long,
    or its user disabled or changed)."""
    from flask import request

    request_actor()
    return bool(request.environ.get(EXPIRED_KEY))
