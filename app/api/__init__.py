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
from app.inputs import MAX_ID, IdConverter, install_id_converter


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
    from app.api.tasks import blp as tasks_blp

    install_id_converter(app.url_map)
    api = _Api(app, spec_kwargs={"info": {"description": (
        "Cases, tasks and process versions of the after-sales service department. "
        "Errors are JSON: {status, message, errors?}.")}})
    api.register_converter(IdConverter, _id_parameter)
    for blp in (cases_blp, tasks_blp, processes_blp, admin_blp):
        api.register_blueprint(blp)
    app.register_error_handler(ServiceError, common.handle_service_error)
    app.register_error_handler(ProcessDefinitionError, common.handle_definition_error)
    app.register_error_handler(StaleDataError, common.handle_stale)
    app.register_error_handler(OperationalError, common.handle_operational)
    app.register_error_handler(HTTPException, common.handle_http_error)
