"""Signing in and out: the sign-in page, the session it starts, and the lock-out after failed attempts.

Failed sign-ins are counted (failures only) per account and per address with Flask-Limiter's moving
windows on the app's Redis; once either count is full the page refuses further attempts with a 429 until the
oldest failure leaves the window. A successful sign-in starts a fresh session (app.auth.start_session) and
records ``signed_in``; signing out ends every session of the user (their session generation moves on).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.errors import StorageError
from redis.exceptions import RedisError
from werkzeug.wrappers import Response

from app.auth import NOBODY, end_session, install_session_resolver, start_session
from app.uow import unit_of_work
from app.users import service as users
from app.web.common import current_actor, page_blueprint
from app.web.errors import error_page

bp = page_blueprint("signin", __name__, public=True)

LIMITER_KEY = "servicecase.sign_in_limiter"
NAMESPACE = "sign-in-failures"
MAX_FIELD = 1024  # longer user names or passwords are refused before any lookup or hashing


@dataclass(frozen=True)
class LockOut:
    """Why further sign-ins are refused for now: ``scope`` is "account" or "address"."""

    scope: str
    minutes: int

    @property
    def message(self) -> str:
        """The lock-out in words, as the page shows it."""
        if self.scope == "account":
            return ngettext("Too many failed sign-ins for this account; try again in %(num)s minute.",
                            "Too many failed sign-ins for this account; try again in %(num)s minutes.", self.minutes)
        return ngettext("Too many failed sign-ins from this address; try again in %(num)s minute.",
                        "Too many failed sign-ins from this address; try again in %(num)s minutes.", self.minutes)


def install_sign_in(app: Flask) -> None:
    """Sessions act as their user (app.auth asks the users service), and failed sign-ins are counted in the
    app's Redis (in memory when a development setup has none)."""
    install_session_resolver(app, lambda user_id, generation: users.session_actor(user_id=user_id,
                                                                                 generation=generation))
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "servicecase")
    app.extensions[LIMITER_KEY] = Limiter(get_remote_address, app=app)


def _limits() -> list[tuple[str, RateLimitItem]]:
    config = current_app.config
    return [("account", parse(config["SIGN_IN_ACCOUNT_LIMIT"])), ("address", parse(config["SIGN_IN_ADDRESS_LIMIT"]))]


def _keys(username: str, address: str) -> dict[str, str]:
    return {"account": users.normalize_username(username).casefold()[:users.MAX_USERNAME], "address": address}


def lock_out(username: str, address: str) -> LockOut | None:
    """The lock-out in force for this account or address, if either has used up its failures."""
    strategy = current_app.extensions[LIMITER_KEY].limiter
    keys = _keys(username, address)
    for scope, item in _limits():
        if not strategy.test(item, NAMESPACE, scope, keys[scope]):
            reset_at, _ = strategy.get_window_stats(item, NAMESPACE, scope, keys[scope])
            # Redis keeps the times to a few decimals: a second's slack keeps "15 minutes" from reading 16.
            return LockOut(scope, max(1, math.ceil((reset_at - time.time() - 1) / 60)))
    return None


def count_failure(username: str, address: str) -> None:
    """Count one failed sign-in against the account and the address."""
    strategy = current_app.extensions[LIMITER_KEY].limiter
    keys = _keys(username, address)
    for scope, item in _limits():
        strategy.hit(item, NAMESPACE, scope, keys[scope])


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site, never another site (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("worklist.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return url_for("worklist.index")
    return target


def _address() -> str:
    return request.remote_addr or "unknown"


def _form(status: int = 200, *, message: str = "", username: str = "") -> ResponseReturnValue:
    notice = ""
    if request.args.get("expired"):
        notice = gettext("Your session expired, sign in again.")
    elif request.args.get("signed_out"):
        notice = gettext("You are signed out.")
    body = render_template("signin/sign_in.html", message=message, notice=notice, username=username,
                           next=safe_next(request.values.get("next")))
    return body, status


def _refusal_words(refused: users.SignInRefusedError, username: str) -> str:
    """Why the sign-in was refused, as the page says it in its language (the service's message is English)."""
    if "disabled" in refused.message:
        return gettext("The user %(name)s is disabled; ask an administrator.",
                       name=repr(users.normalize_username(username)))
    return gettext("The user name or the password is wrong.")


def lock_out_unavailable(exc: Exception) -> ResponseReturnValue:
    """Failed sign-ins cannot be counted (Redis is unreachable): refuse rather than allow guessing."""
    current_app.logger.warning("sign-in limiter unavailable: %s", exc)
    return error_page(503, gettext("Signing in is unavailable: the count of failed sign-ins cannot be reached. "
                                   "Try again in a minute, or tell the administrator that Redis is down."))


bp.register_error_handler(RedisError, lock_out_unavailable)
bp.register_error_handler(StorageError, lock_out_unavailable)


@bp.get("/sign-in")
def sign_in() -> ResponseReturnValue:
    """The sign-in form (a signed-in user goes straight on)."""
    if current_actor() != NOBODY:
        return redirect(safe_next(request.args.get("next")))
    return _form()


@bp.post("/sign-in")
def sign_in_submit() -> ResponseReturnValue:
    """Check the user name and password, or refuse: wrong (401), locked out (429)."""
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    if not username or not password:
        missing = gettext("Enter your user name.") if not username else gettext("Enter your password.")
        return _form(422, message=missing, username=username)
    if len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        return _form(422, message=gettext("The user name and the password have at most %(max)s characters.",
                                          max=MAX_FIELD))
    locked = lock_out(username, _address())
    if locked is not None:
        return _form(429, message=locked.message, username=username)
    with unit_of_work():  # the failure's event is committed too: the refusal is caught inside
        try:
            user = users.sign_in(username=username, password=password, address=_address())
            refused = None
        except users.SignInRefusedError as exc:
            refused = exc
    if refused is not None:
        count_failure(username, _address())
        locked = lock_out(username, _address())
        reason = _refusal_words(refused, username)
        if locked is not None:
            return _form(429, message=f"{reason} {locked.message}", username=username)
        return _form(401, message=reason, username=username)
    start_session(user.id, user.session_generation)
    return redirect(safe_next(request.form.get("next")), code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    """End the user's sessions (on every browser) and go to the sign-in page."""
    actor = current_actor()
    if actor != NOBODY:
        with unit_of_work():
            users.sign_out(actor=actor, address=_address())
    end_session()
    return redirect(url_for("signin.sign_in", signed_out=1), code=303)
