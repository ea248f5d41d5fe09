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
