"""The OpenAPI description: a bearer login, a summary and description for every operation,
the error answers each can give (with the one error body), and a model for every success."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qruntime.server.app import create_app
from qruntime.server.settings import Settings

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
#: Operations anyone may call.
ANONYMOUS = {
    ("post", "/users/loginWithToken"),
    ("post", "/experimental/api/identity/token"),
    ("get", "/health"),
}
#: Success answers whose body is whatever the program returned (runtime-encoded JSON).
FREE_FORM = {("get", "/jobs/{job_id}/results"), ("get", "/experimental/api/jobs/{job_id}/results")}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("openapi") / "q.db"
    schema: dict[str, Any] = create_app(Settings(db_url=f"sqlite:///{path}")).openapi()
    return schema


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_the_access_token_is_an_http_bearer_scheme_that_explains_the_login(
    openapi: dict[str, Any],
) -> None:
    scheme = openapi["components"]["securitySchemes"]["AccessToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert "POST /users/loginWithToken" in scheme["description"]
    assert "POST /users/loginWithToken" in openapi["info"]["description"]


def test_every_operation_but_the_logins_needs_the_access_token(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        if (method, path) in ANONYMOUS:
            assert "security" not in operation, (method, path)
        else:
            assert operation.get("security") == [{"AccessToken": []}], (method, path)
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == (
                ERROR_BODY
            )


def test_every_operation_has_a_summary_and_a_description(openapi: dict[str, Any]) -> None:
    undocumented = [
        f"{method.upper()} {path}"
        for method, path, operation in operations(openapi)
        if not operation.get("summary", "").strip() or not operation.get("description", "").strip()
    ]
    assert not undocumented


def test_every_error_answer_has_the_error_body(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == ERROR_BODY, (method, path, status)
                assert response["description"], (method, path, status)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/jobs", {"400", "401", "404", "409", "413", "429", "503"}),
        ("post", "/experimental/api/jobs", {"400", "401", "404", "409", "413", "429", "503"}),
        ("get", "/jobs/{job_id}/results", {"401", "403", "404", "409"}),
        ("post", "/jobs/{job_id}/cancel", {"401", "404", "409"}),
        ("post", "/programs", {"400", "401", "409", "413"}),
        ("delete", "/programs/{program_id}", {"401", "403", "404"}),
        ("post", "/users", {"400", "401", "403", "409", "413"}),
        ("post", "/users/loginWithToken", {"400", "401", "413", "429"}),
        ("get", "/sessions/{session_id}", {"401", "404"}),
    ],
)
def test_the_errors_an_operation_gives_are_documented(
    openapi: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(openapi["paths"][path][method]["responses"])


def test_no_operation_documents_a_422_it_never_gives(openapi: dict[str, Any]) -> None:
    # A request that fails validation gets 400 (invalid_input), as IBM's API answers.
    for method, path, operation in operations(openapi):
        assert "422" not in operation["responses"], (method, path)


def test_every_success_body_has_a_model(openapi: dict[str, Any]) -> None:
    for method, path, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if not status.startswith("2") or "content" not in response:
                continue
            for media, content in response["content"].items():
                schema = content.get("schema", {})
                if media == "application/json" and (method, path) not in FREE_FORM:
                    # One model, a list of them, or one of several models.
                    models = [schema, *schema.get("anyOf", [])]
                    assert any("$ref" in m or "items" in m for m in models), (method, path, status)
                    assert all("$ref" in m for m in schema.get("anyOf", [])), (method, path)
                else:
                    assert schema is not None, (method, path, status, media)
