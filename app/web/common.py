"""What every page shares: the acting user, list arguments and pagination."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, request, url_for
from marshmallow import Schema, ValidationError

from app.auth import request_actor
from app.inputs import text_problem
from app.web.csrf import check_csrf
from app.web.errors import register_page_errors


def page_blueprint(name: str, import_name: str, url_prefix: str | None = None) -> Blueprint:
    """A blueprint of pages: every POST checks the CSRF token, errors become pages in the layout."""
    blueprint = Blueprint(name, import_name, url_prefix=url_prefix)
    blueprint.before_request(refuse_unstorable_text)
    blueprint.before_request(check_csrf)
    register_page_errors(blueprint)
    return blueprint


def refuse_unstorable_text() -> None:
    """A NUL or lone surrogate in the address or a form is a 400 page naming the field, before any query."""
    values = [*request.args.items(multi=True), *(request.view_args or {}).items()]
    if request.method == "POST":
        values += request.form.items(multi=True)
    for name, value in values:
        if problem := text_problem(name):
            abort(400, description=f"A field name in the request {problem}.")
        if isinstance(value, str) and (problem := text_problem(value)):
            abort(400, description=f"The value of '{name}' {problem}.")


current_actor = request_actor  # the acting user (app.auth: a demo user until sign-in exists)


def load_query(schema: Schema) -> dict[str, Any]:
    """Query-string arguments checked by ``schema``; malformed ones are a 400 page, never a 500."""
    try:
        return schema.load(request.args)
    except ValidationError as exc:
        problems = "; ".join(f"{key}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                             for key, msgs in _flat(exc.messages).items())
        abort(400, description=f"The address has invalid values ({problems}).")


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
