"""Server-rendered pages: worklist, cases and tasks, in one layout."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, g, has_request_context
from flask_wtf.csrf import generate_csrf

from app.auth import CSRF_TOKEN_CACHE
from app.engine import now
from app.inputs import install_id_converter
from app.web.common import CSRF_FIELD_NAME, csrf, current_actor
from app.web.errors import register_app_errors
from app.web.filters import register_filters

# Templates and the style sheet; the page areas live in their own modules.
assets = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/static/web")


def _page_context() -> dict[str, Any]:
    """What the layout needs on every page: the acting user, the CSRF token, the system time."""
    context: dict[str, Any] = {"csrf_token": generate_csrf, "csrf_field_name": CSRF_FIELD_NAME, "clock_now": now()}
    if has_request_context():
        context["actor"] = current_actor()
    return context


def _forget_cached_csrf_token() -> None:
    """Flask-WTF caches the request's CSRF token in flask.g, which belongs to the app context; where several
    requests share one (tests, a CLI that calls the app) each must derive the token from its own session."""
    g.pop(CSRF_TOKEN_CACHE, None)


# Sent with every response that does not set its own (an attachment download sends a sandbox policy): scripts,
# styles and fonts only from this site — no inline script, no CDN — and no page of the app inside a frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def register_web(app: Flask) -> None:
    """Register the page blueprints, their filters, sign-in, CSRF check and error pages."""
    from app.web.admin import bp as admin_bp
    from app.web.cases import bp as cases_bp
    from app.web.i18n import install_languages
    from app.web.intake import new as _intake_page  # noqa: F401  (adds /cases/new to the cases blueprint)
    from app.web.signin import bp as signin_bp
    from app.web.signin import install_sign_in
    from app.web.tasks import bp as tasks_bp
    from app.web.vendor import bp as vendor_bp
    from app.web.worklist import bp as worklist_bp

    install_id_converter(app.url_map)
    csrf.init_app(app)  # checked by the page blueprints' hook (WTF_CSRF_CHECK_DEFAULT is off)
    app.before_request(_forget_cached_csrf_token)
    install_sign_in(app)
    install_languages(app)
    app.register_blueprint(assets)
    for blueprint in (signin_bp, worklist_bp, cases_bp, tasks_bp, admin_bp, vendor_bp):
        app.register_blueprint(blueprint)
    register_filters(app)
    app.context_processor(_page_context)
    register_app_errors(app)
    app.after_request(_security_headers)
