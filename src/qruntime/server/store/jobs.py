"""Data access for jobs, their interim results and logs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Table,
    Update,
    bindparam,
    case,
    column,
    delete,
    exists,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from qruntime.server.store.database import AnyRow
from qruntime.server.store.tables import (
    ClusterLeader,
    Job,
    JobCount,
    JobInterimResult,
    Program,
    RuntimeSession,
)

__all__ = [
    "add_interim_result",
    "add_job",
    "add_job_in_session",
    "append_log",
    "claim_job",
    "count_interim_results",
    "count_queued",
    "delete_job",
    "finish_job",
    "get_job",
    "interim_results",
    "job_outcome",
    "list_jobs",
    "program_to_run",
    "queued_builtin_jobs",
    "queued_by",
    "queued_jobs_all",
    "running_jobs",
    "take_private_result",
    "update_job",
    "usage_by_owner",
    "usage_seconds",
]


# The hot path (submit, claim, finish, result) uses Core statements on the table: one
# statement each, no ORM unit of work, and RETURNING where a read-back would follow. They
# run on the session's connection: the session's own execute() adds ORM steps (events,
# options, result wrapping) that cost more than SQLite's work on such a statement.
_jobs = cast(Table, Job.__table__)
_programs = cast(Table, Program.__table__)
_sessions = cast(Table, RuntimeSession.__table__)


_NO_PARAMS = "{}"

# Built once: the values change per call, the statements do not (no per-call compiling
# or cache-key work). A job's submission number is taken inside its INSERT.
_INSERT = (
    insert(_jobs)
    .values(seq=select(func.coalesce(func.max(_jobs.c.seq), 0) + 1).scalar_subquery())
    .returning(_jobs.c.seq)
)
# What a job needs to run, as the claim and the read-ahead return it.
_RUN_COLUMNS = (
    _jobs.c.id,
    _jobs.c.program_id,
    _jobs.c.backend,
    _jobs.c.params,
    _jobs.c.session_id,
    _jobs.c.log_level,
    _jobs.c.max_execution_time,
    _jobs.c.owner_id,
)


def _row_status() -> ColumnElement[str]:
    """A job's status as a statement that finds the job by its id compares it: an
    expression no index holds, so PostgreSQL finds the row by its primary key.

    On the bare column, PostgreSQL's planner chose the index on (status, backend), or the
    partial index of queued jobs, for ``id = :id AND status IN (...)`` while its
    statistics lagged behind a growing table (a few hundred jobs claimed and finished
    each second): each claim and each end then read every index entry of every job that
    had ever been Queued or Running since the last vacuum (200-1,100 per job measured in
    the servers benchmark), where the key finds one row.
    """
    return _jobs.c.status.concat(literal_column("''"))


def _in_sources(count: int) -> ColumnElement[bool]:
    """``status IN (:source_0, ...)``: one bound parameter per source state, on the
    status of the row the job's id finds (`_row_status`).

    Not an expanding IN: SQLAlchemy rewrites such a statement's SQL on every execution
    (~20-50 us); the hot statements are built once per number of sources instead.
    """
    return _row_status().in_([bindparam(f"source_{i}") for i in range(count)])


def _sources(sources: Sequence[str]) -> dict[str, str]:
    """The values of `_in_sources`'s parameters."""
    return {f"source_{i}": source for i, source in enumerate(sources)}


@functools.cache
def _claim(count: int, *, fenced: bool) -> Update:
    """The claim of a job in one of ``count`` states; ``fenced``: only while ``epoch``
    is the leader's current one (several servers).

    FOR SHARE makes a new leader's bump of the epoch wait for this claim's transaction,
    so the new leader's recovery sees the job Running (and queues it again) or sees it
    Queued.
    """
    claim = (
        update(_jobs)
        .where(_jobs.c.id == bindparam("job_id"), _in_sources(count))
        .values(
            status=bindparam("status"),
            running_at=bindparam("running_at"),
            dispatches=_jobs.c.dispatches + 1,
        )
        .returning(*_RUN_COLUMNS)
    )
    if not fenced:
        return claim
    leader = cast(Table, ClusterLeader.__table__)
    return claim.where(
        select(leader.c.id)
        .where(leader.c.id == 1, leader.c.epoch == bindparam("epoch"))
        .with_for_update(read=True)
        .exists()
    )


@functools.cache
def _finish(count: int) -> Update:
    """A job's end, written if it is in one of ``count`` states."""
    return (
        update(_jobs)
        .where(_jobs.c.id == bindparam("job_id"), _in_sources(count))
        .values(
            status=bindparam("status"),
            reason=bindparam("reason"),
            result=bindparam("result"),
            finished_at=bindparam("finished_at"),
            usage_seconds=bindparam("usage_seconds"),
            metrics=bindparam("metrics"),
            # A private job's inputs are needed only to run it: gone once it has ended.
            params=case((_jobs.c.private, _NO_PARAMS), else_=_jobs.c.params),
        )
        .returning(_jobs.c.private)
    )


def add_job(db: Session, **fields: Any) -> Job:
    """Insert a queued job; its submission number ``seq`` is taken in the same statement.

    Returns a transient `Job` holding what was written (it is not in the session).
    """
    fields.setdefault("tags", [])
    fields.setdefault("logs", "")
    row = db.connection().execute(_INSERT, fields).one()
    return Job(seq=row.seq, **fields)


@functools.cache
def _insert_in_session(names: tuple[str, ...]) -> Insert:
    """INSERT of a job with these columns, made only if its session takes it (one row or
    none): the session exists, is the job owner's, accepts jobs and runs on its backend."""
    takes = (
        select(_sessions.c.id)
        .where(
            _sessions.c.id == bindparam("session_id"),
            _sessions.c.owner_id == bindparam("owner_id"),
            _sessions.c.backend == bindparam("backend"),
            _sessions.c.accepting_jobs.is_(True),
        )
        .exists()
    )
    values = [bindparam(name, type_=_jobs.c[name].type) for name in names]
    seq = select(func.coalesce(func.max(_jobs.c.seq), 0) + 1).scalar_subquery()
    chosen = select(*values, seq).where(takes)
    return insert(_jobs).from_select([*names, "seq"], chosen).returning(_jobs.c.seq)


def add_job_in_session(db: Session, **fields: Any) -> Job | None:
    """`add_job` for a job of session ``fields["session_id"]``, in the same statement as
    the check that the session takes it: None (nothing written) when it does not.
    """
    fields.setdefault("tags", [])
    fields.setdefault("logs", "")
    statement = _insert_in_session(tuple(sorted(fields)))
    row = db.connection().execute(statement, fields).first()
    return None if row is None else Job(seq=row.seq, **fields)


def claim_job(
    db: Session,
    *,
    job_id: str,
    sources: Sequence[str],
    status: str,
    running_at: datetime,
    epoch: int | None = None,
) -> AnyRow | None:
    """Mark a job ``status`` (Running) if it is in one of ``sources``; the fields a run needs.

    None when the job had moved on (cancelled while it waited, say). With ``epoch``
    (several servers), also None unless ``epoch`` is the leader's current one: one
    statement, so a deposed leader cannot start the job.
    """
    values: dict[str, Any] = {
        "job_id": job_id,
        "status": status,
        "running_at": running_at,
        **_sources(sources),
    }
    if epoch is not None:
        values["epoch"] = epoch
    statement = _claim(len(sources), fenced=epoch is not None)
    return db.connection().execute(statement, values).first()


def queued_builtin_jobs(db: Session, *, limit: int) -> list[AnyRow]:
    """The oldest queued jobs of built-in programs, with what they need to run."""
    statement = (
        select(*_RUN_COLUMNS, _programs.c.builtin)
        .join(_programs, _programs.c.id == _jobs.c.program_id)
        .where(_jobs.c.status == "Queued", _programs.c.builtin.is_not(None))
        .order_by(_jobs.c.seq)
        .limit(limit)
    )
    return list(db.execute(statement))


def program_to_run(db: Session, *, program_id: str) -> AnyRow | None:
    """A program's ``builtin`` module name and, for an uploaded program, its ``source``,
    ``archive`` (a folder program's files, else None) and ``entry_point``."""
    statement = select(
        _programs.c.builtin,
        case((_programs.c.builtin.is_(None), _programs.c.source), else_=None).label("source"),
        _programs.c.archive,
        _programs.c.entry_point,
    ).where(_programs.c.id == program_id)
    return db.execute(statement).first()


def finish_job(
    db: Session,
    *,
    job_id: str,
    sources: Sequence[str],
    status: str,
    reason: str | None,
    result: str | None,
    finished_at: datetime,
    usage_seconds: float | None,
    metrics: dict[str, Any] | None,
) -> bool | None:
    """Write a job's final state if it is in one of ``sources``.

    None if it was not (it had ended otherwise); else whether the job is private.
    """
    values = {
        "job_id": job_id,
        **_sources(sources),
        "status": status,
        "reason": reason,
        "result": result,
        "finished_at": finished_at,
        "usage_seconds": usage_seconds,
        "metrics": metrics,
    }
    row = db.connection().execute(_finish(len(sources)), values).first()
    return None if row is None else bool(row.private)


_OUTCOME = select(
    _jobs.c.status,
    _jobs.c.reason,
    _jobs.c.result,
    _jobs.c.private,
    _jobs.c.result_read_at,
    _jobs.c.owner_id,
).where(_jobs.c.id == bindparam("job_id"))
_OWN_OUTCOME = _OUTCOME.where(_jobs.c.owner_id == bindparam("owner_id"))


def job_outcome(db: Session, *, job_id: str, owner_id: str | None = None) -> AnyRow | None:
    """A job's status, reason, result text, whether it is private and when a private
    job's result was read; with ``owner_id``, only if it is theirs.
    """
    if owner_id is None:
        return db.connection().execute(_OUTCOME, {"job_id": job_id}).first()
    values = {"job_id": job_id, "owner_id": owner_id}
    return db.connection().execute(_OWN_OUTCOME, values).first()


_TAKE = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("job_id"),
        _jobs.c.private.is_(True),
        _jobs.c.result_read_at.is_(None),
    )
    .values(result=None, params=_NO_PARAMS, result_read_at=bindparam("now"))
)


def take_private_result(db: Session, *, job_id: str, now: datetime) -> bool:
    """Mark a private job's result read and delete it, its inputs and interim results.

    True for the one caller that did it (read the result first, in the same
    transaction); False when another read came first.
    """
    if not db.execute(_TAKE, {"job_id": job_id, "now": now}).rowcount:  # type: ignore[attr-defined]
        return False
    db.execute(delete(JobInterimResult).where(JobInterimResult.job_id == job_id))
    return True


def get_job(db: Session, *, job_id: str, owner_id: str | None = None) -> Job | None:
    """A job; with ``owner_id``, only if it belongs to that user."""
    job = db.get(Job, job_id)
    if job is None or (owner_id is not None and job.owner_id != owner_id):
        return None
    return job


def _has_tag(tag: str, *, dialect: str) -> ColumnElement[bool]:
    """Whether a job's tags hold ``tag``, in SQL: the filter narrows the query itself, so a
    page reads 50 rows, not every matching job (JSON containment differs by database)."""
    if dialect == "postgresql":
        contains: ColumnElement[bool] = Job.tags.cast(JSONB).contains([tag])
        return contains
    elements = func.json_each(Job.tags).table_valued("value")
    return exists(select(literal(1)).select_from(elements).where(column("value") == tag))


def list_jobs(
    db: Session,
    *,
    owner_id: str | None,
    limit: int,
    offset: int,
    statuses: Sequence[str] | None = None,
    program_id: str | None = None,
    backend: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    descending: bool = True,
) -> tuple[list[Job], int]:
    """One page of a user's jobs (everyone's for ``owner_id=None``) matching the filters,
    and how many match in all."""
    conditions = [] if owner_id is None else [Job.owner_id == owner_id]
    if statuses:
        conditions.append(Job.status.in_(statuses))
    if program_id is not None:
        conditions.append(Job.program_id == program_id)
    if backend is not None:
        conditions.append(Job.backend == backend)
    if session_id is not None:
        conditions.append(Job.session_id == session_id)
    if created_after is not None:
        conditions.append(Job.created_at >= created_after)
    if created_before is not None:
        conditions.append(Job.created_at <= created_before)
    if tags:
        dialect = db.get_bind().dialect.name
        conditions.extend(_has_tag(tag, dialect=dialect) for tag in dict.fromkeys(tags))
    query = select(Job).where(*conditions)
    if owner_id is None and not conditions:  # everyone's jobs: the counts the triggers keep
        total = db.scalar(select(func.sum(JobCount.total))) or 0
    elif len(conditions) == 1 and owner_id is not None:  # all of one user's jobs
        total = db.scalar(select(JobCount.total).where(JobCount.owner_id == owner_id)) or 0
    else:
        total = db.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    # created_at first: the (owner_id, created_at) index then yields the page in order;
    # ordering by seq alone made SQLite sort all of a user's jobs for every page.
    if descending:
        order = (Job.created_at.desc(), Job.seq.desc())
    else:
        order = (Job.created_at.asc(), Job.seq.asc())
    page = db.scalars(query.order_by(*order).offset(offset).limit(limit))
    return list(page), total


def update_job(
    db: Session, *, job_id: str, where_status: Sequence[str] | None = None, **values: Any
) -> bool:
    """Change a job's fields, only if its status is one of ``where_status``; True if changed."""
    conditions = [Job.id == job_id]
    if where_status is not None:
        conditions.append(_row_status().in_(where_status))
    result = db.execute(update(Job).where(*conditions).values(**values))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def append_log(db: Session, *, job_id: str, text: str) -> None:
    db.execute(update(Job).where(Job.id == job_id).values(logs=Job.logs + text))


def add_interim_result(db: Session, *, job_id: str, seq: int, data: str) -> None:
    db.add(JobInterimResult(job_id=job_id, seq=seq, data=data))


def interim_results(db: Session, *, job_id: str, after: int = -1) -> list[tuple[int, str]]:
    rows = db.execute(
        select(JobInterimResult.seq, JobInterimResult.data)
        .where(JobInterimResult.job_id == job_id, JobInterimResult.seq > after)
        .order_by(JobInterimResult.seq)
    )
    return [(row[0], row[1]) for row in rows]


def count_interim_results(db: Session, *, job_id: str) -> int:
    query = select(func.count()).select_from(JobInterimResult)
    return db.scalar(query.where(JobInterimResult.job_id == job_id)) or 0


def delete_job(db: Session, *, job: Job) -> None:
    db.execute(delete(JobInterimResult).where(JobInterimResult.job_id == job.id))
    db.delete(job)
    db.flush()


_QUEUED_ALL = (
    select(_jobs.c.seq, _jobs.c.id, _jobs.c.backend, _jobs.c.owner_id, _jobs.c.session_id)
    .where(_jobs.c.status == "Queued")
    .order_by(_jobs.c.seq)
)


def queued_jobs_all(db: Session) -> list[AnyRow]:
    """Every queued job's ``seq``, ``id``, ``backend``, ``owner_id`` and ``session_id``, in
    submission order (to rebuild the scheduler's index at start: only what it indexes,
    so that a deep queue is read without its payloads).
    """
    return list(db.execute(_QUEUED_ALL))


def running_jobs(db: Session) -> list[Job]:
    return list(db.scalars(select(Job).where(Job.status == "Running").order_by(Job.seq)))


def count_queued(db: Session, *, backend: str) -> int:
    """How many jobs wait in the queue of ``backend``."""
    query = (
        select(func.count()).select_from(Job).where(Job.backend == backend, Job.status == "Queued")
    )
    return db.scalar(query) or 0


_QUEUED_BY = (
    select(func.count())
    .select_from(_jobs)
    .where(_jobs.c.owner_id == bindparam("owner_id"), _jobs.c.status == "Queued")
)


def queued_by(db: Session, *, owner_id: str) -> int:
    """How many jobs ``owner_id`` has queued, from the store."""
    return int(db.connection().execute(_QUEUED_BY, {"owner_id": owner_id}).scalar_one())


def usage_seconds(
    db: Session,
    *,
    owner_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> float:
    """The total run time of a user's jobs, in seconds (of those that ended in
    [``start``, ``end``) when given)."""
    conditions = [Job.owner_id == owner_id, *_ended_within(start, end)]
    total = db.scalar(select(func.sum(Job.usage_seconds)).where(*conditions))
    return float(total or 0.0)


def usage_by_owner(
    db: Session, *, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[str, float, int]]:
    """(owner id, seconds, jobs) of every user with jobs that ended in [start, end)."""
    statement = (
        select(Job.owner_id, func.sum(Job.usage_seconds), func.count())
        .where(Job.finished_at.is_not(None), *_ended_within(start, end))
        .group_by(Job.owner_id)
    )
    return [(row[0], float(row[1] or 0.0), int(row[2])) for row in db.execute(statement)]


def _ended_within(start: datetime | None, end: datetime | None) -> list[Any]:
    conditions: list[Any] = []
    if start is not None:
        conditions.append(Job.finished_at >= start)
    if end is not None:
        conditions.append(Job.finished_at < end)
    return conditions
