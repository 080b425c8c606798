"""HTML for record forms: editable fields for a task page and a read-only view for the case history.

Field names follow the data: ``key`` at the top, ``path-key`` inside a pathed group and
``path-<row>-key`` inside a dynamic list, which is what ``FormDefinition.from_html`` reads back.
Keys cannot contain ``-``, so these names never collide.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask_babel import gettext, lazy_gettext, ngettext
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from app.i18n import LOCALES, current_locale

from .definitions import PLACEHOLDER, STATIC_TYPES, Component, FormDefinition, Option

TEMPLATE = "forms/_form_fields.html"
# Enough blank rows for a browser without JavaScript to record a typical parts list in one go.
NOSCRIPT_EXTRA_ROWS = 3


@functools.cache
def _environment() -> Environment:
    """The Jinja environment of this package (built on first use, not at import)."""
    env = Environment(
        loader=PackageLoader("app.forms", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.i18n"],
    )
    # The page's language (Flask-Babel's, looked up at each call): the form's own words come from its
    # "label@zh" texts, the words of this package's template from the catalogue.
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["option_label"] = option_label
    return env


def translated(source: Mapping[str, Any], prop: str) -> str | None:
    """The form definition's text of ``prop`` in the page's language (``"label@zh"``), if it has one; None for
    the plain (English) language or a text without a translation."""
    locale = current_locale()
    if locale == LOCALES[0]:
        return None
    value = source.get(f"{prop}@{locale}")
    return value if isinstance(value, str) and value.strip() else None


def component_text(component: Component, prop: str) -> str:
    """A component's label, description or text in the page's language, falling back to the plain one."""
    return translated(component.source, prop) or str(getattr(component, prop, "") or "")


def component_label(component: Component) -> str:
    """The label to show in the page's language; falls back like Component.display_label."""
    label = translated(component.source, "label")
    if label:
        return label
    if not component.label and component.type == "datetime":
        prop = "timeLabel" if component.subtype == "time" else "dateLabel"
        if fallback := translated(component.source, prop):
            return fallback
    return component.display_label


def option_label(option: Option) -> str:
    """An option's label in the page's language (its ``"label@zh"``), falling back to the plain one."""
    return translated(option.source, "label") or option.label


def localized_title(form: FormDefinition) -> str:
    """The form's title in the page's language (``"title@zh"`` at the top of the file), else its title."""
    return translated(form.source, "title") or form.title


# The validation messages of app.forms.definitions (in English: the API answers with them) as a page shows them
# in its language. One table: the English pattern, and the translated sentence with the same placeholders.
_MESSAGE_TEXTS: tuple[tuple[str, Any], ...] = (
    ("This field is required.", lazy_gettext("This field is required.")),
    ("This field is not part of the form.", lazy_gettext("This field is not part of the form.")),
    ("Enter text.", lazy_gettext("Enter text.")),
    ("Remove the NUL character; it cannot be stored.", lazy_gettext("Remove the NUL character; it cannot be stored.")),
    ("Remove the invalid character (a lone surrogate); it cannot be stored.",
     lazy_gettext("Remove the invalid character (a lone surrogate); it cannot be stored.")),
    ("Enter a single line of text.", lazy_gettext("Enter a single line of text.")),
    ("Enter at least {n} characters.", lazy_gettext("Enter at least %(n)s characters.")),
    ("Enter at most {n} characters (this has {m}).", lazy_gettext("Enter at most %(n)s characters (this has %(m)s).")),
    ("Enter a valid e-mail address.", lazy_gettext("Enter a valid e-mail address.")),
    ("Enter a valid telephone number.", lazy_gettext("Enter a valid telephone number.")),
    ("This does not match the expected format.", lazy_gettext("This does not match the expected format.")),
    ("This number is too large.", lazy_gettext("This number is too large.")),
    ("Enter a whole number.", lazy_gettext("Enter a whole number.")),
    ("Use at most {n} decimal places.", lazy_gettext("Use at most %(n)s decimal places.")),
    ("Enter a number of at least {n}.", lazy_gettext("Enter a number of at least %(n)s.")),
    ("Enter a number of at most {n}.", lazy_gettext("Enter a number of at most %(n)s.")),
    ("Enter a number in steps of {n}.", lazy_gettext("Enter a number in steps of %(n)s.")),
    ("Enter a number.", lazy_gettext("Enter a number.")),
    ("Choose one of the listed options.", lazy_gettext("Choose one of the listed options.")),
    ("Choose at least one option.", lazy_gettext("Choose at least one option.")),
    ("Choose from the listed options.", lazy_gettext("Choose from the listed options.")),
    ("Choose only from the listed options.", lazy_gettext("Choose only from the listed options.")),
    ("Tick this box to continue.", lazy_gettext("Tick this box to continue.")),
    ("Must be true or false.", lazy_gettext("Must be true or false.")),
    ("Enter a date as YYYY-MM-DD.", lazy_gettext("Enter a date as YYYY-MM-DD.")),
    ("Enter a time as HH:MM.", lazy_gettext("Enter a time as HH:MM.")),
    ("Enter a date and time, for example 2025-03-01T14:30:00+00:00.",
     lazy_gettext("Enter a date and time, for example 2025-03-01T14:30:00+00:00.")),
    ("Include a timezone offset, for example +00:00 for UTC.",
     lazy_gettext("Include a timezone offset, for example +00:00 for UTC.")),
    ("Enter at most {n} rows.", lazy_gettext("Enter at most %(n)s rows.")),
    ("Enter at least {n} row.", lazy_gettext("Enter at least 1 row.")),
    ("Enter at least {n} rows.", lazy_gettext("Enter at least %(n)s rows.")),
    # marshmallow's own, which the pages' forms (the new-case form) show too
    ("Missing data for required field.", lazy_gettext("This field is required.")),
    ("Field may not be null.", lazy_gettext("This field is required.")),
    ("Not a valid string.", lazy_gettext("Enter text.")),
    ("Not a valid integer.", lazy_gettext("Enter a whole number.")),
    ("Invalid value.", lazy_gettext("Invalid value.")),
    ("Shorter than minimum length {min}.", lazy_gettext("Enter at least %(min)s characters.")),
    ("Longer than maximum length {max}.", lazy_gettext("Enter at most %(max)s characters.")),
    ("Length must be between {min} and {max}.", lazy_gettext("Enter between %(min)s and %(max)s characters.")),
    ("Must be one of: {choices}.", lazy_gettext("Choose one of: %(choices)s.")),
)


@functools.cache
def _message_patterns() -> tuple[tuple[re.Pattern[str], Any], ...]:
    def pattern(english: str) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", english)
        regex = "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)"
                        for index, part in enumerate(parts))
        return re.compile(regex + r"\Z")
    return tuple((pattern(english), text) for english, text in _MESSAGE_TEXTS)


def translate_message(message: str) -> str:
    """A validation message of app.forms (or marshmallow's own) in the page's language; unchanged when it is no
    known one, or when the page speaks English."""
    if current_locale() == LOCALES[0]:
        return message
    for pattern, text in _message_patterns():
        if found := pattern.match(message):
            return str(text) % found.groupdict() if found.groupdict() else str(text)
    return message


@dataclass
class FieldView:
    """What the template needs to draw one component (values already formatted as text)."""

    component: Component
    name: str
    id: str
    label: str
    value: Any = None
    display: str | Markup = ""
    errors: list[str] = field(default_factory=list)
    attrs: list[tuple[str, str]] = field(default_factory=list)
    input_type: str = "text"
    required: bool = False
    description: str = ""  # the component's description in the page's language
    children: list[FieldView] = field(default_factory=list)
    rows: list[RowView] = field(default_factory=list)
    noscript_rows: list[RowView] = field(default_factory=list)
    html_text: Markup = Markup("")

    @property
    def description_id(self) -> str:
        """The id of the field's description paragraph."""
        return f"{self.id}-description"

    @property
    def error_id(self) -> str:
        """The id of the field's error message."""
        return f"{self.id}-error"

    @property
    def described_by(self) -> str:
        """The aria-describedby value: description and error, where present."""
        ids = []
        if self.description:
            ids.append(self.description_id)
        if self.errors:
            ids.append(self.error_id)
        return " ".join(ids)


@dataclass
class RowView:
    """One row of a dynamic list."""

    index: int
    id: str
    children: list[FieldView]
    errors: list[str] = field(default_factory=list)


def _messages(errors: Any) -> list[str]:
    """Flatten whatever error structure sits at one field into plain messages."""
    if errors is None:
        return []
    if isinstance(errors, str):
        return [translate_message(errors)]
    if isinstance(errors, Mapping):
        return [m for value in errors.values() for m in _messages(value)]
    if isinstance(errors, list | tuple):
        return [m for value in errors for m in _messages(value)]
    return [translate_message(str(errors))]


def _normalise_errors(errors: Any) -> Any:
    """Use string keys throughout, whether the errors came from marshmallow or from JSON."""
    if isinstance(errors, Mapping):
        return {str(key): _normalise_errors(value) for key, value in errors.items()}
    return errors


def _plain_number(value: Any, component: Component) -> str:
    """A number as a browser number input shows it (no exponent; money keeps its decimals)."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        exact = Decimal(repr(value))
        places = max(0, -int(exact.normalize().as_tuple().exponent))
        if component.decimal_digits and places <= component.decimal_digits:
            # Money reads 12.50, not 12.5; a value with too many places is shown as typed.
            return format(exact.quantize(Decimal(1).scaleb(-component.decimal_digits)), "f")
        return format(exact.normalize(), "f")
    return str(value)


def _parse_utc(value: Any) -> datetime | None:
    """An aware datetime from a stored ISO string, or None when it is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def _input_display(component: Component, value: Any) -> str:
    """The text to put in an input's value attribute."""
    if value is None:
        return ""
    if component.type == "number":
        return _plain_number(value, component)
    if component.type == "datetime" and component.subtype == "datetime":
        moment = _parse_utc(value)
        # datetime-local takes no zone: show the UTC wall clock, as the label says.
        return moment.strftime("%Y-%m-%dT%H:%M") if moment else str(value)
    return value if isinstance(value, str) else str(value)


def _input_attrs(component: Component) -> tuple[str, list[tuple[str, str]]]:
    """The input type and the constraint attributes that mirror the server-side rules."""
    attrs: list[tuple[str, str]] = []
    c = component
    input_type = "text"
    if c.type in ("textfield", "textarea"):
        if c.min_length is not None:
            attrs.append(("minlength", str(c.min_length)))
        if c.max_length is not None:
            attrs.append(("maxlength", str(c.max_length)))
        if c.type == "textfield":
            if c.validation_type == "email" and not c.pattern:
                input_type = "email"
            elif c.validation_type == "phone" and not c.pattern:
                input_type = "tel"
            if c.effective_pattern:
                attrs.append(("pattern", c.effective_pattern))
    elif c.type == "number":
        input_type = "number"
        if c.min_value is not None:
            attrs.append(("min", format(c.min_value.normalize(), "f")))
        if c.max_value is not None:
            attrs.append(("max", format(c.max_value.normalize(), "f")))
        if c.increment is not None:
            step = format(c.increment.normalize(), "f")
        elif c.decimal_digits == 0:
            step = "1"
        elif c.decimal_digits:
            step = format(Decimal(1).scaleb(-c.decimal_digits), "f")
        else:
            step = "any"
        attrs.append(("step", step))
        attrs.append(("inputmode", "numeric" if c.is_integer else "decimal"))
    elif c.type == "datetime":
        input_type = {"date": "date", "time": "time"}.get(c.subtype or "", "datetime-local")
    return input_type, attrs


def _label(component: Component) -> str:
    """The visible label; datetime fields say which zone their clock shows."""
    label = component_label(component)
    if component.type == "datetime" and component.subtype == "datetime":
        label = gettext("%(label)s (UTC)", label=label)
    return label


def _build(
    components: Sequence[Component],
    values: Mapping[str, Any],
    errors: Mapping[str, Any],
    *,
    prefix: str,
    id_prefix: str,
    blank: bool = False,
) -> list[FieldView]:
    """Views for one data level; ``blank`` marks spare list rows, whose fields must not be required."""
    views: list[FieldView] = []
    for c in components:
        if c.type in STATIC_TYPES:
            views.append(
                FieldView(component=c, name="", id="", label=component_text(c, "label"),
                          html_text=render_markdown(component_text(c, "text")))
            )
            continue
        if c.type == "group":
            if c.path:
                sub_values = values.get(c.path)
                sub_errors = errors.get(c.path)
                name = f"{prefix}{c.path}"
                children = _build(
                    c.children,
                    sub_values if isinstance(sub_values, Mapping) else {},
                    sub_errors if isinstance(sub_errors, Mapping) else {},
                    prefix=f"{name}-", id_prefix=id_prefix, blank=blank,
                )
                own_errors = _unplaced(sub_errors, children)
            else:
                name = f"{prefix}group{c.location}"
                own_errors = []
                children = _build(c.children, values, errors, prefix=prefix, id_prefix=id_prefix, blank=blank)
            views.append(
                FieldView(
                    component=c, name=name, id=_html_id(id_prefix, name), label=component_text(c, "label"),
                    errors=own_errors, children=children,
                )
            )
            continue
        if c.type == "dynamiclist":
            views.append(_build_list(c, values, errors, prefix=prefix, id_prefix=id_prefix))
            continue
        name = f"{prefix}{c.key}"
        value = values.get(c.key or "")
        required = c.required and not blank
        input_type, attrs = _input_attrs(c)
        view = FieldView(
            component=c, name=name, id=_html_id(id_prefix, name), label=_label(c), value=value,
            errors=_messages(errors.get(c.key or "")), attrs=attrs, input_type=input_type, required=required,
            description=component_text(c, "description"),
        )
        if c.type == "checklist":
            chosen = value if isinstance(value, list | tuple) else []
            view.value = {item for item in chosen if isinstance(item, str)}
        elif c.type == "checkbox":
            view.value = value is True
        elif c.type in ("select", "radio"):
            view.display = value if isinstance(value, str) else ""
        else:
            view.display = _input_display(c, value)
        views.append(view)
    return views


def _build_list(
    c: Component, values: Mapping[str, Any], errors: Mapping[str, Any], *, prefix: str, id_prefix: str
) -> FieldView:
    """A dynamic list: submitted rows, rows still needed to reach minItems, then one spare row."""
    name = f"{prefix}{c.path}"
    rows_value = values.get(c.path or "")
    if not isinstance(rows_value, list | tuple):
        rows_value = []
    rows_data = [row if isinstance(row, Mapping) else {} for row in rows_value]
    list_errors = errors.get(c.path or "")
    row_errors = list_errors if isinstance(list_errors, Mapping) else {}
    view = FieldView(
        component=c, name=name, id=_html_id(id_prefix, name), label=component_text(c, "label"),
        errors=[] if isinstance(list_errors, Mapping) else _messages(list_errors),
    )

    def row(index: int, data: Mapping[str, Any], *, blank: bool) -> RowView:
        row_prefix = f"{name}-{index}-"
        found = row_errors.get(str(index))
        children = _build(
            c.children, data, found if isinstance(found, Mapping) else {},
            prefix=row_prefix, id_prefix=id_prefix, blank=blank,
        )
        row_id = _html_id(id_prefix, f"{name}-{index}")
        return RowView(index=index, id=row_id, children=children, errors=_unplaced(found, children))

    for index, data in enumerate(rows_data):
        view.rows.append(row(index, data, blank=False))
    # Rows below minItems are mandatory, so they keep their required attributes.
    while len(view.rows) < min(c.min_items, c.max_items):
        view.rows.append(row(len(view.rows), {}, blank=False))
    if len(view.rows) < c.max_items:
        view.rows.append(row(len(view.rows), {}, blank=True))
    spare = min(NOSCRIPT_EXTRA_ROWS, c.max_items - len(view.rows))
    for index in range(len(view.rows), len(view.rows) + max(0, spare)):
        view.noscript_rows.append(row(index, {}, blank=True))
    return view


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _html_id(id_prefix: str, name: str) -> str:
    """A document-unique element id for a field name."""
    return _ID_UNSAFE.sub("_", f"{id_prefix}{name}")


_LINK = re.compile(r"\[([^\]]+)\]\(((?:https?://|mailto:)[^)\s]+)\)")


def _inline(text: str) -> Markup:
    """Escape a line, then apply the few inline markdown marks the forms use."""
    html = str(escape(text))
    html = _LINK.sub(lambda m: f'<a href="{m.group(2)}" rel="noopener noreferrer">{m.group(1)}</a>', html)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", html)
    html = re.sub(
        r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])",
        lambda m: f"<em>{m.group(1) or m.group(2)}</em>",
        html,
    )
    return Markup(html)  # noqa: S704 - built from escaped text plus fixed tags only


_BULLET = re.compile(r"[-*]\s+")


_TOKEN = re.compile("\x00(\\d+)\x00")


def _shown(value: Any) -> str:
    """A process variable as a text component shows it: text, a number, Yes/No; anything else as a dash."""
    if value is True or value is False:
        return "Yes" if value else "No"
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "\u2014"


def render_markdown(text: str, context: Mapping[str, Any] | None = None) -> Markup:
    """Render the small markdown subset of a form's text component (headings, lists, emphasis, links), each
    ``{{ name }}`` replaced by the escaped value of that variable in ``context`` (a dash when it has none)."""
    names: list[str] = []

    def token(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"\x00{len(names) - 1}\x00"  # kept apart from the markdown marks until the end

    text = PLACEHOLDER.sub(token, text.replace("\x00", ""))
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        heading = re.match(r"(#{1,4})\s+(.*)", lines[0])
        if heading and len(lines) == 1:
            # Form text sits below the page's own headings, so '#' starts at h3.
            level = min(6, len(heading.group(1)) + 2)
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_inline(_BULLET.sub('', line))}</li>" for line in lines)
            blocks.append(f"<ul>{items}</ul>")
        else:
            blocks.append(f"<p>{Markup('<br>').join(_inline(line) for line in lines)}</p>")
    html = "\n".join(blocks)
    if names:
        values = context or {}
        html = _TOKEN.sub(lambda m: str(escape(_shown(values.get(names[int(m.group(1))])))), html)
    return Markup(html)  # noqa: S704 - every piece was escaped above


def _unplaced(errors: Any, children: Sequence[FieldView]) -> list[str]:
    """Messages of a group or row that no child field shows (its own, or about unknown fields)."""
    if not isinstance(errors, Mapping):
        return _messages(errors)
    known = _known_names(children)
    return [
        f"{key}: {message}" if key != "_schema" else message
        for key, value in errors.items()
        if key not in known
        for message in _messages(value)
    ]


def _fill_text(views: Sequence[FieldView], context: Mapping[str, Any]) -> None:
    """Render the text components again with the task's variables."""
    for view in views:
        if view.component.type == "text" and PLACEHOLDER.search(view.component.text):
            view.html_text = render_markdown(view.component.text, context)
        _fill_text(view.children, context)
        for row in view.rows:
            _fill_text(row.children, context)


def _known_names(views: Sequence[FieldView]) -> set[str]:
    """Top-level data names drawn by these views (to find errors no field will show)."""
    names: set[str] = set()
    for view in views:
        c = view.component
        if c.type == "group" and not c.path:
            names |= _known_names(view.children)
        elif c.name:
            names.add(c.name)
    return names


def _has_list(views: Sequence[FieldView]) -> bool:
    """Whether any dynamic list is drawn (so the row script is needed)."""
    return any(v.component.type == "dynamiclist" or _has_list(v.children) for v in views)


def render_form_fields(
    form: FormDefinition,
    values: Mapping[str, Any] | None,
    errors: Mapping[str, Any] | None,
    *,
    script_nonce: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Markup:
    """The form's fields as HTML (no <form> element, no buttons), with values kept and errors at fields;
    text components show the variables of ``context`` (the task's data) they name."""
    errors = _normalise_errors(errors or {})
    data = form.defaults() if values is None else values
    id_prefix = f"f-{form.key}-"
    views = _build(form.components, data, errors, prefix="", id_prefix=id_prefix)
    if form.templated:
        _fill_text(views, context or {})
    known = _known_names(views)
    stray = [
        (key if key != "_schema" else "", message)
        for key, value in errors.items()
        if key not in known
        for message in _messages(value)
    ]
    html = _environment().get_template(TEMPLATE).render(
        mode="fields", form=form, views=views, has_errors=bool(errors), stray_errors=stray,
        with_script=_has_list(views), script_nonce=script_nonce,
    )
    return Markup(html)  # noqa: S704 - produced by an autoescaping template


def _readonly_display(component: Component, value: Any) -> str | Markup:
    """A stored value as a person reads it in the case history."""
    c = component
    if value is None or value == "" or value == []:
        return ""
    if c.type == "checkbox":
        return gettext("Yes") if value is True else gettext("No")
    if c.type in ("select", "radio"):
        labels = {o.value: option_label(o) for o in c.options}
        return labels.get(value, str(value))
    if c.type == "checklist":
        labels = {o.value: option_label(o) for o in c.options}
        items = value if isinstance(value, list | tuple) else [value]
        return gettext(", ").join(labels.get(item, str(item)) for item in items)
    if c.type == "number":
        return _plain_number(value, c)
    if c.type == "datetime" and c.subtype == "datetime":
        moment = _parse_utc(value)
        return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else str(value)
    if c.type == "textarea" and isinstance(value, str):
        return Markup("<br>\n").join(value.split("\n"))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _build_readonly(components: Sequence[Component], values: Mapping[str, Any]) -> list[FieldView]:
    """Views for the read-only rendering (static text is left out: it holds no data)."""
    views: list[FieldView] = []
    for c in components:
        if c.type in STATIC_TYPES:
            continue
        if c.type == "group":
            sub = values.get(c.path) if c.path else values
            children = _build_readonly(c.children, sub if isinstance(sub, Mapping) else {})
            views.append(FieldView(component=c, name=c.path or "", id="", label=component_text(c, "label"),
                                   children=children))
        elif c.type == "dynamiclist":
            rows = values.get(c.path or "")
            view = FieldView(component=c, name=c.path or "", id="", label=component_label(c))
            for index, row in enumerate(rows if isinstance(rows, list | tuple) else []):
                row_children = _build_readonly(c.children, row if isinstance(row, Mapping) else {})
                view.rows.append(RowView(index=index, id="", children=row_children))
            views.append(view)
        else:
            value = values.get(c.key or "")
            views.append(
                FieldView(
                    component=c, name=c.key or "", id="", label=component_label(c), value=value,
                    display=_readonly_display(c, value),
                )
            )
    return views


def render_form_readonly(form: FormDefinition, values: Mapping[str, Any] | None) -> Markup:
    """Submitted values as a definition list, for the case history page."""
    data = values or {}
    views = _build_readonly(form.components, data)
    # Values the current definition no longer names (an older form version) are still shown to auditors.
    extra = [
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))
        for key, value in data.items()
        if key not in form.field_keys()
    ]
    html = _environment().get_template(TEMPLATE).render(mode="readonly", form=form, views=views, extra=extra)
    return Markup(html)  # noqa: S704 - produced by an autoescaping template
