"""Form definitions: loading Camunda Forms JSON, validating payloads, reading browser posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from app.forms import (
    FormDefinition,
    FormDefinitionError,
    FormRegistry,
    FormValidationError,
    UnknownFormError,
)

FORMS_DIR = Path(__file__).resolve().parents[2] / "forms"

# The BPMN reads these variable names: renaming one breaks a gateway, so they are pinned here.
EXPECTED_FIELDS: dict[str, tuple[str, set[str]]] = {
    "fault_diagnosis": (
        "Fault diagnosis",
        {"diagnosis", "fault_class", "removal_target_hours", "cause", "support_mode", "parts_needed",
         "parts_requested"},
    ),
    "escalation_review": ("Deadline escalation review", {"escalation_action", "escalation_note"}),
    "maintenance_quote": (
        "Maintenance cost quote",
        {"quote_amount", "quote_currency", "quote_accepted", "quote_note"},
    ),
    "parts_reservation": ("Spare parts reservation", {"reservation_note"}),
    "remote_repair_record": ("Remote repair record", {"remote_channel", "work_performed", "remote_result"}),
    "onsite_repair_record": (
        "On-site maintenance record",
        {"engineer_name", "arrived_at", "work_performed", "parts_used", "onsite_result"},
    ),
    "replacement_arrangement": (
        "Replacement through dealer / installer",
        {"dealer_name", "replacement_agreed", "replacement_model", "delivery_planned_at", "arrangement_note"},
    ),
    "replacement_installation": (
        "Replacement installation",
        {"installed_at", "new_serial_number", "installation_note"},
    ),
    "processing_report": (
        "Processing report to the customer",
        {"report_summary", "root_cause", "report_sent_via", "customer_confirmed"},
    ),
}

# What a browser really posts for each form (strings only, CSRF token and button included, checkboxes
# absent when unticked, a spare empty list row), and what validate must make of it.
BROWSER_POSTS: dict[str, tuple[list[tuple[str, str]], dict[str, Any]]] = {
    "fault_diagnosis": (
        [
            ("csrf_token", "abc"),
            ("diagnosis", "Inverter module IGBT failure.\r\nFound by remote log review."),
            ("fault_class", "complex"),
            ("removal_target_hours", "72"),
            ("cause", "quality"),
            ("support_mode", "on_site"),
            ("parts_needed", "true"),
            ("parts_requested-0-part_number", "IGBT-450"),
            ("parts_requested-0-quantity", "2"),
            ("parts_requested-1-part_number", ""),
            ("parts_requested-1-quantity", ""),
            ("submit", "Complete"),
        ],
        {
            "diagnosis": "Inverter module IGBT failure.\nFound by remote log review.",
            "fault_class": "complex",
            "removal_target_hours": 72,
            "cause": "quality",
            "support_mode": "on_site",
            "parts_needed": True,
            "parts_requested": [{"part_number": "IGBT-450", "quantity": 2}],
        },
    ),
    "escalation_review": (
        [
            ("escalation_action", "joint_consultation"),
            ("escalation_note", "Engineer ill; team lead took over."),
        ],
        {"escalation_action": "joint_consultation", "escalation_note": "Engineer ill; team lead took over."},
    ),
    "maintenance_quote": (
        [
            ("quote_amount", "1250.50"),
            ("quote_currency", "CNY"),
            ("quote_accepted", "yes"),
            ("quote_note", ""),
        ],
        {"quote_amount": 1250.5, "quote_currency": "CNY", "quote_accepted": "yes", "quote_note": None},
    ),
    "parts_reservation": (
        [("reservation_note", "Packed on shelf B3")],
        {"reservation_note": "Packed on shelf B3"},
    ),
    "parts_list": (
        [
            ("warehouse", "East China regional warehouse"),
            ("reserved_parts-0-part_number", "BAT-12V-100AH"),
            ("reserved_parts-0-description", "Battery block"),
            ("reserved_parts-0-quantity", "4"),
            ("reserved_parts-1-part_number", "FAN-120"),
            ("reserved_parts-1-description", ""),
            ("reserved_parts-1-quantity", "1"),
            ("reserved_parts-2-part_number", ""),
            ("reserved_parts-2-description", ""),
            ("reserved_parts-2-quantity", ""),
            ("reservation_note", ""),
        ],
        {
            "warehouse": "East China regional warehouse",
            "reserved_parts": [
                {"part_number": "BAT-12V-100AH", "description": "Battery block", "quantity": 4},
                {"part_number": "FAN-120", "description": None, "quantity": 1},
            ],
            "reservation_note": None,
        },
    ),
    "remote_repair_record": (
        [
            ("remote_channel", "network"),
            ("work_performed", "Reset the controller remotely."),
            ("remote_result", "repaired"),
        ],
        {
            "remote_channel": "network",
            "work_performed": "Reset the controller remotely.",
            "remote_result": "repaired",
        },
    ),
    "onsite_repair_record": (
        [
            ("engineer_name", "Wang Lei"),
            ("arrived_at", "2025-03-01T14:30"),
            ("work_performed", "Replaced the fan."),
            ("parts_used-0-part_number", "FAN-120"),
            ("parts_used-0-quantity", "1"),
            ("parts_used-1-part_number", ""),
            ("parts_used-1-quantity", ""),
            ("onsite_result", "repaired"),
        ],
        {
            "engineer_name": "Wang Lei",
            "arrived_at": "2025-03-01T14:30:00+00:00",
            "work_performed": "Replaced the fan.",
            "parts_used": [{"part_number": "FAN-120", "quantity": 1}],
            "onsite_result": "repaired",
        },
    ),
    "replacement_arrangement": (
        [
            ("dealer_name", "Shanghai Power Systems Ltd."),
            ("replacement_agreed", "true"),
            ("replacement_model", "UPS-3000RT"),
            ("delivery_planned_at", "2025-03-10T09:00"),
            ("arrangement_note", "Dealer brings the unit."),
        ],
        {
            "dealer_name": "Shanghai Power Systems Ltd.",
            "replacement_agreed": True,
            "replacement_model": "UPS-3000RT",
            "delivery_planned_at": "2025-03-10T09:00:00+00:00",
            "arrangement_note": "Dealer brings the unit.",
        },
    ),
    "replacement_installation": (
        [
            ("installed_at", "2025-03-10T15:45"),
            ("new_serial_number", "SN-2025-000123"),
            ("installation_note", ""),
        ],
        {
            "installed_at": "2025-03-10T15:45:00+00:00",
            "new_serial_number": "SN-2025-000123",
            "installation_note": None,
        },
    ),
    "processing_report": (
        [
            ("report_summary", "Fan replaced, load test passed."),
            ("root_cause", ""),
            ("report_sent_via", "email"),
        ],
        {
            "report_summary": "Fan replaced, load test passed.",
            "root_cause": None,
            "report_sent_via": "email",
            "customer_confirmed": False,
        },
    ),
}


TEST_FORMS_DIR = Path(__file__).resolve().parents[1] / "data" / "forms"


@pytest.fixture(scope="module")
def registry() -> FormRegistry:
    """The shipped forms, and the test forms of tests/data/forms (parts_list: a list of at least one row)."""
    shipped = FormRegistry.load(FORMS_DIR)
    extra = FormRegistry.load(TEST_FORMS_DIR)
    return FormRegistry({**{form.key: form for form in shipped}, **{form.key: form for form in extra}})


def make_form(*components: dict[str, Any], form_id: str = "test_form") -> FormDefinition:
    """A form built in memory from component dicts."""
    return FormDefinition.from_json({"type": "default", "id": form_id, "components": list(components)})


def errors_of(form: FormDefinition, data: Any) -> dict[str, Any]:
    """The errors validate reports for data (the test fails if it does not fail)."""
    with pytest.raises(FormValidationError) as caught:
        form.validate(data)
    json.dumps(caught.value.errors)  # the errors must be JSON-serialisable as they are
    return caught.value.errors


def write_form(directory: Path, name: str, source: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.form.json"
    path.write_text(source if isinstance(source, str) else json.dumps(source), encoding="utf-8")
    return path


def definition_error(tmp_path: Path, components: list[Any], name: str = "x") -> str:
    """Load a one-file forms directory and return the definition error message."""
    write_form(tmp_path / "forms", name, {"type": "default", "id": name, "components": components})
    with pytest.raises(FormDefinitionError) as caught:
        FormRegistry.load(tmp_path / "forms")
    return str(caught.value)


# -- the forms of the fault-handling process -------------------------------------------------------


def test_every_form_in_the_forms_directory_loads(registry: FormRegistry) -> None:
    assert set(EXPECTED_FIELDS) <= set(registry.keys())  # the fault-handling forms; others pin their own
    for key, (title, names) in EXPECTED_FIELDS.items():
        form = registry.get(key)
        assert form.title == title
        assert form.field_keys() == names
        assert form.to_json()["id"] == key


@pytest.mark.parametrize("key", sorted(BROWSER_POSTS))
def test_browser_post_round_trip(registry: FormRegistry, key: str) -> None:
    form = registry.get(key)
    post, expected = BROWSER_POSTS[key]
    cleaned = form.validate(form.from_html(MultiDict(post)))
    assert cleaned == expected
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert form.validate(cleaned) == cleaned  # a stored payload validates again unchanged


@pytest.mark.parametrize("key", sorted(EXPECTED_FIELDS))
def test_an_empty_post_reports_every_required_field(registry: FormRegistry, key: str) -> None:
    form = registry.get(key)
    required = {c.name for c in form.components if c.required or c.min_items}
    if not required:  # a form without required fields (the parts reservation) takes an empty post
        assert form.validate(form.from_html(MultiDict())) == form.validate({})
        return
    errors = errors_of(form, form.from_html(MultiDict()))
    assert required <= set(errors)


def test_fault_diagnosis_rules(registry: FormRegistry) -> None:
    form = registry.get("fault_diagnosis")
    assert form.defaults()["removal_target_hours"] == 48
    assert form.defaults()["parts_needed"] is False
    good = BROWSER_POSTS["fault_diagnosis"][1]
    assert errors_of(form, {**good, "removal_target_hours": 721}) == {
        "removal_target_hours": ["Enter a number of at most 720."]
    }
    assert errors_of(form, {**good, "removal_target_hours": 0.5}) == {
        "removal_target_hours": ["Enter a whole number."]
    }
    assert errors_of(form, {**good, "cause": "sabotage"}) == {"cause": ["Choose one of the listed options."]}
    assert errors_of(form, {**good, "diagnosis": "x" * 4001})["diagnosis"] == [
        "Enter at most 4000 characters (this has 4001)."
    ]


def test_replacement_must_be_agreed(registry: FormRegistry) -> None:
    form = registry.get("replacement_arrangement")
    post = [
        (name, value)
        for name, value in BROWSER_POSTS["replacement_arrangement"][0]
        if name != "replacement_agreed"
    ]
    assert errors_of(form, form.from_html(MultiDict(post))) == {
        "replacement_agreed": ["Tick this box to continue."]
    }


def test_a_list_of_at_least_one_row_needs_a_row(registry: FormRegistry) -> None:
    form = registry.get("parts_list")
    post = MultiDict(
        [("warehouse", "W1"), ("reserved_parts-0-part_number", ""), ("reserved_parts-0-quantity", "")]
    )
    assert errors_of(form, form.from_html(post)) == {"reserved_parts": ["Enter at least 1 row."]}


# -- text ------------------------------------------------------------------------------------------


def test_textfield_required_trimmed_and_capped() -> None:
    form = make_form({"type": "textfield", "key": "name", "label": "Name", "validate": {"required": True}})
    assert form.validate({"name": "  Li Ming  "}) == {"name": "Li Ming"}
    for blank in ({}, {"name": None}, {"name": ""}, {"name": "   "}):
        assert errors_of(form, blank) == {"name": ["This field is required."]}
    # Undeclared maxLength still has a ceiling, so oversized input is a 4xx and never a database error.
    assert errors_of(form, {"name": "x" * 501}) == {"name": ["Enter at most 500 characters (this has 501)."]}
    assert form.validate({"name": "x" * 500})["name"] == "x" * 500
    assert errors_of(form, {"name": 42}) == {"name": ["Enter text."]}
    assert errors_of(form, {"name": ["a"]}) == {"name": ["Enter text."]}
    assert errors_of(form, {"name": "two\nlines"}) == {"name": ["Enter a single line of text."]}
    assert errors_of(form, {"name": "nul\x00byte"}) == {
        "name": ["Remove the NUL character; it cannot be stored."]
    }


def test_textfield_lengths_and_pattern() -> None:
    form = make_form(
        {
            "type": "textfield",
            "key": "serial",
            "validate": {"minLength": 3, "maxLength": 8, "pattern": "SN-[0-9]+"},
        },
        {"type": "textfield", "key": "mail", "validate": {"validationType": "email"}},
    )
    assert form.validate({"serial": "SN-12"}) == {"serial": "SN-12", "mail": None}
    assert errors_of(form, {"serial": "SN"}) == {"serial": ["Enter at least 3 characters."]}
    assert errors_of(form, {"serial": "SN-123456"}) == {
        "serial": ["Enter at most 8 characters (this has 9)."]
    }
    # The whole value must match, as the HTML pattern attribute requires.
    assert errors_of(form, {"serial": "xSN-12"}) == {"serial": ["This does not match the expected format."]}
    assert form.validate({"mail": "a@example.com"})["mail"] == "a@example.com"
    assert errors_of(form, {"mail": "not-an-address"}) == {"mail": ["Enter a valid e-mail address."]}


def test_textarea_default_cap_and_line_endings() -> None:
    form = make_form(
        {"type": "textarea", "key": "notes"},
        {"type": "textarea", "key": "short", "validate": {"maxLength": 5}},
    )
    assert form.validate({}) == {"notes": None, "short": None}
    assert form.validate({"notes": "a\r\nb\rc"})["notes"] == "a\nb\nc"
    # A browser counts a line break as one character for maxlength, so the server must too.
    assert form.validate({"short": "ab\r\ncd"})["short"] == "ab\ncd"
    assert errors_of(form, {"notes": "y" * 10_001}) == {
        "notes": ["Enter at most 10000 characters (this has 10001)."]
    }


# -- numbers ---------------------------------------------------------------------------------------


def test_integer_number() -> None:
    form = make_form(
        {
            "type": "number",
            "key": "qty",
            "decimalDigits": 0,
            "validate": {"required": True, "min": 1, "max": 10},
        }
    )
    assert form.validate({"qty": 3}) == {"qty": 3}
    assert form.validate({"qty": "4"}) == {"qty": 4}
    assert isinstance(form.validate({"qty": 5.0})["qty"], int)
    assert errors_of(form, {"qty": 2.5}) == {"qty": ["Enter a whole number."]}
    assert errors_of(form, {"qty": 0}) == {"qty": ["Enter a number of at least 1."]}
    assert errors_of(form, {"qty": 11}) == {"qty": ["Enter a number of at most 10."]}
    for wrong in (True, "abc", "12,5", "١٢", "0x1f", [1], {"n": 1}, float("nan"), float("inf")):
        assert errors_of(form, {"qty": wrong}) == {"qty": ["Enter a number."]}, wrong
    assert errors_of(form, {}) == {"qty": ["This field is required."]}


def test_decimal_number() -> None:
    form = make_form(
        {"type": "number", "key": "amount", "decimalDigits": 2, "validate": {"min": 0}},
        {"type": "number", "key": "free"},
        {"type": "number", "key": "step", "increment": "0.5"},
    )
    assert form.validate({"amount": "12.30"})["amount"] == 12.3
    assert isinstance(form.validate({"amount": 12})["amount"], float)
    assert errors_of(form, {"amount": 12.345}) == {"amount": ["Use at most 2 decimal places."]}
    assert errors_of(form, {"amount": -0.01}) == {"amount": ["Enter a number of at least 0."]}
    assert form.validate({"free": 3.14159})["free"] == 3.14159
    assert form.validate({"free": "1.5e3"})["free"] == 1500.0  # browsers may submit exponent notation
    assert errors_of(form, {"free": "1e999"}) == {"free": ["This number is too large."]}
    assert errors_of(form, {"step": "1e-30"}) == {"step": ["Enter a number in steps of 0.5."]}
    assert errors_of(form, {"free": 10**16}) == {"free": ["This number is too large."]}
    assert form.validate({"step": 1.5})["step"] == 1.5
    assert errors_of(form, {"step": 1.2}) == {"step": ["Enter a number in steps of 0.5."]}


# -- choices ---------------------------------------------------------------------------------------

CHOICES = [
    {"label": "Red", "value": "red"},
    {"label": "Green", "value": "green"},
    {"label": "Blue", "value": "blue"},
]


@pytest.mark.parametrize("type_", ["select", "radio"])
def test_single_choice(type_: str) -> None:
    form = make_form(
        {"type": type_, "key": "colour", "values": CHOICES, "validate": {"required": True}},
        {"type": type_, "key": "optional", "values": CHOICES},
    )
    assert form.validate({"colour": "green"}) == {"colour": "green", "optional": None}
    assert errors_of(form, {"colour": "purple"}) == {"colour": ["Choose one of the listed options."]}
    assert errors_of(form, {"colour": 1}) == {"colour": ["Choose one of the listed options."]}
    assert errors_of(form, {"colour": ""}) == {"colour": ["This field is required."]}


def test_checklist() -> None:
    form = make_form(
        {"type": "checklist", "key": "colours", "values": CHOICES, "validate": {"required": True}},
        {"type": "checklist", "key": "extras", "values": CHOICES},
    )
    # Stored in the order the form lists the options, without duplicates.
    assert form.validate({"colours": ["blue", "red", "blue"]}) == {"colours": ["red", "blue"], "extras": []}
    assert errors_of(form, {"colours": []}) == {"colours": ["Choose at least one option."]}
    assert errors_of(form, {}) == {"colours": ["Choose at least one option."]}
    assert errors_of(form, {"colours": ["red", "pink"]}) == {
        "colours": ["Choose only from the listed options."]
    }
    assert errors_of(form, {"colours": {"red": True}}) == {"colours": ["Choose from the listed options."]}


def test_checkbox() -> None:
    form = make_form(
        {"type": "checkbox", "key": "agreed", "validate": {"required": True}},
        {"type": "checkbox", "key": "flag", "defaultValue": False},
    )
    assert form.validate({"agreed": True}) == {"agreed": True, "flag": False}
    assert errors_of(form, {"agreed": False}) == {"agreed": ["Tick this box to continue."]}
    assert errors_of(form, {}) == {"agreed": ["Tick this box to continue."]}
    assert errors_of(form, {"agreed": True, "flag": "true"}) == {"flag": ["Must be true or false."]}
    assert errors_of(form, {"agreed": 1}) == {"agreed": ["Must be true or false."]}


# -- dates and times -------------------------------------------------------------------------------


def test_datetime_is_stored_in_utc() -> None:
    form = make_form({"type": "datetime", "key": "at", "subtype": "datetime", "validate": {"required": True}})
    assert form.validate({"at": "2025-03-01T22:30:00+08:00"}) == {"at": "2025-03-01T14:30:00+00:00"}
    assert form.validate({"at": "2025-03-01T14:30Z"}) == {"at": "2025-03-01T14:30:00+00:00"}
    from datetime import UTC, datetime

    assert form.validate({"at": datetime(2025, 3, 1, 14, 30, tzinfo=UTC)}) == {
        "at": "2025-03-01T14:30:00+00:00"
    }
    assert errors_of(form, {"at": "2025-03-01T14:30"}) == {
        "at": ["Include a timezone offset, for example +00:00 for UTC."]
    }
    for wrong in ("yesterday", "2025-02-30T10:00+00:00", 1740000000, "2025-03-01"):
        assert errors_of(form, {"at": wrong}) == {
            "at": ["Enter a date and time, for example 2025-03-01T14:30:00+00:00."]
        }, wrong


def test_date_and_time_subtypes() -> None:
    form = make_form(
        {"type": "datetime", "key": "day", "subtype": "date", "dateLabel": "Day"},
        {"type": "datetime", "key": "clock", "subtype": "time", "timeLabel": "Clock"},
    )
    assert form.validate({"day": "2025-03-01", "clock": "07:05"}) == {"day": "2025-03-01", "clock": "07:05"}
    assert form.validate({"clock": "07:05:59"})["clock"] == "07:05"
    assert errors_of(form, {"day": "01/03/2025"}) == {"day": ["Enter a date as YYYY-MM-DD."]}
    assert errors_of(form, {"day": "2025-13-01"}) == {"day": ["Enter a date as YYYY-MM-DD."]}
    assert errors_of(form, {"clock": "25:00"}) == {"clock": ["Enter a time as HH:MM."]}


# -- structure -------------------------------------------------------------------------------------


def test_groups_with_and_without_path() -> None:
    form = make_form(
        {"type": "group", "label": "Flat", "components": [{"type": "textfield", "key": "a"}]},
        {"type": "group", "label": "Flat too", "path": "", "components": [{"type": "textfield", "key": "b"}]},
        {
            "type": "group",
            "label": "Site",
            "path": "site",
            "components": [{"type": "textfield", "key": "city", "validate": {"required": True}}],
        },
    )
    assert form.field_keys() == {"a", "b", "site"}
    assert form.validate({"a": "1", "site": {"city": "Wuhan"}}) == {
        "a": "1",
        "b": None,
        "site": {"city": "Wuhan"},
    }
    assert errors_of(form, {}) == {"site": {"city": ["This field is required."]}}
    assert errors_of(form, {"site": {"city": "x", "zip": "1"}}) == {
        "site": {"zip": ["This field is not part of the form."]}
    }
    assert errors_of(form, {"site": "Wuhan"}) == {
        "site": {"_schema": ["Expected an object with the form's fields."]}
    }


def test_dynamic_list_rows_and_limits() -> None:
    form = make_form(
        {
            "type": "dynamiclist",
            "path": "parts",
            "label": "Parts",
            "isRepeating": True,
            "properties": {"minItems": 1, "maxItems": "3"},
            "components": [
                {"type": "textfield", "key": "part_number", "validate": {"required": True}},
                {
                    "type": "number",
                    "key": "quantity",
                    "decimalDigits": 0,
                    "validate": {"required": True, "min": 1},
                },
            ],
        }
    )
    good = {"part_number": "P-1", "quantity": 2}
    assert form.validate({"parts": [good]}) == {"parts": [good]}
    errors = errors_of(
        form, {"parts": [good, {"part_number": "", "quantity": 0}, {"quantity": "x", "colour": "red"}]}
    )
    assert errors == {
        "parts": {
            "1": {"part_number": ["This field is required."], "quantity": ["Enter a number of at least 1."]},
            "2": {
                "part_number": ["This field is required."],
                "quantity": ["Enter a number."],
                "colour": ["This field is not part of the form."],
            },
        }
    }
    assert errors_of(form, {"parts": []}) == {"parts": ["Enter at least 1 row."]}
    assert errors_of(form, {}) == {"parts": ["Enter at least 1 row."]}
    assert errors_of(form, {"parts": [good] * 4}) == {"parts": ["Enter at most 3 rows."]}
    assert errors_of(form, {"parts": "P-1"}) == {"parts": ["Expected a list of rows."]}
    assert errors_of(form, {"parts": ["P-1"]}) == {
        "parts": {"0": {"_schema": ["Expected an object with the form's fields."]}}
    }


def test_dynamic_list_default_maximum() -> None:
    form = make_form(
        {"type": "dynamiclist", "path": "rows", "components": [{"type": "textfield", "key": "v"}]}
    )
    assert form.validate({}) == {"rows": []}
    assert len(form.validate({"rows": [{"v": "x"}] * 100})["rows"]) == 100
    assert errors_of(form, {"rows": [{"v": "x"}] * 101}) == {"rows": ["Enter at most 100 rows."]}


def test_unknown_fields_and_non_objects_are_refused() -> None:
    form = make_form(
        {"type": "textfield", "key": "a"}, {"type": "text", "text": "Read me"}, {"type": "separator"}
    )
    assert form.validate({}) == {"a": None}
    assert errors_of(form, {"a": "x", "b": "y"}) == {"b": ["This field is not part of the form."]}
    assert errors_of(form, ["a"]) == {"_schema": ["Expected an object with the form's fields."]}


def test_keys_that_shadow_schema_attributes_are_safe() -> None:
    form = make_form({"type": "textfield", "key": "load"}, {"type": "textfield", "key": "fields"})
    assert form.validate({"load": "x", "fields": "y"}) == {"load": "x", "fields": "y"}


def test_defaults_and_to_json() -> None:
    source = {
        "type": "default",
        "id": "d",
        "title": "Defaults",
        "schemaVersion": 16,
        "components": [
            {
                "type": "select",
                "key": "currency",
                "values": [{"label": "CNY", "value": "CNY"}],
                "defaultValue": "CNY",
            },
            {"type": "checklist", "key": "tags", "values": CHOICES, "defaultValue": ["red"]},
            {"type": "group", "path": "g", "components": [{"type": "number", "key": "n", "defaultValue": 2}]},
            {"type": "dynamiclist", "path": "rows", "components": [{"type": "textfield", "key": "v"}]},
        ],
    }
    form = FormDefinition.from_json(source)
    assert form.defaults() == {"currency": "CNY", "tags": ["red"], "g": {"n": 2.0}, "rows": []}
    copy = form.to_json()
    assert copy == source
    copy["components"].clear()
    assert form.to_json() == source  # callers get a copy, never the definition itself


# -- browser input ---------------------------------------------------------------------------------


def test_from_html_types_values_without_validating() -> None:
    form = make_form(
        {"type": "textfield", "key": "name"},
        {"type": "number", "key": "qty", "decimalDigits": 0},
        {"type": "number", "key": "price", "decimalDigits": 2},
        {"type": "checkbox", "key": "ok"},
        {"type": "checklist", "key": "tags", "values": CHOICES},
        {"type": "datetime", "key": "at", "subtype": "datetime"},
        {"type": "group", "path": "site", "components": [{"type": "textfield", "key": "city"}]},
    )
    data = form.from_html(
        MultiDict(
            [
                ("name", ""),
                ("qty", "3"),
                ("price", "12.5"),
                ("tags", "red"),
                ("tags", "blue"),
                ("at", "2025-03-01T14:30"),
                ("site-city", "Wuhan"),
                ("csrf_token", "t"),
            ]
        )
    )
    assert data == {
        "name": None,
        "qty": 3,
        "price": 12.5,
        "ok": False,
        "tags": ["red", "blue"],
        "at": "2025-03-01T14:30+00:00",
        "site": {"city": "Wuhan"},
    }
    # Unparsable numbers stay text so validate can say what is wrong.
    bad = form.from_html(MultiDict([("qty", "three"), ("ok", "on")]))
    assert bad["qty"] == "three" and bad["ok"] is True
    assert errors_of(form, bad) == {"qty": ["Enter a number."]}


def test_from_html_dynamic_list_rows() -> None:
    form = make_form(
        {
            "type": "dynamiclist",
            "path": "parts",
            "components": [
                {"type": "textfield", "key": "part_number", "validate": {"required": True}},
                {"type": "number", "key": "quantity", "decimalDigits": 0, "validate": {"required": True}},
            ],
        }
    )
    post = MultiDict(
        [
            ("parts-0-part_number", "A"),
            ("parts-0-quantity", "1"),
            ("parts-3-part_number", ""),
            ("parts-3-quantity", ""),  # a spare row left empty
            ("parts-10-part_number", "C"),
            ("parts-10-quantity", "x"),
            ("parts-2-part_number", "B"),
            ("parts-2-quantity", ""),
            ("parts-x-part_number", "ignored"),
            ("parts-²-part_number", "ignored too"),
        ]
    )
    data = form.from_html(post)
    assert data == {
        "parts": [
            {"part_number": "A", "quantity": 1},
            {"part_number": "B", "quantity": None},
            {"part_number": "C", "quantity": "x"},
        ]
    }
    # Errors carry the index of the row as re-numbered, which is how the page draws them again.
    assert errors_of(form, data) == {
        "parts": {"1": {"quantity": ["This field is required."]}, "2": {"quantity": ["Enter a number."]}}
    }


# -- registry and bad definitions ------------------------------------------------------------------


def test_registry_lookup(registry: FormRegistry) -> None:
    assert "fault_diagnosis" in registry
    assert "nope" not in registry
    assert len(registry) == len(list(FORMS_DIR.glob("*.form.json"))) + len(list(TEST_FORMS_DIR.glob("*.form.json")))
    with pytest.raises(UnknownFormError) as caught:
        registry.get("nope")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == "no record form named 'nope'"


def test_unknown_type_names_file_and_component(tmp_path: Path) -> None:
    message = definition_error(
        tmp_path,
        [
            {"type": "textfield", "key": "a"},
            {"type": "textfield", "key": "b"},
            {"type": "textfield", "key": "c"},
            {"type": "slider", "key": "qty"},
        ],
    )
    assert (
        message
        == "forms/x.form.json: components[3] (key 'qty'): unknown type 'slider' (supported: "
        + ", ".join(
            sorted(
                [
                    "textfield",
                    "textarea",
                    "number",
                    "select",
                    "radio",
                    "checkbox",
                    "checklist",
                    "datetime",
                    "group",
                    "dynamiclist",
                    "text",
                    "separator",
                    "spacer",
                ]
            )
        )
        + ")"
    )


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ([{"type": "textfield"}], "components[0]: a textfield needs a 'key'"),
        ([{"key": "a"}], "components[0] (key 'a'): has no 'type'"),
        ([{"type": "button", "key": "submit"}], "components[0] (key 'submit'): unknown type 'button'"),
        (
            [{"type": "textfield", "key": "site.city"}],
            "components[0] (key 'site.city'): key 'site.city' must start",
        ),
        ([{"type": "select", "key": "s"}], "components[0] (key 's'): needs a non-empty 'values' list"),
        (
            [{"type": "select", "key": "s", "values": [{"label": "A", "value": "a"}], "defaultValue": "b"}],
            "components[0] (key 's'): defaultValue is not valid: Choose one of the listed options.",
        ),
        (
            [{"type": "textfield", "key": "a"}, {"type": "textarea", "key": "a"}],
            "components[1] (key 'a'): the name 'a' is already used by components[0]",
        ),
        (
            [
                {"type": "textfield", "key": "a"},
                {"type": "group", "components": [{"type": "number", "key": "a"}]},
            ],
            "components[1].components[0] (key 'a'): the name 'a' is already used by components[0]",
        ),
        (
            [{"type": "group", "path": "g", "components": [{"type": "range", "key": "r"}]}],
            "components[0].components[0] (key 'r'): unknown type 'range'",
        ),
        ([{"type": "dynamiclist", "components": [{"type": "textfield", "key": "a"}]}], "needs a 'path'"),
        (
            [
                {
                    "type": "dynamiclist",
                    "path": "outer",
                    "components": [
                        {
                            "type": "dynamiclist",
                            "path": "inner",
                            "components": [{"type": "textfield", "key": "a"}],
                        }
                    ],
                }
            ],
            "components[0].components[0] (path 'inner'): a dynamiclist inside another dynamiclist",
        ),
        ([{"type": "textfield", "key": "a", "vaildate": {}}], "unknown property 'vaildate' for a textfield"),
        (
            [{"type": "textfield", "key": "a", "validate": {"min": 1}}],
            "validate.min does not apply to a textfield",
        ),
        (
            [{"type": "textfield", "key": "a", "validate": {"pattern": "("}}],
            "validate.pattern is not a valid",
        ),
        ([{"type": "number", "key": "n", "validate": {"min": 5, "max": 1}}], "validate.min is greater than"),
        ([{"type": "textarea", "key": "t", "validate": {"maxLength": 10**6}}], "above the ceiling of 100000"),
        ([{"type": "textfield", "key": "a", "conditional": {"hide": "=x"}}], "'Hide if') is not supported"),
        ([{"type": "textfield", "key": "a", "label": "=upper(x)"}], "'label' is a FEEL expression"),
        ([{"type": "datetime", "key": "d", "subtype": "week"}], "subtype 'week' must be one of"),
    ],
)
def test_bad_components(tmp_path: Path, components: list[Any], expected: str) -> None:
    message = definition_error(tmp_path, components)
    assert message.startswith("forms/x.form.json: ")
    assert expected in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    write_form(
        forms,
        "a",
        {"type": "default", "id": "a", "components": [{"type": "slider", "key": "s"}, {"type": "textfield"}]},
    )
    write_form(forms, "b", {"type": "default", "id": "not_b", "components": []})
    write_form(forms, "c", '{"type": "default", "id": "c", "components": [}')
    write_form(forms, "d", '{"type": "default", "id": "d", "id": "d", "components": []}')
    write_form(forms, "e", {"type": "default", "id": "e", "components": []})
    with pytest.raises(FormDefinitionError) as caught:
        FormRegistry.load(forms)
    problems = caught.value.problems
    assert len(problems) == 5
    assert problems[0].startswith("forms/a.form.json: components[0] (key 's'): unknown type 'slider'")
    assert problems[1] == "forms/a.form.json: components[1]: a textfield needs a 'key'"
    assert problems[2] == "forms/b.form.json: the form id 'not_b' must equal the file name 'b'"
    assert problems[3].startswith("forms/c.form.json: is not valid JSON (line 1")
    assert problems[4] == "forms/d.form.json: the property 'id' appears twice in one object"


def test_form_level_problems(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    write_form(forms, "x", {"id": "x", "components": {}})
    with pytest.raises(FormDefinitionError) as caught:
        FormRegistry.load(forms)
    assert caught.value.problems == [
        "forms/x.form.json: 'type' must be \"default\" (a Camunda form)",
        "forms/x.form.json: 'components' must be a list",
    ]
    with pytest.raises(FormDefinitionError, match="does not exist"):
        FormRegistry.load(tmp_path / "missing")


def test_modeller_presentation_properties_are_accepted(tmp_path: Path) -> None:
    forms = tmp_path / "forms"
    write_form(
        forms,
        "m",
        {
            "type": "default",
            "id": "m",
            "schemaVersion": 16,
            "executionPlatform": "Camunda Platform",
            "exporter": {"name": "Camunda Modeler", "version": "5.30.0"},
            "components": [
                {
                    "type": "textfield",
                    "key": "a",
                    "id": "Field_1",
                    "layout": {"row": "Row_1", "columns": None},
                    "validate": {"required": False, "pattern": "", "validationType": None},
                    "readonly": False,
                },
                {"type": "spacer", "id": "Spacer_1", "height": 60},
                {
                    "type": "dynamiclist",
                    "path": "rows",
                    "isRepeating": True,
                    "allowAddRemove": True,
                    "defaultRepetitions": 1,
                    "showOutline": True,
                    "components": [{"type": "textfield", "key": "v"}],
                },
            ],
        },
    )
    form = FormRegistry.load(forms).get("m")
    assert form.title == "M"
    assert form.validate({"a": "x"}) == {"a": "x", "rows": []}


HOSTILE_FORM = (
    {"type": "textfield", "key": "line"},
    {"type": "textarea", "key": "notes"},
    {"type": "number", "key": "count", "decimalDigits": 0},
    {"type": "number", "key": "amount"},
    {"type": "datetime", "key": "at", "subtype": "datetime"},
    {"type": "datetime", "key": "on", "subtype": "date"},
    {"type": "select", "key": "pick", "values": [{"value": "a", "label": "A"}]},
)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("count", 10**4999, "This number is too large."),  # 5,000 digits: never converted to text
    ("count", -(10**4999), "This number is too large."),
    ("amount", 1e308, "This number is too large."),
    ("amount", float("nan"), "Enter a number."),
    ("amount", float("inf"), "Enter a number."),
    ("amount", float("-inf"), "Enter a number."),
    ("amount", "9" * 5000, "Enter a number."),
    ("amount", "1e999999", "Enter a number."),
    ("line", "a\x00b", "Remove the NUL character; it cannot be stored."),
    ("notes", "a\x00b", "Remove the NUL character; it cannot be stored."),
    ("line", "\ud800", "Remove the invalid character (a lone surrogate); it cannot be stored."),
    ("notes", "x\udfffy", "Remove the invalid character (a lone surrogate); it cannot be stored."),
    ("at", "0001-01-01T00:00:00+14:00", "Enter a date and time, for example 2025-03-01T14:30:00+00:00."),
    ("at", "9999-12-31T23:00:00-14:00", "Enter a date and time, for example 2025-03-01T14:30:00+00:00."),
    ("at", "2025-13-01T00:00:00+00:00", "Enter a date and time, for example 2025-03-01T14:30:00+00:00."),
    ("on", "0000-01-01", "Enter a date as YYYY-MM-DD."),
    ("pick", "a\x00", "Choose one of the listed options."),
], ids=lambda v: "5000-digit-int" if isinstance(v, int) and abs(v) > 10**100 else None)
def test_hostile_values_are_a_field_error_never_an_exception(key: str, value: Any, message: str) -> None:
    # Whatever arrives at a field, validation names that field; nothing raises past it (no 500 upstream).
    assert errors_of(make_form(*HOSTILE_FORM), {key: value}) == {key: [message]}


def test_a_time_marked_not_in_future_must_have_happened() -> None:
    form = make_form({"type": "datetime", "key": "arrived_at", "subtype": "datetime", "label": "Arrived",
                      "properties": {"notInFuture": "true"}},
                     {"type": "datetime", "key": "visit_day", "subtype": "date", "label": "Day",
                      "properties": {"notInFuture": "true"}},
                     {"type": "dynamiclist", "path": "visits", "label": "Visits", "components": [
                         {"type": "datetime", "key": "at", "subtype": "datetime", "label": "At",
                          "properties": {"notInFuture": "true"}}]})
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    past = {"arrived_at": "2026-03-02T07:59:00+00:00", "visit_day": "2026-03-02",
            "visits": [{"at": "2026-03-01T12:00:00+08:00"}]}
    assert form.validate(past, now=now)["arrived_at"] == "2026-03-02T07:59:00+00:00"
    future = {"arrived_at": "2026-03-02T16:30:00+08:00", "visit_day": "2026-03-03",
              "visits": [{"at": "2026-03-01T00:00:00+00:00"}, {"at": "2026-03-02T08:01:00+00:00"}]}
    with pytest.raises(FormValidationError) as refused:
        form.validate(future, now=now)
    message = ["Cannot be in the future: it is now 2026-03-02 08:00 UTC."]
    assert refused.value.errors == {"arrived_at": message, "visit_day": message, "visits": {"1": {"at": message}}}
    assert form.validate(future)["visit_day"] == "2026-03-03"  # without a clock nothing is compared
    for bad, words in (("yes", "must be \"true\" or \"false\""),):
        with pytest.raises(FormDefinitionError, match=words):
            make_form({"type": "datetime", "key": "t", "subtype": "datetime", "label": "T",
                       "properties": {"notInFuture": bad}})
    with pytest.raises(FormDefinitionError, match="not a time alone"):
        make_form({"type": "datetime", "key": "t", "subtype": "time", "label": "T",
                   "properties": {"notInFuture": "true"}})
