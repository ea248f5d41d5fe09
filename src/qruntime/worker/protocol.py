"""Length-prefixed frames between the executor, the zygote and the workers.

A frame is an 8-byte prefix (header length, payload length: two big-endian
uint32), a JSON header (a small dict: what the frame is) and an opaque payload
(the encoded inputs or result, possibly megabytes). The payload is never
parsed as part of the header and is sent with scatter-gather ``sendmsg``, so
a large result is not copied into one big buffer first.

File descriptors may ride along with a frame (``SCM_RIGHTS``); they arrive
with its first bytes.
"""

from __future__ import annotations

import array
import asyncio
import json
import socket
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_PAYLOAD_BYTES",
    "FrameParser",
    "FrameSocket",
    "PayloadOverLimit",
    "ProtocolError",
    "encode_frame",
    "read_frame",
]

PREFIX = struct.Struct("!II")
MAX_HEADER_BYTES = 4 * 1024 * 1024
# A sandboxed program can write anything to its socket: cap what we buffer.
MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024
_MAX_FDS = 8

Header = dict[str, Any]


class ProtocolError(Exception):
    """Raised when a peer sends bytes that are not a well-formed frame."""


class PayloadOverLimit(ProtocolError):
    """Raised when a frame's payload is over the reader's limit; the payload was not read."""

    def __init__(self, header: Header, size: int, limit: int) -> None:
        super().__init__(f"frame payload of {size} bytes is over the limit of {limit}")
        self.header = header
        self.size = size
        self.limit = limit


def encode_frame(
    header: Mapping[str, Any], payload: bytes | bytearray | memoryview = b""
) -> list[Any]:
    """The buffers of one frame, ready for ``sendmsg`` or ``writelines``."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return [PREFIX.pack(len(head), len(payload)), head, payload]


def _check_sizes(header_len: int, payload_len: int) -> None:
    if header_len > MAX_HEADER_BYTES:
        raise ProtocolError(f"frame header of {header_len} bytes is over the limit")
    if payload_len > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"frame payload of {payload_len} bytes is over the limit")


def _parse_header(raw: bytes | bytearray | memoryview) -> Header:
    try:
        header = json.loads(bytes(raw))
    except ValueError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    return header


class FrameSocket:
    """Blocking frames over a stream socket (the worker side); ``send`` is thread-safe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(
        self,
        header: Mapping[str, Any],
        payload: bytes | bytearray | memoryview = b"",
        *,
        fds: Sequence[int] = (),
    ) -> None:
        buffers = [memoryview(b).cast("B") for b in encode_frame(header, payload)]
        ancillary = []
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        with self._send_lock:
            sent = self.sock.sendmsg(buffers, ancillary)
            # A stream socket may take only part of it; send the rest plainly.
            for buf in buffers:
                if sent >= len(buf):
                    sent -= len(buf)
                    continue
                self.sock.sendall(buf[sent:])
                sent = 0

    def recv(self) -> tuple[Header, bytearray, list[int]] | None:
        """The next frame and the descriptors that came with it; None at end of stream."""
        fds: list[int] = []
        prefix = bytearray()
        while not prefix:
            data, ancdata, _flags, _addr = self.sock.recvmsg(
                PREFIX.size, socket.CMSG_SPACE(_MAX_FDS * 4)
            )
            if not data:
                return None
            prefix += data
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(cdata[: len(cdata) - len(cdata) % 4])
                    fds.extend(got)
        if len(prefix) < PREFIX.size:
            prefix += self._recv_exactly(PREFIX.size - len(prefix))
        header_len, payload_len = PREFIX.unpack(prefix)
        _check_sizes(header_len, payload_len)
        header = _parse_header(self._recv_exactly(header_len))
        return header, self._recv_exactly(payload_len), fds

    def _recv_exactly(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                raise ProtocolError("connection closed in the middle of a frame")
            got += k
        return buf

    def close(self) -> None:
        self.sock.close()


class FrameParser:
    """Incremental frame parser for bytes read by an event loop callback."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[Header, bytes]]:
        self._buf += data
        frames: list[tuple[Header, bytes]] = []
        while len(self._buf) >= PREFIX.size:
            header_len, payload_len = PREFIX.unpack_from(self._buf)
            _check_sizes(header_len, payload_len)
            end = PREFIX.size + header_len + payload_len
            if len(self._buf) < end:
                break
            header = _parse_header(memoryview(self._buf)[PREFIX.size : PREFIX.size + header_len])
            payload = bytes(self._buf[PREFIX.size + header_len : end])
            del self._buf[:end]
            frames.append((header, payload))
        return frames


async def read_frame(
    reader: asyncio.StreamReader, *, payload_limit: Callable[[Header], int] | None = None
) -> tuple[Header, bytes] | None:
    """The next frame from an asyncio stream; None at a clean end of stream.

    ``payload_limit`` gives, from a frame's header, the most payload bytes to accept:
    a longer payload raises `PayloadOverLimit` before any of it is read.
    """
    try:
        prefix = await reader.readexactly(PREFIX.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed in the middle of a frame") from None
        return None
    header_len, payload_len = PREFIX.unpack(prefix)
    _check_sizes(header_len, payload_len)
    try:
        header = _parse_header(await reader.readexactly(header_len))
        if payload_limit is not None:
            limit = payload_limit(header)
            if payload_len > limit:
                raise PayloadOverLimit(header, payload_len, limit)
        payload = await reader.readexactly(payload_len) if payload_len else b""
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed in the middle of a frame") from None
    return header, payload
