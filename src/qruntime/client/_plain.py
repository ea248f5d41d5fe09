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
wakes for the headers only to wait for the body. `_Connection` sends them in one.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.request
from typing import Any
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
        self._idle: list[http.client.HTTPConnection] = []
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
        connection: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        connection.request(method, target, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        response = httpx.Response(answer.status, headers=answer.getheaders(), content=content)
        if answer.will_close:
            connection.close()
        else:
            self._release(connection)
        return response

    def _connection(
        self, timeout: float, *, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
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

    def _release(self, connection: http.client.HTTPConnection) -> None:
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


class _Connection(http.client.HTTPConnection):
    """``http.client``'s connection, sending each request (headers and body) in one send."""

    _held: list[bytes] | None = None

    def request(  # type: ignore[override]  # the same parameters, passed on
        self, method: str, url: str, body: bytes | None = None, headers: Any = None, **kw: Any
    ) -> None:
        self._held = []
        try:
            super().request(method, url, body, {} if headers is None else headers, **kw)
        finally:
            held, self._held = self._held, None
        if held:
            super().send(b"".join(held))  # connects first if need be, as http.client does

    def send(self, data: Any) -> None:
        if self._held is None:
            super().send(data)
        elif isinstance(data, bytes | bytearray | memoryview):
            self._held.append(bytes(data))
        else:  # a file-like body: what is held goes first, the rest as http.client sends it
            held, self._held = self._held, None
            if held:
                super().send(b"".join(held))
            super().send(data)
            self._held = []


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
