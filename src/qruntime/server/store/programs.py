"""Data access for runtime programs."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, or_, select
from sqlalchemy.orm import Session

from qruntime.server.store.database import AnyRow
from qruntime.server.store.tables import Program, User

__all__ = [
    "add_program",
    "delete_program",
    "find_program_by_name",
    "get_program",
    "list_programs",
    "program_head",
    "visible_to",
]


def visible_to(*, user_id: str, is_admin: bool) -> ColumnElement[bool]:
    """The condition for programs a user may see: public ones, their own, all for admins."""
    if is_admin:
        return Program.id.is_not(None)
    return or_(Program.is_public.is_(True), Program.owner_id == user_id)


def get_program(db: Session, *, program_id: str) -> tuple[Program, str] | None:
    """A program and its owner's name."""
    row = db.execute(
        select(Program, User.name)
        .join(User, User.id == Program.owner_id)
        .where(Program.id == program_id)
    ).first()
    return (row[0], row[1]) if row else None


_programs = cast(Table, Program.__table__)
_HEAD = select(
    _programs.c.id,
    _programs.c.owner_id,
    _programs.c.is_public,
    _programs.c.spec,
    _programs.c.builtin,
    _programs.c.max_execution_time,
).where(_programs.c.id == bindparam("program_id"))


def program_head(db: Session, *, program_id: str) -> AnyRow | None:
    """What a job submission needs of a program (no source), in one light query."""
    return db.execute(_HEAD, {"program_id": program_id}).first()


def find_program_by_name(db: Session, *, owner_id: str, name: str) -> Program | None:
    return db.scalar(select(Program).where(Program.owner_id == owner_id, Program.name == name))


def list_programs(
    db: Session, *, user_id: str, is_admin: bool, limit: int | None, offset: int
) -> tuple[list[tuple[Program, str]], int]:
    """One page of (program, owner name) visible to a user, oldest first, and the total count."""
    condition = visible_to(user_id=user_id, is_admin=is_admin)
    total = db.scalar(select(func.count()).select_from(Program).where(condition)) or 0
    query = (
        select(Program, User.name)
        .join(User, User.id == Program.owner_id)
        .where(condition)
        .order_by(Program.created_at, Program.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(row[0], row[1]) for row in db.execute(query)], total


def add_program(db: Session, **fields: Any) -> Program:
    program = Program(**fields)
    db.add(program)
    db.flush()
    return program


def delete_program(db: Session, *, program: Program) -> None:
    db.delete(program)
    db.flush()
