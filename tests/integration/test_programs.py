"""The program catalogue through the real client against a real server."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from qruntime import (
    InputValueError,
    NotAuthorizedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RuntimeDuplicateProgramError,
    RuntimeProgramNotFound,
)

SOURCE = '''
def main(backend, user_messenger, **kwargs):
    """Echo the iterations back."""
    for i in range(kwargs.get("iterations", 1)):
        user_messenger.publish({"iteration": i})
    return "done"
'''

SPEC = {
    "backend_requirements": {"min_num_qubits": 2},
    "parameters": {
        "type": "object",
        "properties": {
            "iterations": {"type": "integer", "minimum": 0, "description": "How many."},
            "label": {"type": "string", "description": "A label."},
        },
        "required": ["iterations"],
    },
    "return_values": {"type": "string", "description": "A message."},
    "interim_results": {
        "type": "object",
        "properties": {"iteration": {"type": "integer"}},
    },
}


def metadata(name: str = "echo", **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "description": "Echoes iterations.",
        "max_execution_time": 300,
        "spec": SPEC,
        **extra,
    }


def test_upload_from_files_then_read_back_everything(server, tmp_path: Path, capsys) -> None:
    source_file = tmp_path / "my_program.py"
    source_file.write_text(SOURCE)
    meta_file = tmp_path / "my_program.json"
    meta_file.write_text(json.dumps(metadata()))
    service = server.service()

    program_id = service.upload_program(data=str(source_file), metadata=str(meta_file))

    assert program_id.startswith("echo-")
    program = service.program(program_id)
    assert program.name == "echo"
    assert program.description == "Echoes iterations."
    assert program.max_execution_time == 300
    assert program.backend_requirements == {"min_num_qubits": 2}
    assert program.is_public is False
    assert program.data == SOURCE
    assert program.creation_date is not None
    params = program.parameters()
    params.iterations = 3
    params.validate()
    assert params.to_dict() == {"iterations": 3}
    service.pprint_programs(detailed=True, refresh=True)
    out = capsys.readouterr().out
    assert program_id in out
    assert "iterations" in out


def test_parameters_validate_names_the_missing_required_parameter(server) -> None:
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata())
    params = service.program(program_id).parameters()
    with pytest.raises(InputValueError, match="iterations"):
        params.validate()


def test_builtin_programs_are_listed_for_every_user(server) -> None:
    service = server.service(server.add_user("alice"))
    ids = [p.program_id for p in service.programs(limit=None)]
    assert "hello-world" in ids
    assert "circuit-runner" in ids
    hello = service.program("hello-world")
    assert hello.is_public
    assert "iterations" in hello.parameters().metadata["properties"]


def test_programs_pages_through_the_server_and_slices_the_cache(server) -> None:
    service = server.service()
    builtin = len(service.programs(limit=None))
    ids = [service.upload_program(data=SOURCE, metadata=metadata(f"p{i:02d}")) for i in range(25)]

    everything = service.programs(refresh=True, limit=None)
    assert len(everything) == builtin + 25
    assert [p.program_id for p in everything[builtin:]] == ids
    assert [p.program_id for p in service.programs(limit=5, skip=builtin + 20)] == ids[20:]
    assert len(service.programs()) == 20


def test_update_program_changes_data_and_metadata(server) -> None:
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata())
    before = service.program(program_id).update_date
    new_source = SOURCE.replace('"done"', '"finished"')

    service.update_program(
        program_id, data=new_source, description="new text", max_execution_time=600
    )

    program = service.program(program_id)
    assert program.description == "new text"
    assert program.max_execution_time == 600
    assert program.data == new_source
    assert program.update_date > before
    assert program.name == "echo"


def test_update_program_with_nothing_warns_and_sends_nothing(server) -> None:
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata())
    with pytest.warns(UserWarning, match="Nothing to update"):
        service.update_program(program_id)


def test_update_arguments_override_metadata(server) -> None:
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata())
    service.update_program(
        program_id, metadata={"description": "from metadata", "name": "renamed"}, name="winner"
    )
    program = service.program(program_id)
    assert program.name == "winner"
    assert program.description == "from metadata"


def test_delete_program_then_it_is_gone(server) -> None:
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata())
    service.delete_program(program_id)
    with pytest.raises(RuntimeProgramNotFound):
        service.program(program_id, refresh=True)
    with pytest.raises(RuntimeProgramNotFound):
        service.delete_program(program_id)


def test_duplicate_name_for_the_same_owner_is_refused(server) -> None:
    service = server.service()
    service.upload_program(data=SOURCE, metadata=metadata())
    with pytest.raises(RuntimeDuplicateProgramError, match="echo"):
        service.upload_program(data=SOURCE, metadata=metadata())
    # another user may use the same name
    other = server.service(server.add_user("bob"))
    assert other.upload_program(data=SOURCE, metadata=metadata())


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("print('hello')\n", "def main"),
        ("def main(backend, user_messenger:\n    pass\n", "does not compile"),
        ("class X:\n    def main(self): pass\n", "module level"),
    ],
)
def test_bad_program_source_is_refused_with_the_reason(server, source: str, message: str) -> None:
    service = server.service()
    with pytest.raises(InputValueError, match=message):
        service.upload_program(data=source, metadata=metadata())


def test_source_that_is_not_a_file_path_or_program_is_refused(server) -> None:
    service = server.service()
    with pytest.raises(InputValueError, match="neither program source"):
        service.upload_program(data="/no/such/file.py", metadata=metadata())


def test_source_without_main_is_refused_by_the_server(server, request) -> None:
    """The server checks too: a client that skips the local check gets a 400."""
    http = httpx.Client(base_url=server.url)
    request.addfinalizer(http.close)
    token = http.post("/users/loginWithToken", json={"apiToken": server.admin_token}).json()["id"]
    body = {
        "name": "nomain",
        "data": base64.b64encode(b"x = 1\n").decode(),
        "cost": 10,
        "description": "d",
    }
    response = http.post("/programs", json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert "def main" in response.json()["error"]["message"]


def test_invalid_spec_is_refused_naming_the_part(server) -> None:
    service = server.service()
    bad = metadata(spec={"parameters": {"type": "object", "properties": {"x": {"type": 5}}}})
    with pytest.raises(InputValueError, match=r"spec\.parameters"):
        service.upload_program(data=SOURCE, metadata=bad)


def test_unknown_backend_requirement_is_kept_but_not_enforced(server) -> None:
    service = server.service()
    typo = metadata(spec={"backend_requirements": {"min_qubits": 5}})
    program = service.program(service.upload_program(data=SOURCE, metadata=typo))
    assert program.backend_requirements == {"min_qubits": 5}
    assert "Min qubits: 5 (not enforced)" in str(program)


def test_missing_required_metadata_is_refused_before_any_request(server) -> None:
    service = server.service()
    with pytest.raises(InputValueError, match="max_execution_time"):
        service.upload_program(data=SOURCE, metadata={"name": "x", "description": "d"})


def test_program_over_the_size_limit_gets_413(make_server) -> None:
    small = make_server(max_program_bytes=2_000)
    service = small.service()
    big = SOURCE + "#" + "x" * 3_000 + "\n"
    with pytest.raises(PayloadTooLargeError, match="2000"):
        service.upload_program(data=big, metadata=metadata())


def test_max_execution_time_over_the_server_limit_is_refused(make_server) -> None:
    limited = make_server(max_execution_time_limit=100)
    with pytest.raises(InputValueError, match="limit of 100"):
        limited.service().upload_program(data=SOURCE, metadata=metadata())


def test_builtin_program_cannot_be_changed_even_by_admin(server) -> None:
    service = server.service()
    with pytest.raises(PermissionDeniedError, match="built in"):
        service.delete_program("hello-world")


def test_request_without_token_gets_401(server) -> None:
    response = httpx.get(f"{server.url}/programs")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authorized"


def test_wrong_api_token_is_refused(server) -> None:
    service = server.service("qrt_not_a_real_token_at_all")
    with pytest.raises(NotAuthorizedError):
        service.programs()
