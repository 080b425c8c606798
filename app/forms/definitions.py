"""Record forms in the Camunda Forms JSON format, parsed once into a model that drives validation and HTML.

Decisions the format leaves open, fixed here so the browser and the API never disagree:

- ``number``: ``decimalDigits: 0`` makes an integer field (the value is a JSON integer); any other
  ``decimalDigits: n`` allows at most n decimal places and the value is a JSON float; no
  ``decimalDigits`` (form-js: unrestricted) allows any decimals. ``increment`` must divide
  ``value - min`` (or ``value`` without a min). Magnitudes above 10**15 are refused.
- ``datetime``: subtype ``datetime`` values are ISO-8601 with an explicit offset and are stored in UTC
  (``2025-03-01T14:30:00+00:00``); a value without an offset is refused by ``validate`` (the browser
  path adds ``+00:00`` because the page labels the field UTC). ``date`` is ``YYYY-MM-DD``; ``time`` is
  a wall-clock ``HH:MM`` without a zone (``timeSerializingFormat`` is accepted and ignored).
- ``dynamiclist``: ``path`` is required; rows are objects; the row count is limited by the custom
  properties ``minItems`` (default 0) and ``maxItems`` (default 100, at most 1000). A dynamic list
  cannot contain another dynamic list.
- ``group``: with a ``path`` the fields form a nested object; without one (or ``""``) they are
  flattened into the parent.
- ``checkbox`` with ``validate.required`` must be ticked (as the HTML ``required`` attribute means).
- Text is trimmed, line endings become ``\\n`` and an empty text counts as missing; a textfield holds
  one line of at most 500 characters and a textarea at most 10,000 unless ``maxLength`` says otherwise.
  ``pattern`` must match the whole value, as the HTML ``pattern`` attribute does.
- Keys and paths are plain names (letter first, then letters, digits, ``_``): dotted keys are refused.
  The form ``id`` must equal the file name; an optional top-level ``title`` (our addition to the
  format) names the form on pages, otherwise the id is humanised.
- A ``pattern`` is also emitted as the HTML ``pattern`` attribute; write it so it compiles both in
  Python and as a browser v-flag RegExp (escape punctuation inside classes), or the browser skips it
  and only the server checks it.
- ``validate`` returns every top-level key: a missing optional value is ``None`` (``False`` for a
  checkbox, ``[]`` for a checklist or dynamic list), so BPMN expressions can always read it.
- A ``text`` component may show a variable the task sees, ``{{ name }}`` (form-js templating; plain names
  only, anything else is refused); the page fills it in from the task's data, escaped.
- Properties that would change behaviour but are not implemented (``conditional``, ``valuesKey``,
  ``valuesExpression``, ``readonly``, ``disabled``, ``serializeToString``, ``disallowPassedDates``, FEEL
  expressions) are refused rather than silently ignored; purely visual ones are accepted.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing

FORM_FILE_SUFFIX = ".form.json"

INPUT_TYPES = frozenset(
    {"textfield", "textarea", "number", "select", "radio", "checkbox", "checklist", "datetime"}
)
CONTAINER_TYPES = frozenset({"group", "dynamiclist"})
STATIC_TYPES = frozenset({"text", "separator", "spacer"})
# form-js templating in a text component: ``{{ name }}`` shows a process variable the task sees. Only plain
# names: the templating language's expressions (FEEL) are not evaluated here.
PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
SUPPORTED_TYPES = INPUT_TYPES | CONTAINER_TYPES | STATIC_TYPES

TEXTFIELD_MAX_LENGTH = 500
TEXTAREA_MAX_LENGTH = 10_000
# A declared maxLength above this is a mistake in the form file, not a wish to store novels.
TEXT_LENGTH_CEILING = 100_000
DYNAMIC_LIST_MAX_ITEMS = 100
DYNAMIC_LIST_ITEMS_CEILING = 1_000
NUMBER_LIMIT = Decimal(10) ** 15
MAX_DECIMAL_DIGITS = 10

REQUIRED_MESSAGE = "This field is required."
UNKNOWN_FIELD_MESSAGE = "This field is not part of the form."

# re.ASCII everywhere: \d must not accept other scripts' digits that int() or HTML would read differently.
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FORM_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
# An HTML number input may submit exponent notation ("1e3"), so the server accepts it too.
_NUMBER_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?\Z", re.ASCII)
_INTEGER_RE = re.compile(r"[+-]?\d{1,30}\Z", re.ASCII)
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_TIME_RE = re.compile(r"\d{2}:\d{2}(:\d{2})?\Z", re.ASCII)
_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?\Z", re.ASCII
)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: no encoding can store it alone
_NAIVE_BROWSER_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?\Z", re.ASCII)

# Deliberately simple: the point is to catch typos, not to implement RFC 5322. The same regexes are
# emitted as HTML pattern attributes, so they are written to compile both in Python and in a browser's
# v-flag RegExp (which wants punctuation inside classes escaped).
VALIDATION_TYPE_PATTERNS = {
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "phone": r"\+?[0-9][0-9 \(\)\.\/\-]{3,30}",
}
_VALIDATION_TYPE_MESSAGES = {
    "email": "Enter a valid e-mail address.",
    "phone": "Enter a valid telephone number.",
}

_COMMON_PROPERTIES = frozenset({"type", "id", "label", "layout", "properties"})
# Texts a form may also carry in another language of the pages, beside the plain (English) one: "label@zh".
TRANSLATABLE_PROPERTIES = frozenset({"label", "description", "text", "dateLabel", "timeLabel", "title"})
_INPUT_PROPERTIES = frozenset(
    {"key", "description", "validate", "defaultValue", "readonly", "disabled", "conditional"}
)
_TYPE_PROPERTIES: dict[str, frozenset[str]] = {
    "textfield": _INPUT_PROPERTIES | {"appearance"},
    "textarea": _INPUT_PROPERTIES,
    "number": _INPUT_PROPERTIES | {"appearance", "decimalDigits", "increment", "serializeToString"},
    "select": _INPUT_PROPERTIES | {"values", "valuesKey", "valuesExpression", "searchable"},
    "radio": _INPUT_PROPERTIES | {"values", "valuesKey", "valuesExpression"},
    "checklist": _INPUT_PROPERTIES | {"values", "valuesKey", "valuesExpression"},
    "checkbox": _INPUT_PROPERTIES,
    "datetime": _INPUT_PROPERTIES
    | {
        "subtype", "dateLabel", "timeLabel", "use24h", "timeSerializingFormat", "timeInterval",
        "disallowPassedDates",
    },
    "group": frozenset({"path", "components", "showOutline", "verticalAlignment", "conditional"}),
    "dynamiclist": frozenset(
        {
            "path", "components", "showOutline", "verticalAlignment", "conditional", "isRepeating",
            "defaultRepetitions", "allowAddRemove", "disableCollapse", "nonCollapsedItems",
        }
    ),
    "text": frozenset({"text", "conditional"}),
    "separator": frozenset(),
    "spacer": frozenset({"height"}),
}
_VALIDATE_KEYS: dict[str, frozenset[str]] = {
    "textfield": frozenset({"required", "minLength", "maxLength", "pattern", "validationType"}),
    "textarea": frozenset({"required", "minLength", "maxLength"}),
    "number": frozenset({"required", "min", "max"}),
}
_REFUSED_WHEN_SET = {
    "conditional": "conditional visibility ('Hide if') is not supported",
    "valuesKey": "options must be listed in 'values'; options from a variable are not supported",
    "valuesExpression": "options must be listed in 'values'; options from an expression are not supported",
    "readonly": "read-only fields are not supported",
    "disabled": "disabled fields are not supported",
    "serializeToString": "serializeToString is not supported; numbers are stored as JSON numbers",
    "disallowPassedDates": "disallowPassedDates is not supported",
}


class FormDefinitionError(Exception):
    """A form file is unreadable or uses something this system does not support."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class UnknownFormError(KeyError):
    """No form with that key is loaded."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)

    def __str__(self) -> str:
        return f"no record form named {self.key!r}"


class FormValidationError(Exception):
    """Submitted data does not satisfy the form; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors: dict[str, Any] = errors
        super().__init__(f"the form has errors: {json.dumps(errors, sort_keys=True)}")


@dataclass(frozen=True)
class Option:
    """One choice of a select, radio or checklist."""

    value: str
    label: str
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)  # with any "label@zh"


@dataclass(frozen=True)
class Component:
    """One parsed form component; which attributes matter depends on ``type``."""

    type: str
    location: str
    key: str | None = None
    path: str | None = None
    label: str = ""
    description: str = ""
    required: bool = False
    default: Any = None
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    decimal_digits: int | None = None
    increment: Decimal | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    validation_type: str | None = None
    options: tuple[Option, ...] = ()
    subtype: str | None = None
    text: str = ""
    min_items: int = 0
    max_items: int = DYNAMIC_LIST_MAX_ITEMS
    not_in_future: bool = False  # datetime/date: properties.notInFuture, a time that has happened (on site...)
    children: tuple[Component, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_input(self) -> bool:
        """True for components that hold one value under ``key``."""
        return self.type in INPUT_TYPES

    @property
    def name(self) -> str | None:
        """The data name: the key of an input, the path of a pathed group or dynamic list."""
        return self.key if self.is_input else (self.path or None)

    @property
    def is_integer(self) -> bool:
        """True for number fields that only take whole numbers."""
        return self.type == "number" and self.decimal_digits == 0

    @property
    def effective_pattern(self) -> str | None:
        """The regex a textfield must match in full (explicit pattern wins over validationType)."""
        if self.pattern:
            return self.pattern
        return VALIDATION_TYPE_PATTERNS.get(self.validation_type or "")

    @property
    def display_label(self) -> str:
        """The label to show; falls back to the datetime labels, then to the data name."""
        if self.label:
            return self.label
        if self.type == "datetime":
            prop = "timeLabel" if self.subtype == "time" else "dateLabel"
            fallback = self.source.get(prop)
            if isinstance(fallback, str) and fallback:
                return fallback
        return (self.name or "").replace("_", " ").capitalize()

    def empty_value(self) -> Any:
        """The value stored when an optional field is left empty."""
        if self.type == "checkbox":
            return False
        if self.type in ("checklist", "dynamiclist"):
            return []
        return None


class _Problem(Exception):
    """One definition problem at a component; collected, then reported together."""


@dataclass
class _ParseContext:
    """What the parser needs to name a problem and to collect all of them."""

    filename: str
    problems: list[str] = field(default_factory=list)

    def report(self, location: str, raw: Any, message: str) -> None:
        """Record a problem at a component, naming it by index path and key or path."""
        where = location
        if isinstance(raw, Mapping):
            if isinstance(raw.get("key"), str):
                where += f" (key {raw['key']!r})"
            elif isinstance(raw.get("path"), str) and raw.get("path"):
                where += f" (path {raw['path']!r})"
        self.problems.append(f"{self.filename}: {where}: {message}")


# --------------------------------------------------------------------------------------------------
# Parsing the definition
# --------------------------------------------------------------------------------------------------


def _translation_problem(raw: Mapping[str, Any], prop: str, allowed: frozenset[str]) -> str | None:
    """What is wrong with a ``"label@zh"``-style property, or None when it is a text in a language the pages
    speak beside an allowed translatable property."""
    from app.i18n import LOCALES

    base, _, locale = prop.partition("@")
    if base not in TRANSLATABLE_PROPERTIES or base not in allowed:
        which = ", ".join(sorted(TRANSLATABLE_PROPERTIES & allowed)) or "no property here"
        return f"unknown property {prop!r}: only {which} may carry a translation"
    if locale == LOCALES[0]:
        return f"{prop!r}: the plain {base!r} is the {locale} text already; write it there"
    if locale not in LOCALES[1:]:
        return (f"{prop!r} names the language {locale!r}, which the pages do not speak; a translation may be in "
                f"{', '.join(LOCALES[1:])} (the plain {base!r} is the {LOCALES[0]} text)")
    value = raw.get(prop)
    if not isinstance(value, str) or not value.strip():
        return f"'{prop}' must be non-empty text"
    if value.startswith("="):
        return f"'{prop}' is a FEEL expression; expressions are not supported"
    return None


def _plain_text(raw: Mapping[str, Any], prop: str) -> str:
    """Read an optional text property; FEEL expressions cannot be evaluated here."""
    value = raw.get(prop)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Problem(f"'{prop}' must be text")
    if value.startswith("="):
        raise _Problem(f"'{prop}' is a FEEL expression; expressions are not supported")
    return value


def _decimal(value: Any, what: str) -> Decimal:
    """Read a number written as a JSON number or numeric string (the format allows both)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Problem(f"{what} must be a number")
    text = value.strip() if isinstance(value, str) else repr(value)
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise _Problem(f"{what} must be a number") from None
    if not result.is_finite():
        raise _Problem(f"{what} must be a finite number")
    return result


def _count(value: Any, what: str, *, ceiling: int) -> int:
    """Read a non-negative integer written as a JSON integer or digit string."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Problem(f"{what} must be a whole number of at least 0")
    if value > ceiling:
        raise _Problem(f"{what} {value} is above the ceiling of {ceiling}")
    return value


def _parse_options(raw: Mapping[str, Any]) -> tuple[Option, ...]:
    """Read the static options of a select, radio or checklist."""
    values = raw.get("values")
    if not isinstance(values, list) or not values:
        raise _Problem("needs a non-empty 'values' list of options")
    options: list[Option] = []
    seen: set[str] = set()
    for index, item in enumerate(values):
        if not isinstance(item, Mapping) or not isinstance(item.get("value"), str) or not item["value"]:
            raise _Problem(f"values[{index}] must be an object with a non-empty text 'value'")
        label = item.get("label", item["value"])
        if not isinstance(label, str):
            raise _Problem(f"values[{index}].label must be text")
        if item["value"] in seen:
            raise _Problem(f"values[{index}]: the value {item['value']!r} appears twice")
        for prop in item:
            if "@" in prop and (problem := _translation_problem(item, prop, frozenset({"label"}))) is not None:
                raise _Problem(f"values[{index}]: {problem}")
        seen.add(item["value"])
        options.append(Option(value=item["value"], label=label or item["value"], source=item))
    return tuple(options)


def _parse_validate(raw: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """Read the 'validate' object, refusing rules that do not apply to this type."""
    rules = raw.get("validate")
    if rules is None:
        return {}
    if not isinstance(rules, Mapping):
        raise _Problem("'validate' must be an object")
    allowed = _VALIDATE_KEYS.get(type_, frozenset({"required"}))
    # The modeller leaves emptied rules behind as "" or null; they mean "no rule".
    present = {name: value for name, value in rules.items() if value not in (None, "")}
    for name in present:
        if name not in allowed:
            raise _Problem(f"validate.{name} does not apply to a {type_}")
    if "required" in present and not isinstance(present["required"], bool):
        raise _Problem("validate.required must be true or false")
    return present


def _is_set(value: Any) -> bool:
    """Whether a property is switched on; the modeller leaves switched-off ones as false, "" or {}."""
    if isinstance(value, Mapping):
        return any(_is_set(item) for item in value.values())
    return bool(value)


def _parse_component(raw: Any, location: str, ctx: _ParseContext, *, in_list: bool) -> Component:
    """Parse one component (recursing into containers); raise _Problem for its own faults."""
    if not isinstance(raw, Mapping):
        raise _Problem("must be an object")
    type_ = raw.get("type")
    if not isinstance(type_, str) or not type_:
        raise _Problem("has no 'type'")
    if type_ not in SUPPORTED_TYPES:
        raise _Problem(f"unknown type {type_!r} (supported: {', '.join(sorted(SUPPORTED_TYPES))})")
    allowed = _COMMON_PROPERTIES | _TYPE_PROPERTIES[type_]
    for prop in raw:
        if prop not in allowed:
            if "@" in prop and (problem := _translation_problem(raw, prop, allowed)) is not None:
                raise _Problem(problem)
            if "@" not in prop:
                raise _Problem(f"unknown property {prop!r} for a {type_}")
    for prop, reason in _REFUSED_WHEN_SET.items():
        if prop in allowed and _is_set(raw.get(prop)):
            raise _Problem(reason)
    label = _plain_text(raw, "label")
    custom = raw.get("properties") or {}
    if not isinstance(custom, Mapping):
        raise _Problem("'properties' must be an object")

    if type_ in STATIC_TYPES:
        text = _plain_text(raw, "text")
        for placeholder in PLACEHOLDER.findall(text):
            if not _PLACEHOLDER_NAME.fullmatch(placeholder):
                raise _Problem(f"the text's placeholder {{{{ {placeholder[:40]} }}}} must be a plain variable name "
                               "(letter first, then letters, digits, _); expressions are not supported")
        return Component(type=type_, location=location, label=label, text=text, source=raw)

    if type_ in CONTAINER_TYPES:
        return _parse_container(raw, type_, location, label, custom, ctx, in_list=in_list)

    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise _Problem(f"a {type_} needs a 'key'")
    if not _NAME_RE.match(key):
        raise _Problem(
            f"key {key!r} must start with a letter and contain only letters, digits and '_' "
            "(dotted keys are not supported; use a group with a path)"
        )
    rules = _parse_validate(raw, type_)
    attrs: dict[str, Any] = {
        "type": type_, "location": location, "key": key, "label": label,
        "description": _plain_text(raw, "description"), "required": rules.get("required", False),
        "source": raw,
    }
    if type_ in ("textfield", "textarea"):
        attrs.update(_parse_text_rules(rules, type_))
    elif type_ == "number":
        attrs.update(_parse_number_rules(raw, rules))
    elif type_ in ("select", "radio", "checklist"):
        attrs["options"] = _parse_options(raw)
    elif type_ == "datetime":
        subtype = raw.get("subtype", "date")
        if subtype not in ("date", "time", "datetime"):
            raise _Problem(f"subtype {subtype!r} must be one of date, time, datetime")
        for prop in ("dateLabel", "timeLabel"):
            _plain_text(raw, prop)
        attrs["subtype"] = subtype
        flag = custom.get("notInFuture", "false")
        if flag not in ("true", "false", True, False):
            raise _Problem("properties.notInFuture must be \"true\" or \"false\"")
        if flag in ("true", True) and subtype == "time":
            raise _Problem("properties.notInFuture needs a date or a date and time, not a time alone")
        attrs["not_in_future"] = flag in ("true", True)
    component = Component(**attrs)
    if raw.get("defaultValue") not in (None, ""):
        try:
            # Checked as if optional: a required checkbox may well start unticked.
            default = _make_field(replace(component, required=False)).deserialize(raw["defaultValue"])
        except ValidationError as exc:
            reason = " ".join(_flatten_messages(exc.messages))
            raise _Problem(f"defaultValue is not valid: {reason}") from None
        component = Component(**{**attrs, "default": default})
    return component


def _parse_text_rules(rules: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """Read length and pattern rules of a textfield or textarea."""
    out: dict[str, Any] = {}
    if "minLength" in rules:
        out["min_length"] = _count(rules["minLength"], "validate.minLength", ceiling=TEXT_LENGTH_CEILING)
    default_max = TEXTFIELD_MAX_LENGTH if type_ == "textfield" else TEXTAREA_MAX_LENGTH
    out["max_length"] = (
        _count(rules["maxLength"], "validate.maxLength", ceiling=TEXT_LENGTH_CEILING)
        if "maxLength" in rules
        else default_max
    )
    if out.get("min_length", 0) > out["max_length"]:
        raise _Problem("validate.minLength is greater than validate.maxLength")
    if "pattern" in rules:
        if not isinstance(rules["pattern"], str):
            raise _Problem("validate.pattern must be text")
        try:
            re.compile(rules["pattern"])
        except re.error as exc:
            raise _Problem(f"validate.pattern is not a valid regular expression ({exc})") from None
        out["pattern"] = rules["pattern"]
    if "validationType" in rules:
        kind = rules["validationType"]
        if kind not in ("email", "phone", "custom"):
            raise _Problem(f"validate.validationType {kind!r} must be email, phone or custom")
        if kind != "custom":
            out["validation_type"] = kind
    return out


def _parse_number_rules(raw: Mapping[str, Any], rules: Mapping[str, Any]) -> dict[str, Any]:
    """Read min, max, decimalDigits and increment of a number field."""
    out: dict[str, Any] = {}
    if "min" in rules:
        out["min_value"] = _decimal(rules["min"], "validate.min")
    if "max" in rules:
        out["max_value"] = _decimal(rules["max"], "validate.max")
    if "min_value" in out and "max_value" in out and out["min_value"] > out["max_value"]:
        raise _Problem("validate.min is greater than validate.max")
    if raw.get("decimalDigits") is not None:
        out["decimal_digits"] = _count(raw["decimalDigits"], "decimalDigits", ceiling=MAX_DECIMAL_DIGITS)
    if raw.get("increment") not in (None, ""):
        increment = _decimal(raw["increment"], "increment")
        if increment <= 0:
            raise _Problem("increment must be greater than 0")
        out["increment"] = increment
    return out


def _parse_container(
    raw: Mapping[str, Any],
    type_: str,
    location: str,
    label: str,
    custom: Mapping[str, Any],
    ctx: _ParseContext,
    *,
    in_list: bool,
) -> Component:
    """Parse a group or dynamic list and its children."""
    path = raw.get("path") or ""
    if not isinstance(path, str):
        raise _Problem("'path' must be text")
    if path and not _NAME_RE.match(path):
        raise _Problem(
            f"path {path!r} must start with a letter and contain only letters, digits and '_' "
            "(dotted paths are not supported; nest groups instead)"
        )
    attrs: dict[str, Any] = {"type": type_, "location": location, "label": label, "path": path or None}
    if type_ == "dynamiclist":
        if not path:
            raise _Problem("a dynamiclist needs a 'path' naming the list")
        if in_list:
            raise _Problem("a dynamiclist inside another dynamiclist is not supported")
        for prop, attr in (("minItems", "min_items"), ("maxItems", "max_items")):
            if custom.get(prop) not in (None, ""):
                attrs[attr] = _count(custom[prop], f"properties.{prop}", ceiling=DYNAMIC_LIST_ITEMS_CEILING)
        if attrs.get("max_items", DYNAMIC_LIST_MAX_ITEMS) < 1:
            raise _Problem("properties.maxItems must be at least 1")
        if attrs.get("min_items", 0) > attrs.get("max_items", DYNAMIC_LIST_MAX_ITEMS):
            raise _Problem("properties.minItems is greater than properties.maxItems")
    children_raw = raw.get("components", [])
    if not isinstance(children_raw, list):
        raise _Problem("'components' must be a list")
    children = _parse_components(
        children_raw, f"{location}.components", ctx, in_list=in_list or type_ == "dynamiclist"
    )
    if type_ == "dynamiclist" and not any(_data_names(children)):
        raise _Problem("a dynamiclist needs at least one input field")
    return Component(**attrs, children=tuple(children), source=raw)


def _parse_components(raws: list[Any], prefix: str, ctx: _ParseContext, *, in_list: bool) -> list[Component]:
    """Parse a list of components, recording every problem and carrying on."""
    components: list[Component] = []
    for index, raw in enumerate(raws):
        location = f"{prefix}[{index}]"
        try:
            components.append(_parse_component(raw, location, ctx, in_list=in_list))
        except _Problem as problem:
            ctx.report(location, raw, str(problem))
    _check_unique_names(components, ctx)
    return components


def _data_names(components: Sequence[Component]) -> Iterator[tuple[str, Component]]:
    """Yield (name, component) for each value one data object holds (flattening unpathed groups)."""
    for component in components:
        if component.type == "group" and not component.path:
            yield from _data_names(component.children)
        elif component.name:
            yield component.name, component


def _check_unique_names(components: list[Component], ctx: _ParseContext) -> None:
    """Two components writing the same name in one object would overwrite each other."""
    seen: dict[str, Component] = {}
    for name, component in _data_names(components):
        if name in seen:
            ctx.report(
                component.location, component.source,
                f"the name {name!r} is already used by {seen[name].location}",
            )
        else:
            seen[name] = component


# --------------------------------------------------------------------------------------------------
# Validation: one marshmallow field per component
# --------------------------------------------------------------------------------------------------


def _flatten_messages(messages: Any) -> list[str]:
    """All message strings of a (possibly nested) marshmallow error structure."""
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in _flatten_messages(value)]
    if isinstance(messages, list | tuple):
        return [m for value in messages for m in _flatten_messages(value)]
    return [str(messages)]


def _stringify_keys(messages: Any) -> Any:
    """Make marshmallow's int row indexes JSON object keys."""
    if isinstance(messages, Mapping):
        return {str(key): _stringify_keys(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [_stringify_keys(value) for value in messages]
    return messages


def _plain_decimal(value: Decimal) -> str:
    """A decimal written without exponent or trailing zeros, for messages and HTML attributes."""
    text = format(value.normalize(), "f")
    return text


class _FormField(fields.Field):
    """Base for form fields: blank means missing, and missing optional values become the empty value."""

    required_message = REQUIRED_MESSAGE

    def __init__(self, component: Component, **kwargs: Any) -> None:
        self.component = component
        empty = component.empty_value()
        super().__init__(
            data_key=component.name,
            attribute=component.name,
            required=component.required,
            load_default=missing if component.required else (list if isinstance(empty, list) else empty),
            allow_none=True,
            error_messages={"required": self.required_message, "null": self.required_message},
            **kwargs,
        )

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """Treat null and blank text as missing, so required and defaults apply the same way."""
        if value is None or (isinstance(value, str) and not value.strip()):
            value = missing
        return super().deserialize(value, attr, data, **kwargs)


class _TextField(_FormField):
    """textfield and textarea."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        c = self.component
        if not isinstance(value, str):
            raise ValidationError("Enter text.")
        # Browsers submit CRLF but count a line break as one character for maxlength.
        text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if "\x00" in text:
            raise ValidationError("Remove the NUL character; it cannot be stored.")
        if _SURROGATE_RE.search(text):
            raise ValidationError("Remove the invalid character (a lone surrogate); it cannot be stored.")
        if c.type == "textfield" and "\n" in text:
            raise ValidationError("Enter a single line of text.")
        if c.min_length is not None and len(text) < c.min_length:
            raise ValidationError(f"Enter at least {c.min_length} characters.")
        if c.max_length is not None and len(text) > c.max_length:
            raise ValidationError(f"Enter at most {c.max_length} characters (this has {len(text)}).")
        pattern = c.effective_pattern
        if pattern and not re.fullmatch(pattern, text):
            if c.validation_type and not c.pattern:
                raise ValidationError(_VALIDATION_TYPE_MESSAGES[c.validation_type])
            raise ValidationError("This does not match the expected format.")
        return text


class _NumberField(_FormField):
    """number: an int when decimalDigits is 0, a float otherwise."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | float:
        c = self.component
        number = self._to_decimal(value)
        if abs(number) > NUMBER_LIMIT:
            raise ValidationError("This number is too large.")
        places = max(0, -int(number.normalize().as_tuple().exponent))
        if c.decimal_digits == 0 and places:
            raise ValidationError("Enter a whole number.")
        if c.decimal_digits and places > c.decimal_digits:
            raise ValidationError(f"Use at most {c.decimal_digits} decimal places.")
        if c.min_value is not None and number < c.min_value:
            raise ValidationError(f"Enter a number of at least {_plain_decimal(c.min_value)}.")
        if c.max_value is not None and number > c.max_value:
            raise ValidationError(f"Enter a number of at most {_plain_decimal(c.max_value)}.")
        if c.increment is not None and not self._on_step(number, c.min_value or Decimal(0), c.increment):
            raise ValidationError(f"Enter a number in steps of {_plain_decimal(c.increment)}.")
        return int(number) if c.is_integer else float(number)

    @staticmethod
    def _on_step(number: Decimal, base: Decimal, increment: Decimal) -> bool:
        """Whether number is base plus a whole multiple of increment."""
        try:
            return (number - base) % increment == 0
        except InvalidOperation:
            # The quotient has more digits than the decimal context holds: far off any sane step.
            return False

    @staticmethod
    def _to_decimal(value: Any) -> Decimal:
        """Accept JSON numbers and plain decimal strings; refuse booleans, NaN and exponents."""
        message = "Enter a number."
        if isinstance(value, bool):
            raise ValidationError(message)
        if isinstance(value, int):
            if abs(value) > NUMBER_LIMIT:
                raise ValidationError("This number is too large.")
            return Decimal(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(message)
            return Decimal(repr(value))
        if isinstance(value, str):
            text = value.strip()
            if len(text) > 40 or not _NUMBER_RE.match(text):
                raise ValidationError(message)
            return Decimal(text)
        raise ValidationError(message)


class _ChoiceField(_FormField):
    """select and radio: one of the listed option values."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or value not in {o.value for o in self.component.options}:
            raise ValidationError("Choose one of the listed options.")
        return value


class _ChecklistField(_FormField):
    """checklist: a list of option values, stored in the order the form lists them."""

    required_message = "Choose at least one option."

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise ValidationError("Choose from the listed options.")
        allowed = [o.value for o in self.component.options]
        chosen = set()
        for item in value:
            if not isinstance(item, str) or item not in allowed:
                raise ValidationError("Choose only from the listed options.")
            chosen.add(item)
        if not chosen and self.component.required:
            raise ValidationError(self.required_message)
        return [option for option in allowed if option in chosen]


class _CheckboxField(_FormField):
    """checkbox: a boolean; a required checkbox must be ticked."""

    required_message = "Tick this box to continue."

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        if self.component.required and not value:
            raise ValidationError(self.required_message)
        return value


class _DateTimeField(_FormField):
    """datetime: date as YYYY-MM-DD, time as HH:MM, datetime as ISO-8601 in UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        subtype = self.component.subtype
        if subtype == "date":
            return self._date(value)
        if subtype == "time":
            return self._time(value)
        return self._datetime(value)

    @staticmethod
    def _date(value: Any) -> str:
        message = "Enter a date as YYYY-MM-DD."
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        if not isinstance(value, str) or not _DATE_RE.match(value.strip()):
            raise ValidationError(message)
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValidationError(message) from None

    @staticmethod
    def _time(value: Any) -> str:
        message = "Enter a time as HH:MM."
        if isinstance(value, time):
            return value.replace(tzinfo=None).isoformat(timespec="minutes")
        if not isinstance(value, str) or not _TIME_RE.match(value.strip()):
            raise ValidationError(message)
        try:
            return time.fromisoformat(value.strip()).isoformat(timespec="minutes")
        except ValueError:
            raise ValidationError(message) from None

    @staticmethod
    def _datetime(value: Any) -> str:
        message = "Enter a date and time, for example 2025-03-01T14:30:00+00:00."
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str) and _DATETIME_RE.match(value.strip()):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValidationError(message) from None
        else:
            raise ValidationError(message)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValidationError("Include a timezone offset, for example +00:00 for UTC.")
        try:
            return moment.astimezone(UTC).isoformat(timespec="seconds")
        except OverflowError:
            raise ValidationError(message) from None


class _FormSchema(Schema):
    """Base of every generated form schema: unknown fields are errors, in plain English."""

    class Meta:
        unknown = RAISE

    error_messages = {
        "unknown": UNKNOWN_FIELD_MESSAGE,
        "type": "Expected an object with the form's fields.",
    }


class _GroupField(fields.Nested):
    """A group with a path: a nested object whose own fields are validated even when it is absent."""

    def __init__(self, component: Component, schema: type[Schema]) -> None:
        self.component = component
        super().__init__(
            schema,
            data_key=component.path,
            attribute=component.path,
            error_messages={"type": "Expected an object with the group's fields."},
        )

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """An absent group is an empty one, so its required fields are reported."""
        return super().deserialize({} if value is None or value is missing else value, attr, data, **kwargs)


class _ListField(fields.List):
    """A dynamic list: a list of row objects with a row count between minItems and maxItems."""

    def __init__(self, component: Component, row_schema: type[Schema]) -> None:
        self.component = component
        super().__init__(
            fields.Nested(row_schema, error_messages={"type": "Each row must be an object."}),
            data_key=component.path,
            attribute=component.path,
            error_messages={"invalid": "Expected a list of rows."},
        )

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        """An absent list is an empty one, so minItems is still enforced."""
        if value is None or value is missing:
            value = []
        c = self.component
        # Check the count before the rows: a huge list is refused without validating each row.
        if isinstance(value, list | tuple) and len(value) > c.max_items:
            raise ValidationError(f"Enter at most {c.max_items} rows.")
        rows = super().deserialize(value, attr, data, **kwargs)
        if len(rows) < c.min_items:
            raise ValidationError(f"Enter at least {c.min_items} row{'s' if c.min_items != 1 else ''}.")
        return rows


_FIELD_CLASSES: dict[str, type[_FormField]] = {
    "textfield": _TextField,
    "textarea": _TextField,
    "number": _NumberField,
    "select": _ChoiceField,
    "radio": _ChoiceField,
    "checklist": _ChecklistField,
    "checkbox": _CheckboxField,
    "datetime": _DateTimeField,
}


def _make_field(component: Component) -> fields.Field:
    """The marshmallow field for one input component."""
    return _FIELD_CLASSES[component.type](component)


def _collect_fields(components: Sequence[Component], into: dict[str, fields.Field]) -> None:
    """Add the fields of one data object; attribute names are synthetic so keys never clash with Schema."""
    for component in components:
        if component.type in STATIC_TYPES:
            continue
        if component.type == "group" and not component.path:
            _collect_fields(component.children, into)
        elif component.type == "group":
            into[f"field_{len(into)}"] = _GroupField(component, _schema_class(component.children))
        elif component.type == "dynamiclist":
            into[f"field_{len(into)}"] = _ListField(component, _schema_class(component.children))
        else:
            into[f"field_{len(into)}"] = _make_field(component)


def _schema_class(components: Sequence[Component]) -> type[Schema]:
    """Build the marshmallow schema class of one data object."""
    collected: dict[str, fields.Field] = {}
    _collect_fields(components, collected)
    return _FormSchema.from_dict(collected, name="FormSchema")


# --------------------------------------------------------------------------------------------------
# Browser input
# --------------------------------------------------------------------------------------------------


def _parse_html_number(text: str) -> int | float | str:
    """Parse a browser number, leaving anything unparsable for validate to report."""
    if _INTEGER_RE.match(text):
        return int(text)
    if _NUMBER_RE.match(text) and len(text) <= 40:
        number = float(text)
        return number if math.isfinite(number) else text
    return text


def _html_value(component: Component, formdata: Any, name: str) -> Any:
    """The typed value of one input from a browser POST."""
    if component.type == "checkbox":
        return name in formdata
    if component.type == "checklist":
        return [item for item in formdata.getlist(name) if item.strip()]
    raw = formdata.get(name)
    if raw is None or not raw.strip():
        return None
    if component.type == "number":
        return _parse_html_number(raw.strip())
    if component.type == "datetime" and component.subtype == "datetime":
        text = raw.strip()
        # datetime-local has no zone; the page labels the field UTC, so say so explicitly.
        return text + "+00:00" if _NAIVE_BROWSER_DATETIME_RE.match(text) else text
    return raw


def _future_values(components: Sequence[Component], values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Errors for the notInFuture fields whose values are later than ``now`` (rows of lists included)."""
    problems: dict[str, Any] = {}
    for component in components:
        name = component.name
        if component.type == "dynamiclist" and name and isinstance(values.get(name), list):
            rows = {str(n): found for n, row in enumerate(values[name])
                    if isinstance(row, Mapping) and (found := _future_values(component.children, row, now))}
            if rows:
                problems[name] = rows
        elif component.type == "group":
            inner = values.get(name) if name else values
            if isinstance(inner, Mapping) and (found := _future_values(component.children, inner, now)):
                problems.update({name: found} if name else found)
        elif component.not_in_future and name and isinstance(values.get(name), str):
            value = values[name]
            if component.subtype == "date":
                late = date.fromisoformat(value) > now.astimezone(UTC).date()
            else:
                late = datetime.fromisoformat(value) > now
            if late:
                problems[name] = [f"Cannot be in the future: it is now {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC."]
    return problems


def _row_indexes(formdata: Any, prefix: str) -> list[int]:
    """The row numbers submitted under a dynamic list prefix such as ``parts-``."""
    indexes: set[int] = set()
    for name in formdata.keys():
        if name.startswith(prefix):
            head = name[len(prefix):].split("-", 1)[0]
            if head.isascii() and head.isdigit() and len(head) <= 6:
                indexes.add(int(head))
    return sorted(indexes)


def _row_is_blank(formdata: Any, prefix: str) -> bool:
    """A row whose every submitted value is empty was left unused (or cleared to delete it)."""
    for name in formdata.keys():
        if name.startswith(prefix) and any(value.strip() for value in formdata.getlist(name)):
            return False
    return True


def _from_html(components: Sequence[Component], formdata: Any, prefix: str) -> dict[str, Any]:
    """Build the data object of one level of the form from browser field names."""
    out: dict[str, Any] = {}
    for component in components:
        name = component.name
        if component.type == "group" and not name:
            out.update(_from_html(component.children, formdata, prefix))
        elif name is None:
            continue  # static text, separators, spacers
        elif component.type == "group":
            out[name] = _from_html(component.children, formdata, f"{prefix}{name}-")
        elif component.type == "dynamiclist":
            list_prefix = f"{prefix}{name}-"
            rows = []
            for index in _row_indexes(formdata, list_prefix):
                row_prefix = f"{list_prefix}{index}-"
                if not _row_is_blank(formdata, row_prefix):
                    rows.append(_from_html(component.children, formdata, row_prefix))
            out[name] = rows
        else:
            out[name] = _html_value(component, formdata, f"{prefix}{name}")
    return out


def _defaults(components: Sequence[Component]) -> dict[str, Any]:
    """The initial data object: defaults where declared, empty values elsewhere."""
    out: dict[str, Any] = {}
    for component in components:
        name = component.name
        if component.type == "group" and not name:
            out.update(_defaults(component.children))
        elif name is None:
            continue
        elif component.type == "group":
            out[name] = _defaults(component.children)
        elif component.type == "dynamiclist":
            out[name] = []
        elif component.default is not None:
            out[name] = copy.deepcopy(component.default)
        else:
            out[name] = component.empty_value()
    return out


# --------------------------------------------------------------------------------------------------
# Public classes
# --------------------------------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: a property written twice is a mistake, not a silent override."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the property {key!r} appears twice in one object")
        out[key] = value
    return out


class FormDefinition:
    """One record form: its Camunda Forms JSON, parsed components and the schema that validates data."""

    def __init__(
        self, *, key: str, title: str, source: Mapping[str, Any], components: Sequence[Component]
    ) -> None:
        self.key = key
        self.title = title
        self.source: dict[str, Any] = copy.deepcopy(dict(source))
        self.components: list[Component] = list(components)
        # Built once: validating a submission must not rebuild classes per request.
        self.schema: Schema = _schema_class(self.components)()

    def __repr__(self) -> str:
        return f"<FormDefinition {self.key!r}>"

    @property
    def templated(self) -> bool:
        """Whether a text component shows process variables (``{{ name }}``): the page then needs the task's data."""
        def walk(components: Sequence[Component]) -> bool:
            return any((c.type == "text" and PLACEHOLDER.search(c.text)) or walk(c.children) for c in components)

        return walk(self.components)

    @classmethod
    def from_json(cls, source: Any, *, filename: str = "<form>") -> FormDefinition:
        """Parse a Camunda Forms JSON object; raise FormDefinitionError naming every problem."""
        ctx = _ParseContext(filename=filename)
        if not isinstance(source, Mapping):
            raise FormDefinitionError(f"{filename}: the file must hold a JSON object")
        # Parse a private copy, so a caller changing its dict later cannot change the parsed form.
        source = copy.deepcopy(dict(source))
        if source.get("type") != "default":
            ctx.problems.append(f"{filename}: 'type' must be \"default\" (a Camunda form)")
        form_id = source.get("id")
        if not isinstance(form_id, str) or not _FORM_ID_RE.match(form_id):
            ctx.problems.append(f"{filename}: 'id' must be a name such as \"fault_diagnosis\"")
            form_id = ""
        title = source.get("title")
        if title is not None and (not isinstance(title, str) or not title.strip()):
            ctx.problems.append(f"{filename}: 'title' must be non-empty text")
        for prop in source:
            if isinstance(prop, str) and "@" in prop:
                if prop.partition("@")[0] != "title":
                    ctx.problems.append(f"{filename}: unknown property {prop!r}: only 'title' may carry a "
                                        "translation at the top of a form")
                elif (problem := _translation_problem(source, prop, frozenset({"title"}))) is not None:
                    ctx.problems.append(f"{filename}: {problem}")
        raw_components = source.get("components")
        components: list[Component] = []
        if not isinstance(raw_components, list):
            ctx.problems.append(f"{filename}: 'components' must be a list")
        else:
            components = _parse_components(raw_components, "components", ctx, in_list=False)
        if ctx.problems:
            raise FormDefinitionError(ctx.problems)
        return cls(
            key=form_id,
            title=title.strip() if isinstance(title, str) else form_id.replace("_", " ").capitalize(),
            source=source,
            components=components,
        )

    @classmethod
    def from_file(cls, path: Path, *, display_name: str | None = None) -> FormDefinition:
        """Read and parse one ``*.form.json`` file."""
        name = display_name or str(path)
        try:
            source = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_reject_duplicate_keys)
        except OSError as exc:
            raise FormDefinitionError(f"{name}: cannot be read ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise FormDefinitionError(f"{name}: is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise FormDefinitionError(
                f"{name}: is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except ValueError as exc:
            raise FormDefinitionError(f"{name}: {exc}") from None
        return cls.from_json(source, filename=name)

    def validate(self, data: Any, *, now: datetime | None = None) -> dict[str, Any]:
        """Return the cleaned, JSON-serialisable payload or raise FormValidationError. With ``now`` (the
        system's clock), fields marked notInFuture must not be later than it."""
        if not isinstance(data, Mapping):
            raise FormValidationError({"_schema": ["Expected an object with the form's fields."]})
        try:
            cleaned = self.schema.load(data)
        except ValidationError as exc:
            raise FormValidationError(_stringify_keys(exc.messages)) from None
        if now is not None:
            problems = _future_values(self.components, cleaned, now)
            if problems:
                raise FormValidationError(problems)
        return cleaned

    def from_html(self, formdata: Any) -> dict[str, Any]:
        """Turn a browser POST (a MultiDict of strings) into the typed dict ``validate`` expects."""
        # Names the form does not define (CSRF token, buttons) are ignored here on purpose; the JSON
        # API passes its payload to validate directly, where unknown fields are errors.
        return _from_html(self.components, formdata, "")

    def defaults(self) -> dict[str, Any]:
        """The values a new, untouched form starts with."""
        return _defaults(self.components)

    def prefilled(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The values a new form starts with when its task's data already holds some of its fields (as
        form-js fills a form from the task's variables): the defaults, overlaid with the data's values of the
        same names, where they have the field's shape (a list of rows for a dynamic list, a plain value
        otherwise)."""
        values = self.defaults()
        for name, component in _data_names(self.components):
            if name not in data:
                continue
            value = data[name]
            if component.type == "dynamiclist":
                if isinstance(value, list) and all(isinstance(row, dict) for row in value):
                    values[name] = copy.deepcopy(value)
            elif component.type == "group":
                if isinstance(value, dict):
                    values[name] = copy.deepcopy(value)
            elif value is None or isinstance(value, str | int | float | bool):
                values[name] = value
        return values

    def to_json(self) -> dict[str, Any]:
        """The definition as written in the form file (a copy)."""
        return copy.deepcopy(self.source)

    def field_keys(self) -> set[str]:
        """The top-level keys of a validated payload (the variables the process receives)."""
        return {name for name, _ in _data_names(self.components)}

    def iter_components(self) -> Iterator[Component]:
        """Every component, depth first, containers before their children."""

        def walk(components: list[Component] | tuple[Component, ...]) -> Iterator[Component]:
            for component in components:
                yield component
                yield from walk(component.children)

        return walk(self.components)


class FormRegistry:
    """All record forms of a directory, by key."""

    def __init__(self, forms: Mapping[str, FormDefinition] | None = None) -> None:
        self._forms: dict[str, FormDefinition] = dict(forms or {})

    @classmethod
    def load(cls, directory: Path) -> FormRegistry:
        """Parse every ``*.form.json`` in ``directory``; one FormDefinitionError lists all problems."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FormDefinitionError(f"{directory}: the forms directory does not exist")
        forms: dict[str, FormDefinition] = {}
        sources: dict[str, str] = {}
        problems: list[str] = []
        for path in sorted(directory.glob(f"*{FORM_FILE_SUFFIX}")):
            name = f"{directory.name}/{path.name}"
            try:
                form = FormDefinition.from_file(path, display_name=name)
            except FormDefinitionError as exc:
                problems.extend(exc.problems)
                continue
            stem = path.name[: -len(FORM_FILE_SUFFIX)]
            if form.key != stem:
                problems.append(f"{name}: the form id {form.key!r} must equal the file name {stem!r}")
            elif form.key in forms:
                problems.append(f"{name}: the form id {form.key!r} is already defined in {sources[form.key]}")
            else:
                forms[form.key] = form
                sources[form.key] = name
        if problems:
            raise FormDefinitionError(problems)
        return cls(forms)

    def get(self, key: str) -> FormDefinition:
        """The form with that key, or UnknownFormError."""
        try:
            return self._forms[key]
        except KeyError:
            raise UnknownFormError(key) from None

    def keys(self) -> list[str]:
        """The loaded form keys, sorted."""
        return sorted(self._forms)

    def __contains__(self, key: object) -> bool:
        return key in self._forms

    def __len__(self) -> int:
        return len(self._forms)

    def __iter__(self) -> Iterator[FormDefinition]:
        return iter(self._forms[key] for key in self.keys())

