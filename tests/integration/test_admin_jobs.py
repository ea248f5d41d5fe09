"""Admins see every user's jobs; other users still see only their own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qruntime import PermissionDeniedError, RuntimeJobNotFound

SLOW = "import time\ndef main(backend, user_messenger, **kwargs):\n    time.sleep(30)\n"
QUICK = "def main(backend, user_messenger, **kwargs):\n    return kwargs.get('x', 1)\n"


def _upload(service: Any, source: str, name: str) -> str:
    program_id: str = service.upload_program(
        data=source, metadata={"name": name, "description": name, "max_execution_time": 60}
    )
    return program_id


def _get(server: Any, service: Any, path: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {service._api.access_token}"}
    return httpx.get(f"{server.url}{path}", params=params, headers=headers)


def test_admins_read_list_cancel_and_delete_any_job(make_server, db_url) -> None:
    server = make_server(db_url)
    bob = server.service(server.add_user("bob"))
    carol = server.service(server.add_user("carol"))
    admin = server.service()
    quick = _upload(bob, QUICK, "quick")
    done = bob.run(quick, {"x": 5}, options={"backend": "aer_simulator"})
    assert done.result(timeout=60) == 5
    slow = bob.run(_upload(bob, SLOW, "slow"), {}, options={"backend": "aer_simulator"})
    mine = admin.run("hello-world", {"iterations": 1}, options={"backend": "aer_simulator"})
    mine.wait_for_final_state(timeout=60)

    # Reading: the job, its result, its owner.
    seen = admin.job(done.job_id())
    assert seen.result() == 5
    assert _get(server, admin, f"/jobs/{done.job_id()}").json()["owner"] == "bob"

    # Listing: own jobs by default, one user's with user=, everyone's with all_users.
    assert [job.job_id() for job in admin.jobs()] == [mine.job_id()]
    bobs = _get(server, admin, "/jobs", user="bob").json()
    assert {job["id"] for job in bobs["jobs"]} == {done.job_id(), slow.job_id()}
    assert bobs["count"] == 2
    everyone = _get(server, admin, "/jobs", all_users="true").json()
    assert everyone["count"] == 3
    assert {job["owner"] for job in everyone["jobs"]} == {"bob", "admin"}
    assert _get(server, admin, "/jobs", user="nobody").status_code == 400
    assert {job.job_id() for job in admin.jobs(user="bob")} == {done.job_id(), slow.job_id()}
    assert len(admin.jobs(all_users=True)) == 3

    # Other users: their own jobs only, another's do not exist, and they cannot ask.
    with pytest.raises(RuntimeJobNotFound):
        carol.job(done.job_id())
    assert _get(server, carol, "/jobs", user="bob").status_code == 403
    assert _get(server, carol, "/jobs", all_users="true").status_code == 403
    assert _get(server, bob, "/jobs", user="bob").json()["count"] == 2

    # Cancel and delete another user's jobs.
    admin.job(slow.job_id()).cancel()
    assert bob.job(slow.job_id()).status().name == "CANCELLED"
    admin.delete_job(done.job_id())
    with pytest.raises(RuntimeJobNotFound):
        bob.job(done.job_id())


def test_an_admin_cannot_read_and_so_spend_a_private_result(server) -> None:
    bob = server.service(server.add_user("bob"))
    admin = server.service()
    job = bob.run(
        _upload(bob, QUICK, "quick"),
        {"x": 9},
        options={"backend": "aer_simulator", "private": True},
    )
    job.wait_for_final_state(timeout=60)
    with pytest.raises(PermissionDeniedError, match="only its owner"):
        admin.job(job.job_id()).result()
    assert admin.job(job.job_id()).private is True
    assert job.result() == 9  # still there for its owner


def test_admins_list_every_users_sessions_and_usage_from_the_api_and_the_cli(
    server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from typer.testing import CliRunner

    from qruntime import Session
    from qruntime.cli.main import app

    bob_token = server.add_user("bob")
    bob = server.service(bob_token)
    admin = server.service()
    with Session(service=bob, backend="aer_simulator") as session:
        job = session.run("hello-world", {"iterations": 1})
        job.result(timeout=60)
        session_id = session.session_id

    # Sessions: another user's is readable by an admin, listed with user= / all_users=.
    assert _get(server, admin, f"/sessions/{session_id}").status_code == 200
    assert _get(server, admin, "/sessions").json()["count"] == 0
    listed = _get(server, admin, "/sessions", user="bob").json()
    assert [s["id"] for s in listed["sessions"]] == [session_id]
    assert _get(server, admin, "/sessions", all_users="true").json()["count"] == 1
    assert _get(server, bob, "/sessions", all_users="true").status_code == 403

    # Usage: a user's own, an admin's view of one user and of everyone, for a period.
    own = _get(server, bob, "/usage").json()
    assert own["user"] == "bob"
    assert own["usage_consumed_seconds"] > 0
    assert _get(server, admin, "/usage", user="bob").json() == own | {
        "period": {"start": None, "end": None}
    }
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        _get(server, admin, "/usage", user="bob", start=later).json()["usage_consumed_seconds"] == 0
    )
    everyone = _get(server, admin, "/usage", all_users="true").json()["users"]
    assert [(row["user"], row["jobs"]) for row in everyone] == [("bob", 1)]
    assert _get(server, bob, "/usage", user="admin").status_code == 403

    # The same from the CLI, as a script reads it.
    monkeypatch.setenv("QRUNTIME_URL", server.url)
    runner = CliRunner()

    def cli(token: str, *args: str, code: int = 0) -> str:
        monkeypatch.setenv("QRUNTIME_TOKEN", token)
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result.stdout

    jobs = json.loads(cli(server.admin_token, "jobs", "list", "--all-users", "--json"))
    assert [(j["id"], j["owner"]) for j in jobs] == [(job.job_id(), "bob")]
    sessions = json.loads(cli(server.admin_token, "sessions", "list", "--user", "bob", "--json"))
    assert [s["id"] for s in sessions] == [session_id]
    usage = json.loads(cli(server.admin_token, "usage", "--all-users", "--json"))
    assert usage["users"][0]["user"] == "bob"
    assert "bob" in cli(server.admin_token, "jobs", "list", "--user", "bob")
    cli(bob_token, "jobs", "list", "--all-users", code=1)
