"""The FastAPI application: `create_app(settings)` builds it, its lifespan owns every resource."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.types import ASGIApp, Receive, Scope, Send

from qruntime._version import __version__
from qruntime.backends import Catalogue, load_catalogue
from qruntime.schemas.errors import ErrorBody
from qruntime.schemas.server import Health
from qruntime.server.api import ibm
from qruntime.server.api.body_limit import BodyLimit, BodyLimits
from qruntime.server.api.docs import install_docs
from qruntime.server.api.errors import install_error_handlers
from qruntime.server.api.hot import HotRoutes
from qruntime.server.api.openapi import API_DESCRIPTION, complete_openapi
from qruntime.server.api.routes import auth, backends, cluster, jobs, programs, sessions, usage
from qruntime.server.api.state import AppState
from qruntime.server.executor.base import Executor
from qruntime.server.executor.local import LocalExecutor
from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.services import auth as auth_service
from qruntime.server.services import programs as program_service
from qruntime.server.settings import Settings
from qruntime.server.store.cluster import PREPARE_LOCK
from qruntime.server.store.database import Database
from qruntime.server.store.migrate import upgrade
from qruntime.server.ui import install_dashboard

__all__ = ["create_app", "prepare_database"]

logger = logging.getLogger("qruntime.server")


def prepare_database(settings: Settings, db: Database | None = None) -> str | None:
    """Migrate the schema, create the first users and register the built-in programs.

    Idempotent. Returns the admin's new API token when this call created the admin.
    """
    own = db is None
    database = db or Database(settings.db_url)
    try:
        with _prepare_lock(database):
            upgrade(database.engine)
            with database.session() as session:
                token = auth_service.bootstrap(session, admin_token=settings.admin_token)
                if settings.builtin_programs:
                    program_service.sync_builtin_programs(session)
        return token
    finally:
        if own:
            database.dispose()


@contextmanager
def _prepare_lock(database: Database) -> Iterator[None]:
    """On PostgreSQL, one server at a time prepares the database (servers started
    together would otherwise race to migrate it and to create the admin)."""
    if database.is_sqlite:
        yield
        return
    with database.engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(PREPARE_LOCK)))
        try:
            yield
        finally:
            connection.execute(select(func.pg_advisory_unlock(PREPARE_LOCK)))
            connection.commit()


class _App(FastAPI):
    """FastAPI, with HTTP requests passed to `http_stack` before FastAPI's own layers.

    The stack is `BodyLimit`, then `HotRoutes`: every body is bounded before anything
    reads it, and FastAPI's fixed outer layers (its error middleware, its telemetry
    check) cost as much per request as `HotRoutes`' own work on a job's two requests;
    `HotRoutes` hands every other request to FastAPI's full stack.
    """

    http_stack: ASGIApp | None = None

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            complete_openapi(super().openapi())  # the errors every request may get
        return super().openapi()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stack = self.http_stack
        if stack is not None and scope["type"] == "http":
            scope["app"] = self  # as Starlette sets it: the routes find their state there
            await stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _executor(settings: Settings) -> Executor:
    """The executor ``settings`` name: local worker processes, or a Ray cluster."""
    if settings.executor == "ray":
        from qruntime.server.executor.ray import RayExecutor

        return RayExecutor.from_settings(settings)
    return LocalExecutor.from_settings(settings)


def _runtime(settings: Settings, *, catalogue: Catalogue, executor: Executor) -> JobRuntime:
    """The job runtime: alone on SQLite; on PostgreSQL, one of any number of servers that
    share the database, of which one leads (`ClusterRuntime`)."""
    server_id = secrets.token_hex(4)
    db = Database(settings.db_url, server_id=server_id)
    if db.is_sqlite:
        return JobRuntime(
            db=db,
            catalogue=catalogue,
            executor=executor,
            fair_share_window=settings.fair_share_window,
            server_id=server_id,
            listen=f"{settings.host}:{settings.port}",
        )
    from qruntime.server.scheduler.cluster import ClusterRuntime

    return ClusterRuntime(
        db=db,
        catalogue=catalogue,
        executor=executor,
        server_id=server_id,
        fair_share_window=settings.fair_share_window,
        listen=f"{settings.host}:{settings.port}",
    )


def create_app(
    settings: Settings,
    *,
    catalogue: Catalogue | None = None,
    executor: Executor | None = None,
    prepare: bool = True,
) -> FastAPI:
    """A qruntime server for ``settings``; nothing is opened until the app starts.

    ``executor`` defaults to the one ``settings.executor`` names (local sandboxed worker
    processes, or a Ray cluster). ``prepare=False`` skips
    `prepare_database` at start, for a caller that has just run it (``qruntime serve``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = catalogue or load_catalogue(settings.config_file)
        for reason in backends.unavailable.values():
            logger.warning("%s", reason)  # says what to install
        runtime = _runtime(settings, catalogue=backends, executor=executor or _executor(settings))
        db = runtime.db
        # The workers warm up (imports, simulators) while the database is prepared.
        runtime.start_executor()
        if prepare:
            token = await asyncio.to_thread(prepare_database, settings, db)
            if token is not None:
                logger.warning("Created the user 'admin' with API token: %s", token)
        app.state.qruntime = AppState(settings=settings, db=db, catalogue=backends, runtime=runtime)
        await runtime.start()
        # What start-up made (modules, the recovered queue) lives as long as the server:
        # the cyclic collector need not walk it again on every full collection.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # what this server made may now be garbage (tests start many)
            await runtime.stop()
            app.state.qruntime.close()
            db.dispose()

    app = _App(
        title="qruntime",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, from this server rather than a CDN
        redoc_url=None,
        # Every error answer has one shape; "4XX" also replaces FastAPI's 422 (ours are 400).
        responses={
            "4XX": {"model": ErrorBody, "description": "A client error."},
            "5XX": {"model": ErrorBody, "description": "A server error."},
        },
    )
    install_error_handlers(app)
    # The jobs routes first: routes are matched in order, and they take most requests.
    for router in (
        jobs.router,
        sessions.router,
        programs.router,
        backends.router,
        auth.router,
        usage.router,
        cluster.router,
    ):
        app.include_router(router)
    app.include_router(ibm.router)  # qiskit-ibm-runtime's API, under ibm.PREFIX
    install_docs(app)  # /docs, /redoc and their files, from this server
    install_dashboard(app)  # / and /ui/...: the web dashboard, after every API route
    # Before every layer: bodies bounded by route, then a job's two requests skip
    # FastAPI's middleware, routing and dependencies; HotRoutes passes the rest to
    # FastAPI's full stack.
    app.http_stack = BodyLimit(
        HotRoutes(partial(FastAPI.__call__, app)), limits=BodyLimits.from_settings(settings)
    )

    @app.get("/health", tags=["server"], response_model=Health, summary="Server health")
    def health() -> dict[str, Any]:
        """Whether the server answers, and its version; no token needed. While the server
        shuts down (it lets running jobs finish, refuses new ones), ``status`` is
        ``stopping``. ``leader``: whether this server runs the scheduler (of several
        servers on one PostgreSQL, one does; a lone server always does)."""
        state: AppState | None = getattr(app.state, "qruntime", None)
        stopping = state is not None and state.runtime.draining
        leader = state is None or state.runtime.leading
        return {
            "status": "stopping" if stopping else "ok",
            "version": __version__,
            "leader": leader,
        }

    return app
