"""The registry of built-in programs and the metadata the server lists."""

from __future__ import annotations

import jsonschema
import pytest

from qruntime.programs import BUILTIN_PROGRAMS, load_builtin_metadata, load_builtin_module


def test_every_builtin_program_is_listed_with_complete_metadata() -> None:
    listed = load_builtin_metadata()
    assert [p["id"] for p in listed] == list(BUILTIN_PROGRAMS)
    assert {"hello-world", "circuit-runner"} <= set(BUILTIN_PROGRAMS)
    for program in listed:
        assert program["name"] == program["id"]
        assert program["description"]
        assert isinstance(program["max_execution_time"], int)
        spec = program["spec"]
        assert set(spec) == {
            "backend_requirements",
            "parameters",
            "return_values",
            "interim_results",
        }
        for schema_name in ("parameters", "return_values", "interim_results"):
            jsonschema.Draft202012Validator.check_schema(spec[schema_name])
        assert spec["parameters"]["type"] == "object"


def test_listed_metadata_is_a_copy_the_caller_may_change() -> None:
    load_builtin_metadata()[0]["spec"]["parameters"]["properties"].clear()
    assert load_builtin_metadata()[0]["spec"]["parameters"]["properties"]


def test_every_builtin_module_has_a_main() -> None:
    for program_id in BUILTIN_PROGRAMS:
        assert callable(load_builtin_module(program_id).main)


def test_an_unknown_builtin_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="not a built-in program"):
        load_builtin_module("nope")
