"""The ``qruntime`` command as a user runs it: real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from bench.harness import free_port

QRUNTIME = [sys.executable, "-m", "qruntime.cli.main"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QRUNTIME, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def login(url: str, token: str) -> httpx.Response:
    return httpx.post(f"{url}/users/loginWithToken", json={"apiToken": token})


def test_serve_creates_admin_prints_its_token_and_serves(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    port = free_port()
    process = subprocess.Popen(
        [*QRUNTIME, "serve", "--port", str(port), "--db", f"sqlite:///{db}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while True:
            line = process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
            if line.startswith("API:"):
                break
        token = lines[lines.index("Created the user 'admin'. Its API token (shown once):\n") + 1]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never answered"
            time.sleep(0.1)
        assert login(url, token.strip()).status_code == 200
        assert httpx.get(f"{url}/docs").status_code == 200
        assert (db.stat().st_mode & 0o777) == 0o600
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_users_add_prints_the_token_last_and_it_logs_in(tmp_path: Path, make_server) -> None:
    server = make_server(db_url=f"sqlite:///{tmp_path / 'shared.db'}")
    result = run("users", "add", "carol", "--db", server.db_url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert login(server.url, token).status_code == 200

    listed = run("users", "list", "--db", server.db_url)
    assert "carol" in listed.stdout
    assert "admin" in listed.stdout

    revoked = run("tokens", "revoke", "carol", "--db", server.db_url)
    assert revoked.returncode == 0
    assert "1" in revoked.stdout
    assert login(server.url, token).status_code == 401


def test_users_add_refuses_a_duplicate_with_a_clear_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    assert run("users", "add", "dave", "--db", db).returncode == 0
    again = run("users", "add", "dave", "--db", db)
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_admin_token_from_the_environment_is_used(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    result = run(
        "users", "list", "--db", db, env={"QRUNTIME_ADMIN_TOKEN": "qrt_my_own_admin_token"}
    )
    assert result.returncode == 0
    from qruntime.server.services import auth
    from qruntime.server.store import users as store
    from qruntime.server.store.database import Database

    database = Database(db)
    with database.session() as session:
        found = store.user_for_api_token(
            session, token_hash=auth.hash_token("qrt_my_own_admin_token")
        )
        assert found is not None
        assert found[0].name == "admin"
    database.dispose()
