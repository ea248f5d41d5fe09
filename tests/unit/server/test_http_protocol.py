"""A response's writes leave in one send; streams, closes and WebSockets still work."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from qruntime.server.http_protocol import CoalescingTransport, HttpProtocol


class _Recording(asyncio.Transport):
    """A transport that keeps what each ``write`` call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def write_eof(self) -> None:
        self.events.append("eof")

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_turn_leave_in_one_write_and_in_order() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        inner = _Recording()
        held = CoalescingTransport(inner, asyncio.get_running_loop())
        held.write(b"HTTP/1.1 200 OK\r\n\r\n")
        held.write(bytearray(b"{}"))
        held.writelines([b"", memoryview(b"!")])
        size = held.get_write_buffer_size()
        before = list(inner.writes)
        await asyncio.sleep(0)  # the end of the turn
        return before, inner.writes, size

    before, after, size = asyncio.run(scenario())
    assert before == []  # nothing left during the turn
    assert after == [b"HTTP/1.1 200 OK\r\n\r\n{}!"]
    assert size == len(after[0]) + 7  # what is held, and what the transport holds


def test_a_reused_buffer_is_copied_when_held() -> None:
    async def scenario() -> list[bytes]:
        inner = _Recording()
        held = CoalescingTransport(inner, asyncio.get_running_loop())
        buffer = bytearray(b"abc")
        held.write(buffer)
        buffer[:] = b"xyz"  # the caller reuses its buffer before the turn ends
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(scenario()) == [b"abc"]


def test_close_and_write_eof_send_what_is_held_first_and_abort_drops_it() -> None:
    async def scenario() -> list[_Recording]:
        loop = asyncio.get_running_loop()
        closed, ended, aborted, gone = _Recording(), _Recording(), _Recording(), _Recording()
        held = CoalescingTransport(closed, loop)
        held.write(b"last words")
        held.close()
        held = CoalescingTransport(ended, loop)
        held.write(b"bye")
        held.write_eof()
        held = CoalescingTransport(aborted, loop)
        held.write(b"never")
        held.abort()
        gone.closing = True  # the connection went away during the turn
        CoalescingTransport(gone, loop).write(b"too late")
        await asyncio.sleep(0)  # the turn ends: nothing is sent twice
        return [closed, ended, aborted, gone]

    closed, ended, aborted, gone = asyncio.run(scenario())
    assert closed.writes == [b"last words"]
    assert closed.events == ["close"]
    assert ended.writes == [b"bye"]
    assert ended.events == ["eof"]
    assert aborted.writes == []
    assert aborted.events == ["abort"]
    assert gone.writes == []


def test_everything_else_is_the_wrapped_transports() -> None:
    async def scenario() -> object:
        held = CoalescingTransport(_Recording(), asyncio.get_running_loop())
        return held.get_extra_info("peername")

    assert asyncio.run(scenario()) == ("127.0.0.1", 1)


# ---- under a real uvicorn ------------------------------------------------------------


async def _json(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})


async def _stream(_: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"data: {i}\n\n".encode()
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        if text == "bye":
            await websocket.close(code=1000)
            return
        await websocket.send_text(text.upper())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server_url() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/json", _json, methods=["GET", "POST"]),
            Route("/stream", _stream),
            WebSocketRoute("/ws", _echo),
        ]
    )
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=HttpProtocol, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_uvicorn_answers_whole_responses_on_a_kept_alive_connection(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client:
        for i in range(20):
            reply = client.post("/json", content=f"body {i}")
            assert reply.status_code == 200
            assert reply.json() == {"path": "/json", "body": f"body {i}"}


def test_a_response_arrives_in_one_piece(server_url: str) -> None:
    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /json HTTP/1.1\r\nhost: x\r\n\r\n")
        first = sock.recv(65536)  # the first segment to arrive
    head, _, body = first.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b'{"path":"/json","body":""}'


def test_a_streamed_response_still_streams(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as client, client.stream("GET", "/stream") as reply:
        events = [line for line in reply.iter_lines() if line]
    assert events == [f"data: {i}" for i in range(5)]


def test_websockets_work_through_the_transport(server_url: str) -> None:
    from websockets.sync.client import connect

    with connect(server_url.replace("http", "ws", 1) + "/ws") as websocket:
        for word in ("one", "two", "three"):
            websocket.send(word)
            assert websocket.recv(timeout=10) == word.upper()
        websocket.send("bye")
