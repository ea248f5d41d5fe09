"""The ``qruntime`` command as a user runs it: real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
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
        assert (
            process.stdout.readline()
            == f"Dashboard: http://127.0.0.1:{port}/  (sign in with an API token)\n"
        )
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
        assert httpx.get(f"{url}/").headers["location"].endswith("/ui/")
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
    assert f"Database: {server.db_url}" in result.stderr.splitlines()
    token = result.stdout.strip().splitlines()[-1]
    assert login(server.url, token).status_code == 200

    listed = run("users", "list", "--db", server.db_url)
    assert "carol" in listed.stdout
    assert "admin" in listed.stdout

    revoked = run("tokens", "revoke", "carol", "--db", server.db_url)
    assert revoked.returncode == 0
    assert "1" in revoked.stdout
    assert login(server.url, token).status_code == 401

    nothing = run(
        "tokens", "revoke", "carol", "--token", "qrt_nope_nope_nope", "--db", server.db_url
    )
    assert nothing.returncode == 1
    assert "nothing was revoked" in nothing.stderr
    assert "Revoked" not in nothing.stdout


def test_users_add_refuses_a_duplicate_with_a_clear_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    assert run("users", "add", "dave", "--db", db).returncode == 0
    again = run("users", "add", "dave", "--db", db)
    assert again.returncode == 1
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


def admin_token_in(stderr: str) -> str:
    lines = stderr.splitlines()
    return lines[lines.index("Created the user 'admin'. Its API token (shown once):") + 1]


def test_the_first_admin_token_is_shown_by_whatever_command_creates_admin(
    tmp_path: Path, make_server
) -> None:
    db = f"sqlite:///{tmp_path / 'new.db'}"
    listed = run("users", "list", "--db", db)
    assert listed.returncode == 0, listed.stderr
    token = admin_token_in(listed.stderr)
    assert "admin" in listed.stdout
    again = run("users", "list", "--db", db)
    assert "Created the user" not in again.stderr  # shown once
    server = make_server(db_url=db)
    assert login(server.url, token).status_code == 200


def test_a_later_serve_says_how_to_replace_a_lost_admin_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'q.db'}"
    lost = admin_token_in(run("users", "list", "--db", db).stderr)
    port = free_port()
    process = subprocess.Popen(
        [*QRUNTIME, "serve", "--port", str(port), "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not lines or not lines[-1].startswith("API:"):
            line = process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
        hint = next(line for line in lines if "reset-token" in line)
        command = hint.split("replaced with: ", 1)[1].split()
        assert command[:4] == ["qruntime", "users", "reset-token", "admin"]
        assert not any("shown once" in line for line in lines)
        reset = run(*command[1:])
        assert reset.returncode == 0, reset.stderr
        token = reset.stdout.strip().splitlines()[-1]
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
        assert login(url, token).status_code == 200
        assert login(url, lost).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def assert_one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[backends.aer_simulator]\nkind = "aer"\nlanez = 4\n', "[backends.aer_simulator] lanez:"),
        (
            '[backends.fake_5q]\nkind = "device"\ndevice = "fake_5q"\nlanes = 2\n',
            "[backends.fake_5q] lanes: a device-like backend runs one job at a time",
        ),
        ("[server]\nmax_program_bytez = 3\n", "unknown key(s) in [server]: max_program_bytez"),
    ],
)
def test_a_config_mistake_is_one_line_naming_file_table_and_key(
    tmp_path: Path, table: str, expected: str
) -> None:
    config = tmp_path / "q.toml"
    config.write_text(table)
    result = run(
        "serve",
        "--port",
        str(free_port()),
        "--db",
        f"sqlite:///{tmp_path / 'q.db'}",
        "--config",
        str(config),
    )
    line = assert_one_clean_line(result)
    assert line.startswith(f"Error: {config}: ")
    assert expected in line
    assert not (tmp_path / "q.db").exists()  # refused before anything was created


def test_a_short_admin_token_is_one_line_and_no_worker_traceback(tmp_path: Path) -> None:
    result = run(
        "serve",
        "--port",
        str(free_port()),
        "--db",
        f"sqlite:///{tmp_path / 'q.db'}",
        env={"QRUNTIME_ADMIN_TOKEN": "short"},
    )
    line = assert_one_clean_line(result)
    assert "QRUNTIME_ADMIN_TOKEN must be at least 16 characters" in line


def test_a_database_that_fails_after_the_workers_started_leaves_no_stray_output(
    tmp_path: Path,
) -> None:
    # The zygote is already warming up when the database is found unusable (a folder is
    # no SQLite file; on PostgreSQL no zygote starts ahead: only a leader starts one): it
    # is killed, and nothing of it (a warm-up child's traceback) reaches the terminal.
    result = run("serve", "--port", str(free_port()), "--db", f"sqlite:///{tmp_path}")
    line = assert_one_clean_line(result)
    assert line.startswith("Error: Cannot prepare the database:")


def test_help_texts_show_the_table_names() -> None:
    result = run("serve", "--help")
    assert "[server] table and [backends.NAME] tables" in " ".join(result.stdout.split())
    assert "at least 16 characters" in " ".join(result.stdout.split())


def readme_command_line_block() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Command line") :]
    section = section[: section.index("\n## ", 1)]
    start = section.index("```bash\n") + len("```bash\n")
    return section[start : section.index("```", start)]


@pytest.mark.slow
def test_the_readme_command_line_snippet_runs_as_written(make_server) -> None:
    server = make_server()
    block = readme_command_line_block()
    assert "export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_..." in block
    block = block.replace("http://127.0.0.1:8000", server.url).replace(
        "QRUNTIME_TOKEN=qrt_...", f"QRUNTIME_TOKEN={server.admin_token}"
    )
    root = Path(__file__).parents[2]
    result = subprocess.run(
        ["bash", "-e", "-c", block],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All done!" in result.stdout
    assert '"ghz_fraction": 1.0' in result.stdout
    assert "Traceback" not in result.stderr
