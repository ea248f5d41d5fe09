"""Error answers: the body's status and code always match the HTTP status."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from qruntime.errors import RateLimitedError, error_class_for
from qruntime.server.api.errors import error_response, http_error_response


@pytest.mark.parametrize("status", [s.value for s in HTTPStatus if s.value >= 400])
def test_every_http_error_status_gets_a_body_of_that_status(status: int) -> None:
    response = http_error_response(status, "Something.")
    error = json.loads(response.body)["error"]
    assert response.status_code == error["status_code"] == status
    if status < 500:
        assert error["code"] != "internal_error"


def test_a_405_is_method_not_allowed_and_keeps_its_allow_header() -> None:
    response = http_error_response(405, "Method Not Allowed", headers={"Allow": "GET, POST"})
    assert json.loads(response.body)["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, POST"
    assert error_class_for("method_not_allowed", 405).status_code == 405


def test_a_rate_limited_answer_says_when_to_retry() -> None:
    response = error_response(RateLimitedError("Wait.", retry_after=7))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert json.loads(response.body)["error"]["code"] == "rate_limited"
