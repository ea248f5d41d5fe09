"""Program spec schemas: regexes on RE2, references never fetched, bounded work."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing.exceptions
from tests.probes import Listener

from qruntime import spec_schema
from qruntime.errors import InputValueError
from qruntime.spec_schema import (
    best_validation_error,
    check_spec_schema,
    offline_registry,
    spec_validator_class,
)

CATASTROPHIC = "^(a+)+$"


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


def _message(schema: dict[str, Any], instance: Any) -> str | None:
    error = best_validation_error(schema, instance)
    return None if error is None else str(error.message)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


# -- regexes -------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_catastrophic_pattern_on_a_long_input_answers_at_once() -> None:
    schema = _object(s={"type": "string", "pattern": CATASTROPHIC})
    check_spec_schema(schema)
    started = time.perf_counter()
    message = _message(schema, {"s": "a" * 10_000 + "!"})
    assert time.perf_counter() - started < 0.5
    assert message is not None
    assert message.endswith(f"does not match {CATASTROPHIC!r}")


def test_pattern_matches_as_a_search_like_json_schema_says() -> None:
    schema = _object(code={"type": "string", "pattern": "[0-9]{3}"})
    assert _message(schema, {"code": "ab123cd"}) is None
    assert _message(schema, {"code": "ab12cd"}) == "'ab12cd' does not match '[0-9]{3}'"


def test_pattern_properties_apply_their_schema_to_matching_names_only() -> None:
    schema = {"type": "object", "patternProperties": {"^x-": {"type": "integer"}}}
    assert _message(schema, {"x-count": 3, "other": "anything"}) is None
    assert _message(schema, {"x-count": "three"}) == "'three' is not of type 'integer'"


def test_additional_properties_see_pattern_properties_and_keep_their_messages() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {}},
        "patternProperties": {"^x-": {}},
        "additionalProperties": False,
    }
    assert _message(schema, {"a": 1, "x-b": 2}) is None
    assert _message(schema, {"c": 1}) == "'c' does not match any of the regexes: '^x-'"
    plain = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    assert _message(plain, {"a": 1, "b": 2, "c": 3}) == (
        "Additional properties are not allowed ('b', 'c' were unexpected)"
    )


@pytest.mark.parametrize(
    ("schema", "instance"),
    [
        (_object(s={"pattern": "^[a-z]+$"}), {"s": "Abc"}),
        ({"type": "object", "patternProperties": {"^n": {"minimum": 3}}}, {"n1": 1, "m": 0}),
        (
            {"type": "object", "patternProperties": {"^n": {}}, "additionalProperties": False},
            {"n": 1, "q": 2, "r": 3},
        ),
        ({"type": "object", "additionalProperties": {"type": "string"}}, {"a": 1}),
        (_object(s={"propertyNames": {"pattern": "^[a-z]$"}}), {"s": {"ab": 1}}),
    ],
)
def test_messages_are_those_of_stock_jsonschema_for_harmless_patterns(
    schema: dict[str, Any], instance: Any
) -> None:
    stock = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(instance)
    )
    assert stock is not None
    error = best_validation_error(schema, instance)
    assert error is not None
    assert (error.message, list(error.absolute_path)) == (stock.message, list(stock.path))


def test_format_regex_is_checked_with_re2() -> None:
    schema = _object(r={"type": "string", "format": "regex"})
    cls = spec_validator_class(schema)
    validator = cls(schema, registry=offline_registry(), format_checker=cls.FORMAT_CHECKER)
    assert validator.is_valid({"r": "^[a-z]+$"})
    # Python's re compiles a lookahead; RE2 does not, so this proves which engine ran.
    assert not validator.is_valid({"r": "(?=a)a"})


def test_ecma_unicode_escapes_work_on_re2() -> None:
    schema = _object(s={"type": "string", "pattern": "^\\u0041+\\u{1F600}$"})
    check_spec_schema(schema)
    assert _message(schema, {"s": "AA\U0001f600"}) is None
    assert _message(schema, {"s": "BB\U0001f600"}) is not None
    literal = _object(s={"type": "string", "pattern": "^\\\\u0041$"})  # an escaped backslash
    assert _message(literal, {"s": "\\u0041"}) is None


@pytest.mark.parametrize(
    ("schema", "pattern"),
    [
        (_object(s={"type": "string", "pattern": "^(a)\\1$"}), "^(a)\\1$"),
        ({"type": "object", "patternProperties": {"(?=x)x": {}}}, "(?=x)x"),
        (_object(s={"type": "string", "pattern": "(?<!a)b"}), "(?<!a)b"),
    ],
)
def test_pattern_re2_cannot_compile_is_refused_naming_it(
    schema: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(InputValueError, match="RE2 cannot compile") as info:
        check_spec_schema(schema)
    assert repr(pattern) in str(info.value)


def test_draft4_pattern_properties_keys_are_checked_too() -> None:
    # Draft 4's metaschema has no "format": "regex" on patternProperties names.
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "patternProperties": {"(a)\\1": {}},
    }
    with pytest.raises(InputValueError, match="RE2 cannot compile"):
        check_spec_schema(schema)


# -- references ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "http://127.0.0.1:9/s.json",
        "https://example.com/s.json",
        "file:///etc/passwd",
        "other.json",
        "https://json-schema.org/draft/2020-12/schema",
        "#/$defs/missing",
    ],
)
def test_reference_that_does_not_resolve_inside_the_schema_is_refused(ref: str) -> None:
    schema = _object(a={"$ref": ref})
    with pytest.raises(InputValueError, match="not fetched: embed the schema") as info:
        check_spec_schema(schema, label="spec.parameters")
    assert repr(ref) in str(info.value)
    assert "spec.parameters" in str(info.value)


def test_dynamic_reference_to_a_remote_schema_is_refused() -> None:
    with pytest.raises(InputValueError, match=re.escape("'https://example.com/x#meta'")):
        check_spec_schema(_object(a={"$dynamicRef": "https://example.com/x#meta"}))


def test_reference_to_a_place_that_is_not_a_schema_is_refused() -> None:
    schema = {"type": "object", "default": {"x": 1}, "properties": {"a": {"$ref": "#/default"}}}
    with pytest.raises(InputValueError, match="#/default"):
        check_spec_schema(schema)


def test_local_references_keep_working() -> None:
    schema = {
        "$id": "https://example.com/root.json",
        "type": "object",
        "$defs": {
            "count": {"type": "integer", "minimum": 0},
            "named": {"$id": "named.json", "type": "string"},
            "anchored": {"$anchor": "flag", "type": "boolean"},
        },
        "properties": {
            "n": {"$ref": "#/$defs/count"},
            "name": {"$ref": "named.json"},
            "flag": {"$ref": "#flag"},
            "child": {"$ref": "#"},
        },
    }
    check_spec_schema(schema)
    assert _message(schema, {"n": 2, "name": "x", "flag": True, "child": {"n": 0}}) is None
    assert _message(schema, {"n": -1}) == "-1 is less than the minimum of 0"
    assert _message(schema, {"name": 3}) == "3 is not of type 'string'"
    assert _message(schema, {"child": {"flag": "yes"}}) == "'yes' is not of type 'boolean'"


def test_draft7_definitions_and_a_recursive_root_stay_on_re2() -> None:
    # "$ref": "#" re-enters the root; with its "$schema" there, stock jsonschema would
    # switch back to its own Draft7Validator, whose patterns run on Python's re.
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "definitions": {"word": {"type": "string", "pattern": CATASTROPHIC}},
        "properties": {"w": {"$ref": "#/definitions/word"}, "child": {"$ref": "#"}},
    }
    check_spec_schema(schema)
    started = time.perf_counter()
    message = _message(schema, {"child": {"child": {"w": "a" * 5_000 + "!"}}})
    assert time.perf_counter() - started < 0.5
    assert message is not None
    assert "does not match" in message


def test_stored_schema_with_a_remote_reference_is_refused_without_connecting(
    listener: Listener,
) -> None:
    schema = _object(a={"$ref": f"http://127.0.0.1:{listener.port}/s.json"})
    with pytest.raises(InputValueError, match="The program's spec is invalid") as info:
        best_validation_error(schema, {"a": 1})
    assert f"127.0.0.1:{listener.port}" in str(info.value)
    # The validator itself, checks aside: its registry refuses to retrieve anything.
    validator = spec_validator_class(schema)(schema, registry=offline_registry())
    with pytest.raises(referencing.exceptions.Unresolvable):
        list(validator.iter_errors({"a": 1}))
    time.sleep(0.2)
    assert listener.connections == 0


def test_file_reference_is_never_read(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text('{"type": "integer"}')
    schema = _object(a={"$ref": target.as_uri()})
    with pytest.raises(InputValueError, match="not fetched"):
        check_spec_schema(schema)
    validator = spec_validator_class(schema)(schema, registry=offline_registry())
    with pytest.raises(referencing.exceptions.Unresolvable):
        list(validator.iter_errors({"a": "not an integer"}))


# -- what else is refused ------------------------------------------------------------------


def test_nested_dollar_schema_is_refused() -> None:
    schema = _object(a={"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"})
    with pytest.raises(InputValueError, match=r"nested \"\$schema\""):
        check_spec_schema(schema)


@pytest.mark.parametrize(
    "dialect", ["https://example.com/s", "http://json-schema.org/draft-03/schema#", "http://["]
)
def test_unknown_or_draft3_dollar_schema_is_refused_naming_the_supported_ones(
    dialect: str,
) -> None:
    with pytest.raises(
        InputValueError, match=re.escape(f"unsupported $schema {dialect!r}")
    ) as info:
        check_spec_schema({"$schema": dialect, "type": "object"})
    assert "'http://json-schema.org/draft-07/schema#'" in str(info.value)


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    schema = {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False}
    with pytest.raises(InputValueError, match="unevaluatedProperties"):
        check_spec_schema(schema)


def test_metaschema_errors_keep_their_message() -> None:
    with pytest.raises(InputValueError, match=r"spec\.return_values is not a valid JSON Schema"):
        check_spec_schema(_object(x={"type": 5}), label="spec.return_values")


def test_schema_too_deep_or_too_large_is_refused() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(spec_schema.MAX_SCHEMA_DEPTH):
        inner["items"] = {}
        inner = inner["items"]
    with pytest.raises(InputValueError, match="levels deep"):
        check_spec_schema(deep)
    large = _object(s={"description": "x" * spec_schema.MAX_SCHEMA_CHARS})
    with pytest.raises(InputValueError, match="characters of JSON"):
        check_spec_schema(large)


def test_schema_that_multiplies_its_work_is_stopped_early() -> None:
    defs: dict[str, Any] = {"d0": {"type": "integer"}}
    for level in range(1, 40):
        below = {"$ref": f"#/$defs/d{level - 1}"}
        defs[f"d{level}"] = {"allOf": [below, below]}
    schema = {"type": "object", "$defs": defs, "properties": {"x": {"$ref": "#/$defs/d39"}}}
    check_spec_schema(schema)
    started = time.perf_counter()
    with pytest.raises(InputValueError, match="too many steps"):
        best_validation_error(schema, {"x": "not an integer"})
    assert time.perf_counter() - started < 10


def test_large_honest_inputs_are_within_budget() -> None:
    schema = _object(xs={"type": "array", "items": {"type": "number", "minimum": 0}})
    assert _message(schema, {"xs": [1.5] * 50_000}) is None


def test_reference_loop_is_an_input_error_not_a_crash() -> None:
    with pytest.raises(InputValueError, match="recurses too deeply"):
        best_validation_error({"$ref": "#"}, {})


def test_a_schema_is_checked_and_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []
    build = spec_schema._build_validator

    def counting(schema: object, *, label: str) -> Any:
        builds.append(label)
        return build(schema, label=label)

    monkeypatch.setattr(spec_schema, "_build_validator", counting)
    schema = _object(n={"type": "integer", "description": "unique to this test"})
    check_spec_schema(schema)
    for n in range(5):
        assert best_validation_error(dict(schema), {"n": n}) is None
    assert builds == ["spec.parameters"]
