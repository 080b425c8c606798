"""What every JSON endpoint shares: the acting user, errors as JSON, one transaction per request."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.auth import request_actor
from app.engine import ProcessDefinitionError
from app.errors import ServiceError
from app.extensions import db

MAX_PER_PAGE = 100


current_actor = request_actor  # the acting user (app.auth: a demo user until sign-in exists)


def error_body(status: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON shape of every API error."""
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _flatten_locations(errors: dict[str, Any]) -> dict[str, Any]:
    """webargs nests errors by location ({"json": {...}}); the API reports fields directly."""
    flat: dict[str, Any] = {}
    for location, fields in errors.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_service_error(exc: ServiceError) -> ResponseReturnValue:
    """A refused request: roll back everything it did."""
    db.session.rollback()
    return jsonify(error_body(exc.status, exc.message, exc.errors)), exc.status


def handle_definition_error(exc: ProcessDefinitionError) -> ResponseReturnValue:
    """A BPMN file that cannot be deployed."""
    db.session.rollback()
    return jsonify(error_body(422, str(exc), {"definition": exc.to_dict()})), 422


def handle_stale(exc: StaleDataError) -> ResponseReturnValue:
    """Someone else stored the case first (optimistic lock)."""
    db.session.rollback()
    return jsonify(error_body(409, "the case was changed by someone else; reload and try again")), 409


def handle_operational(exc: OperationalError) -> ResponseReturnValue:
    """The database is busy or gone: say so rather than a bare 500."""
    db.session.rollback()
    current_app.logger.warning("database error: %s", exc)
    if "locked" in str(exc).lower():
        return jsonify(error_body(503, "the database is busy; try again")), 503
    raise exc


def handle_http_error(exc: HTTPException) -> ResponseReturnValue:
    """Werkzeug/webargs errors as the API's JSON shape (HTML stays HTML outside /api)."""
    if not request.path.startswith("/api"):
        return exc
    db.session.rollback()
    data = getattr(exc, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    message = data.get("message") or exc.description or exc.name
    if exc.code == 422 and errors:
        message = "the request has invalid fields"
    elif exc.code == 400 and errors and "json" in errors and not isinstance(errors["json"], dict):
        message, errors = "the request body is not valid JSON", None
    elif exc.code == 413:
        message = f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    status = exc.code or 500
    return jsonify(error_body(status, message, _flatten_locations(errors) if errors else None)), status
