"""The web dashboard: pages at ``/`` and ``/ui/...``, served by the server itself.

`install_dashboard(app)` (called by `create_app`) mounts the assets at ``/ui/static``,
sends ``/`` to ``/ui/``, and includes the router of every module in
``qruntime.server.ui.pages`` (each module that defines ``router``), then a catch-all
that gives the not-found page for any other ``/ui/...`` path.

How a page is written (the seam every page module uses)::

    from qruntime.server.api.deps import DbDep, StateDep
    from qruntime.server.ui.auth import UiCaller, UiFormDep
    from qruntime.server.ui.render import render
    from qruntime.server.ui.routing import page_router

    router = page_router()  # UiRoute: errors become pages, not JSON; not in OpenAPI

    @router.get("/ui/things/{thing_id}")
    def thing(thing_id: str, request: Request, db: DbDep, user: UiCaller) -> Response:
        found = thing_service.get_thing(db, user=user, thing_id=thing_id)  # same as the API
        return render(request, "thing.html", thing=found)

    @router.post("/ui/things/{thing_id}/delete")
    def delete(thing_id: str, request: Request, db: DbDep, user: UiCaller, form: UiFormDep):
        thing_service.delete_thing(db, user=user, thing_id=thing_id)
        return RedirectResponse("/ui/things", status_code=303)

- ``UiCaller`` is the signed-in `User` (the API's ``UserDep`` gives the same object);
  without a live sign-in the page redirects to ``/ui/signin?next=...``, which says why.
- ``UiFormDep`` (`auth.csrf_protected`): put it on **every POST**; it checks the origin
  and the form's ``csrf_token`` and returns the parsed form (``form["x"]``,
  ``form.getlist("x")``). Forms include ``{{ csrf_input() }}``.
- Services raise the same `NotFoundError` for "does not exist" and "not yours"; a page
  route lets it propagate and gets the one not-found page (`render.render_not_found`).
  Any `QRuntimeError` becomes the error page with its message and status; a bad query
  parameter, a 400 page. To show a form error on the form's own page instead, catch
  the error and ``render(request, "x.html", status_code=400, error=str(error), ...)``.
- Templates extend ``base.html`` and fill ``title``, ``content`` and ``scripts``;
  ``render`` adds ``user``, ``is_admin``, ``csrf_token``, ``nav``, ``static(name)``.
  The page's Content-Security-Policy allows scripts from ``/ui/static`` only (no inline
  script; pass data in ``data-*`` attributes or a ``<script type="application/json">``).
  Shared CSS classes are listed at the top of ``static/app.css``.

Live updates (`events`): server-sent events, fed by the hub the API's streams use.
Streams: ``/ui/events/jobs/{id}`` (one job: ``state``, ``interim``, ``log``; then
``end``), ``/ui/events/jobs`` (``changed``: one of the caller's jobs was queued, started
or ended; admins hear of everyone's) and ``/ui/events/queue`` (``changed``: any job on
any backend was queued, started or ended; no job ids). The simplest way to use them is
declarative: an element ``<div id="sessions-table" data-refresh-on="/ui/events/jobs">``
is re-fetched on each ``changed`` (and after a reconnection): `app.js` requests the
page's own URL with ``?fragment=sessions-table`` and swaps in the element of that id
from the answer, one fetch at a time. A route can answer such a request with just that
part (``pages/jobs.py`` does) or with the whole page. From a script::

    qruntime.live(url, {changed(msg) {...}, reconnected() {...}})  // EventSource + banner
    qruntime.refresh("sessions-table")

``qruntime.live`` shows the "Connection lost — reconnecting…" banner while a stream is
down and reconnects (with back-off when the server answered an error).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from qruntime.server.api.deps import StateDep
from qruntime.server.ui import events, pages
from qruntime.server.ui.auth import optional_caller
from qruntime.server.ui.render import render_not_found
from qruntime.server.ui.routing import page_router

__all__ = ["STATIC", "install_dashboard"]

#: The folder of the dashboard's styles and scripts (package data; no build step).
STATIC = Path(__file__).parent / "static"


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: assets, ``/``, every page module, then a 404 page."""
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    router = page_router()

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    app.include_router(router)
    app.include_router(events.router)
    for module in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        page_module = importlib.import_module(f"{pages.__name__}.{module.name}")
        page_routes = getattr(page_module, "router", None)
        if page_routes is not None:
            app.include_router(page_routes)

    fallback = page_router()

    @fallback.api_route("/ui/{rest:path}", methods=["GET", "POST"])
    async def not_found(request: Request, rest: str, state: StateDep) -> Response:
        await optional_caller(request, state)  # the menu, for a signed-in caller
        return render_not_found(request)

    app.include_router(fallback)
