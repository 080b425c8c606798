"""The JSON API under /api, documented at /api/openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.api import common
from app.auth import install_token_resolver
from app.engine import ProcessDefinitionError
from app.errors import ServiceError
from app.inputs import MAX_ID, IdConverter, install_id_converter
from app.users import service as users


class _Api(Api):
    """flask-smorest's Api without its app-wide error handler (pages keep HTML errors), documenting
    the API's own error shape ``{status, message, errors?}``."""

    ERROR_SCHEMA = common.ErrorSchema

    def _register_error_handlers(self) -> None:
        return None


def _id_parameter(converter: IdConverter) -> dict[str, object]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


def register_api(app: Flask) -> None:
    """Create the Api for this app, register the JSON blueprints and the error handlers."""
    from app.api.admin import blp as admin_blp
    from app.api.cases import blp as cases_blp
    from app.api.processes import blp as processes_blp
    from app.api.readings import blp as readings_blp
    from app.api.registry import blp as registry_blp
    from app.api.stock import blp as stock_blp
    from app.api.tasks import blp as tasks_blp

    install_id_converter(app.url_map)
    # app.auth (the bottom layer) decides who acts but may not import the users service: the edge hands it
    # the token lookup. Every request (pages too) is authenticated before its view; see authenticate_request.
    install_token_resolver(app, lambda token: users.authenticate_token(token=token))
    app.before_request(common.authenticate_request)
    api = _Api(app, spec_kwargs={
        "info": {"description": (
            "Cases, tasks and process versions of the after-sales service department. "
            "Errors are JSON: {status, message, errors?}. Every operation needs `Authorization: Bearer <token>` "
            "and acts as the token's user with that user's roles: no token, or a refused one, is a 401; a role "
            "that does not allow the operation is a 403 naming what is missing. A browser signed in on the "
            "pages may call with its session cookie instead, sending the session's CSRF token in the "
            "X-CSRFToken header with every POST. Only this document (/api/openapi.json) is public.")},
        "security": [{"bearerAuth": []}],
    })
    api.spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "An API token from `flask --app wsgi users token NAME`"})
    api.register_converter(IdConverter, _id_parameter)
    for blp in (cases_blp, tasks_blp, processes_blp, admin_blp, registry_blp, stock_blp, readings_blp):
        api.register_blueprint(blp)
    app.register_error_handler(ServiceError, common.handle_service_error)
    app.register_error_handler(ProcessDefinitionError, common.handle_definition_error)
    app.register_error_handler(StaleDataError, common.handle_stale)
    app.register_error_handler(OperationalError, common.handle_operational)
    app.register_error_handler(HTTPException, common.handle_http_error)
