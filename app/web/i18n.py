"""Which language a page speaks, and the switcher that changes it (``POST /language``).

In order: the signed-in user's own choice (``users.locale``); else the ``servicecase_locale`` cookie (the
sign-in page, before anyone signs in); else the best match of the browser's Accept-Language among the
languages we have; else ``SERVICECASE_DEFAULT_LOCALE``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Flask, abort, current_app, g, has_request_context, redirect, request
from flask_babel import gettext
from werkzeug.wrappers import Response

from app.auth import NOBODY, AuthenticationError, request_actor
from app.extensions import babel
from app.i18n import HTML_LANG, LOCALE_NAMES, LOCALES, TRANSLATIONS_DIR, current_locale
from app.uow import unit_of_work
from app.users import service as users
from app.web.common import page_blueprint
from app.web.signin import safe_next

bp = page_blueprint("language", __name__, public=True)

COOKIE = "servicecase_locale"
COOKIE_MAX_AGE = 365 * 24 * 3600  # a year: the sign-in page of this browser keeps speaking the chosen language


def select_locale() -> str:
    """The language of this request's pages (see the module's docstring for the order)."""
    default = str(current_app.config.get("DEFAULT_LOCALE") or LOCALES[0])
    if not has_request_context():
        return default
    try:
        actor = request_actor()
    except AuthenticationError:  # a refused token: the API answers 401 in English anyway
        actor = NOBODY
    if actor.locale in LOCALES:
        return str(actor.locale)
    cookie = request.cookies.get(COOKIE)
    if cookie in LOCALES:
        return str(cookie)
    return request.accept_languages.best_match(LOCALES) or default


def _language_context() -> dict[str, Any]:
    """What the layout needs: the page's language, its <html lang>, and the switcher's choices."""
    locale = current_locale()
    return {"locale": locale, "html_lang": HTML_LANG[locale], "html_langs": HTML_LANG, "locale_names": LOCALE_NAMES,
            "locales": LOCALES, "language_cookie": COOKIE}


@bp.post("/language")
def choose() -> Response:
    """Switch the pages' language: stored for a signed-in user (and in a cookie for the sign-in page), only in
    the cookie for an anonymous visitor; then back to the page the switcher was on (a path of this site)."""
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        abort(400, description=gettext("The field 'locale' must be one of: %(choices)s.",
                                       choices=", ".join(LOCALES)))
    actor = request_actor()
    if actor != NOBODY:
        with unit_of_work():
            users.set_locale(actor=actor, locale=locale)
    response = redirect(safe_next(request.form.get("next")), code=303)
    response.set_cookie(COOKIE, locale, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
    return response


def _fresh_language_state() -> None:
    """Flask-Babel keeps the request's language in flask.g, which belongs to the app context: where several
    requests share one (tests, a CLI that calls the app) each must choose its own. It also ignores an empty g
    (no translation at all), so the state is put there before anything is translated."""
    g._flask_babel = SimpleNamespace()


def install_languages(app: Flask) -> None:
    """Flask-Babel with this module's choice of language; the layout's language context; the switcher."""
    babel.init_app(app, locale_selector=select_locale, default_translation_directories=str(TRANSLATIONS_DIR),
                   default_timezone="UTC")
    app.before_request(_fresh_language_state)
    app.context_processor(_language_context)
    app.register_blueprint(bp)
