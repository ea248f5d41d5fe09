"""Programs as the seed API's users expect them (issue 19, difference 7)."""

from __future__ import annotations

import pytest

from qruntime import InputValueError

SOURCE = "def main(backend, user_messenger, **kwargs):\n    return 1\n"


def metadata(**requirements: object) -> dict[str, object]:
    return {
        "name": "needs",
        "description": "has requirements",
        "max_execution_time": 60,
        "spec": {"backend_requirements": requirements},
    }


def test_unknown_backend_requirements_are_kept_and_shown_as_not_enforced(server) -> None:
    service = server.service()
    program_id = service.upload_program(
        data=SOURCE, metadata=metadata(min_num_qubits=2, input_allowed="job")
    )
    program = service.program(program_id, refresh=True)
    assert program.backend_requirements == {"min_num_qubits": 2, "input_allowed": "job"}
    text = str(program)
    assert "Input allowed: job (not enforced)" in text
    assert "Min num qubits: 2\n" in text
    # The known ones are still enforced.
    job = service.run(program_id, inputs={}, options={"backend": "aer_simulator"})
    assert job.result(timeout=60) == 1
    with pytest.raises(InputValueError, match="min_num_qubits"):
        service.upload_program(data=SOURCE, metadata=metadata(min_num_qubits="two"))


def test_the_program_list_is_complete_whatever_was_read_before(server) -> None:
    service = server.service()
    builtins = {p.program_id for p in server.service().programs(limit=None)}
    service.program("hello-world")  # one program read first must not stand for the list
    assert {p.program_id for p in service.programs(limit=None)} == builtins
    uploaded = service.upload_program(
        data=SOURCE, metadata={"name": "new", "description": "d", "max_execution_time": 60}
    )
    assert uploaded in {p.program_id for p in service.programs(limit=None)}
    service.update_program(uploaded, description="changed")
    listed = {p.program_id: p for p in service.programs(limit=None)}
    assert listed[uploaded].description == "changed"
    assert set(listed) == builtins | {uploaded}
