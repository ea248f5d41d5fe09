"""The two requests every job makes, served without FastAPI's per-request machinery.

A job is one ``POST /jobs`` and, to await it, one ``GET /jobs/{id}/results``. Through
FastAPI each of them passes its exception and exit-stack middleware, the router's
match over every route, dependency solving and response validation: about half of
the server's CPU per job, measured with py-spy on a loop of small jobs.

`HotRoutes` answers the ordinary case of these two requests itself, with the same
functions the routes call (`AppState.queue_job`, `routes.jobs.results_response`):
a JSON body that validates, a token the token cache knows, a well-formed ``wait``.
Anything else (an unknown token, a body that fails validation, an odd query, a body
without a length) goes to FastAPI unchanged, the body replayed, so every error answer
and the OpenAPI description stay FastAPI's. Errors raised by the services themselves
become the same answers the application's exception handlers give.

`qruntime.server.api.body_limit.BodyLimit` runs before it: a body it reads has a
``Content-Length`` within the route's limit, and a chunked one it hands on is counted.
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qruntime.errors import QRuntimeError
from qruntime.schemas.jobs import JobCreate
from qruntime.server.api.body_limit import route_path
from qruntime.server.api.deps import token_of
from qruntime.server.api.errors import error_response, unexpected_error_response
from qruntime.server.api.routes.jobs import results_response
from qruntime.server.api.state import AppState
from qruntime.server.store.tables import User

__all__ = ["HotRoutes"]

_RESULTS_SUFFIX = "/results"
_MAX_WAIT = 300.0  # as the route's Query(le=300)


class HotRoutes:
    """``POST /jobs`` and ``GET /jobs/{id}/results`` on a short path; the rest to ``app``.

    The application calls it before any of FastAPI's layers (after `BodyLimit`); ``app``
    is FastAPI's full stack. It reads a body only when it has a length, which `BodyLimit`
    has compared with the route's limit already.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            method = scope["method"]
            if method == "POST" and path == "/jobs":
                await self._submit(scope, receive, send)
                return
            if method == "GET" and path.startswith("/jobs/") and path.endswith(_RESULTS_SUFFIX):
                job_id = path[len("/jobs/") : -len(_RESULTS_SUFFIX)]
                if job_id and "/" not in job_id:
                    await self._results(scope, receive, send, job_id)
                    return
        await self.app(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        length = headers.get(b"content-length", b"")
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        user = _cached_user(scope, headers)
        if user is None or content_type != b"application/json" or not length.isdigit():
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        try:
            payload = JobCreate.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        response: Response
        try:
            state = _state(scope)
            job = await state.queue_job(user, payload, size=len(body))
        except QRuntimeError as error:
            response = error_response(error)
        except Exception as exc:  # the application's 500, never a dropped request
            response = unexpected_error_response(exc)
        else:
            text = json.dumps({"id": job.id, "backend": job.backend}, separators=(",", ":"))
            response = Response(text, status_code=201, media_type="application/json")
        await response(scope, receive, send)

    async def _results(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> None:
        headers = _headers(scope)
        user = _cached_user(scope, headers)
        wait = _wait(scope["query_string"])
        if user is None or wait is None:
            await self.app(scope, receive, send)
            return
        response: Response
        try:
            response = await results_response(_state(scope), user, job_id, wait)
        except QRuntimeError as error:
            response = error_response(error)
        except Exception as exc:  # the application's 500, never a dropped request
            response = unexpected_error_response(exc)
        await response(scope, receive, send)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    # ASGI header names are lower-case; a repeated header keeps its last value.
    return dict(scope["headers"])


def _state(scope: Scope) -> AppState:
    state: AppState = scope["app"].state.qruntime
    return state


def _cached_user(scope: Scope, headers: dict[bytes, bytes]) -> User | None:
    """The user of the request's token when the token cache knows it, else None."""
    authorization = headers.get(b"authorization")
    legacy = headers.get(b"x-access-token")
    token = token_of(
        None if authorization is None else authorization.decode("latin-1"),
        None if legacy is None else legacy.decode("latin-1"),
    )
    return _state(scope).tokens.get(token) if token else None


def _wait(query: bytes) -> float | None:
    """``wait`` of the query string (0 when absent); None when FastAPI should judge it."""
    if not query:
        return 0.0
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    waits = [value for key, value in pairs if key == "wait"]
    if not waits:
        return 0.0
    if len(waits) > 1:
        return None
    try:
        wait = float(waits[0])
    except ValueError:
        return None
    return wait if math.isfinite(wait) and 0 <= wait <= _MAX_WAIT else None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, and whether the client went away before sending all of it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the application: the body already read, then the client's own."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
