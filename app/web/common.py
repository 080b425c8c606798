"""What every page shares: the acting user (signed in, or sent to the sign-in page), the CSRF check, list
arguments and pagination."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from marshmallow import Schema, ValidationError
from werkzeug.wrappers import Response

from app.auth import NOBODY, request_actor, session_expired
from app.inputs import text_problem
from app.web.errors import error_page, register_page_errors

csrf = CSRFProtect()  # Flask-WTF: the token lives in the signed session, the form sends it as csrf_token
CSRF_FIELD_NAME = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_MESSAGE = lazy_gettext("The form could not be accepted: its security token is missing or out of date. "
                            "Go back, reload the page and submit it again.")


def page_blueprint(name: str, import_name: str, url_prefix: str | None = None, *,
                   public: bool = False) -> Blueprint:
    """A blueprint of pages: anonymous visitors are sent to the sign-in page (unless ``public``), every POST
    checks the CSRF token, errors become pages in the layout."""
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix)
    blueprint.before_request(refuse_unstorable_text)
    if not public:
        blueprint.before_request(require_signed_in)
    blueprint.before_request(check_csrf)
    register_page_errors(blueprint)
    blueprint.register_error_handler(CSRFError, handle_csrf_error)
    return blueprint


def check_csrf() -> None:
    """Refuse an unsafe request whose form does not send back its session's CSRF token (a 400 page)."""
    if request.method in UNSAFE_METHODS:
        csrf.protect()


def handle_csrf_error(exc: CSRFError) -> ResponseReturnValue:
    """A form without the session's token (stale page, another site, lost cookie): say what to do."""
    return error_page(400, str(CSRF_MESSAGE))


def require_signed_in() -> Response | None:
    """Before every page but the sign-in page: send an anonymous visitor to sign in, then back here."""
    if request_actor() != NOBODY:
        return None
    query = request.query_string.decode("utf-8", "replace")
    target = request.path + (f"?{query}" if query else "")
    args: dict[str, Any] = {"next": target} if target != "/" else {}
    if session_expired():
        args["expired"] = "1"
    return redirect(url_for("signin.sign_in", **args))


def refuse_unstorable_text() -> None:
    """A NUL or lone surrogate in the address or a form is a 400 page naming the field, before any query."""
    values = [*request.args.items(multi=True), *(request.view_args or {}).items()]
    if request.method == "POST":
        values += request.form.items(multi=True)
    for name, value in values:
        if problem := text_problem(name):
            abort(400, description=gettext("A field name in the request %(problem)s.", problem=problem))
        if isinstance(value, str) and (problem := text_problem(value)):
            abort(400, description=gettext("The value of '%(name)s' %(problem)s.", name=name, problem=problem))


current_actor = request_actor  # the acting user (app.auth: a token's or the signed-in session's user)


def load_query(schema: Schema) -> dict[str, Any]:
    """Query-string arguments checked by ``schema``; malformed ones are a 400 page, never a 500."""
    try:
        return schema.load(request.args)
    except ValidationError as exc:
        problems = "; ".join(f"{key}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                             for key, msgs in _flat(exc.messages).items())
        abort(400, description=gettext("The address has invalid values (%(problems)s).", problems=problems))


def _flat(messages: Any) -> Mapping[str, Any]:
    return messages if isinstance(messages, Mapping) else {"query": messages}


@dataclass(frozen=True)
class Pagination:
    """One page of a list, and the links to its neighbours (filters kept)."""

    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least one)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def first_index(self) -> int:
        """The 1-based position of the first item shown (0 when there is none)."""
        return (self.page - 1) * self.per_page + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        """The 1-based position of the last item shown."""
        return (self.page - 1) * self.per_page + len(self.items)

    def url(self, page: int) -> str:
        """The current page's address with every filter kept and ``page`` replaced."""
        # Names starting with "_" steer url_for itself (_external, _scheme…): never taken from a visitor.
        args: dict[str, Any] = {key: value for key, value in request.args.items()
                                if key != "page" and not key.startswith("_")}
        args.update(request.view_args or {})
        args["page"] = page
        return url_for(request.endpoint or "worklist.index", **args)
