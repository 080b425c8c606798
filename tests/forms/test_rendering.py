"""Form rendering: HTML fields that mirror the definition, keep values, show errors and escape everything."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from app.forms import (
    Component,
    FormDefinition,
    FormRegistry,
    FormValidationError,
    render_form_fields,
    render_form_readonly,
    render_markdown,
)

FORMS_DIR = Path(__file__).resolve().parents[2] / "forms"

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


TEST_FORMS_DIR = Path(__file__).resolve().parents[1] / "data" / "forms"


@pytest.fixture(scope="module")
def registry() -> FormRegistry:
    """The shipped forms, and the test forms of tests/data/forms (parts_list: a list of at least one row)."""
    shipped = FormRegistry.load(FORMS_DIR)
    extra = FormRegistry.load(TEST_FORMS_DIR)
    return FormRegistry({**{form.key: form for form in shipped}, **{form.key: form for form in extra}})


class Page(HTMLParser):
    """Elements of a rendered fragment, and what a browser with JavaScript would submit from it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.submitted: list[tuple[str, str]] = []
        self._noscript = 0
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._textarea: tuple[str, list[str]] | None = None
        self.feed(str(html))
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.elements.append((tag, found))
        if tag == "noscript":
            self._noscript += 1
        if self._noscript:
            return
        if tag == "input":
            kind = found.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in found:
                    self.submitted.append((found["name"], found.get("value", "on")))
            else:
                self.submitted.append((found["name"], found.get("value", "")))
        elif tag == "select":
            self._select = (found["name"], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((found.get("value", ""), "selected" in found))
        elif tag == "textarea":
            self._textarea = (found["name"], [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self._noscript -= 1
        elif tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [value for value, selected in options if selected] or [options[0][0]]
            self.submitted.append((name, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, parts = self._textarea
            text = "".join(parts)
            # The HTML parser in a browser drops one newline right after <textarea>.
            self.submitted.append((name, text[1:] if text.startswith("\n") else text))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        """Elements with this tag whose attributes equal the given ones (``class_`` for class)."""
        wanted = {name.rstrip("_").replace("_", "-"): value for name, value in attrs.items()}
        return [
            found
            for element, found in self.elements
            if (tag is None or element == tag) and all(found.get(k) == v for k, v in wanted.items())
        ]

    def one(self, tag: str | None = None, **attrs: str) -> dict[str, str]:
        matches = self.find(tag, **attrs)
        assert len(matches) == 1, (tag, attrs, matches)
        return matches[0]


def sample_value(component: Component, row: int = 0) -> Any:
    """A valid value for any input component."""
    c = component
    if c.type in ("textfield", "textarea"):
        return f"Sample {c.key} {row}" + ("\nsecond line" if c.type == "textarea" else "")
    if c.type == "number":
        low = int(c.min_value) if c.min_value is not None else 0
        return low + 1 if c.is_integer else low + 1.25
    if c.type in ("select", "radio"):
        return c.options[-1].value
    if c.type == "checklist":
        return [c.options[0].value]
    if c.type == "checkbox":
        return True
    return {"date": "2025-03-01", "time": "14:30"}.get(c.subtype or "", "2025-03-01T22:30:00+08:00")


def sample_payload(components: Any) -> dict[str, Any]:
    """A valid payload for a list of components (two rows for each dynamic list)."""
    out: dict[str, Any] = {}
    for c in components:
        if c.type == "group" and not c.path:
            out.update(sample_payload(c.children))
        elif c.type == "group":
            out[c.path] = sample_payload(c.children)
        elif c.type == "dynamiclist":
            out[c.path] = [sample_payload(c.children), sample_payload(c.children)]
        elif c.is_input:
            out[c.key] = sample_value(c)
    return out


ALL_TYPES_FORM = {
    "type": "default",
    "id": "all_types",
    "title": "Every component",
    "components": [
        {"type": "text", "text": "# Heading\n\nSome *guidance*."},
        {
            "type": "textfield",
            "key": "name",
            "label": "Name",
            "validate": {"required": True, "pattern": "[A-Za-z0-9 ]+"},
        },
        {"type": "textarea", "key": "notes", "label": "Notes", "validate": {"maxLength": 300}},
        {
            "type": "number",
            "key": "count",
            "label": "Count",
            "decimalDigits": 0,
            "validate": {"min": 0, "max": 9},
        },
        {"type": "number", "key": "price", "label": "Price", "decimalDigits": 2},
        {"type": "select", "key": "colour", "label": "Colour", "values": [{"label": "Red", "value": "red"}]},
        {
            "type": "radio",
            "key": "size",
            "label": "Size",
            "values": [{"label": "S", "value": "s"}, {"label": "L", "value": "l"}],
            "validate": {"required": True},
        },
        {"type": "checkbox", "key": "urgent", "label": "Urgent"},
        {
            "type": "checklist",
            "key": "tags",
            "label": "Tags",
            "values": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
        },
        {"type": "separator"},
        {"type": "datetime", "key": "day", "subtype": "date", "dateLabel": "Day"},
        {"type": "datetime", "key": "clock", "subtype": "time", "timeLabel": "Clock"},
        {"type": "datetime", "key": "at", "subtype": "datetime", "label": "At"},
        {"type": "spacer"},
        {
            "type": "group",
            "label": "Flat group",
            "components": [{"type": "textfield", "key": "flat", "label": "Flat"}],
        },
        {
            "type": "group",
            "label": "Site",
            "path": "site",
            "components": [
                {"type": "textfield", "key": "city", "label": "City", "validate": {"required": True}}
            ],
        },
        {
            "type": "dynamiclist",
            "label": "Parts",
            "path": "parts",
            "properties": {"maxItems": 4},
            "components": [
                {
                    "type": "textfield",
                    "key": "part_number",
                    "label": "Part number",
                    "validate": {"required": True},
                },
                {"type": "checkbox", "key": "spare", "label": "Spare"},
                {
                    "type": "select",
                    "key": "unit",
                    "label": "Unit",
                    "values": [{"label": "pcs", "value": "pcs"}],
                },
            ],
        },
    ],
}


def all_types_form() -> FormDefinition:
    return FormDefinition.from_json(ALL_TYPES_FORM)


def assert_labels_tied(page: Page) -> None:
    ids = [found["id"] for _, found in page.elements if "id" in found]
    assert len(ids) == len(set(ids)), "element ids must be unique"
    for label in page.find("label"):
        assert label["for"] in ids, label


# -- every form ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(p.name[: -len(".form.json")] for p in FORMS_DIR.glob("*.form.json")))
def test_every_form_renders_and_round_trips(registry: FormRegistry, key: str) -> None:
    form = registry.get(key)
    blank = render_form_fields(form, None, None)
    assert isinstance(blank, Markup)
    page = Page(blank)
    assert_labels_tied(page)
    for component in form.components:
        if component.is_input:
            tags = [found for _, found in page.elements if found.get("name") == component.key]
            assert tags, component.key
            if component.type != "checklist":  # a checklist's boxes are each optional
                assert all(("required" in tag) == component.required for tag in tags), component.key

    # Whatever the page shows, a browser posts back and validate accepts unchanged.
    payload = form.validate(sample_payload(form.components))
    filled = Page(render_form_fields(form, payload, None))
    assert form.validate(form.from_html(MultiDict(filled.submitted))) == payload

    readonly = render_form_readonly(form, payload)
    assert isinstance(readonly, Markup) and readonly.startswith('<dl class="form-readonly"')
    assert render_form_readonly(form, form.defaults())


def test_every_component_type_round_trips_through_html() -> None:
    form = all_types_form()
    payload = form.validate(sample_payload(form.components))
    html = render_form_fields(form, payload, None)
    page = Page(html)
    assert_labels_tied(page)
    assert form.validate(form.from_html(MultiDict(page.submitted))) == payload
    assert payload["site"] == {"city": "Sample city 0"}
    assert len(payload["parts"]) == 2


# -- attributes mirror the definition --------------------------------------------------------------


def test_constraints_mirror_the_definition(registry: FormRegistry) -> None:
    page = Page(render_form_fields(registry.get("fault_diagnosis"), None, None))
    hours = page.one("input", name="removal_target_hours")
    assert hours["type"] == "number"
    assert (hours["min"], hours["max"], hours["step"], hours["value"]) == ("1", "720", "1", "48")
    assert "required" in hours
    diagnosis = page.one("textarea", name="diagnosis")
    assert diagnosis["maxlength"] == "4000" and "required" in diagnosis
    assert page.one("label", for_=diagnosis["id"])
    radios = page.find("input", name="fault_class")
    assert [r["value"] for r in radios] == ["common", "complex"]
    assert all("required" in r and r["type"] == "radio" for r in radios)
    for radio in radios:
        assert page.one("label", for_=radio["id"])
    cause = page.one("select", name="cause")
    assert "required" in cause
    parts_needed = page.one("input", name="parts_needed")
    assert (
        parts_needed["type"] == "checkbox"
        and "checked" not in parts_needed
        and "required" not in parts_needed
    )

    quote = Page(render_form_fields(registry.get("maintenance_quote"), None, None))
    amount = quote.one("input", name="quote_amount")
    assert (amount["min"], amount["step"], amount["inputmode"]) == ("0", "0.01", "decimal")
    assert quote.one("option", value="CNY").get("selected") == ""

    agreed = Page(render_form_fields(registry.get("replacement_arrangement"), None, None))
    assert "required" in agreed.one("input", name="replacement_agreed")

    custom = Page(render_form_fields(all_types_form(), None, None))
    assert custom.one("input", name="name")["pattern"] == "[A-Za-z0-9 ]+"
    assert custom.one("input", name="name")["maxlength"] == "500"
    assert custom.one("input", name="day")["type"] == "date"
    assert custom.one("input", name="clock")["type"] == "time"
    assert custom.one("input", name="site-city")["type"] == "text"


# -- values kept, errors at fields -----------------------------------------------------------------


def test_values_are_kept_and_errors_shown_at_their_fields(registry: FormRegistry) -> None:
    form = registry.get("maintenance_quote")
    data = form.from_html(
        MultiDict([("quote_amount", "12.345"), ("quote_currency", "USD"), ("quote_note", "Call back <Tue>")])
    )
    with pytest.raises(FormValidationError) as caught:
        form.validate(data)
    html = render_form_fields(form, data, caught.value.errors)
    page = Page(html)

    amount = page.one("input", name="quote_amount")
    assert amount["value"] == "12.345"  # shown as typed, not rounded
    assert amount["aria-invalid"] == "true"
    error = page.one("p", id=amount["aria-describedby"])
    assert error["class"] == "field-error"
    assert "Use at most 2 decimal places." in html

    for radio in page.find("input", name="quote_accepted"):
        assert radio["aria-invalid"] == "true"
        assert radio["aria-describedby"] == "f-maintenance_quote-quote_accepted-error"
    assert page.one("p", id="f-maintenance_quote-quote_accepted-error")

    assert page.one("option", value="USD").get("selected") == ""
    assert "selected" not in page.one("option", value="CNY")
    assert ("quote_note", "Call back <Tue>") in page.submitted
    assert "Call back &lt;Tue&gt;" in html
    assert '<div class="form-errors" role="alert">' in html
    currency = page.one("select", name="quote_currency")
    assert "aria-invalid" not in currency


def test_errors_elsewhere_are_listed_at_the_top(registry: FormRegistry) -> None:
    form = registry.get("escalation_review")
    html = render_form_fields(
        form, {}, {"bogus": ["This field is not part of the form."], "_schema": ["Expected an object."]}
    )
    assert "<li>bogus: This field is not part of the form.</li>" in html
    assert "<li>Expected an object.</li>" in html


def test_datetime_is_shown_in_utc(registry: FormRegistry) -> None:
    form = registry.get("onsite_repair_record")
    page = Page(render_form_fields(form, {"arrived_at": "2025-03-01T22:30:00+08:00"}, None))
    arrived = page.one("input", name="arrived_at")
    assert (arrived["type"], arrived["value"]) == ("datetime-local", "2025-03-01T14:30")
    html = render_form_fields(form, None, None)
    assert re.search(r'<label for="f-onsite_repair_record-arrived_at">Arrived on site \(UTC\)', str(html))


# -- dynamic lists ---------------------------------------------------------------------------------


def test_dynamic_list_rows_errors_and_spare_rows(registry: FormRegistry) -> None:
    form = registry.get("parts_list")
    values = {
        "warehouse": "W1",
        "reserved_parts": [
            {"part_number": "BAT-1", "description": None, "quantity": 2},
            {"part_number": "FAN-2", "description": None, "quantity": "many"},
        ],
    }
    errors = {"reserved_parts": {"1": {"quantity": ["Enter a number."]}}}
    html = render_form_fields(form, values, errors, script_nonce="n0nce")
    page = Page(html)

    rows = page.find("li", class_="dynamic-list-row")
    assert [row["data-index"] for row in rows] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]  # 2 filled, 1 spare, 3 noscript
    assert page.one("input", name="reserved_parts-0-part_number")["value"] == "BAT-1"
    bad = page.one("input", name="reserved_parts-1-quantity")
    assert bad["value"] == "many" and bad["aria-invalid"] == "true"
    assert page.one("p", id="f-parts_list-reserved_parts-1-quantity-error")
    assert "aria-invalid" not in page.one("input", name="reserved_parts-0-quantity")
    # Filled rows keep their required fields; the spare rows must not block submitting.
    assert "required" in page.one("input", name="reserved_parts-1-part_number")
    for spare in ("2", "3", "4", "5"):
        assert "required" not in page.one("input", name=f"reserved_parts-{spare}-part_number")
    assert html.count("<noscript>") == 1
    assert '<script nonce="n0nce">' in html
    assert page.one("button", class_="dynamic-list-add").get("hidden") == ""

    # The spare rows, left empty, add nothing to what the browser posts back.
    data = form.from_html(MultiDict(page.submitted))
    assert [row["part_number"] for row in data["reserved_parts"]] == ["BAT-1", "FAN-2"]


def test_dynamic_list_first_row_is_required_when_rows_are_required(registry: FormRegistry) -> None:
    page = Page(render_form_fields(registry.get("parts_list"), None, None))
    assert "required" in page.one("input", name="reserved_parts-0-part_number")
    assert "required" not in page.one("input", name="reserved_parts-1-part_number")
    optional = Page(render_form_fields(registry.get("onsite_repair_record"), None, None))
    assert "required" not in optional.one("input", name="parts_used-0-part_number")


def test_dynamic_list_error_for_the_whole_list(registry: FormRegistry) -> None:
    html = render_form_fields(
        registry.get("parts_list"), {}, {"reserved_parts": ["Enter at least 1 row."]}
    )
    page = Page(html)
    assert page.one("fieldset", id="f-parts_list-reserved_parts")["aria-describedby"] == (
        "f-parts_list-reserved_parts-error"
    )
    assert page.one("p", id="f-parts_list-reserved_parts-error")


def test_dynamic_list_at_its_maximum_has_no_spare_row() -> None:
    form = all_types_form()
    rows = [{"part_number": f"P{i}", "spare": False, "unit": None} for i in range(4)]
    page = Page(render_form_fields(form, {"parts": rows}, None))
    assert [row["data-index"] for row in page.find("li", class_="dynamic-list-row")] == ["0", "1", "2", "3"]


def test_errors_with_integer_row_keys_are_accepted() -> None:
    form = all_types_form()
    page = Page(
        render_form_fields(form, {"parts": [{"part_number": ""}]}, {"parts": {0: {"part_number": ["Bad."]}}})
    )
    assert page.one("input", name="parts-0-part_number")["aria-invalid"] == "true"


def test_row_and_group_errors_without_a_field_are_shown_in_their_row_or_group() -> None:
    form = all_types_form()
    errors = {
        "parts": {
            "0": {"colour": ["This field is not part of the form."]},
            "1": {"_schema": ["Not an object."]},
        },
        "site": {"_schema": ["Expected an object."]},
    }
    html = str(render_form_fields(form, {"parts": [{}, "junk"]}, errors))
    assert '<p class="field-error">colour: This field is not part of the form.</p>' in html
    assert '<p class="field-error">Not an object.</p>' in html
    assert '<p class="field-error" id="f-all_types-site-error">Expected an object.</p>' in html


def test_nested_group_errors_are_shown_at_the_field() -> None:
    form = all_types_form()
    page = Page(render_form_fields(form, {}, {"site": {"city": ["This field is required."]}}))
    city = page.one("input", name="site-city")
    assert city["aria-invalid"] == "true"
    assert page.one("p", id=city["aria-describedby"])


# -- escaping --------------------------------------------------------------------------------------


def test_values_labels_options_and_errors_are_escaped() -> None:
    form = FormDefinition.from_json(
        {
            "type": "default",
            "id": "xss",
            "components": [
                {"type": "text", "text": f"{XSS}\n\n[click](javascript:alert(3))"},
                {"type": "textfield", "key": "a", "label": XSS, "description": XSS},
                {"type": "textarea", "key": "b", "label": "B"},
                {"type": "select", "key": "c", "label": "C", "values": [{"label": XSS, "value": "v"}]},
                {"type": "radio", "key": "d", "label": "D", "values": [{"label": XSS, "value": "w"}]},
            ],
        }
    )
    for html in (
        render_form_fields(form, {"a": XSS, "b": f"</textarea>{XSS}"}, {"a": [XSS], XSS: [XSS]}),
        render_form_readonly(form, {"a": XSS, "b": XSS, "c": "v", "d": XSS, XSS: XSS}),
    ):
        text = str(html)
        assert "<script" not in text
        assert "<img" not in text
        assert "</textarea><" not in text
        assert "javascript:" not in re.sub(r"\[click\]\(javascript:alert\(3\)\)", "", text)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(render_form_fields(form, {"a": XSS}, None))
    assert page.one("input", name="a")["value"] == XSS  # escaped in HTML, intact for the browser


# -- read-only view --------------------------------------------------------------------------------


def test_readonly_shows_labels_and_human_values(registry: FormRegistry) -> None:
    form = registry.get("onsite_repair_record")
    html = str(
        render_form_readonly(
            form,
            {
                "engineer_name": "Wang <Lei>",
                "arrived_at": "2025-03-01T14:30:00+00:00",
                "work_performed": "Opened cabinet.\nReplaced fan.",
                "parts_used": [{"part_number": "FAN-120", "quantity": 1}],
                "onsite_result": "not_repairable",
                "legacy_field": {"from": "an older form version"},
            },
        )
    )
    assert "<dt>Engineer</dt>\n<dd>Wang &lt;Lei&gt;</dd>" in html
    assert "<dd>2025-03-01 14:30 UTC</dd>" in html
    assert "Opened cabinet.<br>\nReplaced fan." in html
    assert "<dd>Cannot be repaired</dd>" in html
    assert "<dd>FAN-120</dd>" in html
    assert '<dt class="form-readonly-extra">legacy_field</dt>' in html
    assert "an older form version" in html

    report = str(
        render_form_readonly(
            registry.get("processing_report"), {"report_sent_via": "fax", "customer_confirmed": False}
        )
    )
    assert "<dd>Fax</dd>" in report
    assert "<dt>The customer confirmed the equipment works normally</dt>\n<dd>No</dd>" in report
    assert '<dt>Root cause</dt>\n<dd><span class="empty">—</span></dd>' in report


def test_readonly_empty_list() -> None:
    html = str(render_form_readonly(all_types_form(), {}))
    assert "<dt>Parts</dt>" in html and '<span class="empty">None</span>' in html


# -- markdown-ish text -----------------------------------------------------------------------------


def test_render_markdown_subset() -> None:
    html = str(
        render_markdown(
            "# Outside warranty\n\n- first\n- **second**\n\nSee [the plan](https://example.com/plan) "
            "or _ask_ `ops`.\nNext line.\n\n[bad](javascript:alert(1))"
        )
    )
    assert "<h3>Outside warranty</h3>" in html
    assert "<ul><li>first</li><li><strong>second</strong></li></ul>" in html
    assert '<a href="https://example.com/plan" rel="noopener noreferrer">the plan</a>' in html
    assert "<em>ask</em> <code>ops</code>.<br>Next line." in html
    assert '<a href="javascript' not in html
    assert render_markdown("<b>x</b>") == Markup("<p>&lt;b&gt;x&lt;/b&gt;</p>")


# -- text components show process variables ({{ name }}, form-js templating) --------------------------------
def _templated(text: str) -> FormDefinition:
    return FormDefinition.from_json({"type": "default", "id": "templated", "components": [
        {"type": "text", "text": text}, {"type": "textfield", "key": "note", "label": "Note"}]})


def test_a_text_placeholder_shows_the_tasks_variable_escaped() -> None:
    form = _templated("**Why:** {{ charge_reason }}; under warranty {{under_warranty}}; {{ missing }}")
    assert form.templated
    html = str(render_form_fields(form, None, None, context={"charge_reason": XSS + " **bold**",
                                                             "under_warranty": False}))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "**bold**" in html  # a value is text, not markdown
    assert "<strong>Why:</strong>" in html and "under warranty No" in html and "; \u2014" in html
    assert "{{" not in str(render_form_fields(form, None, None))


def test_the_quote_form_shows_the_charge_reason(registry: FormRegistry) -> None:
    form = registry.get("maintenance_quote")
    assert form.templated
    html = str(render_form_fields(form, None, None, context={"charge_reason": "cause not covered by the warranty: "
                                                                              "wear"}))
    assert "outside the free warranty</strong>: cause not covered by the warranty: wear" in html


def test_a_form_without_placeholders_is_not_templated(registry: FormRegistry) -> None:
    assert not registry.get("fault_diagnosis").templated
    assert str(render_markdown("{{ a }}", {"a": "x"})) == "<p>x</p>"


@pytest.mark.parametrize("placeholder", ["{{ a.b }}", "{{ a + 1 }}", "{{ _secret }}", "{{ }}"])
def test_a_placeholder_that_is_no_plain_name_is_refused(placeholder: str) -> None:
    with pytest.raises(Exception, match="must be a plain variable name"):
        _templated(f"Text {placeholder}")
