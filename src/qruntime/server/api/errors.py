"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qruntime.errors import (
    InputValueError,
    NotAuthorizedError,
    NotFoundError,
    QRuntimeError,
    error_class_for,
)

logger = logging.getLogger("qruntime.server")


def error_response(error: QRuntimeError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, NotAuthorizedError) else None
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=headers)


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """A 500 that says nothing of the cause, which goes to the server's log."""
    logger.exception("unexpected error while serving a request", exc_info=exc)
    return error_response(QRuntimeError("Internal server error; see the server's log."))


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

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        cls = error_class_for(None, exc.status_code)
        if exc.status_code == 404:
            cls = NotFoundError
        error = cls(str(exc.detail))
        response = JSONResponse(error.to_dict(), status_code=exc.status_code)
        return response

    async def on_unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
        return unexpected_error_response(exc)

    app.add_exception_handler(QRuntimeError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
