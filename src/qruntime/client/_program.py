"""Runtime programs as the client sees them: ``RuntimeProgram`` and ``ParameterNamespace``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from qruntime.encoding import dumps
from qruntime.errors import InputValueError, NotAuthorizedError
from qruntime.schemas.programs import ENFORCED_BACKEND_REQUIREMENTS
from qruntime.spec_schema import best_validation_error, check_spec_schema

__all__ = ["ParameterNamespace", "RuntimeProgram"]

_VALUE_WIDTH = 40  # longest value shown in a ParameterNamespace table before it is cut


class ParameterNamespace(SimpleNamespace):
    """The inputs of a runtime program: one attribute per property of its parameters schema.

    Every parameter starts as ``None``, which means "not set": ``to_dict()`` leaves it out, so
    the program's own default applies. As in JSON Schema (and the seed API), a parameter the
    schema does not declare may be set too, unless the schema says
    ``"additionalProperties": false``: then the name is refused at once, naming the known ones.

    Usage::

        params = program.parameters()
        params.iterations = 3
        params.validate()
        service.run(program.program_id, inputs=params.to_dict())
    """

    # Private state lives in slots, outside ``__dict__``, which holds the parameters only.
    __slots__ = ("_schema",)

    def __init__(self, parameters: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_schema", copy.deepcopy(dict(parameters or {})))
        super().__init__()
        for name in self._properties():
            object.__setattr__(self, name, None)

    @property
    def metadata(self) -> dict[str, Any]:
        """The parameters' JSON Schema (a copy)."""
        return copy.deepcopy(self._schema)

    def _properties(self) -> dict[str, Any]:
        properties = self._schema.get("properties")
        return properties if isinstance(properties, dict) else {}

    def _required(self) -> list[str]:
        required = self._schema.get("required")
        return [name for name in required if isinstance(name, str)] if required else []

    def __setattr__(self, name: str, value: Any) -> None:
        known = self._properties()
        if name in self.__slots__:
            raise InputValueError(f"{name!r} is the namespace's own state, not a parameter")
        if self._schema.get("additionalProperties") is False and name not in known:
            raise InputValueError(
                f"{name!r} is not a parameter of this program; "
                f"its parameters are: {', '.join(known)}"
            )
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        # Deleting a parameter unsets it; the attribute itself stays.
        if name in self._properties():
            object.__setattr__(self, name, None)
        else:
            super().__delattr__(name)

    def to_dict(self) -> dict[str, Any]:
        """The parameters that are set (not ``None``), ready to send as job inputs."""
        return {name: value for name, value in vars(self).items() if value is not None}

    def validate(self) -> None:
        """Check that required parameters are set and that values match the schema.

        Values are checked in their wire form (as the runtime JSON encoding writes them),
        which is what the server checks too.

        Raises:
            InputValueError: naming the first parameter that is missing or invalid.
        """
        values = vars(self)
        for name in self._required():
            if values.get(name) is None:
                raise InputValueError(f"Param {name!r} is required but was not set")
        if not self._schema:
            return
        instance = json.loads(dumps(self.to_dict()))
        # The server's checks, here too: regexes on RE2, no reference ever fetched.
        try:
            check_spec_schema(self._schema, label="spec.parameters")
        except InputValueError as exc:
            message = f"The program's parameter schema is invalid: {exc.message}"
            raise InputValueError(message) from exc
        error = best_validation_error(self._schema, instance, label="spec.parameters")
        if error is None:
            return
        if error.path:
            raise InputValueError(f"Param {error.path[0]!r} is invalid: {error.message}")
        raise InputValueError(f"Parameters are invalid: {error.message}")

    def __str__(self) -> str:
        properties = self._properties()
        required = set(self._required())
        rows = [("Name", "Value", "Type", "Required", "Description")]
        for name, value in vars(self).items():
            spec = properties.get(name, {})
            spec = spec if isinstance(spec, dict) else {}
            shown = repr(value)
            if len(shown) > _VALUE_WIDTH:
                shown = shown[: _VALUE_WIDTH - 3] + "..."
            rows.append(
                (
                    name,
                    shown,
                    _value_text(spec.get("type", "")),
                    str(name in required),
                    str(spec.get("description", "")),
                )
            )
        widths = [max(len(row[col]) for row in rows) for col in range(5)]
        lines = ["ParameterNamespace (Values):"]
        for index, row in enumerate(rows):
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            lines.append("| " + " | ".join(cells) + " |")
            if index == 0:
                lines.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
        return "\n".join(lines)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"ParameterNamespace({values})"


class RuntimeProgram:
    """A runtime program: its metadata, its JSON Schemas and (for its owner) its source.

    ``max_execution_time`` is in seconds. ``refresh`` re-fetches the program from the server;
    the ``data`` property calls it when the source was not sent with the listing.
    """

    def __init__(
        self,
        program_name: str,
        program_id: str,
        description: str,
        parameters: dict[str, Any] | None = None,
        return_values: dict[str, Any] | None = None,
        interim_results: dict[str, Any] | None = None,
        max_execution_time: int = 0,
        backend_requirements: dict[str, Any] | None = None,
        creation_date: str | datetime | None = "",
        update_date: str | datetime | None = "",
        is_public: bool = False,
        data: str = "",
        *,
        refresh: Callable[[], RuntimeProgram] | None = None,
        entry_point: str | None = None,
        dependencies: list[str] | None = None,
        files: list[str] | None = None,
    ) -> None:
        self._name = program_name
        self._id = program_id
        self._description = description
        self._parameters = parameters or {}
        self._return_values = return_values or {}
        self._interim_results = interim_results or {}
        self._max_execution_time = max_execution_time
        self._backend_requirements = backend_requirements or {}
        self._creation_date = _parse_date(creation_date, "creation_date")
        self._update_date = _parse_date(update_date, "update_date")
        self._is_public = is_public
        self._data = data
        self._refresh = refresh
        self._entry_point = entry_point
        self._dependencies = list(dependencies or [])
        self._files = list(files) if files is not None else None

    @classmethod
    def from_wire(
        cls,
        payload: Mapping[str, Any],
        *,
        refresh: Callable[[], RuntimeProgram] | None = None,
    ) -> RuntimeProgram:
        """Build a program from the JSON of ``GET /programs/{id}``; only ``id`` is needed."""
        program_id = payload.get("id")
        if not isinstance(program_id, str) or not program_id:
            raise InputValueError("The program payload has no 'id'")
        spec = payload.get("spec") or {}
        return cls(
            program_name=payload.get("name") or program_id,
            program_id=program_id,
            description=payload.get("description") or "",
            parameters=spec.get("parameters"),
            return_values=spec.get("return_values"),
            interim_results=spec.get("interim_results"),
            max_execution_time=int(payload.get("cost") or 0),
            backend_requirements=spec.get("backend_requirements"),
            creation_date=payload.get("creation_date"),
            update_date=payload.get("update_date"),
            is_public=bool(payload.get("is_public", False)),
            data=payload.get("data") or "",
            refresh=refresh,
            entry_point=payload.get("entry_point"),
            dependencies=payload.get("dependencies"),
            files=payload.get("files"),
        )

    @property
    def program_id(self) -> str:
        return self._id

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    def parameters(self) -> ParameterNamespace:
        """A new namespace for this program's inputs (each call returns a fresh one)."""
        return ParameterNamespace(self._parameters)

    @property
    def return_values(self) -> dict[str, Any]:
        """The JSON Schema of the final result."""
        return self._return_values

    @property
    def interim_results(self) -> dict[str, Any]:
        """The JSON Schema of each interim result."""
        return self._interim_results

    @property
    def max_execution_time(self) -> int:
        """Seconds a job of this program may run before it is stopped."""
        return self._max_execution_time

    @property
    def backend_requirements(self) -> dict[str, Any]:
        """What a backend must offer, e.g. ``{"min_num_qubits": 5}``."""
        return self._backend_requirements

    @property
    def creation_date(self) -> datetime | None:
        return self._creation_date

    @property
    def update_date(self) -> datetime | None:
        return self._update_date

    @property
    def is_public(self) -> bool:
        return self._is_public

    @property
    def entry_point(self) -> str | None:
        """A folder program's module that defines ``main``; None for a one-file program."""
        return self._entry_point

    @property
    def dependencies(self) -> list[str]:
        """The pip requirements the program declared (checked by the server at upload)."""
        return list(self._dependencies)

    @property
    def files(self) -> list[str] | None:
        """A folder program's files, for its owner; None otherwise."""
        return None if self._files is None else list(self._files)

    @property
    def data(self) -> str:
        """The program's source (a folder program's entry module); only its owner may read it.

        Raises:
            NotAuthorizedError: if the server does not send the source to this user.
        """
        if not self._data and self._refresh is not None:
            self._data = self._refresh()._data
        if not self._data:
            raise NotAuthorizedError("Only the program's owner can read its data")
        return self._data

    def __str__(self) -> str:
        lines = [
            f"{self._name}:",
            f"  ID: {self._id}",
            f"  Name: {self._name}",
            f"  Description: {self._description}",
            f"  Creation date: {_date_text(self._creation_date)}",
            f"  Update date: {_date_text(self._update_date)}",
            f"  Max execution time: {self._max_execution_time}",
            *([f"  Entry point: {self._entry_point}"] if self._entry_point else []),
            *([f"  Files: {', '.join(self._files)}"] if self._files else []),
            *([f"  Dependencies: {', '.join(self._dependencies)}"] if self._dependencies else []),
            "  Backend requirements:",
            *_requirement_lines(self._backend_requirements, indent=4),
            "  Input parameters:",
            *_schema_lines(self._parameters, indent=4),
            "  Interim results:",
            *_schema_lines(self._interim_results, indent=4),
            "  Returns:",
            *_schema_lines(self._return_values, indent=4),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RuntimeProgram(program_id={self._id!r}, name={self._name!r})"


def _parse_date(value: str | datetime | None, field: str) -> datetime | None:
    if not value:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InputValueError(f"{field} is not an ISO 8601 date: {value!r}") from exc
    # The server writes UTC; a date without an offset is read as UTC, never as local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _date_text(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "unknown"


def _field_label(key: str) -> str:
    return key[:1].upper() + key[1:].replace("_", " ")


def _mapping_lines(mapping: Mapping[str, Any], *, indent: int) -> list[str]:
    pad = " " * indent
    if not mapping:
        return [f"{pad}none"]
    return [f"{pad}{_field_label(key)}: {_value_text(value)}" for key, value in mapping.items()]


def _requirement_lines(requirements: Mapping[str, Any], *, indent: int) -> list[str]:
    """Backend requirements; those the server does not enforce are marked so."""
    lines = _mapping_lines(requirements, indent=indent)
    if not requirements:
        return lines
    return [
        line if key in ENFORCED_BACKEND_REQUIREMENTS else f"{line} (not enforced)"
        for key, line in zip(requirements, lines, strict=True)
    ]


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _schema_lines(schema: Mapping[str, Any], *, indent: int) -> list[str]:
    """A JSON Schema as text: its own fields, then each property with ``Required``."""
    pad = " " * indent
    if not schema:
        return [f"{pad}none"]
    skipped = {"properties", "required", "$schema"}
    lines = [
        f"{pad}{_field_label(key)}: {_value_text(value)}"
        for key, value in schema.items()
        if key not in skipped
    ]
    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        required: Iterable[str] = schema.get("required") or ()
        lines.append(f"{pad}Properties:")
        for name, spec in properties.items():
            lines.append(f"{pad}  - {name}:")
            fields = spec if isinstance(spec, dict) else {}
            for key, value in fields.items():
                lines.append(f"{pad}      {_field_label(key)}: {_value_text(value)}")
            lines.append(f"{pad}      Required: {name in required}")
    return lines or [f"{pad}none"]
