"""The JSON API under /api, documented at /api/openapi.json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from app.api import common
from app.engine import ProcessDefinitionError
from app.errors import ServiceError


class _Api(Api):
    """flask-smorest's Api without its app-wide error handler: pages keep HTML errors."""

    def _register_error_handlers(self) -> None:
        return None


def register_api(app: Flask) -> None:
    """Create the Api for this app, register the JSON blueprints and the error handlers."""
    from app.api.admin import blp as admin_blp
    from app.api.cases import blp as cases_blp
    from app.api.processes import blp as processes_blp
    from app.api.tasks import blp as tasks_blp

    api = _Api(app, spec_kwargs={"info": {"description": (
        "Cases, tasks and process versions of the after-sales service department. "
        "Errors are JSON: {status, message, errors?}.")}})
    for blp in (cases_blp, tasks_blp, processes_blp, admin_blp):
        api.register_blueprint(blp)
    app.register_error_handler(ServiceError, common.handle_service_error)
    app.register_error_handler(ProcessDefinitionError, common.handle_definition_error)
    app.register_error_handler(StaleDataError, common.handle_stale)
    app.register_error_handler(OperationalError, common.handle_operational)
    app.register_error_handler(HTTPException, common.handle_http_error)
