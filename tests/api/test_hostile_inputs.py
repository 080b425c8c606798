"""The catalogue of hostile inputs: each is a 4xx with a clear message naming the field, and saves nothing.

Each entry answered 500 before (on PostgreSQL at least: NUL, surrogates and ids past the INTEGER columns
fail only there, so the suite runs on both databases). The pages get the same inputs at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.api.conftest import ApiClient

BIG = 2**31  # one past the largest INTEGER id
DIGITS_5000 = "9" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass
class Setting:
    """What an entry can refer to: an open case and its diagnosis task, and the test client."""

    api: ApiClient
    client: FlaskClient
    case_id: int
    task_id: int

    def post_json_text(self, path: str, text: str, **kwargs: Any) -> TestResponse:
        """POST a body exactly as written (for what json= cannot write: huge ints, surrogates, NaN)."""
        return self.client.post(path, data=text, content_type="application/json", **kwargs)

    def case_text(self, **fields: str) -> str:
        """A valid case body as JSON text with some values replaced by raw JSON text."""
        body = self.api.case_body()
        text = json.dumps({key: value for key, value in body.items() if key not in fields})
        extra = ", ".join(f'"{key}": {raw}' for key, raw in fields.items())
        return text[:-1] + ", " + extra + "}"

    def complete_text(self, raw_data: str) -> str:
        """A completion body whose ``data`` object is written as raw JSON text."""
        return '{"data": ' + raw_data + "}"


@dataclass
class Entry:
    """One hostile input: the request, the status it must get, and the field (or text) its answer names."""

    label: str
    send: Callable[[Setting], TestResponse]
    status: int
    field: str | None = None  # a field the errors must name (dotted for nested)
    message: str | None = None  # text the message or the errors must contain


def _diagnosis_with(raw_value: str, key: str = "removal_target_hours") -> Callable[[Setting], TestResponse]:
    values = {"diagnosis": '"x"', "fault_class": '"common"', "removal_target_hours": "48", "cause": '"quality"',
              "support_mode": '"remote"', "parts_needed": "false", key: raw_value}
    raw = "{" + ", ".join(f'"{k}": {v}' for k, v in values.items()) + "}"
    return lambda s: s.post_json_text(f"/api/tasks/{s.task_id}/complete", s.complete_text(raw))


CATALOGUE = [
    # ids of 2^31 and more, in the path: no such address (404)
    Entry("claim id 2^31", lambda s: s.client.post(f"/api/tasks/{BIG}/claim"), 404, message="ids are whole numbers"),
    Entry("complete id 2^31", lambda s: s.client.post(f"/api/tasks/{BIG}/complete", json={"data": {}}), 404,
          message="ids are whole numbers"),
    Entry("get task id 2^31", lambda s: s.client.get(f"/api/tasks/{BIG}"), 404, message="ids are whole numbers"),
    Entry("get task 11 digits", lambda s: s.client.get("/api/tasks/99999999999"), 404),
    Entry("get task 5000 digits", lambda s: s.client.get(f"/api/tasks/{DIGITS_5000}"), 404),
    Entry("get case id 2^31", lambda s: s.client.get(f"/api/cases/{BIG}"), 404, message="ids are whole numbers"),
    Entry("case events id 2^31", lambda s: s.client.get(f"/api/cases/{BIG}/events"), 404),
    Entry("timer retry id 2^31", lambda s: s.client.post(f"/api/admin/timers/{BIG}/retry"), 404),
    Entry("case id in Arabic-Indic digits", lambda s: s.client.get("/api/cases/\u0661"), 404),
    # ... in the query and the body: 422 naming the field
    Entry("?case_id=2^31", lambda s: s.client.get(f"/api/tasks?case_id={BIG}"), 422, "case_id", "invalid fields"),
    Entry("?customer_id=2^31", lambda s: s.client.get(f"/api/cases?customer_id={BIG}"), 422, "customer_id"),
    Entry("?equipment_id=2^31", lambda s: s.client.get(f"/api/cases?equipment_id={BIG}"), 422, "equipment_id"),
    Entry("?case_id in Arabic-Indic digits", lambda s: s.client.get("/api/tasks?case_id=\u0661\u0662"), 422,
          "case_id"),
    Entry("?case_id with an underscore", lambda s: s.client.get("/api/tasks?case_id=1_0"), 422, "case_id"),
    Entry("?page in full-width digits", lambda s: s.client.get("/api/cases?page=\uff11"), 422, "page"),
    Entry("?page of 5000 digits", lambda s: s.client.get(f"/api/cases?page={DIGITS_5000}"), 422, "page"),
    Entry("body equipment_id 2^31", lambda s: s.client.post("/api/cases", json=s.api.case_body(equipment_id=BIG)),
          422, "equipment_id"),
    Entry("body customer_id 2^31", lambda s: s.client.post("/api/cases", json=s.api.case_body(customer_id=BIG)),
          422, "customer_id"),
    Entry("body equipment_id as Arabic-Indic text",
          lambda s: s.client.post("/api/cases", json=s.api.case_body(equipment_id="\u0661")), 422, "equipment_id"),
    Entry("body customer_id true", lambda s: s.client.post("/api/cases", json=s.api.case_body(customer_id=True)),
          422, "customer_id"),
    # a 5,000-digit integer in any number field
    Entry("body customer_id of 5000 digits", lambda s: s.post_json_text(
        "/api/cases", s.case_text(customer_id=DIGITS_5000)), 422, "customer_id", "5000 digits"),
    Entry("form number of 5000 digits", _diagnosis_with(DIGITS_5000), 422, "data.removal_target_hours",
          "5000 digits"),
    Entry("form number of -5000 digits", _diagnosis_with("-" + DIGITS_5000), 422, "data.removal_target_hours"),
    Entry("form number 1e999 (overflows to infinity)", _diagnosis_with("1e999"), 422, "data.removal_target_hours",
          "finite"),
    Entry("form number NaN", _diagnosis_with("NaN"), 422, "data.removal_target_hours", "finite"),
    Entry("form number Infinity", _diagnosis_with("-Infinity"), 422, "data.removal_target_hours"),
    Entry("form number 1e308", _diagnosis_with("1e308"), 422, "removal_target_hours", "too large"),
    # NUL bytes, lone surrogates, deep nesting, bytes that are not UTF-8
    Entry("?assignee=NUL", lambda s: s.client.get("/api/tasks?assignee=%00"), 422, "assignee", "cannot be"),
    Entry("?text=NUL", lambda s: s.client.get("/api/cases?text=%00"), 422, "text"),
    Entry("?process=NUL", lambda s: s.client.get("/api/cases?process=a%00"), 422, "process"),
    Entry("process id NUL in the path", lambda s: s.client.get("/api/processes/a%00/versions"), 422, "process_id"),
    Entry("description with NUL", lambda s: s.client.post("/api/cases", json=s.api.case_body(description="a\0b")),
          422, "description"),
    Entry("a key with NUL", lambda s: s.post_json_text("/api/cases", s.case_text(**{"x\\u0000": "1"})), 422,
          message="cannot be accepted"),
    Entry("form text with NUL", _diagnosis_with('"rectifier\\u0000fuse"', "diagnosis"), 422, "data.diagnosis"),
    Entry("description a lone surrogate", lambda s: s.post_json_text(
        "/api/cases", s.case_text(description='"\\ud800"')), 400, "description", "cannot be accepted"),
    Entry("form text a lone surrogate", _diagnosis_with('"\\udfff"', "diagnosis"), 400, "data.diagnosis"),
    Entry("JSON nested 100,000 deep", lambda s: s.post_json_text("/api/cases", DEEP), 400, message="nested"),
    Entry("JSON nested 100,000 deep on complete",
          lambda s: s.post_json_text(f"/api/tasks/{s.task_id}/complete", s.complete_text(DEEP)), 400,
          message="nested"),
    Entry("body not UTF-8", lambda s: s.client.post("/api/cases", data=b'{"description": "\xff"}',
                                                    content_type="application/json"), 400, message="UTF-8"),
    Entry("body not JSON", lambda s: s.post_json_text("/api/cases", "{'a': 1}"), 400, message="not valid JSON"),
    # reported_at whose UTC conversion overflows, and notice times far in the past or the future
    Entry("reported_at 0001-01-01+14:00", lambda s: s.client.post("/api/cases", json=s.api.case_body(
        reported_at="0001-01-01T00:00:00+14:00")), 422, "reported_at", "cannot be opened"),
    Entry("reported_at 9999-12-31-14:00", lambda s: s.client.post("/api/cases", json=s.api.case_body(
        reported_at="9999-12-31T23:00:00-14:00")), 422, "reported_at"),
    Entry("reported_at in 1990", lambda s: s.client.post("/api/cases", json=s.api.case_body(
        reported_at="1990-01-01T00:00:00+00:00")), 422, "reported_at"),
    Entry("reported_at 367 days ago", lambda s: s.client.post("/api/cases", json=s.api.case_body(
        reported_at="2025-03-01T07:00:00+00:00")), 422, "reported_at"),
    Entry("reported_at next year", lambda s: s.client.post("/api/cases", json=s.api.case_body(
        reported_at="2027-03-02T08:00:00+00:00")), 422, "reported_at"),
    # JSON endpoints take JSON only (415)
    Entry("cross-site form post to claim", lambda s: s.client.post(
        f"/api/tasks/{s.task_id}/claim", data={"x": "1"}), 415, message="application/json"),
    Entry("empty form post to claim", lambda s: s.client.post(
        f"/api/tasks/{s.task_id}/claim", content_type="application/x-www-form-urlencoded"), 415),
    Entry("text/plain JSON to complete", lambda s: s.client.post(
        f"/api/tasks/{s.task_id}/complete", data=json.dumps({"data": {}}), content_type="text/plain"), 415),
    Entry("multipart to open a case", lambda s: s.client.post("/api/cases", data={"process": "fault_handling"},
                                                              content_type="multipart/form-data"), 415),
    Entry("a body without Content-Type", lambda s: s.client.post(
        "/api/admin/clock/advance", data=b'{"by": "1h"}'), 415, message="no Content-Type"),
    # durations that no clock can hold
    Entry("advance by 10^12 days", lambda s: s.client.post(
        "/api/admin/clock/advance", json={"by": "999999999999d"}), 422, "by"),
]


@pytest.fixture
def setting(api: ApiClient, client: FlaskClient) -> Setting:
    """An open fault case with its diagnosis task ready."""
    case = api.open_case()
    return Setting(api, client, case["id"], api.task(case, "diagnose_fault")["id"])


def _named(errors: dict[str, Any], dotted: str) -> bool:
    node: Any = errors
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return bool(node)


@pytest.mark.parametrize("entry", CATALOGUE, ids=[entry.label for entry in CATALOGUE])
def test_hostile_input_is_a_clear_4xx_and_saves_nothing(setting: Setting, entry: Entry) -> None:
    before, case_before = setting.api.counts(), setting.api.snapshot(setting.case_id)
    response = entry.send(setting)
    assert response.status_code == entry.status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["status"] == entry.status and isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"status", "message", "errors"}
    if entry.field:
        assert _named(body.get("errors") or {}, entry.field), body
    if entry.message:
        assert entry.message in body["message"] + json.dumps(body.get("errors"), ensure_ascii=False), body
    assert setting.api.counts() == before
    assert setting.api.snapshot(setting.case_id) == case_before


def test_a_bodiless_claim_without_content_type_still_works(setting: Setting) -> None:
    response = setting.client.post(f"/api/tasks/{setting.task_id}/claim")
    assert response.status_code == 200
    assert response.get_json()["assignee"] == "demo"


def test_a_notice_within_the_age_limit_is_accepted(setting: Setting) -> None:
    # T0 is 2026-03-02 08:00 UTC; 365 days earlier is inside the 366-day default.
    response = setting.client.post("/api/cases", json=setting.api.case_body(reported_at="2025-03-02T09:00:00+00:00"))
    assert response.status_code == 201, response.get_json()


def test_the_notice_age_limit_is_a_setting(setting: Setting, app: Any) -> None:
    app.config["NOTICE_MAX_AGE_DAYS"] = 30
    try:
        response = setting.client.post("/api/cases", json=setting.api.case_body(
            reported_at="2026-01-15T08:00:00+00:00"))
    finally:
        app.config["NOTICE_MAX_AGE_DAYS"] = 366
    assert response.status_code == 422
    assert response.get_json()["errors"]["reported_at"] == [
        "is more than 30 days in the past; enter when the customer actually gave notice"]


@pytest.mark.parametrize(("text", "expected"), [
    ("%", ["Discount of 50% agreed"]),
    ("_", ["Breaker tripped, see note_2"]),
    ("50%", ["Discount of 50% agreed"]),
    ("e_2", ["Breaker tripped, see note_2"]),
    ("\\", ["Path C:\\ups\\log"]),
])
def test_search_text_is_literal_not_a_wildcard(setting: Setting, text: str, expected: list[str]) -> None:
    for description in ("Discount of 50% agreed", "Breaker tripped, see note_2", "Path C:\\ups\\log",
                        "Nothing special here"):
        setting.api.open_case(description=description, title=description)
    response = setting.client.get("/api/cases", query_string={"text": text})
    assert response.status_code == 200
    assert [item["title"] for item in response.get_json()["items"]] == expected


def test_the_document_describes_the_error_shape_that_is_returned(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["status"]["type"] == "integer"
    assert error["properties"]["message"]["type"] == "string"
    assert set(error["required"]) == {"status", "message"}
    assert "code" not in error["properties"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) or status == "default":
                    ref = response.get("$ref") or response["content"]["application/json"]["schema"]["$ref"]
                    target = ref if "schemas" in ref else spec["components"]["responses"][ref.rsplit("/", 1)[1]][
                        "content"]["application/json"]["schema"]["$ref"]
                    assert target == "#/components/schemas/Error", (method, path, status)
    claim = spec["paths"]["/api/tasks/{task_id}/claim"]["post"]["responses"]
    assert {"403", "404", "409", "415", "422", "503"} <= set(claim)
    assert spec["paths"]["/api/tasks/{task_id}"]["parameters"][0]["schema"] == {
        "type": "integer", "minimum": 1, "maximum": BIG - 1}
