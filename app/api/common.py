"""What every JSON endpoint shares: the acting user, errors as JSON, one transaction per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue
from flask_smorest import Blueprint
from flask_wtf.csrf import validate_csrf
from marshmallow import Schema, fields
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException
from wtforms import ValidationError

from app.api.guard import ApiParser, check_request
from app.auth import NOBODY, AuthenticationError, actor_source, request_actor
from app.engine import ProcessDefinitionError
from app.errors import ServiceError
from app.extensions import db
from app.inputs import MAX_ID
from app.uow import unit_of_work

MAX_PER_PAGE = 100


current_actor = request_actor  # the acting user (app.auth: a token's or the signed-in session's user)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRFToken"

# RFC 6750: a 401 names the scheme to use; error="invalid_token" when a bearer token was sent and refused.
WWW_AUTHENTICATE = 'Bearer realm="servicecase"'
WWW_AUTHENTICATE_HEADER = {"WWW-Authenticate": {
    "description": "Bearer: send Authorization: Bearer <token> (tokens come from `flask --app wsgi users token NAME`)",
    "schema": {"type": "string"}}}

# What each error status means wherever it occurs; views add their own wording for 403/404/409/422.
ERROR_DESCRIPTIONS = {
    401: ("No credentials, or they were refused: send 'Authorization: Bearer <token>'; a token that is unknown or "
          "revoked or whose user is disabled is refused"),
    400: "The request could not be read: not UTF-8, not JSON, nested too deeply, or malformed text",
    403: "The acting user may not do this",
    404: "No such resource",
    409: "The resource changed under the request",
    413: "The request body is too large",
    415: "The request body is not application/json",
    422: "Invalid fields, or text that cannot be stored (NUL) in the query, path or body; per field in errors",
    503: "The database is busy; try again",
}


class ErrorSchema(Schema):
    """The one JSON shape of every API error."""

    status = fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    message = fields.String(required=True, metadata={"description": "What went wrong, in words"})
    errors = fields.Dict(metadata={"description": "Problems per field (nested like the request); optional"})


class ApiBlueprint(Blueprint):
    """A blueprint of the JSON API: its requests pass the guard, its errors are documented in one shape."""

    ARGUMENTS_PARSER = ApiParser()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_request(require_credentials)
        self.before_request(check_request)

    def errors(self, *statuses: int, **described: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Document error responses: 401, 422 and 503 (any request can meet them), ``statuses`` with the
        common wording, ``described`` (``e404="..."``) with the view's own."""
        texts = {status: ERROR_DESCRIPTIONS[status] for status in (401, 422, 503, *statuses)}
        texts.update({int(name.removeprefix("e")): text for name, text in described.items()})

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            for status, text in sorted(texts.items(), reverse=True):
                headers = WWW_AUTHENTICATE_HEADER if status == 401 else None
                func = self.alt_response(status, schema=ErrorSchema, description=text, headers=headers)(func)
            return func

        return decorate


def error_body(status: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one JSON shape of every API error."""
    body: dict[str, Any] = {"status": status, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _flatten_locations(errors: dict[str, Any]) -> dict[str, Any]:
    """webargs nests errors by location ({"json": {...}}); the API reports fields directly."""
    flat: dict[str, Any] = {}
    for location, found in errors.items():
        if isinstance(found, dict):
            flat.update(found)
        else:
            flat[location] = found
    return flat


def authenticate_request() -> None:
    """Before any view (pages too): decide who acts (app.auth.request_actor), so refused credentials are a 401
    whatever the view, and commit the token's last-use time now, while the session holds nothing else.
    Anonymous requests pass here; the hooks of the API (require_credentials) and of the pages refuse them."""
    if "Authorization" in request.headers:
        with unit_of_work():  # the token's last-use time, committed before the view's own unit of work
            request_actor()
    else:
        request_actor()


def require_credentials() -> None:
    """Before every API view: an anonymous request is a 401 (only the OpenAPI document, served by its own
    blueprint, is public). A browser calling with its signed-in session (no token) must send the session's
    CSRF token in the X-CSRFToken header with every unsafe method, as the pages' forms do."""
    if request_actor() == NOBODY:
        raise AuthenticationError("this request needs credentials: send 'Authorization: Bearer <token>' (an "
                                  "administrator issues tokens: `flask --app wsgi users token NAME`)")
    if request.method in UNSAFE_METHODS and actor_source() == "session":
        try:
            validate_csrf(request.headers.get(CSRF_HEADER))
        except ValidationError as exc:
            raise ServiceError(f"a request made with a signed-in session must send the session's CSRF token in "
                               f"the {CSRF_HEADER} header: {exc}") from None


def handle_service_error(exc: ServiceError) -> ResponseReturnValue:
    """A refused request: roll back everything it did."""
    db.session.rollback()
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError):
        sent_token = request.headers.get("Authorization", "").strip().lower().startswith("bearer ")
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE + (', error="invalid_token"' if sent_token else "")
    return jsonify(error_body(exc.status, exc.message, exc.errors)), exc.status, headers


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
    elif exc.code == 404 and request.url_rule is None:
        message = f"there is nothing at {request.path}"
        if any(part.isdigit() for part in request.path.split("/")):
            message += f" (ids are whole numbers from 1 to {MAX_ID})"
    elif exc.code == 413:
        message = f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    status = exc.code or 500
    return jsonify(error_body(status, message, _flatten_locations(errors) if errors else None)), status
