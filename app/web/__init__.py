"""Server-rendered pages: worklist, cases and tasks, in one layout."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, has_request_context

from app.engine import now
from app.inputs import install_id_converter
from app.web.common import current_actor
from app.web.csrf import FIELD_NAME, csrf_token
from app.web.errors import register_app_errors
from app.web.filters import register_filters

# Templates and the style sheet; the page areas live in their own modules.
assets = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/static/web")


def _page_context() -> dict[str, Any]:
    """What the layout needs on every page: the acting user, the CSRF token, the system time."""
    context: dict[str, Any] = {"csrf_token": csrf_token, "csrf_field_name": FIELD_NAME, "clock_now": now()}
    if has_request_context():
        context["actor"] = current_actor()
    return context


def register_web(app: Flask) -> None:
    """Register the page blueprints, their filters, CSRF check and error pages."""
    from app.web.admin import bp as admin_bp
    from app.web.cases import bp as cases_bp
    from app.web.intake import new as _intake_page  # noqa: F401  (adds /cases/new to the cases blueprint)
    from app.web.tasks import bp as tasks_bp
    from app.web.worklist import bp as worklist_bp

    install_id_converter(app.url_map)
    app.register_blueprint(assets)
    for blueprint in (worklist_bp, cases_bp, tasks_bp, admin_bp):
        app.register_blueprint(blueprint)
    register_filters(app)
    app.context_processor(_page_context)
    register_app_errors(app)
