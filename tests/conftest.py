"""Shared fixtures: temporary databases (SQLite and PostgreSQL) and real uvicorn servers."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bench.harness import free_port

PG_ADMIN_URL = os.environ.get("QRUNTIME_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server's admin URL; skips locally when absent, fails in CI."""
    if not _postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but not reachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    return PG_ADMIN_URL


@contextmanager
def new_database(admin: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server that ``admin`` (a URL or conninfo
    of a database there) reaches; yields its name and drops it afterwards."""
    import psycopg

    name = f"qrt_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    base = postgres_admin_url.rsplit("/", 1)[0]
    with new_database(postgres_admin_url) as name:
        yield f"postgresql+psycopg://{base.split('://', 1)[1]}/{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'qruntime.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qruntime.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class RunningServer:
    """A real uvicorn server on a free port, in a thread of the test process."""

    url: str
    db_url: str
    admin_token: str
    settings: Any
    app: Any = None
    _tokens: dict[str, str] = field(default_factory=dict)
    _services: list[Any] = field(default_factory=list)

    def add_user(self, name: str, *, admin: bool = False) -> str:
        """Create a user directly in the store and return its API token."""
        from qruntime.server.services import auth
        from qruntime.server.store.database import Database

        db = Database(self.db_url)
        try:
            with db.session() as session:
                _, token = auth.create_user(session, name=name, is_admin=admin)
        finally:
            db.dispose()
        self._tokens[name] = token
        return token

    def service(self, token: str | None = None, **kwargs: Any) -> Any:
        from qruntime import RuntimeService

        service = RuntimeService(url=self.url, token=token or self.admin_token, **kwargs)
        self._services.append(service)
        return service

    def close(self) -> None:
        for service in self._services:
            service.close()


def start_server(settings: Any) -> tuple[Any, threading.Thread]:
    import uvicorn

    from qruntime.server.app import create_app

    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server failed to start")
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start within 60 s")
        time.sleep(0.01)
    return server, thread


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start real servers with given settings; all are stopped after the test."""
    from qruntime.server.settings import Settings

    running: list[tuple[Any, threading.Thread]] = []
    servers: list[RunningServer] = []

    def make(db_url: str | None = None, **overrides: Any) -> RunningServer:
        admin_token = "qrt_admin_" + secrets.token_hex(16)
        port = free_port()
        settings = Settings(
            db_url=db_url or f"sqlite:///{tmp_path / f'server-{port}.db'}",
            host="127.0.0.1",
            port=port,
            admin_token=admin_token,
            **overrides,
        )
        running.append(start_server(settings))
        servers.append(
            RunningServer(
                url=f"http://127.0.0.1:{port}",
                db_url=settings.db_url,
                admin_token=admin_token,
                settings=settings,
                app=running[-1][0].config.app,
            )
        )
        return servers[-1]

    yield make
    for running_server in servers:
        running_server.close()
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    """A real server on a fresh SQLite database."""
    return make_server()


@pytest.fixture(autouse=True)
def _isolated_accounts(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tests away from the user's saved accounts and environment."""
    monkeypatch.setenv("QRUNTIME_ACCOUNTS", str(tmp_path_factory.mktemp("accounts") / "a.json"))
    for name in ("QRUNTIME_URL", "QRUNTIME_TOKEN", "QRUNTIME_DB", "QRUNTIME_CONFIG"):
        monkeypatch.delenv(name, raising=False)
