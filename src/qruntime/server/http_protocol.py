"""uvicorn's HTTP protocol, with a response's writes leaving in one send.

uvicorn writes a response's status line and headers as soon as the application sends
``http.response.start``, and its body when it sends ``http.response.body``: two
``send()`` calls, two TCP segments, and a client that wakes up for the headers only to
wait again for the body. Every job costs at least two responses (its submission and its
result), so on a busy server those extra sends and wake-ups are a measurable share of
its CPU. Here the transport that uvicorn writes to holds what is written during one
turn of the event loop and sends it at the end of that turn: a response whose body
follows its headers at once (every JSON answer) leaves in one segment, while a
streamed one (server-sent events, long downloads) still leaves chunk by chunk, each at
the end of the turn that produced it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingTransport", "HttpProtocol"]


class CoalescingTransport:
    """A transport whose writes made in one turn of the event loop go out in one send.

    Everything but writing is the wrapped transport's own (``__getattr__``); closing,
    ending the stream or asking for the buffer's size first sends what is held.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        chunk = data if isinstance(data, bytes) else bytes(data)  # the caller may reuse it
        if self._held is None:
            self._held = [chunk]
            self._loop.call_soon(self._send)
        else:
            self._held.append(chunk)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _send(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._send()
        self._transport.close()

    def write_eof(self) -> None:
        self._send()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = sum(len(chunk) for chunk in self._held) if self._held else 0
        return held + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        held = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(held)  # type: ignore[arg-type]
