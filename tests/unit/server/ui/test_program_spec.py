"""A program's spec as tables: rows from the JSON Schemas of its parts."""

from __future__ import annotations

import importlib

from qruntime.programs import BUILTIN_PROGRAMS
from qruntime.server.ui.program_spec import spec_parts


def test_parameters_become_one_row_each_with_type_default_and_constraints() -> None:
    spec = {
        "parameters": {
            "type": "object",
            "properties": {
                "shots": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 1024,
                    "description": "Shots.",
                },
                "method": {"enum": ["a", "b"]},
                "options": {
                    "type": "object",
                    "properties": {"seed": {"type": ["integer", "null"]}},
                },
                "angles": {"type": "array", "items": {"type": "number"}},
            },
            "required": ["shots"],
        }
    }
    [part] = spec_parts(spec)
    rows = {row.name: row for row in part.rows}
    assert list(rows) == ["shots", "method", "options", "options.seed", "angles"]
    assert rows["shots"].required
    assert not rows["method"].required
    assert rows["shots"].default == "1024"
    assert rows["shots"].constraints == "minimum: 1"
    assert rows["method"].constraints == 'enum: ["a", "b"]'
    assert rows["options.seed"].type == "integer or null"
    assert rows["angles"].type == "array of number"


def test_a_result_that_is_a_plain_value_is_one_row_and_missing_parts_are_left_out() -> None:
    parts = spec_parts({"return_values": {"type": "string", "description": "A message."}})
    assert [part.key for part in parts] == ["return_values"]
    [row] = parts[0].rows
    assert (row.name, row.type, row.description) == ("(the value)", "string", "A message.")
    assert spec_parts(None) == []
    assert spec_parts({"parameters": "nonsense"}) == []


def test_every_builtin_program_spec_renders() -> None:
    for module in BUILTIN_PROGRAMS.values():
        spec = importlib.import_module(f"qruntime.programs.{module}").METADATA.get("spec", {})
        parts = spec_parts(spec)
        assert parts, module
        assert all(part.rows for part in parts), module
