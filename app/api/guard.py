"""The API's front door: every request's query, path and JSON body are read once, safely, before a view runs.

What is refused here, whatever the endpoint, so no view or database ever sees it:

- a body that is not JSON (415), including an empty HTML form post (a cross-site form sends a form
  content type); a bodiless POST without a Content-Type is fine;
- a body that is not UTF-8, not JSON, or nested deeper than MAX_DEPTH (400);
- text with a lone surrogate (400) or a NUL character (422), in the body, query or path, naming where;
- numbers that no field could take: integers of more than MAX_DIGITS digits, NaN, Infinity and floats
  that overflow (422, naming the field).

The parsed body is handed to webargs through ``ApiParser``, so it is parsed exactly once.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import g, request
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import UnsupportedMediaType

from app.errors import InvalidDataError, ServiceError
from app.inputs import SURROGATE_MESSAGE, iter_text_problems, nest_errors, printable, text_problem

MAX_DEPTH = 32  # no document of the API nests deeper than a handful of levels
MAX_DIGITS = 100  # far beyond every field's range; Python itself refuses int text past 4,300 digits
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NO_BODY = object()


class _HugeNumber:
    """An integer literal too long to convert; reported at its field instead of crashing the parser."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(text: str) -> int | _HugeNumber:
    digits = len(text.lstrip("-"))
    return _HugeNumber(digits) if digits > MAX_DIGITS else int(text)


def _parse_constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity: kept, then refused at their field


def _number_problems(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """Numbers no field can take, by path; also enforces MAX_DEPTH (iteratively, no recursion)."""
    problems: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise ServiceError(f"the request body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, _HugeNumber):
            problems.append((where, f"this number has {item.digits} digits; at most {MAX_DIGITS} are accepted"))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append((where, "must be a finite number (not NaN or Infinity)"))
        elif isinstance(item, dict):
            stack.extend((child, (*where, str(key))) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, (*where, str(index))) for index, child in enumerate(item))
    return problems


def parse_json_body(raw: bytes) -> Any:
    """Decode and parse a JSON body; ServiceError (400/422) naming what is wrong and where."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ServiceError(f"the request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except RecursionError:
        raise ServiceError(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    except json.JSONDecodeError as exc:
        raise ServiceError(f"the request body is not valid JSON ({exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno})") from None
    except ValueError as exc:  # e.g. a float literal Python cannot read
        raise ServiceError(f"the request body is not valid JSON ({exc})") from None
    problems = _number_problems(data) + list(iter_text_problems(data))
    if problems:
        # A lone surrogate is malformed text (400); NULs and numbers are values no field takes (422).
        error = ServiceError if any(SURROGATE_MESSAGE in message for _, message in problems) else InvalidDataError
        raise error("the request body has values that cannot be accepted", errors=nest_errors(problems))
    return data


def check_request() -> None:
    """The before-request check of every API blueprint (see the module docstring)."""
    problems: list[tuple[tuple[str, ...], str]] = [
        ((printable(name),), f"this name {problem}") for name in request.args if (problem := text_problem(name))]
    problems += [((name,), problem) for name, value in request.args.items(multi=True)
                 if (problem := text_problem(value))]
    problems += [((name,), problem) for name, value in (request.view_args or {}).items()
                 if isinstance(value, str) and (problem := text_problem(value))]
    if problems:
        raise InvalidDataError("the request has values that cannot be accepted", errors=nest_errors(problems))
    g.api_json = _NO_BODY
    if request.method not in BODY_METHODS:
        return
    has_type = bool(request.headers.get("Content-Type"))
    if has_type and not core.is_json(request.mimetype):
        raise UnsupportedMediaType(f"send the request body as application/json, not {request.mimetype or '?'}")
    raw = request.get_data(cache=True)
    if not raw:
        return
    if not has_type:
        raise UnsupportedMediaType("the request has a body but no Content-Type; send it as application/json")
    g.api_json = parse_json_body(raw)


class ApiParser(FlaskParser):
    """webargs, reading the body that ``check_request`` already parsed."""

    def _raw_load_json(self, req: Any) -> Any:
        body = g.get("api_json", _NO_BODY)
        return core.missing if body is _NO_BODY else body
