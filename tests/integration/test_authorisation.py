"""Who may see and change which program: the authorisation matrix with two users and an admin."""

from __future__ import annotations

import httpx
import pytest

from qruntime import NotAuthorizedError, PermissionDeniedError, RuntimeProgramNotFound

SOURCE = "def main(backend, user_messenger, **kwargs):\n    return 1\n"
META = {"name": "secret", "description": "Alice's program.", "max_execution_time": 60}


@pytest.fixture
def users(server):
    alice = server.service(server.add_user("alice"))
    bob = server.service(server.add_user("bob"))
    admin = server.service()
    program_id = alice.upload_program(data=SOURCE, metadata=META)
    return alice, bob, admin, program_id


def test_private_program_is_invisible_to_another_user(users) -> None:
    _, bob, _, program_id = users
    with pytest.raises(RuntimeProgramNotFound) as info:
        bob.program(program_id)
    assert "not found" in str(info.value).lower()
    assert program_id not in [p.program_id for p in bob.programs(limit=None)]


@pytest.mark.parametrize(
    "action",
    [
        lambda s, pid: s.update_program(pid, description="hijacked"),
        lambda s, pid: s.update_program(pid, data=SOURCE + "# evil\n"),
        lambda s, pid: s.set_program_visibility(pid, public=True),
        lambda s, pid: s.delete_program(pid),
    ],
    ids=["update-metadata", "update-data", "visibility", "delete"],
)
def test_other_user_cannot_change_a_private_program_and_learns_nothing(users, action) -> None:
    alice, bob, _, program_id = users
    with pytest.raises(RuntimeProgramNotFound):
        action(bob, program_id)
    assert alice.program(program_id, refresh=True).description == "Alice's program."


def test_public_program_is_visible_but_not_changeable_by_others(users) -> None:
    alice, bob, _, program_id = users
    alice.set_program_visibility(program_id, public=True)

    program = bob.program(program_id)
    assert program.is_public
    with pytest.raises(NotAuthorizedError, match="owner"):
        _ = program.data  # the source stays the owner's
    with pytest.raises(PermissionDeniedError):
        bob.update_program(program_id, description="hijacked")
    with pytest.raises(PermissionDeniedError):
        bob.delete_program(program_id)
    with pytest.raises(PermissionDeniedError):
        bob.set_program_visibility(program_id, public=False)

    alice.set_program_visibility(program_id, public=False)
    with pytest.raises(RuntimeProgramNotFound):
        bob.program(program_id, refresh=True)


def test_admin_sees_and_manages_but_cannot_read_the_source(users) -> None:
    alice, _, admin, program_id = users
    program = admin.program(program_id)
    with pytest.raises(NotAuthorizedError):
        _ = program.data
    admin.update_program(program_id, description="moderated")
    assert alice.program(program_id, refresh=True).description == "moderated"
    admin.delete_program(program_id)
    with pytest.raises(RuntimeProgramNotFound):
        alice.program(program_id, refresh=True)


def test_owner_reads_the_source(users) -> None:
    alice, _, _, program_id = users
    assert alice.program(program_id).data == SOURCE


def test_logout_revokes_the_access_token(server, request) -> None:
    http = httpx.Client(base_url=server.url)
    request.addfinalizer(http.close)
    token = http.post("/users/loginWithToken", json={"apiToken": server.admin_token}).json()["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/programs", headers=headers).status_code == 200

    assert http.post("/logout", headers=headers).status_code == 204

    response = http.get("/programs", headers=headers)
    assert response.status_code == 401


def test_client_logout_then_next_call_logs_in_again(server) -> None:
    service = server.service()
    service.programs()
    old = service._api.access_token
    service.logout()
    assert (
        httpx.get(f"{server.url}/programs", headers={"Authorization": f"Bearer {old}"}).status_code
        == 401
    )
    assert service.programs(refresh=True)
    assert service._api.access_token != old


def test_expired_access_token_is_refused(make_server, request) -> None:
    import time

    short = make_server(access_token_ttl=1)
    http = httpx.Client(base_url=short.url)
    request.addfinalizer(http.close)
    token = http.post("/users/loginWithToken", json={"apiToken": short.admin_token}).json()["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/programs", headers=headers).status_code == 200
    time.sleep(1.2)
    assert http.get("/programs", headers=headers).status_code == 401


def test_non_admin_cannot_list_or_create_users(server, request) -> None:
    bob_token = server.add_user("bob")
    http = httpx.Client(base_url=server.url)
    request.addfinalizer(http.close)
    token = http.post("/users/loginWithToken", json={"apiToken": bob_token}).json()["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get("/users", headers=headers).status_code == 403
    assert http.post("/users", json={"name": "eve"}, headers=headers).status_code == 403
