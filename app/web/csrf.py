"""A per-session CSRF token: every POST of a page must send back the token of its session."""

from __future__ import annotations

import secrets

from flask import request, session
from werkzeug.exceptions import BadRequest

SESSION_KEY = "csrf_token"
FIELD_NAME = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CSRFError(BadRequest):
    """A form came without the session's security token (stale page, other site, lost cookie)."""

    description = ("The form could not be accepted: its security token is missing or out of date. "
                   "Go back, reload the page and submit it again.")


def csrf_token() -> str:
    """The session's token, created on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Refuse an unsafe request whose form token does not match the session's (a 400)."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FIELD_NAME, "")
    if not isinstance(expected, str) or not expected or not secrets.compare_digest(sent, expected):
        raise CSRFError()
