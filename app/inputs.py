"""What a request may carry, for pages and API alike: ids that fit the database, text it can store.

One rule in one place: the id range (the ``INTEGER`` columns), ids written only with the digits 0-9
(``int()`` would read Arabic-Indic or full-width digits too), and text without NUL characters (PostgreSQL
cannot store them) or lone surrogates (no encoding can).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from marshmallow import fields, validate
from werkzeug.routing import BaseConverter, Map
from werkzeug.routing import ValidationError as RouteMismatch

MAX_ID = 2**31 - 1  # the largest value of the INTEGER id columns (PostgreSQL refuses more)
ID_MESSAGE = f"must be an id: a whole number from 1 to {MAX_ID}"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
SURROGATE_MESSAGE = "must not contain a lone surrogate (\\ud800-\\udfff); send valid Unicode text"

_ASCII_DIGITS = re.compile(r"[0-9]{1,30}\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL or a lone surrogate), or None when it can."""
    if "\x00" in text:
        return NUL_MESSAGE
    if _SURROGATE.search(text):
        return SURROGATE_MESSAGE
    return None


LIKE_ESCAPE = "\\"  # the escape character of every LIKE/ILIKE pattern made by like_pattern


def like_pattern(text: str) -> str:
    """``%text%`` for a LIKE/ILIKE with ``escape=LIKE_ESCAPE`` that finds ``text`` literally: searched text
    has no wildcards (%, _ and the escape character match themselves)."""
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", LIKE_ESCAPE + "%").replace("_", LIKE_ESCAPE + "_")
    return f"%{escaped}%"


def parse_id(text: str) -> int | None:
    """The id written in ``text`` (ASCII digits, within range), or None."""
    if not _ASCII_DIGITS.match(text):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


class WholeNumber(fields.Integer):
    """An integer that, written as text (a query string, a form), uses only the digits 0-9.

    With ``strict=True`` (JSON bodies) only a JSON integer is accepted; booleans never are.
    """

    default_error_messages = {"invalid": "must be a whole number written with the digits 0-9"}

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and not self.strict and _ASCII_DIGITS.match(value.strip()):
            return int(value.strip())
        raise self.make_error("invalid")


class Id(WholeNumber):
    """A record id: a whole number from 1 to MAX_ID, so it always fits the id columns."""

    default_error_messages = {"invalid": ID_MESSAGE}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_ID, error=ID_MESSAGE))
        super().__init__(**kwargs)


class IdConverter(BaseConverter):
    """The ``<id:name>`` URL part: ASCII digits only, 1 to MAX_ID; anything else is no such address (404)."""

    regex = r"[0-9]+"
    weight = 50  # as specific as werkzeug's int converter
    part_isolating = True

    def to_python(self, value: str) -> int:
        """The id, or a route mismatch (404) when it is out of range."""
        parsed = parse_id(value)
        if parsed is None:
            raise RouteMismatch()
        return parsed

    def to_url(self, value: Any) -> str:
        """Ids are written in plain decimal."""
        return str(int(value))


def install_id_converter(url_map: Map) -> None:
    """Make ``<id:...>`` available in routes (idempotent: pages and API both call it)."""
    url_map.converters.setdefault("id", IdConverter)


def iter_text_problems(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every (path, problem) of strings (values and keys) inside a nested JSON-like value."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                yield where, problem
        elif isinstance(item, Mapping):
            for key, child in item.items():
                name = str(key)
                problem = text_problem(name)
                if problem:
                    yield (*where, printable(name)), f"this name {problem}"
                    continue
                stack.append((child, (*where, name)))
        elif isinstance(item, list | tuple):
            stack.extend((child, (*where, str(index))) for index, child in enumerate(item))


def printable(text: str) -> str:
    """A name safe to echo back in an error (NUL and surrogates escaped)."""
    return text.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def nest_errors(problems: list[tuple[tuple[str, ...], str]]) -> dict[str, Any]:
    """Problems by path as the nested ``{"field": {"sub": ["message"]}}`` shape marshmallow uses."""
    errors: dict[str, Any] = {}
    for path, message in problems:
        node = errors
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a message already stands here; keep the first
                break
            node = child
        else:
            node.setdefault(path[-1] if path else "_schema", []).append(message)
    return errors
