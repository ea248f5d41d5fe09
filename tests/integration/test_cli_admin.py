"""An admin's commands (users, tokens) on a running server's API and on its database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qruntime import NotAuthorizedError
from qruntime.cli.main import app

SLEEPER = """
import time

def main(backend, user_messenger, **kwargs):
    time.sleep(kwargs.get("seconds", 0))
    return "slept"
"""


def login(url: str, token: str) -> int:
    return httpx.post(f"{url}/users/loginWithToken", json={"apiToken": token}).status_code


@pytest.fixture
def admin(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``qruntime`` in this process; ``--url`` makes a command go through the API."""
    monkeypatch.setenv("QRUNTIME_TOKEN", server.admin_token)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    return invoke


def test_users_and_tokens_over_the_api(admin: Any, server: Any) -> None:
    url = ("--url", server.url)
    added = admin("users", "add", "bob", *url)
    assert f"Server: {server.url}" in added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert login(server.url, token) == 200

    users = {u["name"]: u for u in json.loads(admin("users", "list", "--json", *url).stdout)}
    assert (users["bob"]["is_admin"], users["bob"]["disabled"]) == (False, False)

    second = admin("tokens", "create", "bob", *url).stdout.strip().splitlines()[-1]
    listed = admin("tokens", "list", "bob", "--json", *url)
    tokens = json.loads(listed.stdout)
    assert len(tokens) == 2
    assert all(row["revoked"] is None for row in tokens)
    assert token not in listed.stdout
    assert second not in listed.stdout  # by id, never the secret
    assert tokens[0]["last_login"] is not None  # the first one logged in above

    admin("tokens", "revoke", "bob", "--id", tokens[1]["id"], *url)
    assert login(server.url, second) == 401
    assert login(server.url, token) == 200
    nothing = admin("tokens", "revoke", "bob", "--token", "qrt_nope_nope_nope", *url, code=1)
    assert "nothing was revoked" in nothing.stderr

    fresh = admin("users", "reset-token", "bob", *url).stdout.strip().splitlines()[-1]
    assert login(server.url, token) == 401
    assert login(server.url, fresh) == 200


def test_a_disabled_user_cannot_log_in_until_enabled(admin: Any, server: Any) -> None:
    token = server.add_user("carol")
    service = server.service(token)
    service.run("hello-world", inputs={}, options={"backend": "aer_simulator"}).result(timeout=60)
    admin("users", "disable", "carol", "--url", server.url)
    assert login(server.url, token) == 401
    with pytest.raises(NotAuthorizedError):
        service.jobs()  # its access token is refused too; logging in again fails
    listed = json.loads(admin("users", "list", "--json", "--url", server.url).stdout)
    assert {u["name"]: u["disabled"] for u in listed}["carol"] is True

    admin("users", "enable", "carol", "--db", server.db_url)  # the same, on the database
    assert login(server.url, token) == 200
    assert len(server.service(token).jobs()) == 1  # kept while disabled


def test_deleting_a_user_waits_for_its_jobs_and_deletes_its_programs(
    admin: Any, server: Any
) -> None:
    token = server.add_user("dave")
    service = server.service(token)
    program_id = service.upload_program(
        data=SLEEPER,
        metadata={
            "name": "sleeper",
            "description": "sleeps",
            "max_execution_time": 60,
            "is_public": True,
        },
    )
    # Another user's job of dave's public program holds the deletion back too.
    job = server.service().run(program_id, {"seconds": 3}, options={"backend": "aer_simulator"})
    refused = admin("users", "delete", "dave", "--yes", "--url", server.url, code=1)
    assert "queued or running" in refused.stderr
    job.result(timeout=60)

    admin("users", "delete", "dave", "--url", server.url, code=2)  # no --yes, no terminal
    admin("users", "delete", "dave", "--yes", "--url", server.url)
    assert login(server.url, token) == 401
    names = [p.program_id for p in server.service().programs(refresh=True, limit=None)]
    assert program_id not in names
    assert server.service().job(job.job_id()).status().name == "DONE"  # others' jobs stay

    last = admin("users", "delete", "admin", "--yes", "--url", server.url, code=1)
    assert "last enabled admin" in last.stderr
    admin("users", "disable", "admin", "--url", server.url, code=1)


def test_only_an_admin_manages_users_over_the_api(
    admin: Any, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QRUNTIME_TOKEN", server.add_user("eve"))
    refused = admin("users", "add", "mallory", "--url", server.url, code=1)
    assert "Only an admin" in refused.stderr
    admin("tokens", "list", "admin", "--url", server.url, code=1)


def test_both_a_server_and_a_database_is_a_usage_error(admin: Any, tmp_path: Path) -> None:
    result = admin(
        "users", "list", "--url", "http://x", "--db", f"sqlite:///{tmp_path}/q.db", code=2
    )
    assert "either" in result.stderr
