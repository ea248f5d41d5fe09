"""The JSON Schemas of program specs, checked and applied without ReDoS and without fetches.

A program's ``spec`` holds JSON Schemas written by its uploader, and the server applies
``spec.parameters`` to every job's inputs, in its own process. Stock ``jsonschema`` would run
the schema's regexes (``pattern``, ``patternProperties``, ``format: "regex"``) on Python's
backtracking ``re``, where ``^(a+)+$`` and 30 characters hold the process for seconds, and it
would fetch every ``$ref`` it cannot resolve locally (``http:``, ``file:``) at each job. So:

- every regex of a schema runs on RE2, a linear-time engine; a pattern RE2 cannot compile
  (backreferences, lookaround) is refused as a schema error;
- references resolve inside the schema only: the registry refuses every URI, and
  `check_spec_schema` refuses a ``$ref`` that does not land on a schema of the document;
- a schema is bounded in size and depth, and applying it to one instance is bounded in
  keyword applications, so composition (``allOf`` of ``$ref`` s of ``allOf`` s) cannot
  blow up either.

The server (upload, job submission) and the client (``ParameterNamespace.validate``) both
use this module, so they agree on what a spec accepts.

Usage::

    check_spec_schema(schema, label="spec.parameters")     # at upload: InputValueError
    error = best_validation_error(schema, inputs)          # per job: ValidationError | None
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import jsonschema
import re2
import referencing
import referencing.exceptions
import referencing.jsonschema

from qruntime._lru import LRUCache
from qruntime.errors import InputValueError

__all__ = [
    "MAX_SCHEMA_CHARS",
    "MAX_SCHEMA_DEPTH",
    "best_validation_error",
    "check_spec_schema",
    "offline_registry",
    "spec_validator_class",
]

MAX_SCHEMA_CHARS = 256_000  # one part of a spec, as compact JSON
MAX_SCHEMA_DEPTH = 64  # nested JSON objects and arrays; jsonschema recurses per level
# Keyword applications allowed for one instance: a floor (about a second at worst), grown once
# by so many per JSON value of the instance, so that large honest inputs pass while a schema
# that multiplies its work (allOf of $refs of allOf...) stops early.
_BASE_BUDGET = 20_000
_BUDGET_PER_VALUE = 32

# Draft 3 is left out: its schema-valued "type" breaks jsonschema's best_match (a 500).
_DRAFTS = (
    jsonschema.Draft202012Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft4Validator,
)
_REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef")
_HEX = frozenset("0123456789abcdefABCDEF")


class _SpecUnusable(Exception):
    """Raised inside validation when the spec cannot be applied; never leaves this module."""


class _PatternError(_SpecUnusable, ValueError):
    """Raised when RE2 cannot compile a schema's pattern (the reason is the message)."""


class _TooCostly(_SpecUnusable):
    """Raised when applying a schema to one instance runs over its keyword budget."""


# -- regexes -------------------------------------------------------------------------------


@functools.cache
def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is the uploader's error, not a server log
    options.never_capture = True  # only "does it match" is asked, which RE2's DFA answers
    return options


# pattern text -> (compiled, "") or (None, why RE2 refused it), weighed in RE2 instructions.
# A regex and its DFA cache stay under RE2's max_mem (8 MiB): 128 of them bound the memory.
_REGEXES: LRUCache[str, tuple[Any, str]] = LRUCache(
    max_entries=128,
    max_weight=4_000_000,
    weigh=lambda item: item[0].programsize if item[0] is not None else len(item[1]),
)


def _regex(pattern: object) -> Any:
    """The RE2 regex of a schema pattern, compiled once; `_PatternError` if RE2 refuses it."""
    if not isinstance(pattern, str):
        raise _PatternError(f"a pattern must be a string, not {type(pattern).__name__}")
    cached = _REGEXES.get(pattern)
    if cached is None:
        try:
            cached = (re2.compile(_re2_spelling(pattern), options=_re2_options()), "")
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "not a regex"
            text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
            cached = (None, text)
        _REGEXES.put(pattern, cached)
    regex, reason = cached
    if regex is None:
        raise _PatternError(reason)
    return regex


def _re2_spelling(pattern: str) -> str:
    r"""Spell ECMA-262's ``\uXXXX`` and ``\u{X...}`` escapes as RE2's ``\x{X...}``.

    JSON Schema patterns are ECMA-262 regexes, where ``\u0041`` is common; RE2 rejects it.
    A surrogate pair (``\uD83D\uDE00``) becomes the one code point it encodes.
    """
    if "\\u" not in pattern:
        return pattern
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] != "\\" or i + 1 == len(pattern):
            out.append(pattern[i])
            i += 1
            continue
        code, end = _unicode_escape(pattern, i)
        if code is None:
            out.append(pattern[i : i + 2])  # any other escape, kept whole (so \\u stays)
            i += 2
            continue
        if 0xD800 <= code < 0xDC00:
            low, low_end = _unicode_escape(pattern, end)
            if low is not None and 0xDC00 <= low < 0xE000:
                code, end = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), low_end
        out.append(f"\\x{{{code:X}}}")
        i = end
    return "".join(out)


def _unicode_escape(pattern: str, start: int) -> tuple[int | None, int]:
    """The code point of a ``\\u`` escape at ``start``, and where it ends; None if none."""
    if not pattern.startswith("\\u", start):
        return None, start
    if pattern.startswith("{", start + 2):
        close = pattern.find("}", start + 3)
        digits = pattern[start + 3 : close] if close != -1 else ""
        end = close + 1
    else:
        digits = pattern[start + 2 : start + 6]
        end = start + 6
        if len(digits) != 4:
            return None, start
    if not digits or len(digits) > 6 or not set(digits) <= _HEX:
        return None, start
    return int(digits, 16), end


def _matches(pattern: object, text: str) -> bool:
    return _regex(pattern).search(text) is not None


def _is_regex(instance: object) -> bool:
    """``format: "regex"``: whether RE2 compiles it (`_PatternError` names why not)."""
    if isinstance(instance, str):
        _regex(instance)
    return True


# -- keywords ------------------------------------------------------------------------------
# jsonschema's own implementations of these three call Python's ``re``; these are the same
# keywords, with the same messages, on RE2. (``unevaluatedProperties`` also matches
# ``patternProperties``, inside jsonschema: `check_spec_schema` refuses that combination.)


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if _matches(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        name
        for name in instance
        if name not in declared and not any(_matches(pattern, name) for pattern in patterns)
    ]
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)
    elif not extra and extras:
        names = ", ".join(repr(name) for name in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield jsonschema.ValidationError(
                f"{names} {verb} not match any of the regexes: {regexes}"
            )
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield jsonschema.ValidationError(
                f"Additional properties are not allowed ({names} {verb} unexpected)"
            )


_RE2_KEYWORDS: dict[str, Callable[..., Iterator[Any]]] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def _count_values(instance: object) -> int:
    count, stack = 0, [instance]
    while stack:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


@dataclass
class _Budget:
    """Keyword applications left to one validation.

    Counting the instance's values costs a walk of the instance, so it is done only when
    the floor is spent: most jobs never pay for it.
    """

    instance: object
    left: int = _BASE_BUDGET
    grown: bool = False

    def spend(self) -> None:
        self.left -= 1
        if self.left >= 0:
            return
        if not self.grown:
            self.grown = True
            self.left += _BUDGET_PER_VALUE * _count_values(self.instance)
        if self.left < 0:
            raise _TooCostly


# Set by `best_validation_error` for the validation it runs; None (no limit) otherwise.
_BUDGET: ContextVar[_Budget | None] = ContextVar("qruntime_spec_schema_budget", default=None)


def _metered(keyword: Callable[..., Any]) -> Callable[..., Iterator[Any]]:
    """A keyword that spends one unit of the current budget each time it is applied."""

    def apply(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend()
        errors = keyword(validator, value, instance, schema)
        if errors is not None:
            yield from errors

    return apply


@functools.cache
def _safe_class(base: Any) -> Any:
    formats = jsonschema.FormatChecker(formats=())
    for name, (check, raises) in base.FORMAT_CHECKER.checkers.items():
        formats.checks(name, raises=raises)(check)
    formats.checks("regex", raises=_PatternError)(_is_regex)
    keywords = {name: _metered(_RE2_KEYWORDS.get(name, fn)) for name, fn in base.VALIDATORS.items()}
    return jsonschema.validators.extend(base, validators=keywords, format_checker=formats)


def spec_validator_class(schema: Mapping[str, Any]) -> Any:
    """The validator class for a schema's ``$schema`` (2020-12 without one), on RE2.

    Build instances with ``registry=offline_registry()``; better, use
    `best_validation_error`, which also checks the schema first and keeps a ``"$ref": "#"``
    on this class. The class's ``FORMAT_CHECKER`` checks ``format: "regex"`` with RE2 too;
    as in jsonschema, formats are asserted only by a validator given a format checker.
    """
    dialect = schema.get("$schema")
    if dialect is None:
        return _safe_class(jsonschema.Draft202012Validator)
    base = None
    if isinstance(dialect, str):
        try:
            base = jsonschema.validators.validator_for({"$schema": dialect}, default=None)
        except ValueError:  # not even a URI ("http://[")
            base = None
    if base not in _DRAFTS:
        known = ", ".join(repr(draft.META_SCHEMA["$schema"]) for draft in _DRAFTS)
        raise InputValueError(f"unsupported $schema {dialect!r}; supported: {known}")
    return _safe_class(base)


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    """Nothing outside a schema is ever fetched: not http(s), not file, not anything."""
    raise referencing.exceptions.NoSuchResource(uri)


@functools.cache
def offline_registry() -> referencing.Registry[Any]:
    """A registry that resolves references inside the schema being applied, and nothing else."""
    return referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


# -- checking a schema ---------------------------------------------------------------------


def _check_shape(schema: dict[str, Any], *, label: str, unevaluated_matters: bool) -> None:
    """Bound the nesting; refuse what would take validation back to Python's ``re``.

    A nested ``$schema`` makes jsonschema switch to its own class for that dialect (whose
    regexes are Python's), and its ``unevaluatedProperties`` matches ``patternProperties``
    with Python's ``re`` internally. Any object of the document counts, since a ``$ref``
    JSON pointer can make any of them a schema. Iterative, so depth cannot overflow it.
    """
    stack: list[tuple[Any, int]] = [(schema, 1)]
    unevaluated = patterned = False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise InputValueError(f"{label} is nested more than {MAX_SCHEMA_DEPTH} levels deep.")
        if isinstance(node, dict):
            if node is not schema and "$schema" in node:
                raise InputValueError(
                    f'{label} has a nested "$schema"; give the dialect once, at the top.'
                )
            unevaluated = unevaluated or "unevaluatedProperties" in node
            patterned = patterned or "patternProperties" in node
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    if unevaluated and patterned and unevaluated_matters:
        raise InputValueError(
            f"{label} uses both unevaluatedProperties and patternProperties, which this "
            "server cannot apply with linear-time regexes; use additionalProperties instead."
        )


def _pattern_problem(label: str, pattern: object, exc: _PatternError) -> str:
    return (
        f"{label} has a pattern RE2 cannot compile: {pattern!r} ({exc}). Patterns run on "
        "RE2, a linear-time regex engine without backreferences or lookaround."
    )


def _check_metaschema(schema: dict[str, Any], cls: Any, *, label: str) -> None:
    try:
        cls.check_schema(schema, format_checker=cls.FORMAT_CHECKER)
    except jsonschema.SchemaError as exc:
        if isinstance(exc.cause, _PatternError):
            raise InputValueError(_pattern_problem(label, exc.instance, exc.cause)) from None
        where = "/".join(str(part) for part in exc.path) or "top level"
        raise InputValueError(
            f"{label} is not a valid JSON Schema ({where}): {exc.message}"
        ) from None


def _check_patterns(contents: dict[str, Any], *, label: str) -> None:
    patterns: list[object] = [contents["pattern"]] if "pattern" in contents else []
    named = contents.get("patternProperties")
    if isinstance(named, dict):
        patterns.extend(named)
    for pattern in patterns:
        try:
            _regex(pattern)
        except _PatternError as exc:
            raise InputValueError(_pattern_problem(label, pattern, exc)) from None


def _unresolvable(label: str, keyword: str, ref: object) -> str:
    return (
        f"{label} has {keyword} {ref!r}, which does not resolve to a schema inside it. "
        "Remote and file references are not fetched: embed the schema instead, e.g. under "
        '"$defs", and refer to it as "#/$defs/name".'
    )


def _check_references(schema: dict[str, Any], cls: Any, *, label: str) -> None:
    """Every reference must land on a schema of this document; check patterns on the way.

    Walks the document's schemas as the JSON Schema dialect defines them (with the base
    URI each ``$id`` sets), and resolves each reference with nothing but the document.
    A target outside the schemas walked (``#/default``, ``#/x-extra/...``) is refused,
    so every schema validation can reach has passed the metaschema check.
    """
    specification = referencing.jsonschema.specification_with(
        cls.ID_OF(cls.META_SCHEMA) or "", default=referencing.Specification.OPAQUE
    )
    root = specification.create_resource(schema)
    todo = [(root, offline_registry().resolver_with_root(root))]
    schemas: set[int] = set()
    references: list[tuple[str, object, Any]] = []  # (keyword, reference, its resolver)
    while todo:
        resource, resolver = todo.pop()
        contents = resource.contents
        if not isinstance(contents, dict) or id(contents) in schemas:
            continue
        schemas.add(id(contents))
        _check_patterns(contents, label=label)
        references.extend((key, contents[key], resolver) for key in _REFERENCES if key in contents)
        todo.extend((sub, resolver.in_subresource(sub)) for sub in resource.subresources())
    for keyword, ref, resolver in references:
        if not isinstance(ref, str):
            raise InputValueError(f"{label} has a {keyword} that is not a string: {ref!r}.")
        try:
            target = resolver.lookup(ref).contents
        except (referencing.exceptions.Unresolvable, LookupError, TypeError, ValueError):
            raise InputValueError(_unresolvable(label, keyword, ref)) from None
        if not isinstance(target, bool) and id(target) not in schemas:
            raise InputValueError(_unresolvable(label, keyword, ref))


def _build_validator(schema: object, *, label: str) -> Any:
    """Check a schema (a fresh copy, owned here) and build its validator."""
    if not isinstance(schema, dict):
        raise InputValueError(f"{label} must be a JSON object.")
    try:
        cls = spec_validator_class(schema)
    except InputValueError as exc:
        raise InputValueError(f"{label} has an {exc.message}.") from None
    _check_shape(schema, label=label, unevaluated_matters="unevaluatedProperties" in cls.VALIDATORS)
    _check_metaschema(schema, cls, label=label)
    _check_references(schema, cls, label=label)
    # Without its "$schema", the root stays on this class when a "$ref": "#" re-enters it.
    body = {key: value for key, value in schema.items() if key != "$schema"}
    return cls(body, registry=offline_registry())


@dataclass(frozen=True)
class _Prepared:
    """A schema's validator, or why it has none; weighed by its text for the cache."""

    validator: Any
    problem: str
    weight: int


# "label\ncanonical JSON" -> _Prepared: a job costs a json.dumps, not a check and a build.
_PREPARED: LRUCache[str, _Prepared] = LRUCache(
    max_entries=256, max_weight=16_000_000, weigh=lambda prepared: prepared.weight
)


def _prepared(schema: object, *, label: str) -> _Prepared:
    try:
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return _Prepared(None, f"{label} is not a JSON object of plain JSON values.", 0)
    if len(text) > MAX_SCHEMA_CHARS:
        return _Prepared(
            None, f"{label} is {len(text)} characters of JSON, over {MAX_SCHEMA_CHARS}.", 0
        )
    key = f"{label}\n{text}"
    prepared = _PREPARED.get(key)
    if prepared is None:
        try:
            prepared = _Prepared(_build_validator(json.loads(text), label=label), "", len(key))
        except InputValueError as exc:
            prepared = _Prepared(None, exc.message, len(key))
        _PREPARED.put(key, prepared)
    return prepared


def check_spec_schema(schema: object, *, label: str = "spec.parameters") -> None:
    """Refuse a schema that cannot be applied safely, naming the problem (at upload).

    Runs the metaschema check of the schema's dialect; refuses a reference that does not
    resolve inside the schema, a pattern RE2 cannot compile, more than `MAX_SCHEMA_CHARS`
    of JSON or `MAX_SCHEMA_DEPTH` levels. ``label`` names the schema in messages.

    Raises:
        InputValueError: why the schema is refused.
    """
    prepared = _prepared(schema, label=label)
    if prepared.validator is None:
        raise InputValueError(prepared.problem)


def best_validation_error(
    schema: object, instance: object, *, label: str = "spec.parameters"
) -> Any:
    """The most relevant ``jsonschema.ValidationError`` of ``instance``, or None if valid.

    A drop-in for ``best_match(validator_for(schema)(schema).iter_errors(instance))``: the
    validator is checked and built once per schema text, runs its regexes on RE2, fetches
    nothing, and stops after a bounded number of keyword applications.

    Raises:
        InputValueError: the schema cannot be applied ("The program's spec is invalid:
            ..."), e.g. a spec stored before these checks with a remote ``$ref``.
    """
    prepared = _prepared(schema, label=label)
    if prepared.validator is None:
        raise InputValueError(f"The program's spec is invalid: {prepared.problem}")
    token = _BUDGET.set(_Budget(instance))
    try:
        return jsonschema.exceptions.best_match(prepared.validator.iter_errors(instance))
    except _TooCostly:
        problem = f"applying {label} to these inputs takes too many steps (nested allOf, "
        problem += "anyOf or oneOf over $refs multiply them)."
    except _PatternError as exc:
        problem = f"{label} has a pattern RE2 cannot compile ({exc})."
    except referencing.exceptions.Unresolvable as exc:
        problem = _unresolvable(label, "a reference", getattr(exc, "ref", "?"))
    except RecursionError:
        problem = f"applying {label} to these inputs recurses too deeply."
    finally:
        _BUDGET.reset(token)
    raise InputValueError(f"The program's spec is invalid: {problem}")
