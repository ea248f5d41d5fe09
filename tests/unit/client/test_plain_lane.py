"""The client's plain-HTTP lane, against a real HTTP server on a local port.

The server here is the standard library's, so that each test can make it do what a
real server does at the edges: close an idle kept-alive connection, answer in chunks,
close after answering, die under a request.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from qruntime.client._http import ApiClient
from qruntime.client._plain import plain_lane_for
from qruntime.errors import QRuntimeError


class Recorder:
    """What the server saw, and how it should behave next."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections: set[int] = set()
        self.drop_next = False  # close the connection without answering


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # By the client port: an id() may be reused once the old socket is collected.
        self.recorder.connections.add(self.client_address[1])
        self.recorder.requests.append(
            {"method": self.command, "path": self.path, "body": body, "headers": self.headers}
        )
        if self.recorder.drop_next:
            self.recorder.drop_next = False
            self.close_connection = True
            return  # no answer at all: the client sees the connection die
        if "/users/loginWithToken" in self.path:
            self._send(200, {"id": "access"})
        elif self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b'{"parts": ', b"[1, 2, 3]}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/closing"):
            self.close_connection = True
            self._send(200, {"closing": True}, close=True)
        elif self.path.startswith("/missing"):
            self._send(404, {"error": {"code": "job_not_found", "message": "no such job"}})
        else:
            self._send(200, {"ok": True})

    def _send(self, status: int, payload: Any, *, close: bool = False) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture
def served() -> Iterator[tuple[str, Recorder, ThreadingHTTPServer]]:
    recorder = Recorder()
    handler = type("BoundHandler", (Handler,), {"recorder": recorder})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder, httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def clients() -> Iterator[list[ApiClient]]:
    made: list[ApiClient] = []
    yield made
    for api in made:
        api.close()


def client(made: list[ApiClient], url: str, **kwargs: Any) -> ApiClient:
    api = ApiClient(url, "token", **kwargs)
    made.append(api)
    return api


def test_requests_reuse_one_kept_alive_connection(served: Any, clients: list[ApiClient]) -> None:
    url, recorder, _ = served
    api = client(clients, url)
    assert api._lane is not None
    for _ in range(5):
        assert api.get_json("/jobs", params={"limit": 2, "pending": True}) == {"ok": True}
    assert len(recorder.connections) == 1  # the login and five requests on one connection
    assert recorder.requests[-1]["path"] == "/jobs?limit=2&pending=true"
    assert recorder.requests[-1]["headers"]["Authorization"] == "Bearer access"
    assert recorder.requests[-1]["headers"]["User-Agent"].startswith("qruntime-client/")


def test_bodies_and_their_headers_are_sent_as_httpx_would(
    served: Any, clients: list[ApiClient]
) -> None:
    url, recorder, _ = served
    api = client(clients, url)
    api.request("POST", "/jobs", content='{"a": 1}', headers={"Content-Type": "application/json"})
    sent = recorder.requests[-1]
    assert sent["body"] == b'{"a": 1}'
    assert sent["headers"]["Content-Type"] == "application/json"
    api.request("PUT", "/jobs/j/tags", json={"tags": ["x"]})
    assert json.loads(recorder.requests[-1]["body"]) == {"tags": ["x"]}
    assert recorder.requests[-1]["headers"]["Content-Type"] == "application/json"
    api.request("POST", "/jobs/j/cancel")
    assert recorder.requests[-1]["headers"]["Content-Length"] == "0"


def test_chunked_and_closing_answers_are_read_whole(served: Any, clients: list[ApiClient]) -> None:
    url, recorder, _ = served
    api = client(clients, url)
    assert api.get_json("/chunked") == {"parts": [1, 2, 3]}
    assert api.get_json("/closing") == {"closing": True}
    assert api.get_json("/after") == {"ok": True}  # a new connection after the close
    assert len(recorder.connections) == 2


def test_an_error_answer_raises_the_named_exception(served: Any, clients: list[ApiClient]) -> None:
    url, _, _ = served
    api = client(clients, url)
    with pytest.raises(QRuntimeError, match="no such job") as raised:
        api.get_json("/missing")
    assert type(raised.value).__name__ == "RuntimeJobNotFound"


def test_a_connection_the_server_closed_while_idle_is_replaced(
    served: Any, clients: list[ApiClient]
) -> None:
    url, recorder, _ = served
    api = client(clients, url)
    api.get_json("/first")
    assert api._lane is not None
    (idle,) = api._lane._idle
    assert idle.sock is not None
    idle.sock.shutdown(0)  # as the server closing it: readable at EOF
    # The kept connection is found closed before use: the POST goes on a new one, once.
    api.request("POST", "/jobs", content="{}")
    assert [r["method"] for r in recorder.requests].count("POST") == 2  # login + this one
    assert len(recorder.connections) == 2


def test_a_get_on_a_connection_that_dies_is_sent_again_but_a_post_is_not(
    served: Any, clients: list[ApiClient]
) -> None:
    url, recorder, _ = served
    api = client(clients, url)
    api.get_json("/warm")
    recorder.drop_next = True
    assert api.get_json("/again") == {"ok": True}
    assert [r["path"] for r in recorder.requests][-2:] == ["/again", "/again"]
    recorder.drop_next = True
    with pytest.raises(QRuntimeError, match="Cannot reach"):
        api.request("POST", "/jobs", content="{}")
    assert [r["method"] for r in recorder.requests].count("POST") == 2  # login + once


def test_an_unreachable_server_is_a_clear_error(clients: list[ApiClient]) -> None:
    api = client(clients, "http://127.0.0.1:9", timeout=2)
    with pytest.raises(QRuntimeError, match="Cannot reach the qruntime server"):
        api.get_json("/jobs")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",  # TLS: httpx's certificate handling
        "http://user:secret@example.com",  # credentials in the URL
        "http://example.com/?x=1",
        "http://example.com:99999",
    ],
)
def test_only_plain_direct_http_takes_the_lane(url: str) -> None:
    assert plain_lane_for(url, timeout=1, user_agent="t") is None


def test_a_proxy_in_the_environment_leaves_requests_to_httpx(
    monkeypatch: pytest.MonkeyPatch, clients: list[ApiClient]
) -> None:
    assert plain_lane_for("http://example.com/api", timeout=1, user_agent="t") is not None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert plain_lane_for("http://example.com/api", timeout=1, user_agent="t") is None
    assert client(clients, "http://example.com")._lane is None


def test_a_base_path_prefixes_every_request(served: Any, clients: list[ApiClient]) -> None:
    url, recorder, _ = served
    api = client(clients, url + "/api/")
    api.get_json("/jobs/abc")
    assert recorder.requests[-1]["path"] == "/api/jobs/abc"


def test_a_request_and_its_body_leave_in_one_send(served: Any) -> None:
    """http.client sends a request's headers, then its body; the lane sends them together
    (one segment: the server does not wake for the headers only to wait for the body)."""
    from qruntime.client._plain import _Connection

    url, recorder, _ = served
    host, port = url.removeprefix("http://").split(":")
    connection = _Connection(host, int(port), timeout=10)
    connection.connect()
    sends: list[bytes] = []
    real = connection.sock

    class Counting:
        def sendall(self, data: bytes) -> None:
            sends.append(bytes(data))
            real.sendall(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    connection.sock = Counting()  # type: ignore[assignment]
    body = json.dumps({"program_id": "sampler", "params": {"x": "y" * 5000}}).encode()
    answer = connection.exchange("POST", "/jobs", body, {"Content-Length": str(len(body))})
    connection.close()
    assert answer.status == 200
    assert json.loads(answer.content) == {"ok": True}
    assert len(sends) == 1
    assert sends[0].startswith(b"POST /jobs HTTP/1.1\r\n")
    assert sends[0].endswith(b"\r\n\r\n" + body)
    assert recorder.requests[-1]["body"] == body


class RawServer:
    """A server that answers each request with the next of ``answers``, byte for byte (an
    empty one: it closes the connection instead)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        peer, _ = self.listener.accept()
        with peer, peer.makefile("rb") as reader:
            for answer in self.answers:
                request = b""
                while not request.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    request += line
                self.seen.append(request)
                if not answer:  # the connection dies under the request
                    return
                peer.sendall(answer)

    def close(self) -> None:
        self.listener.close()


def _exchange(answers: list[bytes], requests: int = 1) -> list[Any]:
    from qruntime.client._plain import _Connection

    server = RawServer(answers)
    connection = _Connection("127.0.0.1", server.port, timeout=5)
    try:
        return [connection.exchange("GET", "/jobs", None, {}) for _ in range(requests)]
    finally:
        connection.close()
        server.close()


def test_answers_are_read_as_http_says() -> None:
    (interim,) = _exchange(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    )
    assert (interim.status, interim.content, interim.will_close) == (200, b"ok", False)
    (old,) = _exchange([b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold"])
    assert old.will_close  # HTTP/1.0 without keep-alive
    (unbounded,) = _exchange([b"HTTP/1.1 200 OK\r\nX-A:  spaced \r\n\r\nto the end"])
    assert unbounded.content == b"to the end"
    assert unbounded.will_close
    assert ("X-A", "spaced") in unbounded.headers
    empty, after = _exchange(
        [b"HTTP/1.1 204 No Content\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"],
        requests=2,
    )
    assert (empty.status, empty.content, after.content) == (204, b"", b"x")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", http.client.RemoteDisconnected),
        (b"SMTP ready\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", http.client.LineTooLong),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http.client.HTTPException),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            http.client.IncompleteRead,
        ),
    ],
)
def test_an_answer_that_is_not_http_is_refused(answer: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        _exchange([answer])


def test_control_characters_cannot_split_a_request() -> None:
    from qruntime.client._plain import _Connection

    connection = _Connection("127.0.0.1", 9, timeout=1)
    with pytest.raises(http.client.InvalidURL):
        connection.exchange("GET", "/jobs\r\nX-Evil: 1", None, {})
    with pytest.raises(ValueError, match="Invalid header"):
        connection.exchange("GET", "/jobs", None, {"Authorization": "Bearer a\r\nX-Evil: 1"})
    assert connection.sock is None  # refused before connecting
