"""Use cases for runtime programs: upload, list, read, update, delete, visibility.

Rules: private programs are visible to their owner (and admins) only, and a
program another user cannot see does not exist for them (404, never 403).
Only the owner or an admin changes a program; only the owner reads its source.
"""

from __future__ import annotations

import ast
import base64
import binascii
import importlib
import inspect
import re
import secrets
import string
import sys
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qruntime import program_files
from qruntime.errors import (
    InputValueError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RuntimeDuplicateProgramError,
    RuntimeProgramNotFound,
)
from qruntime.schemas import ProgramCreate, ProgramOut, ProgramSpec, ProgramUpdate
from qruntime.schemas.programs import ENFORCED_BACKEND_REQUIREMENTS
from qruntime.server.services.auth import SYSTEM_USER
from qruntime.server.services.environment import check_dependencies
from qruntime.server.store import programs as store
from qruntime.server.store.database import AnyRow
from qruntime.server.store.tables import Program, User, utcnow
from qruntime.spec_schema import check_spec_schema

__all__ = [
    "BuiltinHeads",
    "create_program",
    "decode_program",
    "decode_source",
    "delete_program",
    "get_program",
    "kept_runnable_program",
    "list_programs",
    "runnable_program",
    "set_visibility",
    "sync_builtin_programs",
    "update_program",
    "update_program_data",
    "visible_program",
]

_ID_ALPHABET = string.ascii_letters + string.digits


def _new_program_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "program"
    return f"{slug}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"


#: A folder program's files may hold this many times the upload limit, unpacked.
UNPACKED_FACTOR = 8


def to_wire(program: Program, *, owner: str, viewer: User) -> ProgramOut:
    mine = program.owner_id == viewer.id
    files = None
    if mine and program.archive is not None:
        with zipfile.ZipFile(BytesIO(program.archive)) as archive:
            files = sorted(archive.namelist())
    return ProgramOut(
        id=program.id,
        name=program.name,
        description=program.description,
        cost=program.max_execution_time,
        is_public=program.is_public,
        creation_date=program.created_at,
        update_date=program.updated_at,
        owner=owner,
        spec=program.spec or {},
        data=program.source if mine else None,
        entry_point=program.entry_point,
        dependencies=list(program.dependencies or []),
        files=files,
    )


def decode_source(data: str, *, limit: int) -> str:
    """Decode base64 program data and check it is a Python program with ``main``."""
    source, archive, _ = decode_program(data, entry_point=None, limit=limit)
    if archive is not None:
        raise InputValueError("Expected a program's source, not a zip archive.")
    return source


def decode_program(
    data: str, *, entry_point: str | None, limit: int, previous_entry_point: str | None = None
) -> tuple[str, bytes | None, str | None]:
    """Decode base64 program data: a program's source, or a zip archive of its folder.

    Returns the (entry module's) source, and for a folder the archive as stored and its
    entry point (``entry_point``, else ``previous_entry_point``, else ``program.py``).
    Every module must compile; the entry module must define ``main``.
    """
    raw = _decode_base64(data, limit=limit)
    if program_files.is_archive(raw):
        files = program_files.read_archive(
            raw, entry_point=entry_point or previous_entry_point, max_bytes=limit * UNPACKED_FACTOR
        )
        for name in sorted(files.files):
            if name.endswith(".py") and name != files.entry_point:
                _check_compiles(files.files[name].decode("utf-8"), name)
        try:
            check_source(files.entry_source)
        except InputValueError as exc:
            raise InputValueError(f"{files.entry_point}: {exc}") from None
        return files.entry_source, program_files.pack(files), files.entry_point
    if entry_point not in (None, program_files.DEFAULT_ENTRY_POINT):
        raise InputValueError(
            "entry_point names the main module of a folder or zip program; "
            "this program is a single source file."
        )
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputValueError("Program data is not UTF-8 text.") from None
    check_source(source)
    return source, None, None


def _check_compiles(source: str, name: str) -> None:
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise InputValueError(
            f"Module {name} does not compile: {exc.msg} (line {exc.lineno}, column {exc.offset})."
        ) from None
    except ValueError as exc:
        raise InputValueError(f"Module {name} does not compile: {exc}.") from None


def _decode_base64(data: str, *, limit: int) -> bytes:
    # base64 is 4/3 of the source: refuse huge payloads before decoding them.
    if len(data) > (limit * 4) // 3 + 8:
        raise PayloadTooLargeError(f"The program is larger than the limit of {limit} bytes.")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputValueError("Program data is not valid base64.") from None
    if len(raw) > limit:
        raise PayloadTooLargeError(
            f"The program is {len(raw)} bytes, larger than the limit of {limit} bytes."
        )
    return raw


def check_source(source: str) -> None:
    """Refuse a source that does not compile or defines no top-level ``main``."""
    if "def main(" not in source:
        raise InputValueError(
            "The program has no 'def main(': a runtime program defines "
            "def main(backend, user_messenger, **kwargs)."
        )
    try:
        tree = ast.parse(source, filename="<program>")
        compile(tree, "<program>", "exec")
    except SyntaxError as exc:
        raise InputValueError(
            f"The program does not compile: {exc.msg} (line {exc.lineno}, column {exc.offset})."
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise InputValueError(f"The program does not compile: {exc}.") from None
    if not any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
        for node in tree.body
    ):
        raise InputValueError("The program must define main() at module level.")


def check_spec(spec: ProgramSpec | None) -> dict[str, Any]:
    """Check each part of a spec is a JSON Schema the server can apply safely; return a dict.

    Specs are untrusted: `check_spec_schema` refuses what could make the server fetch a
    reference or run a regex that backtracks.
    """
    if spec is None:
        return {}
    result: dict[str, Any] = {}
    for part in ("parameters", "return_values", "interim_results"):
        schema = getattr(spec, part)
        if schema is None:
            continue
        # Metaschema, references inside the schema only, patterns RE2 compiles, bounded size.
        check_spec_schema(schema, label=f"spec.{part}")
        if part == "parameters" and schema.get("type", "object") != "object":
            raise InputValueError('spec.parameters must be a JSON Schema of "type": "object".')
        result[part] = schema
    if spec.backend_requirements is not None:
        for key, value in spec.backend_requirements.items():
            # Unknown keys are kept and shown as not enforced, as the seed service took them.
            expected = ENFORCED_BACKEND_REQUIREMENTS.get(key)
            if expected is None:
                continue
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise InputValueError(
                    f"Backend requirement {key!r} must be of type {expected.__name__}."
                )
        result["backend_requirements"] = spec.backend_requirements
    return result


def _check_cost(cost: int, *, limit: int) -> None:
    if cost > limit:
        raise InputValueError(
            f"max_execution_time {cost} s is over this server's limit of {limit} s."
        )


def _may_see(program: Program | AnyRow | None, user: User) -> bool:
    return program is not None and (
        program.is_public or program.owner_id == user.id or user.is_admin
    )


def visible_program(db: Session, *, user: User, program_id: str) -> tuple[Program, str]:
    """A program the user may see, and its owner's name; 404 otherwise."""
    found = store.get_program(db, program_id=program_id)
    if found is None or not _may_see(found[0], user):
        raise RuntimeProgramNotFound(f"Program not found: {program_id}")
    return found


class BuiltinHeads:
    """What job submissions read of the built-in programs, kept by one server (or, with
    ``read``, what another reader reads of them: the runtime keeps what a claim reads).

    Built-in programs cannot be changed (`_writable_program`); a server registers its
    own at start and runs its own code for them. So once read, their heads are kept,
    and a job of a built-in program costs no read of the programs table. Thread-safe:
    entries are only added, whole.
    """

    def __init__(self, read: Callable[..., AnyRow | None] = store.program_head) -> None:
        self._heads: dict[str, AnyRow] = {}
        self._read = read

    def head(self, db: Session, program_id: str) -> AnyRow | None:
        head = self._heads.get(program_id)
        if head is None:
            head = self._read(db, program_id=program_id)
            if head is not None and head.builtin is not None:
                self._heads[program_id] = head
        return head

    def kept(self, program_id: str) -> AnyRow | None:
        """The head of built-in program ``program_id`` if it was read before, else None."""
        return self._heads.get(program_id)


def runnable_program(
    db: Session, *, user: User, program_id: str, builtins: BuiltinHeads | None = None
) -> AnyRow:
    """`visible_program` for a job submission: the fields a job needs, without the source."""
    if builtins is not None:
        head = builtins.head(db, program_id)
    else:
        head = store.program_head(db, program_id=program_id)
    if head is None or not _may_see(head, user):
        raise RuntimeProgramNotFound(f"Program not found: {program_id}")
    return head


def kept_runnable_program(builtins: BuiltinHeads, *, user: User, program_id: str) -> AnyRow | None:
    """`runnable_program` without the store: a built-in program ``builtins`` kept, that
    ``user`` may see; None otherwise (`runnable_program` then reads it, or says why not).
    """
    head = builtins.kept(program_id)
    return head if _may_see(head, user) else None


def _writable_program(db: Session, *, user: User, program_id: str) -> tuple[Program, str]:
    program, owner = visible_program(db, user=user, program_id=program_id)
    if program.owner_id != user.id and not user.is_admin:
        raise PermissionDeniedError(f"Only the owner of program {program_id} may change it.")
    if program.builtin is not None:
        raise PermissionDeniedError(f"Program {program_id} is built in and cannot be changed.")
    return program, owner


def list_programs(
    db: Session, *, user: User, limit: int | None, offset: int
) -> tuple[list[ProgramOut], int]:
    rows, total = store.list_programs(
        db, user_id=user.id, is_admin=user.is_admin, limit=limit, offset=offset
    )
    return [to_wire(program, owner=owner, viewer=user) for program, owner in rows], total


def get_program(db: Session, *, user: User, program_id: str) -> ProgramOut:
    program, owner = visible_program(db, user=user, program_id=program_id)
    return to_wire(program, owner=owner, viewer=user)


def _ensure_unique_name(db: Session, *, owner_id: str, name: str, program_id: str = "") -> None:
    existing = store.find_program_by_name(db, owner_id=owner_id, name=name)
    if existing is not None and existing.id != program_id:
        raise RuntimeDuplicateProgramError(
            f"You already have a program named {name!r} ({existing.id})."
        )


def create_program(
    db: Session, *, user: User, payload: ProgramCreate, max_bytes: int, max_cost: int
) -> str:
    source, archive, entry_point = decode_program(
        payload.data, entry_point=payload.entry_point, limit=max_bytes
    )
    dependencies = check_dependencies(payload.dependencies)
    spec = check_spec(payload.spec)
    _check_cost(payload.cost, limit=max_cost)
    _ensure_unique_name(db, owner_id=user.id, name=payload.name)
    now = utcnow()
    try:
        program = store.add_program(
            db,
            id=_new_program_id(payload.name),
            owner_id=user.id,
            name=payload.name,
            description=payload.description,
            source=source,
            archive=archive,
            entry_point=entry_point,
            dependencies=dependencies,
            max_execution_time=payload.cost,
            spec=spec,
            is_public=payload.is_public,
            created_at=now,
            updated_at=now,
        )
    except IntegrityError:  # a concurrent upload of the same name won the race
        raise RuntimeDuplicateProgramError(
            f"You already have a program named {payload.name!r}."
        ) from None
    return program.id


def update_program(
    db: Session, *, user: User, program_id: str, payload: ProgramUpdate, max_cost: int
) -> None:
    program, _ = _writable_program(db, user=user, program_id=program_id)
    if payload.name is not None and payload.name != program.name:
        _ensure_unique_name(db, owner_id=program.owner_id, name=payload.name, program_id=program.id)
        program.name = payload.name
    if payload.description is not None:
        program.description = payload.description
    if payload.cost is not None:
        _check_cost(payload.cost, limit=max_cost)
        program.max_execution_time = payload.cost
    if payload.spec is not None:
        merged = dict(program.spec or {})
        merged.update(check_spec(payload.spec))
        program.spec = merged
    if payload.dependencies is not None:
        program.dependencies = check_dependencies(payload.dependencies)
    if payload.entry_point is not None and payload.entry_point != program.entry_point:
        if program.archive is None:
            raise InputValueError(
                "entry_point names the main module of a folder or zip program; "
                f"program {program_id} is a single source file."
            )
        files = program_files.read_archive(  # its size was checked when it was uploaded
            program.archive, entry_point=payload.entry_point, max_bytes=sys.maxsize
        )
        try:
            check_source(files.entry_source)
        except InputValueError as exc:
            raise InputValueError(f"{files.entry_point}: {exc}") from None
        program.source, program.entry_point = files.entry_source, files.entry_point
    program.updated_at = utcnow()


def update_program_data(
    db: Session,
    *,
    user: User,
    program_id: str,
    data: str,
    max_bytes: int,
    entry_point: str | None = None,
) -> None:
    """New code for a program: a source or a folder's archive (with its entry point, by
    default the one the program had)."""
    program, _ = _writable_program(db, user=user, program_id=program_id)
    source, archive, entry = decode_program(
        data, entry_point=entry_point, limit=max_bytes, previous_entry_point=program.entry_point
    )
    program.source, program.archive, program.entry_point = source, archive, entry
    program.updated_at = utcnow()


def set_visibility(db: Session, *, user: User, program_id: str, public: bool) -> None:
    program, _ = _writable_program(db, user=user, program_id=program_id)
    program.is_public = public
    program.updated_at = utcnow()


def delete_program(db: Session, *, user: User, program_id: str) -> None:
    program, _ = _writable_program(db, user=user, program_id=program_id)
    store.delete_program(db, program=program)


def sync_builtin_programs(db: Session) -> None:
    """Register (or refresh) the built-in programs, public and owned by the system user."""
    from qruntime.programs import BUILTIN_PROGRAMS

    now = utcnow()
    for program_id, module_name in BUILTIN_PROGRAMS.items():
        module = importlib.import_module(f"qruntime.programs.{module_name}")
        meta: dict[str, Any] = module.METADATA
        fields: dict[str, Any] = {
            "name": meta["name"],
            "description": meta["description"],
            "source": inspect.getsource(module),
            "max_execution_time": int(meta["max_execution_time"]),
            "spec": meta.get("spec", {}),
            "is_public": True,
            "builtin": module_name,
        }
        found = store.get_program(db, program_id=program_id)
        if found is None:
            store.add_program(
                db, id=program_id, owner_id=SYSTEM_USER, created_at=now, updated_at=now, **fields
            )
            continue
        program = found[0]
        if any(getattr(program, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(program, key, value)
            program.updated_at = now
