"""The OpenAPI document lists every endpoint of the contract with its status codes."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

# path -> method -> the status codes the contract promises
CONTRACT = {
    "/api/cases": {"get": {"200", "422"}, "post": {"201", "422"}},
    "/api/cases/{case_id}": {"get": {"200", "404"}},
    "/api/cases/{case_id}/events": {"get": {"200", "404"}},
    "/api/tasks": {"get": {"200", "422"}},
    "/api/tasks/{task_id}": {"get": {"200", "404"}},
    "/api/tasks/{task_id}/claim": {"post": {"200", "404", "409"}},
    "/api/tasks/{task_id}/complete": {"post": {"200", "404", "409", "422"}},
    "/api/processes": {"get": {"200"}},
    "/api/processes/{process_id}/versions": {"get": {"200"}},
}


@pytest.fixture
def spec(client: FlaskClient) -> dict:
    """The served OpenAPI document."""
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_openapi_lists_every_path_of_the_contract(spec: dict) -> None:
    assert spec["openapi"].startswith("3.")
    assert set(CONTRACT) <= set(spec["paths"])


@pytest.mark.parametrize("path", CONTRACT)
def test_openapi_documents_each_operation_and_its_status_codes(spec: dict, path: str) -> None:
    operations = spec["paths"][path]
    for method, statuses in CONTRACT[path].items():
        assert method in operations, f"{method.upper()} {path} is not documented"
        assert statuses <= set(operations[method]["responses"]), (method, path)


def test_openapi_documents_the_request_bodies(spec: dict) -> None:
    create = spec["paths"]["/api/cases"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    complete = spec["paths"]["/api/tasks/{task_id}/complete"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    schemas = spec["components"]["schemas"]

    def resolve(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    assert set(resolve(create)["required"]) == {"process", "reported_at", "channel", "description"}
    assert resolve(complete)["required"] == ["data"]
