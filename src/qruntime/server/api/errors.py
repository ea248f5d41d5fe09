"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from qruntime.errors import (
    InputValueError,
    NotAuthorizedError,
    NotFoundError,
    QRuntimeError,
    RateLimitedError,
    error_class_for,
)

__all__ = [
    "error_response",
    "http_error_response",
    "install_error_handlers",
    "unexpected_error_response",
]

logger = logging.getLogger("qruntime.server")


def error_response(error: QRuntimeError, *, close: bool = False) -> JSONResponse:
    """The answer for ``error``; ``close`` ends the connection after it (a body left unread)."""
    headers: dict[str, str] = {}
    if isinstance(error, NotAuthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, RateLimitedError) and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    if close:
        headers["Connection"] = "close"
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers or None)


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """A 500 that says nothing of the cause, which goes to the server's log."""
    logger.exception("unexpected error while serving a request", exc_info=exc)
    return error_response(QRuntimeError("Internal server error; see the server's log."))


def http_error_response(
    status_code: int, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The answer for an HTTP error Starlette or FastAPI raised (404, 405, ...).

    The body's ``status_code`` and ``code`` always match the response's status: the
    error class of that status where qruntime has one, else a code named after the
    status (``unsupported_media_type``), so no 4xx ever reads as an internal error.
    """
    cls = NotFoundError if status_code == 404 else error_class_for(None, status_code)
    if cls.status_code == status_code:
        body = cls(message).to_dict()
    else:
        try:
            code = HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = f"http_{status_code}"
        detail = {"message": message, "code": code, "status_code": status_code}
        body = {"errors": [detail], "error": detail}
    return JSONResponse(body, status_code=status_code, headers=headers)


#: The methods the API's routes use; an ``Allow`` header names those a path answers.
_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path (Starlette names only the
    methods of the first route on it)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for error in errors[:5]:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]  # type: ignore[attr-defined]
        where = ".".join(location) or "request body"
        parts.append(f"{where}: {error.get('msg')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QRuntimeError)
        return error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(InputValueError(_describe(list(exc.errors()))))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only.
            methods = allowed_methods(request)
            if methods:
                headers = {**(headers or {}), "Allow": ", ".join(methods)}
        return http_error_response(exc.status_code, str(exc.detail), headers=headers)

    async def on_client_disconnect(_request: Request, _exc: Exception) -> JSONResponse:
        # The client went away while its body was read (or `BodyLimit` refused the body
        # and answered already): not a server error, and nobody reads this answer.
        return error_response(InputValueError("The client closed the request."))

    async def on_unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(exc)

    app.add_exception_handler(QRuntimeError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(Exception, on_unexpected_error)
