"""`BodyLimit`: a body over its route's limit is refused as it arrives, and read no further."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from qruntime.server.api.body_limit import DRAIN_BYTES, BodyLimit, BodyLimits
from qruntime.server.api.ibm import PREFIX
from qruntime.server.settings import Settings

LIMITS = BodyLimits(anonymous=10, programs=100, jobs=1000, default=50)


class Client:
    """One request as a server would hand it to the layer: its body in chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.read >= len(self.chunks):
            return {"type": "http.disconnect"}
        self.read += 1
        more = self.read < len(self.chunks)
        return {"type": "http.request", "body": self.chunks[self.read - 1], "more_body": more}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))  # type: ignore[no-any-return]


class Reader:
    """An application that reads the whole body, then answers 200 with its length."""

    def __init__(self) -> None:
        self.calls = 0
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        size = 0
        while True:
            message = await receive()
            self.messages.append(message)
            if message["type"] == "http.disconnect":
                break
            size += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


AUTHORIZATION = (b"authorization", b"Bearer some-token")


def scope(
    path: str, *, method: str = "POST", headers: list[tuple[bytes, bytes]], token: bool = True
) -> Any:
    headers = [*headers, AUTHORIZATION] if token else headers
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": headers}


def run(app: Any, request: Any, client: Client) -> None:
    asyncio.run(BodyLimit(app, limits=LIMITS)(request, client.receive, client.send))


CHUNKED = [(b"transfer-encoding", b"chunked")]


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("POST", "/jobs", 1000),
        ("POST", f"{PREFIX}/jobs", 1000),
        ("POST", "/programs", 100),
        ("PUT", "/programs/p1/data", 100),
        ("PATCH", "/programs/p1", 100),
        ("POST", "/users/loginWithToken", 10),
        ("POST", f"{PREFIX}/identity/token", 10),
        ("PUT", "/jobs/j1/tags", 50),
        ("POST", "/sessions", 50),
        ("PUT", "/programs/p1/public", 50),
        ("GET", "/jobs", 50),
    ],
)
def test_each_route_has_its_limit(method: str, path: str, limit: int) -> None:
    assert LIMITS.for_request(method, path) == limit


def test_limits_follow_the_settings_with_room_for_json_and_base64() -> None:
    limits = BodyLimits.from_settings(Settings(max_program_bytes=3_000, max_input_bytes=5_000))
    assert 4_000 < limits.programs < 4_000 + 512 * 1024
    assert 5_000 < limits.jobs < 5_000 + 2 * 1024 * 1024
    assert limits.anonymous <= 64 * 1024


def test_a_request_without_a_body_passes_untouched() -> None:
    app, client = Reader(), Client([b""])
    run(app, scope("/health", method="GET", headers=[]), client)
    assert client.status == 200


def test_a_content_length_over_the_limit_is_refused_before_reading() -> None:
    app, client = Reader(), Client([b"x" * 11])
    run(app, scope("/users/loginWithToken", headers=[(b"content-length", b"11")]), client)
    assert app.calls == 0
    assert client.read == 0
    assert client.status == 413
    assert client.body["error"]["code"] == "payload_too_large"
    # The server discards the 11 bytes as they come; the connection goes on.
    assert b"connection" not in client.headers


def test_a_content_length_far_over_the_limit_closes_the_connection() -> None:
    app, client = Reader(), Client([])
    length = str(10 + DRAIN_BYTES + 1).encode()
    run(app, scope("/users/loginWithToken", headers=[(b"content-length", length)]), client)
    assert (app.calls, client.read, client.status) == (0, 0, 413)
    assert client.headers[b"connection"] == b"close"


def test_a_refused_body_announced_with_expect_100_continue_closes_the_connection() -> None:
    app, client = Reader(), Client([])
    headers = [(b"content-length", b"11"), (b"expect", b"100-continue")]
    run(app, scope("/users/loginWithToken", headers=headers), client)
    assert (app.calls, client.read, client.status) == (0, 0, 413)
    assert client.headers[b"connection"] == b"close"


def test_a_content_length_within_the_limit_is_passed_on() -> None:
    app, client = Reader(), Client([b"x" * 10])
    run(app, scope("/users/loginWithToken", headers=[(b"content-length", b"10")]), client)
    assert client.status == 200


def test_a_chunked_body_is_refused_once_the_count_passes_the_limit() -> None:
    app, client = Reader(), Client([b"x" * 6] * 1000)
    run(app, scope("/users/loginWithToken", headers=CHUNKED), client)
    assert client.read == 2  # 12 bytes: over 10, and nothing more was read
    assert app.messages[-1] == {"type": "http.disconnect"}
    assert client.status == 413
    assert client.headers[b"connection"] == b"close"
    assert len(client.sent) == 2  # the application's own answer went nowhere


def test_a_chunked_body_within_the_limit_is_passed_on() -> None:
    app, client = Reader(), Client([b"x" * 5, b"x" * 5])
    run(app, scope("/users/loginWithToken", headers=CHUNKED), client)
    assert client.status == 200
    assert client.sent[1]["body"] == b"10"


def test_the_limit_is_that_of_the_path_under_the_root_path() -> None:
    app, client = Reader(), Client([b"x" * 60] * 10)
    request = scope("/api/jobs", headers=CHUNKED)
    request["root_path"] = "/api"
    run(app, request, client)
    assert client.status == 200  # /jobs: 1000 bytes, not the default 50


def test_a_request_without_credentials_gets_the_anonymous_limit_on_every_route() -> None:
    reader = Reader()
    client = Client([b"x" * 20])
    run(reader, scope("/jobs", headers=[(b"content-length", b"20")], token=False), client)
    assert client.status == 413
    assert reader.calls == 0
    chunked = Client([b"x" * 8, b"x" * 8])
    run(Reader(), scope("/jobs", headers=CHUNKED, token=False), chunked)
    assert chunked.status == 413
