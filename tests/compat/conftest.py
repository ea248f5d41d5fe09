"""A real qruntime server for the whole module, and the official client pointed at it."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Any CRN will do: qruntime decides access from the token, not the instance.
CRN = "crn:v1:qruntime:public:quantum-computing:local:a/tests::"


@dataclass
class CompatServer:
    url: str
    api_url: str
    db_url: str
    admin_token: str
    settings: Any

    def add_user(self, name: str) -> str:
        from qruntime.server.services import auth
        from qruntime.server.store.database import Database

        db = Database(self.db_url)
        try:
            with db.session() as session:
                _, token = auth.create_user(session, name=name)
        finally:
            db.dispose()
        return token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def compat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatServer]:
    """One real uvicorn server per test module: starting one costs seconds."""
    import uvicorn

    from qruntime.server.api.ibm import PREFIX
    from qruntime.server.app import create_app
    from qruntime.server.settings import Settings

    port = _free_port()
    path: Path = tmp_path_factory.mktemp("compat") / "qruntime.db"
    settings = Settings(
        db_url=f"sqlite:///{path}",
        host="127.0.0.1",
        port=port,
        admin_token="qrt_admin_" + secrets.token_hex(16),
        interactive_ttl=5,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-compat", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the compat test server did not start")
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    yield CompatServer(
        url=base,
        api_url=base + PREFIX,
        db_url=settings.db_url,
        admin_token=settings.admin_token or "",
        settings=settings,
    )
    server.should_exit = True
    thread.join(timeout=30)


def point_client_at(
    monkeypatch: pytest.MonkeyPatch, server: CompatServer, token: str, tmp_path: Path
) -> None:
    """The environment of ``eval "$(qruntime env --ibm)"``, and no saved accounts."""
    from qruntime.cli.ibm_env import ibm_environment

    for name, value in ibm_environment(url=server.url, token=token).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def ibm_service(
    compat_server: CompatServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    """``QiskitRuntimeService()`` configured by the environment alone, as the admin."""
    from qiskit_ibm_runtime import QiskitRuntimeService

    point_client_at(monkeypatch, compat_server, compat_server.admin_token, tmp_path)
    return QiskitRuntimeService()
