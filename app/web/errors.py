"""Error pages inside the layout; the JSON API under /api keeps its own JSON errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.errors import ServiceError
from app.extensions import db

TITLES = {
    400: lazy_gettext("The request could not be understood"),
    403: lazy_gettext("You may not do this"),
    404: lazy_gettext("Not found"),
    405: lazy_gettext("Not allowed here"),
    409: lazy_gettext("Someone else got there first"),
    413: lazy_gettext("Too much data"),
    422: lazy_gettext("The data could not be accepted"),
    429: lazy_gettext("Too many attempts"),
    503: lazy_gettext("The system is busy"),
}
# Werkzeug's own descriptions of the errors it raises (an unknown address, a wrong method), as a page says them.
WERKZEUG_DESCRIPTIONS = {
    404: lazy_gettext("The requested URL was not found on the server. If you entered the URL manually please "
                      "check your spelling and try again."),
    405: lazy_gettext("The method is not allowed for the requested URL."),
}


def error_page(status: int, message: str, *, headers: dict[str, str] | None = None,
               **context: Any) -> ResponseReturnValue:
    """The error page of ``status`` with ``message``, inside the layout."""
    title = str(TITLES.get(status) or gettext("Something went wrong"))
    body = render_template("errors/error.html", status=status, title=title, message=message, **context)
    return body, status, headers or {}


def handle_service_error(exc: ServiceError) -> ResponseReturnValue:
    """A refused request on a page: roll back, say why."""
    db.session.rollback()
    return error_page(exc.status, exc.message, errors=exc.errors)


def handle_stale(exc: StaleDataError) -> ResponseReturnValue:
    """Someone else stored the case first (optimistic lock)."""
    db.session.rollback()
    return error_page(409, gettext("The case was changed by someone else while you worked. Reload the page and "
                                   "try again."))


def handle_operational(exc: OperationalError) -> ResponseReturnValue:
    """A busy database is a 503 page; anything else stays an error for the log."""
    db.session.rollback()
    current_app.logger.warning("database error: %s", exc)
    if "locked" in str(exc).lower():
        return error_page(503, gettext("The database is busy. Wait a moment and try again."))
    raise exc


def handle_http_error(exc: HTTPException) -> ResponseReturnValue:
    """Werkzeug's errors (404, 405, 400…) as a page."""
    db.session.rollback()
    headers: dict[str, str] = {}
    if exc.code == 405:  # a 405 must still say which methods are allowed
        headers.update((name, value) for name, value in exc.get_headers() if name.lower() == "allow")
    description = exc.description or exc.name
    if exc.code in WERKZEUG_DESCRIPTIONS and description == type(exc).description:  # werkzeug's own words
        description = str(WERKZEUG_DESCRIPTIONS[exc.code])
    return error_page(exc.code or 500, description, headers=headers)


def register_page_errors(blueprint: Blueprint) -> None:
    """HTML error handlers for errors raised inside one page blueprint."""
    blueprint.register_error_handler(ServiceError, handle_service_error)
    blueprint.register_error_handler(StaleDataError, handle_stale)
    blueprint.register_error_handler(OperationalError, handle_operational)
    blueprint.register_error_handler(HTTPException, handle_http_error)


def register_app_errors(app: Flask) -> None:
    """Pages for errors outside any page blueprint (an unknown address), chained to the API's handler.

    The JSON API registers an app-wide HTTPException handler that answers /api paths with JSON and hands
    other paths back unchanged (werkzeug's bare HTML). This handler replaces it and calls it for /api
    paths, so the API keeps its JSON while every other address gets a page inside the layout.
    """
    previous: Callable[..., Any] | None = app.error_handler_spec.get(None, {}).get(None, {}).get(HTTPException)

    def handle(exc: HTTPException) -> ResponseReturnValue:
        if request.path == "/api" or request.path.startswith("/api/"):
            return previous(exc) if previous is not None else exc
        return handle_http_error(exc)

    app.register_error_handler(HTTPException, handle)
