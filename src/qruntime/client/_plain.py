"""A lean lane for the client's requests to a plain-HTTP server, beside httpx.

A job is two requests (``POST /jobs``, then a long poll on its results), and a session's
loop makes them back to back. httpx spends about 0.4 ms of CPU on each (its URL,
request and response models, h11's state machine, httpcore's pool); the standard
library's ``http.client`` on a kept-alive connection spends about 0.1 ms. On a machine
where client, server and worker share two cores that is a tenth of a small job.

The lane serves ``http://`` servers reached directly. httpx stays in charge of
everything else: HTTPS (its certificate handling), proxies named in the environment
(which httpx honours and this lane would not), URLs with credentials, an injected
transport. Responses are returned as ``httpx.Response`` objects, so callers see no
difference.

Connections are kept alive in a small pool. One that the server closed while it sat
idle (uvicorn closes idle connections after 5 s) is noticed before it is used and
replaced; a request that fails on a reused connection before any answer arrives is
sent once more on a fresh one only when repeating it is harmless (not a POST).

``http.client`` sends a request's headers, then its body: two segments, and a server that
wakes for the headers only to wait for the body; and it parses an answer's headers with
the ``email`` package, which cost about as much as the rest of the exchange. `_Connection`
keeps ``http.client``'s connecting and closing, sends a request in one segment and reads
its answer with a small HTTP/1.1 parser (status line, headers, a body by its length, in
chunks or up to the close), bounded as ``http.client`` bounds it.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import threading
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

__all__ = ["PlainLane", "plain_lane_for"]

# Requests that may be sent again when a reused connection turns out to be dead.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_MAX_IDLE = 20  # connections kept for reuse (one per thread using the client at once), as httpx


def plain_lane_for(url: str, *, timeout: float, user_agent: str) -> PlainLane | None:
    """A lane for requests to ``url``, or None when httpx must carry them."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    if parts.query or parts.fragment:
        return None
    try:
        port = parts.port or 80
    except ValueError:  # a malformed port: httpx says what is wrong with it
        return None
    if _proxied():
        return None
    return PlainLane(
        parts.hostname, port, parts.path.rstrip("/"), timeout=timeout, user_agent=user_agent
    )


def _proxied() -> bool:
    """Whether the environment names a proxy for plain HTTP (httpx would honour it).

    Whether httpx would bypass it for this host (``NO_PROXY``) is not second-guessed:
    such clients simply keep httpx.
    """
    return bool({"http", "all"} & set(urllib.request.getproxies_environment()))


class PlainLane:
    """Requests over kept-alive ``http.client`` connections to one server."""

    def __init__(self, host: str, port: int, root: str, *, timeout: float, user_agent: str) -> None:
        self.host = host
        self.port = port
        self.root = root  # the base URL's path, without a trailing "/"
        self.timeout = timeout
        self._user_agent = user_agent
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> httpx.Response:
        """Send ``method target`` (a path under the base URL, with its query); the answer.

        Transport failures raise ``OSError`` or ``http.client.HTTPException``.
        """
        all_headers = {"User-Agent": self._user_agent, **headers}
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        wait = self.timeout if timeout is None else timeout
        connection, reused = self._connection(wait)
        try:
            return self._exchange(connection, method, self.root + target, body, all_headers)
        except (ConnectionError, http.client.RemoteDisconnected):
            connection.close()
            if not reused or method not in _IDEMPOTENT:
                raise
        except BaseException:
            connection.close()
            raise
        # The reused connection had died under the request: once more, on a new one.
        connection, _ = self._connection(wait, fresh=True)
        try:
            return self._exchange(connection, method, self.root + target, body, all_headers)
        except BaseException:
            connection.close()
            raise

    def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        answer = connection.exchange(method, target, body, headers)
        response = httpx.Response(answer.status, headers=answer.headers, content=answer.content)
        if answer.will_close:
            connection.close()
        else:
            self._release(connection)
        return response

    def _connection(self, timeout: float, *, fresh: bool = False) -> tuple[_Connection, bool]:
        """An idle connection that is still open, else a new one; and whether it is reused."""
        while not fresh:
            with self._lock:
                if not self._idle:
                    break
                connection = self._idle.pop()
            sock = connection.sock
            if sock is not None and not _readable(sock):  # readable while idle: closed
                sock.settimeout(timeout)
                connection.timeout = timeout
                return connection, True
            connection.close()
        return _Connection(self.host, self.port, timeout=timeout), False

    def _release(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


# As http.client bounds an answer: the longest line, the most header lines.
_MAX_LINE = 65536
_MAX_HEADERS = 100


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    content: bytes
    will_close: bool


class _Connection(http.client.HTTPConnection):
    """``http.client``'s connection (its connect, timeout and close) with its own exchange:
    a request, headers and body, in one send; its answer read by `_read_answer`."""

    _reader: BinaryIO | None = None

    def exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> _Answer:
        """Send ``method target`` with ``headers`` and ``body``; the answer, read whole."""
        if _CONTROL.search(target):
            raise http.client.InvalidURL(f"URL can't contain control characters: {target!r}")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_field()}"]
        if not any(name.lower() == "accept-encoding" for name in headers):
            lines.append("Accept-Encoding: identity")  # as http.client: no compressed answers
        for name, value in headers.items():
            if _CONTROL.search(name) or ":" in name or _CONTROL.search(value.strip("\t ")):
                raise ValueError(f"Invalid header {name!r}: {value!r}")
            lines.append(f"{name}: {value}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.sock is None:
            self.connect()
            self._reader = None
        assert self.sock is not None
        self.sock.sendall(head + body if body else head)
        if self._reader is None:
            self._reader = self.sock.makefile("rb")
        return _read_answer(self._reader, method)

    def _host_field(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return host if self.port == self.default_port else f"{host}:{self.port}"

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        super().close()


# Characters no request line or header may hold (they would split it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _read_line(reader: BinaryIO, what: str) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong(what)
    return line


def _read_answer(reader: BinaryIO, method: str) -> _Answer:
    """An HTTP/1.1 answer from ``reader``: interim (1xx) answers are skipped."""
    while True:
        line = _read_line(reader, "status line")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
            raise http.client.BadStatusLine(line.decode("iso-8859-1"))
        status = int(code)
        headers = _read_headers(reader)
        if not 100 <= status < 200 or status == 101:
            break
    fields = {name.lower(): value for name, value in headers}
    tokens = {token.strip().lower() for token in fields.get("connection", "").split(",")}
    will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return _Answer(status, headers, b"", will_close)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return _Answer(status, headers, _read_chunked(reader), will_close)
    length = fields.get("content-length", "").strip()
    if not length.isdigit():  # no length (or one that reads as none): the body ends at the close
        return _Answer(status, headers, reader.read(), True)
    wanted = int(length)
    content = reader.read(wanted)
    if len(content) < wanted:
        raise http.client.IncompleteRead(content, wanted - len(content))
    return _Answer(status, headers, content, will_close)


def _read_headers(reader: BinaryIO) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    while True:
        line = _read_line(reader, "header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        if len(headers) >= _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        name, colon, value = line.decode("iso-8859-1").partition(":")
        if colon:  # a line without one (a folded continuation, say) carries nothing we read
            headers.append((name.strip(), value.strip()))


def _read_chunked(reader: BinaryIO) -> bytes:
    pieces: list[bytes] = []
    while True:
        line = _read_line(reader, "chunk size")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(pieces)) from None
        if size == 0:
            while _read_line(reader, "trailer line") not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(pieces)
        piece = reader.read(size)
        if len(piece) < size:
            raise http.client.IncompleteRead(b"".join(pieces) + piece, size - len(piece))
        pieces.append(piece)
        reader.read(2)  # the chunk's CRLF


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
