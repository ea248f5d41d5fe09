"""Request bodies bounded by route while they arrive, before anything else reads them.

The application calls `BodyLimit` first for every HTTP request, before `HotRoutes`,
authentication and FastAPI, so no layer can buffer more than a route allows: not a
body sent chunked (without a ``Content-Length``), and not one sent before any token
is checked. Each route has its limit (`BodyLimits`): small for the logins, which
anyone may call; the program limit for program sources; the input limit for jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qruntime.errors import PayloadTooLargeError
from qruntime.server.api.errors import error_response
from qruntime.server.api.ibm import PREFIX as IBM_PREFIX
from qruntime.server.settings import Settings

__all__ = ["BodyLimit", "BodyLimits", "route_path"]

#: The logins: a token, a form with an API key; anyone may send them.
ANONYMOUS_BYTES = 64 * 1024
#: Every other body: tags, a session, a user, a program's metadata.
DEFAULT_BYTES = 1024 * 1024
#: What a job's JSON holds besides its inputs (``max_input_bytes`` counts compact
#: JSON; whitespace and the other fields come on top).
JOB_OVERHEAD_BYTES = 1024 * 1024
#: What a program's JSON holds besides its base64 source: name, description
#: (10,000 characters, up to 6 bytes each when escaped), and its spec's JSON Schemas.
PROGRAM_OVERHEAD_BYTES = 256 * 1024
#: How far over its route's limit a refused body's ``Content-Length`` may be for the
#: server to discard the rest and keep the connection (at least this; else the limit).
DRAIN_BYTES = 16 * 1024 * 1024

_ANONYMOUS_POSTS = frozenset({"/users/loginWithToken", f"{IBM_PREFIX}/identity/token"})
_JOB_POSTS = frozenset({"/jobs", f"{IBM_PREFIX}/jobs"})
_PROGRAMS = "/programs"
# Where a request carries its access token (`qruntime.server.api.deps.token_of`).
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-access-token"})


@dataclass(frozen=True)
class BodyLimits:
    """The most bytes a request body may have, by route (`for_request`)."""

    anonymous: int
    programs: int
    jobs: int
    default: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        """Limits that let through every body the services would accept, and little more."""
        base64_source = -(-settings.max_program_bytes * 4 // 3)  # base64 is 4/3, rounded up
        return cls(
            anonymous=ANONYMOUS_BYTES,
            programs=base64_source + PROGRAM_OVERHEAD_BYTES,
            jobs=settings.max_input_bytes + JOB_OVERHEAD_BYTES,
            default=DEFAULT_BYTES,
        )

    def for_request(self, method: str, path: str) -> int:
        """The limit of a body sent with ``method`` to ``path`` (relative to the API root)."""
        if method == "POST":
            if path in _JOB_POSTS:
                return self.jobs
            if path == _PROGRAMS:
                return self.programs
            if path in _ANONYMOUS_POSTS:
                return self.anonymous
        elif path.startswith(_PROGRAMS + "/") and (
            (method == "PUT" and path.endswith("/data")) or method == "PATCH"
        ):
            return self.programs
        return self.default


def route_path(scope: Scope) -> str:
    """The request's path relative to the API root (``root_path`` removed)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :]
    return path


class BodyLimit:
    """An ASGI layer: a body over its route's limit gets 413 and is read no further.

    A ``Content-Length`` over the limit is refused before a byte of the body is read. One
    within it passes untouched (the server reads no more than the length: HTTP framing),
    so the hot path pays a look at the headers and a comparison. A chunked body is
    counted as it arrives: once the count passes the limit, the client gets 413 and the
    application sees a client that left (``http.disconnect``), whatever reads the body.
    A request with neither header has no body (RFC 9112, 6.3) and passes untouched. A
    request with no credentials at all gets the anonymous limit, whatever its route: a
    stranger cannot make the server read a job-sized body only to answer 401.

    After a 413 the connection must not carry the rest of the body as a next request.
    When the refused length is known and at most the limit again (or `DRAIN_BYTES`) over
    it, the connection stays open and the server (uvicorn) discards that much as it
    arrives, without buffering it: a client that writes its whole body before reading the
    answer reads the 413, not a broken pipe. Otherwise (longer; chunked, with no end in
    sight; or announced with ``Expect: 100-continue``, which a client may then never send)
    the 413 says ``Connection: close`` and the server closes the connection.
    """

    def __init__(self, app: ASGIApp, *, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = credentials = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name in _CREDENTIAL_HEADERS:
                credentials = True
        if length is None and not chunked:
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(scope["method"], route_path(scope))
        if not credentials:
            # No token at all: the request will be refused (or is a login); whatever it
            # is, it need not send more than an anonymous one may.
            limit = min(limit, self.limits.anonymous)
        if not chunked and length is not None and length.isdigit():
            excess = int(length) - limit
            if excess > 0:
                close = excess > max(limit, DRAIN_BYTES) or _expects_continue(scope)
                await _refusal(limit, close=close)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        counted = _CountedBody(scope, receive, send, limit=limit)
        await self.app(scope, counted.receive, counted.send)


def _expects_continue(scope: Scope) -> bool:
    # Such a client may never send the body it announced: only a close ends the request.
    return any(name == b"expect" for name, _ in scope["headers"])


def _refusal(limit: int, *, close: bool) -> ASGIApp:
    error = PayloadTooLargeError(
        f"The request body is larger than this route's limit of {limit} bytes."
    )
    return error_response(error, close=close)


class _CountedBody:
    """``receive`` and ``send`` of one request whose body is counted as it arrives."""

    __slots__ = ("_receive", "_scope", "_send", "limit", "received", "refused", "started")

    def __init__(self, scope: Scope, receive: Receive, send: Send, *, limit: int) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self.limit = limit
        self.received = 0
        self.refused = False
        self.started = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.refused = True
                if not self.started:  # else the connection closes on the cut response
                    await _refusal(self.limit, close=True)(self._scope, self._receive, self._send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the application's answer to a client it believes gone
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
