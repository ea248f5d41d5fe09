"""``POST /jobs`` and ``GET /jobs/{id}/results`` answer alike on both of their paths.

`qruntime.server.api.hot.HotRoutes` serves the ordinary case of these two requests
itself and hands everything else to FastAPI. A request with a chunked body (no
``Content-Length``) or a repeated ``wait`` always takes FastAPI's route, so each test
sends the same request both ways and compares the answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.integration.test_jobs import bell

from qruntime.encoding import dumps


def login(url: str, api_token: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=30)
    token = http.post("/users/loginWithToken", json={"apiToken": api_token}).json()["id"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture
def http(server: Any) -> Iterator[httpx.Client]:
    client = login(server.url, server.admin_token)
    try:
        client.get("/jobs", params={"limit": 1}).raise_for_status()  # the token is cached now
        yield client
    finally:
        client.close()


def chunked(body: dict[str, Any]) -> Iterator[bytes]:
    """A body without a Content-Length: the short path leaves it to FastAPI."""
    yield json.dumps(body).encode()


def both(http: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, httpx.Response]:
    hot = http.post("/jobs", json=body)
    routed = http.post("/jobs", content=chunked(body), headers={"Content-Type": "application/json"})
    return hot, routed


def bell_job() -> dict[str, Any]:
    params = json.loads(dumps({"circuits": bell(), "shots": 256}))
    return {"program_id": "circuit-runner", "backend": "aer_simulator", "params": params}


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def test_a_job_submitted_either_way_runs_and_its_result_reads_alike(http: httpx.Client) -> None:
    hot, routed = both(http, bell_job())
    assert hot.status_code == routed.status_code == 201
    assert set(hot.json()) == set(routed.json()) == {"id", "backend"}
    assert hot.json()["backend"] == routed.json()["backend"] == "aer_simulator"
    for job_id in (hot.json()["id"], routed.json()["id"]):
        short = http.get(f"/jobs/{job_id}/results", params={"wait": 30})
        long = http.get(f"/jobs/{job_id}/results?wait=30&wait=30")
        assert short.status_code == long.status_code == 200
        assert short.json() == long.json()
        assert sum(short.json()["results"][0]["data"]["counts"].values()) == 256


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"program_id": "no-such-program"}, 404, "program_not_found"),
        ({"backend": "no_such_backend"}, 404, "backend_not_found"),
        ({"params": {"circuits": "not a circuit"}}, 400, "invalid_input"),
        ({"backend": None}, 400, "invalid_input"),  # fails validation: FastAPI answers
        ({"surprise": 1}, 400, "invalid_input"),
    ],
)
def test_refused_submissions_get_the_same_error_either_way(
    http: httpx.Client, change: dict[str, Any], status: int, code: str
) -> None:
    body = {**bell_job(), **change}
    hot, routed = both(http, body)
    assert error_of(hot) == error_of(routed)
    assert error_of(hot)[:2] == (status, code)


def test_malformed_json_and_other_media_types_get_fastapis_answer(http: httpx.Client) -> None:
    as_json = {"Content-Type": "application/json"}
    broken = http.post("/jobs", content=b'{"program_id": ', headers=as_json)
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_input"
    as_text = {"Content-Type": "text/plain"}
    text = http.post("/jobs", content=json.dumps(bell_job()), headers=as_text)
    assert text.status_code == 400  # FastAPI does not read a text/plain body as JSON


def test_unknown_tokens_and_strangers_learn_nothing(server: Any, http: httpx.Client) -> None:
    stranger = login(server.url, server.add_user("stranger"))
    job_id = http.post("/jobs", json=bell_job()).json()["id"]
    anonymous = httpx.Client(base_url=server.url)
    try:
        stranger.get("/jobs", params={"limit": 1}).raise_for_status()  # cached: the short path
        for client in (stranger, anonymous):
            submitted = client.post("/jobs", json=bell_job())
            results = client.get(f"/jobs/{job_id}/results", params={"wait": 1})
            if client is stranger:
                assert submitted.status_code == 201  # a user of its own
                assert error_of(results)[:2] == (404, "job_not_found")
                routed = client.get(f"/jobs/{job_id}/results?wait=1&wait=1")
                assert error_of(results) == error_of(routed)
            else:
                assert submitted.status_code == results.status_code == 401
    finally:
        stranger.close()
        anonymous.close()


@pytest.mark.parametrize("wait", ["-1", "301", "nan", "soon"])
def test_a_bad_wait_gets_fastapis_validation_error(http: httpx.Client, wait: str) -> None:
    job_id = http.post("/jobs", json=bell_job()).json()["id"]
    response = http.get(f"/jobs/{job_id}/results", params={"wait": wait})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]["message"]


def test_results_of_an_unknown_job_and_an_unfinished_one(http: httpx.Client) -> None:
    missing = http.get("/jobs/no-such-job/results", params={"wait": 0})
    assert missing.status_code == 404
    routed = http.get("/jobs/no-such-job/results?wait=0&wait=0")
    assert error_of(missing) == error_of(routed)
    job_id = http.post("/jobs", json=bell_job()).json()["id"]
    early = http.get(f"/jobs/{job_id}/results")  # no wait: 202 unless it is already done
    assert early.status_code in (200, 202)
    if early.status_code == 202:
        assert early.json()["id"] == job_id


def test_a_body_over_the_limit_gets_413(make_server: Any) -> None:
    small = make_server(max_input_bytes=10_000)
    client = login(small.url, small.admin_token)
    try:
        body = {**bell_job(), "params": {"circuits": "x" * 1_100_000}}
        response = client.post("/jobs", json=body)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
    finally:
        client.close()
