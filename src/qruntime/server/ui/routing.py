"""Dashboard routes answer errors with pages: `UiRoute` and `page_router`.

The API's error handlers answer JSON; a person in a browser gets a page instead. A
route of a `page_router` turns what its dependencies and its handler raise into the
dashboard's answers: `SignInRequired` into a redirect to the sign-in page, a
`QRuntimeError` into the error page with its status and message (a `NotFoundError`
into the one not-found page), an invalid query or form into a 400 page. Anything
else is logged and shown as a 500 page that says nothing of the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from qruntime.errors import NotFoundError, QRuntimeError
from qruntime.server.ui.auth import SignInRequired, signin_url
from qruntime.server.ui.render import render_error, render_not_found

__all__ = ["UiRoute", "page_router"]

logger = logging.getLogger("qruntime.server.ui")


def _field(location: tuple[object, ...]) -> str:
    names = [str(part) for part in location if part not in ("query", "path", "body")]
    return ".".join(names) or "the request"


def error_page(request: Request, error: Exception) -> Response:
    """The dashboard's answer for ``error`` raised while serving ``request``."""
    if isinstance(error, SignInRequired):
        expired = "expired" in error.message
        return RedirectResponse(signin_url(error.next_url, expired=expired), status_code=303)
    if isinstance(error, NotFoundError):
        return render_not_found(request, error.message or None)
    if isinstance(error, QRuntimeError):
        return render_error(request, error.status_code, error.message)
    if isinstance(error, RequestValidationError):
        problems = [f"{_field(e['loc'])}: {e['msg']}" for e in list(error.errors())[:5]]
        return render_error(request, 400, "Please check the input. " + "; ".join(problems) + ".")
    logger.error("unexpected error on a dashboard page", exc_info=error)
    return render_error(
        request, 500, "Something went wrong on the server; its log says what. Try again."
    )


class UiRoute(APIRoute):
    """An `APIRoute` whose errors become dashboard pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:  # a page, never a traceback (causes go to the log)
                return error_page(request, error)

        return page_handler


def page_router() -> APIRouter:
    """A router for dashboard pages: `UiRoute`s, left out of the API's OpenAPI document."""
    return APIRouter(route_class=UiRoute, include_in_schema=False)
