"""A program's spec as readable tables: its JSON Schemas turned into rows.

A spec's ``parameters``, ``return_values`` and ``interim_results`` are JSON Schemas
(checked on upload, but written by users: every text here is shown escaped by the
templates). An object schema becomes one row per property, nested objects as dotted
names; any other schema becomes one row for the value itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["SpecPart", "SpecRow", "spec_parts"]

#: The parts of a spec shown, with their headings.
PARTS = (
    ("parameters", "Parameters"),
    ("return_values", "Return values"),
    ("interim_results", "Interim results"),
)
# Keywords that constrain a value, shown as "name: value" in the constraints column.
_CONSTRAINTS = (
    "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems",
    "multipleOf",
)  # fmt: skip
#: Nested objects deeper than this are shown as one row.
_MAX_DEPTH = 3


@dataclass(frozen=True)
class SpecRow:
    """One documented value: a parameter, a field of the result, or the value itself."""

    name: str
    type: str
    required: bool
    description: str
    default: str
    constraints: str


@dataclass(frozen=True)
class SpecPart:
    key: str
    title: str
    description: str
    rows: tuple[SpecRow, ...]


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        text = " or ".join(str(k) for k in kind)
    elif kind is not None:
        text = str(kind)
    elif "enum" in schema:
        text = "one of the listed values"
    elif any(key in schema for key in ("anyOf", "oneOf")):
        options = schema.get("anyOf") or schema.get("oneOf") or []
        text = " or ".join(_type(o) for o in options if isinstance(o, dict)) or "any"
    else:
        text = "any"
    items = schema.get("items")
    if isinstance(items, dict) and ("type" in items or "anyOf" in items):
        text += f" of {_type(items)}"
    return text


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _row(name: str, schema: dict[str, Any], *, required: bool) -> SpecRow:
    constraints = [f"{key}: {_json(schema[key])}" for key in _CONSTRAINTS if key in schema]
    return SpecRow(
        name=name,
        type=_type(schema),
        required=required,
        description=str(schema.get("description") or schema.get("title") or ""),
        default=_json(schema["default"]) if "default" in schema else "",
        constraints="; ".join(constraints),
    )


def _rows(schema: dict[str, Any], prefix: str = "", depth: int = 0) -> list[SpecRow]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return []
    required = set(schema.get("required") or [])
    rows = []
    for name, child in properties.items():
        if not isinstance(child, dict):
            child = {}
        full = f"{prefix}{name}"
        rows.append(_row(full, child, required=name in required))
        if depth + 1 < _MAX_DEPTH and isinstance(child.get("properties"), dict):
            rows.extend(_rows(child, f"{full}.", depth + 1))
    return rows


def spec_parts(spec: dict[str, Any] | None) -> list[SpecPart]:
    """The spec's documented parts, in a fixed order; parts the spec lacks are left out."""
    parts = []
    for key, title in PARTS:
        schema = (spec or {}).get(key)
        if not isinstance(schema, dict):
            continue
        rows = _rows(schema)
        description = str(schema.get("description") or "")
        if not rows and "properties" not in schema:  # a value, not an object of fields
            rows, description = [_row("(the value)", schema, required=True)], ""
        parts.append(SpecPart(key, title, description, tuple(rows)))
    return parts
