"""What the OpenAPI description says beyond the routes' signatures.

Every error answer has one body, `qruntime.schemas.errors.ErrorBody`. A route lists the
errors that its own logic gives with `errors` (403, 404, 409, 429, 503); the errors
that follow from how every request is served are added to each operation by
`complete_openapi`, so that none is forgotten: 400 where there are query or header
parameters or a body to validate, 401 where an access token is needed, 413 where there
is a body (see `qruntime.server.api.body_limit`). qruntime answers a request that fails
validation with 400, never FastAPI's 422.
"""

from __future__ import annotations

from typing import Any

from qruntime.schemas.errors import ErrorBody

__all__ = ["API_DESCRIPTION", "BEARER_DESCRIPTION", "complete_openapi", "errors"]

#: The login flow, for the security scheme (Swagger UI's "Authorize" dialog).
BEARER_DESCRIPTION = """\
An **access token** (not your API token). Get one by posting your API token to
`POST /users/loginWithToken` as `{"apiToken": "qrt_..."}`: the answer's `id` is the
access token, valid for `ttl` seconds; log in again when it expires (401). The
header is `Authorization: Bearer <access token>`; `X-Access-Token: <access token>` is
accepted too. The IBM-compatible API under `/experimental/api` takes the same tokens,
or one from its own `POST /experimental/api/identity/token`.
"""

#: The API's description, shown at the top of ``/docs`` and ``/redoc``.
API_DESCRIPTION = """\
A self-hosted quantum runtime service for Qiskit users: upload runtime programs, run
them as jobs on Aer simulators and noisy device-like backends, alone or in sessions.

**Logging in.** An admin gives you an API token (`qruntime users add NAME`). Exchange
it for an access token with `POST /users/loginWithToken` (`{"apiToken": "qrt_..."}`;
the answer's `id` is the access token) and send that as `Authorization: Bearer ...`.
In this page: log in with *Try it out* on `POST /users/loginWithToken`, then paste the
`id` into **Authorize**. Too many failed logins get 429 with `Retry-After`.

**Errors.** Every error answer has the same JSON body (`ErrorBody`): IBM's `errors`
list and `error`, each with a `message` for people, a stable `code` for programs and
the HTTP `status_code`. Invalid parameters or bodies get 400 (`invalid_input`).

**Stopping.** A server that is shutting down lets running jobs finish and refuses new
ones with 503 (`service_unavailable`); `GET /health` then says `"status": "stopping"`.

**IBM compatibility.** `/experimental/api` serves the REST shapes of IBM Qiskit
Runtime, so that the unmodified `qiskit-ibm-runtime` client works against this server.
"""

#: What each error status means when a route says no more.
MEANINGS = {
    400: "Invalid input: a parameter, a body field or an encoded payload (`invalid_input`).",
    401: (
        "No access token, or one that is unknown, expired or revoked (`not_authorized`): "
        "log in with `POST /users/loginWithToken`."
    ),
    403: "Logged in, but not allowed to do this (`permission_denied`).",
    404: "Not found, or not visible to you: another user's things are never hinted at.",
    409: "Conflicts with the current state (`conflict`, `invalid_state`).",
    413: "The request body is over this route's limit (`payload_too_large`).",
    429: "Too many requests: wait (`Retry-After`) or let queued jobs run first.",
    503: (
        "The server is shutting down and takes no new jobs (`service_unavailable`); "
        "submit again once it has restarted."
    ),
}

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def errors(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses`` for the errors its own logic gives.

    Each is a status (described by `MEANINGS`) or a ``(status, meaning)`` pair that
    says what the status means for this route.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        code, meaning = status if isinstance(status, tuple) else (status, MEANINGS[status])
        responses[code] = {"model": ErrorBody, "description": meaning}
    return responses


def complete_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to every operation of ``schema`` the errors that every request may get (in place)."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            has_body = "requestBody" in operation
            # Every path parameter is a free string: only the others can be invalid.
            checked = [p for p in operation.get("parameters", ()) if p.get("in") != "path"]
            if has_body or checked:
                _add(operation, 400)
            if operation.get("security"):
                _add(operation, 401)
            if has_body:
                _add(operation, 413)
            for status, response in operation["responses"].items():
                if status[0] in "45":  # JSON, whatever the route's success media type is
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
    return schema


def _add(operation: dict[str, Any], status: int) -> None:
    responses: dict[str, Any] = operation["responses"]
    responses.setdefault(
        str(status),
        {"description": MEANINGS[status], "content": {"application/json": {"schema": _ERROR_REF}}},
    )
