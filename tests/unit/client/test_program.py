"""RuntimeProgram and ParameterNamespace: the client's view of a runtime program."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit

from qruntime.client._program import ParameterNamespace, RuntimeProgram
from qruntime.errors import InputValueError, NotAuthorizedError

PARAMETERS: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "description": "Inputs of the circuit runner",
    "properties": {
        "circuits": {"type": ["array", "object"], "description": "Circuits to run"},
        "shots": {"type": "integer", "minimum": 1, "default": 1024, "description": "Shots"},
        "layout_method": {"type": "string", "enum": ["trivial", "dense", "sabre"]},
    },
    "required": ["circuits", "shots"],
}


def _payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": "circuit-runner",
        "name": "circuit-runner",
        "description": "Runs circuits",
        "cost": 600,
        "is_public": True,
        "creation_date": "2026-11-21T08:00:00+00:00",
        "update_date": "2026-11-22T09:30:00Z",
        "owner": "system",
        "spec": {
            "backend_requirements": {"min_num_qubits": 5},
            "parameters": PARAMETERS,
            "return_values": {"type": "object", "description": "Result.to_dict()"},
        },
    }
    payload.update(changes)
    return payload


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


# --- RuntimeProgram -------------------------------------------------------------------------


def test_from_wire_reads_metadata_and_spec() -> None:
    program = RuntimeProgram.from_wire(_payload())
    assert program.program_id == "circuit-runner"
    assert program.name == "circuit-runner"
    assert program.description == "Runs circuits"
    assert program.max_execution_time == 600
    assert program.is_public is True
    assert program.backend_requirements == {"min_num_qubits": 5}
    assert program.return_values["description"] == "Result.to_dict()"
    assert program.interim_results == {}
    assert program.creation_date == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert program.update_date == datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def test_from_wire_with_only_an_id_uses_defaults() -> None:
    program = RuntimeProgram.from_wire({"id": "bare"})
    assert program.name == "bare"
    assert program.description == ""
    assert program.max_execution_time == 0
    assert program.is_public is False
    assert program.backend_requirements == {}
    assert program.creation_date is None
    assert program.update_date is None
    assert program.parameters().to_dict() == {}


def test_from_wire_without_an_id_is_refused() -> None:
    with pytest.raises(InputValueError, match="'id'"):
        RuntimeProgram.from_wire({"name": "nameless"})


def test_dates_are_timezone_aware() -> None:
    naive = RuntimeProgram("p", "p", "", creation_date="2026-01-02T03:04:05")
    assert naive.creation_date == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    offset = RuntimeProgram("p", "p", "", creation_date="2026-01-02T03:04:05+02:00")
    assert offset.creation_date is not None
    assert offset.creation_date.utcoffset() == timedelta(hours=2)
    with pytest.raises(InputValueError, match="creation_date"):
        RuntimeProgram("p", "p", "", creation_date="last tuesday")


def test_str_shows_every_section_and_none_for_empty_ones() -> None:
    text = str(RuntimeProgram.from_wire(_payload()))
    for expected in (
        "ID: circuit-runner",
        "Description: Runs circuits",
        "Creation date: 2026-11-21T08:00:00+00:00",
        "Max execution time: 600",
        "Backend requirements:\n    Min num qubits: 5",
        "Input parameters:",
        "Interim results:\n    none",
        "Returns:\n    Type: object\n    Description: Result.to_dict()",
    ):
        assert expected in text


def test_str_lists_each_parameter_with_its_fields_and_whether_required() -> None:
    text = str(RuntimeProgram.from_wire(_payload()))
    shots = text[text.index("- shots:") : text.index("- layout_method:")]
    assert "Minimum: 1" in shots
    assert "Default: 1024" in shots
    assert "Required: True" in shots
    layout = text[text.index("- layout_method:") :]
    assert "Enum: trivial, dense, sabre" in layout
    assert "Required: False" in layout.split("Interim results:")[0]


def test_str_of_program_without_spec_says_none_for_every_section() -> None:
    text = str(RuntimeProgram.from_wire({"id": "bare"}))
    assert text.count("none") == 4
    assert "Update date: unknown" in text


def test_repr_is_short() -> None:
    program = RuntimeProgram.from_wire(_payload())
    assert repr(program) == "RuntimeProgram(program_id='circuit-runner', name='circuit-runner')"


def test_data_sent_with_the_program_is_returned_without_refresh() -> None:
    def refresh() -> RuntimeProgram:
        raise AssertionError("must not be called")

    program = RuntimeProgram.from_wire(_payload(data="def main(): pass"), refresh=refresh)
    assert program.data == "def main(): pass"


def test_missing_data_is_fetched_once_through_refresh() -> None:
    calls: list[int] = []

    def refresh() -> RuntimeProgram:
        calls.append(1)
        return RuntimeProgram.from_wire(_payload(data="def main(backend, user_messenger): ..."))

    program = RuntimeProgram.from_wire(_payload(), refresh=refresh)
    assert program.data.startswith("def main(")
    assert program.data.startswith("def main(")
    assert len(calls) == 1


def test_data_of_someone_elses_program_raises_not_authorized() -> None:
    program = RuntimeProgram.from_wire(
        _payload(), refresh=lambda: RuntimeProgram.from_wire(_payload())
    )
    with pytest.raises(NotAuthorizedError, match="Only the program's owner"):
        _ = program.data
    with pytest.raises(NotAuthorizedError):
        _ = RuntimeProgram.from_wire(_payload()).data


def test_parameters_returns_a_new_namespace_each_call() -> None:
    program = RuntimeProgram.from_wire(_payload())
    first = program.parameters()
    first.shots = 10
    second = program.parameters()
    assert second is not first
    assert second.shots is None


# --- ParameterNamespace ---------------------------------------------------------------------


def test_namespace_has_one_attribute_per_parameter_all_unset() -> None:
    params = ParameterNamespace(PARAMETERS)
    assert vars(params) == {"circuits": None, "shots": None, "layout_method": None}
    assert params.metadata == PARAMETERS


def test_metadata_is_a_copy_of_the_schema() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.metadata["properties"].clear()
    assert "shots" in params.metadata["properties"]
    assert "shots" in PARAMETERS["properties"]


def test_to_dict_sends_only_set_parameters_and_no_private_state() -> None:
    params = ParameterNamespace(PARAMETERS)
    circuit = _bell()
    params.circuits = [circuit]
    params.shots = 100
    assert params.to_dict() == {"circuits": [circuit], "shots": 100}


def test_an_undeclared_parameter_is_sent_unless_the_schema_forbids_extras() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.circuits = [_bell()]
    params.shots = 100
    params.extra = 10  # as in JSON Schema and the seed API: additional properties pass
    params.validate()
    assert params.to_dict()["extra"] == 10
    with pytest.raises(InputValueError, match="'_schema'"):
        params._schema = {}
    strict = ParameterNamespace({**PARAMETERS, "additionalProperties": False})
    with pytest.raises(InputValueError, match=r"'shot' .*circuits, shots, layout_method"):
        strict.shot = 10
    assert "shot" not in strict.to_dict()


def test_schema_without_properties_accepts_any_parameter() -> None:
    params = ParameterNamespace({})
    params.anything = 3
    assert params.to_dict() == {"anything": 3}
    params.validate()


def test_deleting_a_parameter_unsets_it() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.shots = 5
    del params.shots
    assert params.shots is None
    assert params.to_dict() == {}


def test_validate_names_the_first_required_parameter_not_set() -> None:
    params = ParameterNamespace(PARAMETERS)
    with pytest.raises(InputValueError, match="Param 'circuits' is required but was not set"):
        params.validate()
    params.circuits = [_bell()]
    with pytest.raises(InputValueError, match="Param 'shots' is required but was not set"):
        params.validate()


def test_validate_names_a_parameter_whose_value_breaks_the_schema() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.circuits = [_bell()]
    params.shots = 0
    with pytest.raises(InputValueError, match=r"Param 'shots' is invalid: 0 is less than"):
        params.validate()
    params.shots = 10
    params.layout_method = "random"
    with pytest.raises(InputValueError, match="Param 'layout_method' is invalid"):
        params.validate()


def test_validate_accepts_qiskit_and_numpy_values_in_their_wire_form() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.circuits = _bell()  # an encoded circuit is a JSON object
    params.shots = np.int64(10)  # sent as a plain integer
    params.validate()


def test_validate_reports_a_broken_schema_as_input_error() -> None:
    params = ParameterNamespace({"type": "no-such-type", "properties": {"a": {}}})
    params.a = 1
    with pytest.raises(InputValueError, match="schema is invalid"):
        params.validate()


def test_validate_never_fetches_a_remote_reference() -> None:
    params = ParameterNamespace(
        {"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:9/s.json"}}}
    )
    params.a = 1
    with pytest.raises(InputValueError, match=r"schema is invalid.*not fetched"):
        params.validate()


@pytest.mark.timeout(10)
def test_validate_runs_patterns_in_linear_time() -> None:
    params = ParameterNamespace(
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    )
    params.s = "a" * 10_000 + "!"
    started = time.perf_counter()
    with pytest.raises(InputValueError, match=r"Param 's' is invalid: .* does not match"):
        params.validate()
    assert time.perf_counter() - started < 0.5


def test_str_is_a_table_of_name_value_type_required_description() -> None:
    params = ParameterNamespace(PARAMETERS)
    params.shots = 2048
    lines = str(params).splitlines()
    header = [cell.strip() for cell in lines[1].strip("|").split("|")]
    assert header == ["Name", "Value", "Type", "Required", "Description"]
    shots = next(line for line in lines if line.startswith("| shots"))
    assert [cell.strip() for cell in shots.strip("|").split("|")] == [
        "shots",
        "2048",
        "integer",
        "True",
        "Shots",
    ]
    circuits = next(line for line in lines if line.startswith("| circuits"))
    assert "array, object" in circuits
    assert "None" in circuits
