"""The client's HTTP layer: the URLs it requests are those httpx builds from base and path."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qruntime.client._http import ApiClient, _clean

BASES = [
    "http://127.0.0.1:8000",
    "http://127.0.0.1:8000/",
    "https://example.com/api",
    "https://example.com/api/",
    "http://[::1]:8080/prefix/sub",
    "http://user:p%40ss@host:1/x",
    "https://bücher.example/q",
    "http://h/api//",
    "http://h/a%20b",
    "http://h/?x=1",
    "http://h/#f",
]
PATHS = [
    "/jobs/5ad61ef5-cea0-4598-add6-1f0bafd3776f/results",
    "/users/loginWithToken",
    "/backends/fake_27q/configuration",
    "/backends/ibm.q/configuration",
    "/jobs/a b",
    "/jobs/ä",
    "/jobs/a%2Fb",
    "/jobs/../x",
    "/jobs/a?x=1",
    "/jobs/a#f",
    "/jobs//x",
    "jobs",
]
PARAMS: list[dict[str, Any] | None] = [
    None,
    {},
    {"wait": 60.0},
    {"pending": True, "tags": ["a", "b"], "skip": None, "sort": "a b&c/é"},
]


def _client(base: str, seen: list[httpx.Request]) -> ApiClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and "loginWithToken" in str(request.url):
            return httpx.Response(200, json={"id": "access"})
        seen.append(request)
        return httpx.Response(200, json={})

    return ApiClient(base, "token", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize("base", BASES)
def test_requested_url_is_the_one_httpx_merges_from_base_path_and_params(base: str) -> None:
    seen: list[httpx.Request] = []
    api = _client(base, seen)
    reference = httpx.Client(base_url=base.rstrip("/"))
    for path in PATHS:
        for params in PARAMS:
            api.request("GET", path, params=params)
            expected = reference.build_request("GET", path, params=_clean(params)).url
            actual = seen[-1].url
            assert actual == expected, (path, params)
            assert str(actual) == str(expected)
            assert actual.raw_path == expected.raw_path
            assert actual.fragment == expected.fragment


def test_each_request_carries_the_access_token_and_the_given_headers() -> None:
    seen: list[httpx.Request] = []
    api = _client("http://127.0.0.1:8000", seen)
    api.request("POST", "/jobs", content="{}", headers={"Content-Type": "application/json"})
    headers = seen[-1].headers
    assert headers["Authorization"] == "Bearer access"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("qruntime-client/")
