"""Rendering the dashboard's templates: `render`, and the error and not-found pages.

Templates live in ``ui/templates`` (package data) and are autoescaped. Every page gets,
besides what its route passes: ``user`` (the signed-in `User`, or None), ``is_admin``,
``csrf_token`` (and ``csrf_input()``, the hidden field every POST form needs), ``nav``
(the active section: overview, jobs, sessions, programs, backends, admin), ``request``
and ``static`` (the URL of a file under ``ui/static``). Filters: ``when`` (a time in
UTC), ``duration`` (seconds, readable), ``short_id`` (the first characters of an id),
``resources`` (what a node has, as ``CPU=2 GPU=1``).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup, escape

from qruntime.schemas.server import resources_text

__all__ = ["TEMPLATES", "render", "render_error", "render_not_found"]

#: The folder of the dashboard's templates.
TEMPLATES = Path(__file__).parent / "templates"

_NAV = ("jobs", "sessions", "programs", "backends", "admin")


def when(value: datetime | str | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC`` (the store keeps UTC); an em dash for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """``1.234 s``, ``2 min 5 s``, ``3 h 02 min``; an em dash for none."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def short_id(value: str | None, length: int = 10) -> str:
    return "—" if not value else value[:length]


@pass_context
def _csrf_input(context: Any) -> Markup:
    token = context.get("csrf_token") or ""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(token))


@functools.cache
def environment() -> Environment:
    """The templates' environment, built on first use (nothing at import time)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, short_id=short_id, resources=resources_text)
    env.globals["csrf_input"] = _csrf_input
    return env


def _nav(path: str) -> str:
    rest = path.removeprefix("/ui").strip("/")
    section = rest.split("/", 1)[0]
    return section if section in _NAV else "overview"


def _static(request: Request) -> Any:
    root = request.scope.get("root_path", "")

    def static(name: str) -> str:
        return f"{root}/ui/static/{name}"

    return static


def render(
    request: Request, template_name: str, /, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """The page ``template_name`` rendered with ``context`` and the dashboard's common names.

    The caller is the one `auth.ui_caller` found for this request (None on pages that
    need no sign-in); ``nav`` defaults to the section of the request's path.
    """
    user = getattr(request.state, "ui_user", None)
    page: dict[str, Any] = {
        "request": request,
        "user": user,
        "is_admin": bool(user is not None and user.is_admin),
        "csrf_token": getattr(request.state, "ui_csrf", ""),
        "nav": _nav(request.url.path),
        "static": _static(request),
        "root": request.scope.get("root_path", ""),
    }
    page.update(context)
    html = environment().get_template(template_name).render(page)
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={
            # Pages are per user and may show secrets (a new token): not cached, not framed.
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
            ),
            "Referrer-Policy": "same-origin",
        },
    )


def render_error(
    request: Request, status_code: int, message: str, *, title: str | None = None
) -> HTMLResponse:
    """The error page: a readable ``message`` and a way back, never a traceback."""
    titles = {
        400: "That did not work",
        403: "Not allowed",
        404: "Not found",
        409: "Not now",
        429: "Too many requests",
    }
    heading = title or titles.get(status_code, "Something went wrong")
    return render(
        request,
        "error.html",
        status_code=status_code,
        title=heading,
        message=message,
        status=status_code,
    )


def render_not_found(request: Request, message: str | None = None) -> HTMLResponse:
    """The 404 page; the same for a thing that does not exist and one that is not yours."""
    return render_error(
        request,
        404,
        message or "There is nothing here, or it is not yours to see.",
        title="Not found",
    )
