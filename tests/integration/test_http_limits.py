"""The HTTP layer's bounds: bodies by route as they arrive, failed logins, and 4xx answers.

The servers run in this process (a uvicorn thread), so the memory a body costs the
server shows in this process's own peak RSS.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from tests.probes import reset_peak_rss, status_kib

from qruntime.server.api.ibm import PREFIX

CHUNK = b"\0" * 65536
MB = 1024 * 1024


def login(url: str, api_token: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=30)
    token = http.post("/users/loginWithToken", json={"apiToken": api_token}).json()["id"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


class _Body:
    """A chunked body of ``total`` bytes that asks the server's ``/health`` on the way."""

    def __init__(self, total: int, *, health_url: str, health_after: int) -> None:
        self.total = total
        self.sent = 0
        self.health_url = health_url
        self.health_after = health_after
        self.health: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            if self.health is None and self.sent >= self.health_after:
                # The server is reading this body now: it must serve others meanwhile.
                self.health = httpx.get(self.health_url, timeout=10).status_code
            self.sent += len(CHUNK)
            yield CHUNK


@pytest.mark.parametrize(
    ("path", "total", "anonymous"),
    [("/programs", 200 * MB, False), ("/users/loginWithToken", 50 * MB, True)],
)
def test_an_oversized_chunked_body_is_refused_as_it_arrives(
    server: Any, path: str, total: int, anonymous: bool
) -> None:
    if anonymous:
        http = httpx.Client(base_url=server.url, timeout=30)
    else:
        http = login(server.url, server.admin_token)
    body = _Body(total, health_url=f"{server.url}/health", health_after=32 * 1024)
    try:
        http.get("/health").raise_for_status()  # the connection is open and warm
        measured = reset_peak_rss()
        before = status_kib("VmHWM")
        started = time.monotonic()
        response = http.post(path, content=body, headers={"Content-Type": "application/json"})
        elapsed = time.monotonic() - started
        grown = (status_kib("VmHWM") - before) * 1024

        if measured:  # read whole, the body would cost about twice its size
            assert grown < total // 4, f"the server grew by {grown / MB:.0f} MB"
        assert body.sent < total // 10, "the server read on after refusing"
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert response.headers["connection"] == "close"
        assert elapsed < 10
        assert body.health == 200
        # The client goes on, on a new connection.
        assert http.get("/health").status_code == 200
    finally:
        http.close()


def test_a_content_length_over_the_limit_is_refused_and_the_connection_goes_on(
    server: Any,
) -> None:
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        response = http.post(
            "/users/loginWithToken",
            content=b"{" + b" " * (100 * 1024) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "65536" in response.json()["error"]["message"]
        assert "connection" not in response.headers  # the server discards the rest
        assert http.get("/health").status_code == 200
    finally:
        http.close()


def test_a_huge_content_length_is_refused_before_a_byte_is_sent(server: Any) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /programs HTTP/1.1\r\nHost: qruntime\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server closes: the answer ends
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_a_chunked_body_within_the_limit_is_served(server: Any) -> None:
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        body = f'{{"apiToken": "{server.admin_token}"}}'.encode()
        response = http.post(
            "/users/loginWithToken",
            content=iter([body[:5], body[5:]]),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200
        assert response.json()["id"]
    finally:
        http.close()


def test_a_chunked_job_over_the_input_limit_is_refused_on_either_path(make_server: Any) -> None:
    small = make_server(max_input_bytes=10_000)
    http = login(small.url, small.admin_token)
    try:
        http.get("/jobs", params={"limit": 1}).raise_for_status()  # the token is cached
        head = b'{"program_id": "hello-world", "backend": "aer_simulator", "params": {"x": "'
        chunks = iter([head, *[CHUNK] * 64, b'"}}'])  # 4 MB, over 10 kB + 1 MiB
        response = http.post("/jobs", content=chunks, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        ibm = http.post(f"{PREFIX}/jobs", content=iter([head, *[CHUNK] * 64, b'"}}']))
        assert ibm.status_code == 413
    finally:
        http.close()


def _bad_login(url: str, token: str, *, address: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        return http.post("/users/loginWithToken", json={"apiToken": token})


def test_failed_logins_from_one_address_get_429_with_retry_after(make_server: Any) -> None:
    server = make_server(login_failures=3, login_window=60)
    for n in range(3):
        assert _bad_login(server.url, f"qrt_wrong{n:03d}_token_guess").status_code == 401
    refused = _bad_login(server.url, "qrt_another_wrong_token")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A refused login is not checked: even a good token waits, so a 429 tells nothing.
    assert _bad_login(server.url, server.admin_token).status_code == 429
    # Another address is not concerned.
    assert _bad_login(server.url, server.admin_token, address="127.0.0.2").status_code == 200


def test_failed_logins_at_one_token_prefix_get_429_from_any_address(make_server: Any) -> None:
    server = make_server(login_failures=3, login_window=60)
    target = server.add_user("target")
    guesses = [target[:12] + f"guess{n}" + "x" * 20 for n in range(4)]
    for n, guess in enumerate(guesses[:3]):
        assert _bad_login(server.url, guess, address=f"127.0.0.{10 + n}").status_code == 401
    refused = _bad_login(server.url, guesses[3], address="127.0.0.20")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    # Other tokens from that same fresh address are not concerned.
    assert _bad_login(server.url, server.admin_token, address="127.0.0.20").status_code == 200


def test_the_ibm_token_exchange_is_throttled_too(make_server: Any) -> None:
    server = make_server(login_failures=2, login_window=60)
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": "qrt_bad_key_1234"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [http.post(f"{PREFIX}/identity/token", data=form) for _ in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert "retry-after" in answers[2].headers
        # The two routes share one count.
        qruntime = http.post("/users/loginWithToken", json={"apiToken": "qrt_bad_key_5678"})
        assert qruntime.status_code == 429


def test_a_burst_of_good_logins_is_never_refused(server: Any) -> None:
    def log_in_25_times(_: int) -> list[int]:
        body = {"apiToken": server.admin_token}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            return [http.post("/users/loginWithToken", json=body).status_code for _ in range(25)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for batch in pool.map(log_in_25_times, range(8)) for status in batch]
    assert statuses == [200] * 200


# The three 500s found by hand, and a 405 that read as one.


def test_an_ibm_job_without_backend_or_session_is_a_400(server: Any) -> None:
    http = login(server.url, server.admin_token)
    try:
        response = http.post(f"{PREFIX}/jobs", json={"program_id": "hello-world"})
        assert response.status_code == 400
        assert "backend" in response.json()["error"]["message"]
    finally:
        http.close()


def test_an_ibm_session_with_an_unknown_mode_is_a_400(server: Any) -> None:
    http = login(server.url, server.admin_token)
    try:
        response = http.post(f"{PREFIX}/sessions", json={"backend": "aer_simulator", "mode": ""})
        assert response.status_code == 400
        assert "mode" in response.json()["error"]["message"]
    finally:
        http.close()


@pytest.mark.parametrize("path", ["/programs", "/jobs", f"{PREFIX}/jobs"])
def test_an_offset_past_64_bits_is_a_400_and_the_largest_is_served(server: Any, path: str) -> None:
    http = login(server.url, server.admin_token)
    try:
        huge = http.get(path, params={"offset": "34098023638221594624"})
        assert huge.status_code == 400
        assert "offset" in huge.json()["error"]["message"]
        largest = http.get(path, params={"offset": str(2**63 - 1)})
        assert largest.status_code == 200
    finally:
        http.close()


def test_a_wrong_method_is_a_405_with_allow(server: Any) -> None:
    response = httpx.put(f"{server.url}/users/loginWithToken", json={})
    assert response.status_code == 405
    # POST logs in; an admin's PATCH and DELETE /users/{name} match the path too.
    assert response.headers["allow"] == "DELETE, PATCH, POST"
    error = response.json()["error"]
    assert (error["code"], error["status_code"]) == ("method_not_allowed", 405)


def test_every_reader_of_a_body_is_bounded_and_none_logs_an_error(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # FastAPI's body parameter, the routes' own readers (a program's raw data, the IBM
    # token form) and HotRoutes each read a body their own way.
    small = make_server(max_input_bytes=10_000, max_program_bytes=10_000)
    http = login(small.url, small.admin_token)
    routes = [
        ("POST", "/jobs"),
        ("POST", f"{PREFIX}/jobs"),
        ("POST", "/programs"),
        ("PUT", "/programs/hello-world/data"),
        ("PATCH", "/programs/hello-world"),
        ("POST", f"{PREFIX}/identity/token"),
        ("PUT", "/jobs/some-job/tags"),
        ("POST", "/sessions"),
    ]
    try:
        http.get("/jobs", params={"limit": 1}).raise_for_status()  # the token is cached
        for method, path in routes:
            chunks = iter([b'{"data": "', *[CHUNK] * 48, b'"}'])  # 3 MB
            answer = http.request(
                method, path, content=chunks, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 413, (method, path, answer.text)
            assert http.get("/health").status_code == 200
    finally:
        http.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("after", ["soon", str(2**64)])
def test_a_stream_with_a_bad_after_gets_an_error_message_not_a_crash(
    server: Any, after: str
) -> None:
    from websockets.sync.client import connect

    http = login(server.url, server.admin_token)
    try:
        url = server.url.replace("http://", "ws://") + f"/stream/jobs/some-job?after={after}"
        headers = {"Authorization": http.headers["Authorization"]}
        with connect(url, additional_headers=headers, open_timeout=10) as stream:
            message = json.loads(stream.recv(timeout=10))
        assert (message["type"], message["code"]) == ("error", "invalid_input")
        assert "after" in message["message"]
    finally:
        http.close()
