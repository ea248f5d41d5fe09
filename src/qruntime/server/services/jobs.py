"""Use cases for jobs: submit, read, list, cancel, delete, tags, results, logs, metrics.

A job is written to the store as Queued before its id is returned: once a client
holds an id, the job is never lost. Another user's job does not exist for the
caller (404), whatever it is.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.encoding import DecodedCircuits, DecodeLimits, loads
from qruntime.errors import (
    InputValueError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QRuntimeError,
    QuotaExceededError,
    RuntimeInvalidStateError,
    RuntimeJobNotFound,
)
from qruntime.schemas.jobs import FINAL_STATES, JobCreate, JobOut, JobState, JobStateOut
from qruntime.schemas.sessions import SessionCreate
from qruntime.server.services import sessions as session_service
from qruntime.server.services.checked_inputs import CheckedInputs, check_text
from qruntime.server.services.programs import (
    BuiltinHeads,
    kept_runnable_program,
    runnable_program,
)
from qruntime.server.services.users import listed_owner, scope
from qruntime.server.settings import Settings
from qruntime.spec_schema import best_validation_error

if TYPE_CHECKING:
    from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.store import jobs as store
from qruntime.server.store import sessions as session_store
from qruntime.server.store import users as user_store
from qruntime.server.store.database import AnyRow
from qruntime.server.store.tables import Job, User, utcnow

__all__ = [
    "REMEMBERED_INPUT_BYTES",
    "InputDigest",
    "NewJob",
    "cancel_and_kill",
    "cancel_job",
    "check_job",
    "delete_job",
    "get_job",
    "interim_results",
    "interim_results_since",
    "job_logs",
    "job_metrics",
    "job_outcome",
    "job_result",
    "list_jobs",
    "owned_job",
    "remembered_job",
    "store_new_job",
    "submit_job",
    "to_wire",
    "update_tags",
    "usage_report",
    "usage_seconds",
]

_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_USER_CANCELLED = "cancelled by the user"


def to_wire(job: Job, *, include_params: bool = False, owner: str | None = None) -> JobOut:
    state = JobState(job.status)
    return JobOut(
        id=job.id,
        backend=job.backend,
        state=JobStateOut(status=state, reason=job.reason, reason_code=job.reason_code),
        status=state,
        program={"id": job.program_id},
        created=job.created_at,
        running=job.running_at,
        finished=job.finished_at,
        session_id=job.session_id,
        tags=list(job.tags or []),
        log_level=job.log_level,
        cost=job.max_execution_time,
        # A private job's inputs are never returned, to anyone.
        params=json.loads(job.params) if include_params and not job.private else None,
        private=bool(job.private),
        owner=owner,
    )


def _input_text(payload: JobCreate, *, max_bytes: int) -> str:
    """The inputs' JSON text, as the worker gets it; refused over ``max_bytes``."""
    text = json.dumps(payload.params, separators=(",", ":"))
    if len(text) > max_bytes:
        raise PayloadTooLargeError(
            f"The job inputs are {len(text)} bytes, over this server's limit of {max_bytes}."
        )
    return text


def _check_inputs(
    text: str,
    payload: JobCreate,
    *,
    spec: dict[str, Any],
    limits: DecodeLimits | None = None,
    circuits: DecodedCircuits | None = None,
) -> dict[str, Any]:
    """Validate job inputs (``text``, their JSON); return them decoded."""
    # Refuses malformed payloads, classes outside the allow-list, and payloads whose decoding
    # would cost more than the limits (decompressed bytes, declared circuit sizes).
    decoded = loads(text, limits=limits, circuits=circuits)
    schema = spec.get("parameters")
    if schema:
        error = best_validation_error(schema, payload.params, label="spec.parameters")
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            if not where and error.validator == "required":
                raise InputValueError(f"Invalid inputs: {error.message}.")
            raise InputValueError(f"Invalid input {where or '(inputs)'!s}: {error.message}.")
    decoded_inputs: dict[str, Any] = decoded
    return decoded_inputs


@functools.cache
def _takes_backend_kind(validate: Any) -> bool:
    return "backend_kind" in inspect.signature(validate).parameters


def _check_builtin_inputs(
    builtin: str, inputs: dict[str, Any], *, num_qubits: int, backend_kind: str
) -> None:
    """Built-ins with a ``validate`` hook (the primitives) check their inputs before queueing.

    Hooks that take ``backend_kind`` also learn whether the backend is a noisy device.
    """
    module = importlib.import_module(f"qruntime.programs.{builtin}")
    validate = getattr(module, "validate", None)
    if validate is None:
        return
    if _takes_backend_kind(validate):
        validate(inputs, num_qubits=num_qubits, backend_kind=backend_kind)
    else:
        validate(inputs, num_qubits=num_qubits)


def _check_backend(catalogue: Catalogue, *, name: str, requirements: dict[str, Any]) -> None:
    entry = catalogue.get(name)
    reason = entry.unavailable_reason
    if reason is not None:
        raise InputValueError(f"Backend {name} is not operational: {reason}.")
    minimum = requirements.get("min_num_qubits")
    if minimum is not None and entry.spec.num_qubits < minimum:
        raise InputValueError(
            f"Backend {name} has {entry.spec.num_qubits} qubits; the program needs at "
            f"least {minimum}."
        )
    wants_simulator = requirements.get("simulator")
    if wants_simulator is not None and entry.spec.simulator != wants_simulator:
        kind = "a simulator" if wants_simulator else "a device-like backend"
        raise InputValueError(f"The program needs {kind}; backend {name} is not one.")


@dataclass(frozen=True)
class NewJob:
    """A submission that passed its checks: the row to insert (but for ``created_at``, set
    when it is stored), the built-in program's module (None for an uploaded program), and
    the row of the dedicated session it opens (``start_session``), inserted with it."""

    fields: dict[str, Any]
    builtin: str | None
    session: dict[str, Any] | None = None


def check_job(
    db: Session,
    *,
    user: User,
    payload: JobCreate,
    catalogue: Catalogue,
    settings: Settings,
    queued_by_user: int | None = 0,
    builtins: BuiltinHeads | None = None,
    circuits: DecodedCircuits | None = None,
    checked: CheckedInputs | None = None,
    digest: InputDigest | None = None,
) -> NewJob:
    """Check a submission (nothing is written): quota, program, backend, inputs, options.

    ``queued_by_user``: the user's queued jobs, or None where this server cannot tell
    without the store (a server that does not lead): `store_new_job` counts them then.

    Inputs of a built-in program that ``checked`` remembers for this user are not checked
    again (a primitive's PUBs whose parameter values changed, but not their shape, are
    remembered too: `check_text`). ``digest``: the inputs' text and digest as
    `remembered_job` found them, not computed again. The session a job joins is checked
    where the job is stored (`store_new_job`).
    """
    _check_quota(settings, queued_by_user)
    program = runnable_program(db, user=user, program_id=payload.program_id, builtins=builtins)
    spec = program.spec or {}
    _check_backend(
        catalogue, name=payload.backend, requirements=spec.get("backend_requirements") or {}
    )
    limits = DecodeLimits(
        max_decoded_bytes=settings.max_decoded_bytes,
        max_circuit_qubits=settings.max_circuit_qubits,
    )
    if digest is not None:
        params, key = digest.params, digest.key
    else:
        params, key = _input_text(payload, max_bytes=settings.max_input_bytes), None
        if checked is not None and program.builtin is not None:
            text = check_text(program.builtin, payload.params, params, limits=limits) or params
            key = _checked_key(user, payload, program, text)
    if key is None or checked is None or not checked.holds(key):
        decoded = _check_inputs(params, payload, spec=spec, limits=limits, circuits=circuits)
        if program.builtin is not None:
            backend_spec = catalogue.get(payload.backend).spec
            _check_builtin_inputs(
                program.builtin,
                decoded,
                num_qubits=backend_spec.num_qubits,
                backend_kind=backend_spec.kind,
            )
        if key is not None and checked is not None:
            checked.add(key)
    return _new_job(user, payload, program, params, catalogue=catalogue, settings=settings)


# What `remembered_job` decodes at most, on the event loop: small parameter values.
REMEMBERED_INPUT_BYTES = 64 * 1024
_REMEMBERED_DECODED_BYTES = 1024 * 1024


def remembered_job(
    *,
    user: User,
    payload: JobCreate,
    catalogue: Catalogue,
    settings: Settings,
    queued_by_user: int | None,
    builtins: BuiltinHeads,
    checked: CheckedInputs,
) -> NewJob | InputDigest | None:
    """`check_job` for a built-in program's submission whose inputs ``checked`` remembers,
    with no read of the store and no decoding but small parameter values (`check_text`).

    Cheap enough for the event loop: a loop's next job is not handed to a thread and back.
    Otherwise the caller runs `check_job`, with the `InputDigest` returned here when
    the inputs could be read (new inputs of a kept program), or after None (the program
    is not kept, the inputs are large or their values do not decode here). Raises what
    `check_job` raises for the quota, the backend and the options.
    """
    program = kept_runnable_program(builtins, user=user, program_id=payload.program_id)
    if program is None:
        return None
    _check_quota(settings, queued_by_user)
    spec = program.spec or {}
    _check_backend(
        catalogue, name=payload.backend, requirements=spec.get("backend_requirements") or {}
    )
    params = _input_text(payload, max_bytes=settings.max_input_bytes)
    if len(params) > REMEMBERED_INPUT_BYTES:
        return None
    limits = DecodeLimits(
        max_decoded_bytes=min(settings.max_decoded_bytes, _REMEMBERED_DECODED_BYTES),
        max_circuit_qubits=settings.max_circuit_qubits,
    )
    text = check_text(program.builtin, payload.params, params, limits=limits)
    if text is None:  # values too large to decode here: check_job decodes them
        return None
    key = _checked_key(user, payload, program, text)
    if not checked.holds(key):
        return InputDigest(params, key)
    return _new_job(user, payload, program, params, catalogue=catalogue, settings=settings)


def _check_quota(settings: Settings, queued_by_user: int | None) -> None:
    if queued_by_user is not None and queued_by_user >= settings.max_queued_jobs_per_user:
        raise _over_quota(queued_by_user)


def _over_quota(queued_by_user: int) -> QuotaExceededError:
    return QuotaExceededError(
        f"You already have {queued_by_user} jobs queued, this server's limit per user; "
        "wait for some to finish."
    )


@dataclass(frozen=True)
class InputDigest:
    """A built-in program's inputs as a submission's checks read them: their JSON text
    (as the worker gets it) and their digest in `CheckedInputs`."""

    params: str
    key: bytes


def _checked_key(user: User, payload: JobCreate, program: AnyRow, text: str) -> bytes:
    """The digest of ``text`` (`check_text`'s) for this user, program and backend."""
    return CheckedInputs.key(
        user_id=user.id, program_id=program.id, backend=payload.backend, text=text
    )


def _new_job(
    user: User,
    payload: JobCreate,
    program: AnyRow,
    params: str,
    *,
    catalogue: Catalogue,
    settings: Settings,
) -> NewJob:
    """The row of a submission whose program, backend and inputs passed their checks."""
    log_level = (payload.log_level or "WARNING").upper()
    if log_level not in _LOG_LEVELS:
        raise InputValueError(
            f"Unknown log_level {payload.log_level!r}; use one of {', '.join(sorted(_LOG_LEVELS))}."
        )
    cost = program.max_execution_time
    if payload.cost is not None:
        cost = min(cost, payload.cost)
    job_id = secrets.token_hex(10)
    session_id = payload.session_id
    session = None
    if session_id is None and payload.start_session:
        # The 0.12 protocol: a dedicated session for this job, whose id is the job's.
        session = session_service.new_session(
            user=user,
            payload=SessionCreate(backend=payload.backend, max_ttl=payload.session_time),
            catalogue=catalogue,
            interactive_ttl=settings.interactive_ttl,
            max_ttl_limit=settings.max_session_ttl,
            session_id=job_id,
        )
        session_id = job_id
    fields = {
        "id": job_id,
        "owner_id": user.id,
        "program_id": program.id,
        "backend": payload.backend,
        "status": JobState.QUEUED.value,
        "params": params,
        "session_id": session_id,
        "tags": list(payload.tags),
        "log_level": log_level,
        "max_execution_time": cost,
        "logs": "",
        "private": payload.private,
    }
    return NewJob(fields=fields, builtin=program.builtin, session=session)


def store_new_job(
    db: Session, *, user: User, new: NewJob, max_queued: int | None = None
) -> Job | QRuntimeError:
    """Insert a checked job as Queued, if the session it joins (if any) still takes it.

    ``max_queued``: the limit of queued jobs per user, counted here in the insert's
    transaction, where the check did not count them (a server that does not lead knows
    no queue: this spares it a transaction of its own per submission).

    A refusal is returned, not raised: this runs as one of the store writer's writes,
    and a raised error would roll back the others of its transaction.
    """
    if max_queued is not None:
        queued = store.queued_by(db, owner_id=user.id)
        if queued >= max_queued:
            return _over_quota(queued)
    session_id = new.fields["session_id"]
    # Created when stored, in submission (seq) order with the jobs stored around it.
    created_at = utcnow()
    if new.session is not None:
        session_store.add_session(db, **new.session)
    elif session_id is not None:
        # One statement checks that the session takes the job and inserts it; only a
        # refusal reads the session, to say why.
        job = store.add_job_in_session(db, **new.fields, created_at=created_at)
        if job is not None:
            return job
        try:
            session_service.session_for_job(
                db, user=user, session_id=session_id, backend=new.fields["backend"]
            )
        except QRuntimeError as refusal:
            return refusal
    return store.add_job(db, **new.fields, created_at=created_at)


def submit_job(
    db: Session,
    *,
    user: User,
    payload: JobCreate,
    catalogue: Catalogue,
    settings: Settings,
    queued_by_user: int = 0,
    builtins: BuiltinHeads | None = None,
    circuits: DecodedCircuits | None = None,
    checked: CheckedInputs | None = None,
) -> tuple[Job, str | None]:
    """`check_job` and `store_new_job` in ``db``'s transaction, a refusal raised: the job
    (not committed) and, for a built-in program, the name of its module.

    The server's routes check on a store thread and store through the runtime's writer
    (`qruntime.server.api.state.AppState.queue_job`); this is for whoever holds a
    transaction of their own.
    """
    new = check_job(
        db,
        user=user,
        payload=payload,
        catalogue=catalogue,
        settings=settings,
        queued_by_user=queued_by_user,
        builtins=builtins,
        circuits=circuits,
        checked=checked,
    )
    stored = store_new_job(db, user=user, new=new)
    if isinstance(stored, QRuntimeError):
        raise stored
    return stored, new.builtin


def owned_job(db: Session, *, user: User, job_id: str) -> Job:
    """A job of ``user`` (any job for an admin); `RuntimeJobNotFound` otherwise."""
    job = store.get_job(db, job_id=job_id, owner_id=scope(user))
    if job is None:
        raise RuntimeJobNotFound(f"Job not found: {job_id}")
    return job


def _owner_names(db: Session, user: User, jobs: list[Job]) -> dict[str, str]:
    """Id -> name of the jobs' owners (one query, none when they are all the caller's)."""
    others = {job.owner_id for job in jobs} - {user.id}
    names = {owner_id: owner_id for owner_id in others}  # a deleted owner keeps its id
    names.update(user_store.user_names(db, user_ids=others))
    names[user.id] = user.name
    return names


def get_job(db: Session, *, user: User, job_id: str, include_params: bool = True) -> JobOut:
    job = owned_job(db, user=user, job_id=job_id)
    owner = _owner_names(db, user, [job])[job.owner_id]
    return to_wire(job, include_params=include_params, owner=owner)


def list_jobs(
    db: Session,
    *,
    user: User,
    limit: int,
    offset: int = 0,
    pending: bool | None = None,
    program_id: str | None = None,
    backend: str | None = None,
    session_id: str | None = None,
    tags: list[str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    descending: bool = True,
    owner: str | None = None,
    all_users: bool = False,
) -> tuple[list[JobOut], int]:
    """A page of the caller's jobs; an admin's of one user (``owner``) or of everyone's.
    A filter left out (None) does not filter."""
    owner_id = listed_owner(db, user=user, owner=owner, all_users=all_users, what="jobs")
    statuses = None
    if pending is True:
        statuses = [JobState.QUEUED.value, JobState.RUNNING.value]
    elif pending is False:
        statuses = [state.value for state in FINAL_STATES]
    jobs, total = store.list_jobs(
        db,
        owner_id=owner_id,
        limit=limit,
        offset=offset,
        statuses=statuses,
        program_id=program_id,
        backend=backend,
        session_id=session_id,
        tags=tags,
        created_after=created_after,
        created_before=created_before,
        descending=descending,
    )
    names = _owner_names(db, user, jobs)
    return [to_wire(job, owner=names[job.owner_id]) for job in jobs], total


def cancel_job(db: Session, *, user: User, job_id: str) -> tuple[Job, str]:
    """Cancel a queued job here; return it and the status it had ("Running" ones the
    runtime kills).
    """
    job = owned_job(db, user=user, job_id=job_id)
    if JobState(job.status).is_final:
        raise RuntimeInvalidStateError(f"Job {job_id} cannot be cancelled: it is {job.status}.")
    if job.status == JobState.QUEUED.value:
        cancelled = store.update_job(
            db,
            job_id=job_id,
            where_status=[JobState.QUEUED.value],
            status=JobState.CANCELLED.value,
            reason=_USER_CANCELLED,
            finished_at=utcnow(),
        )
        if cancelled:
            return job, JobState.QUEUED.value
    return job, JobState.RUNNING.value


def cancel_and_kill(db: Session, *, user: User, job_id: str, runtime: JobRuntime) -> None:
    """`cancel_job`, committed; a running job is then killed by the runtime, a queued
    one leaves the runtime's queue (and whoever waits on it hears of it at once).
    """
    job, was = cancel_job(db, user=user, job_id=job_id)
    db.commit()
    if was == JobState.RUNNING.value:
        runtime.cancel_running(job_id)
    else:
        runtime.unqueue(job, reason=_USER_CANCELLED)


def delete_job(db: Session, *, user: User, job_id: str, runtime: JobRuntime) -> None:
    """Delete a job; a queued or running one is cancelled first (as the seed API does).

    Nothing of it is left running: a running job is killed before the delete, which is
    written after the kill's last events.
    """
    job = owned_job(db, user=user, job_id=job_id)
    if JobState(job.status).is_final:
        store.delete_job(db, job=job)
        return
    with contextlib.suppress(RuntimeInvalidStateError):  # it ended meanwhile
        cancel_and_kill(db, user=user, job_id=job_id, runtime=runtime)
    runtime.after_recorded(lambda writer: _delete_if_present(writer, job_id))


def _delete_if_present(db: Session, job_id: str) -> None:
    job = store.get_job(db, job_id=job_id)
    if job is not None:
        store.delete_job(db, job=job)


def update_tags(db: Session, *, user: User, job_id: str, tags: list[str]) -> None:
    owned_job(db, user=user, job_id=job_id)
    store.update_job(db, job_id=job_id, tags=list(tags))


def job_result(db: Session, *, user: User, job_id: str) -> str:
    """A completed job's result text; `RuntimeInvalidStateError` for any other job."""
    state, text = job_outcome(db, user=user, job_id=job_id)
    if text is None:
        raise RuntimeInvalidStateError(f"Job {job_id} has no result: it is {state.value}.")
    return text


def job_outcome(db: Session, *, user: User, job_id: str) -> tuple[JobState, str | None]:
    """A job's state and, once it is final, its result text (one query).

    A final job without a result (failed, cancelled) raises `RuntimeInvalidStateError`
    with the job's reason. A private job's result is returned to the first read only:
    that read deletes it (with the job's inputs and interim results) and commits.
    """
    row = store.job_outcome(db, job_id=job_id, owner_id=scope(user))
    if row is None:
        raise RuntimeJobNotFound(f"Job not found: {job_id}")
    state = JobState(row.status)
    if row.private and row.owner_id != user.id and state is JobState.COMPLETED:
        raise PermissionDeniedError(
            f"Job {job_id} is private: only its owner can read its result (once)."
        )
    if row.result_read_at is not None:
        raise RuntimeInvalidStateError(
            f"Job {job_id} is private: its result was read once, at "
            f"{row.result_read_at.isoformat()}, and then deleted."
        )
    if state.is_final and (state is not JobState.COMPLETED or row.result is None):
        reason = f" ({row.reason})" if row.reason else ""
        raise RuntimeInvalidStateError(f"Job {job_id} has no result: it is {row.status}{reason}.")
    if row.private and state is JobState.COMPLETED:
        if not store.take_private_result(db, job_id=job_id, now=utcnow()):
            raise RuntimeInvalidStateError(
                f"Job {job_id} is private: its result was read once, and then deleted."
            )
        db.commit()
    return state, row.result


def job_logs(db: Session, *, user: User, job_id: str) -> str:
    return owned_job(db, user=user, job_id=job_id).logs or ""


def interim_results(db: Session, *, user: User, job_id: str) -> list[str]:
    return [data for _, data in interim_results_since(db, user=user, job_id=job_id)]


def interim_results_since(
    db: Session, *, user: User, job_id: str, after: int = -1
) -> list[tuple[int, str]]:
    """(sequence number, encoded text) of the interim results after ``after``, in order."""
    owned_job(db, user=user, job_id=job_id)
    return store.interim_results(db, job_id=job_id, after=after)


def job_metrics(db: Session, *, user: User, job_id: str) -> dict[str, Any]:
    job = owned_job(db, user=user, job_id=job_id)
    seconds = job.usage_seconds or 0.0

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "timestamps": {
            "created": iso(job.created_at),
            "running": iso(job.running_at),
            "finished": iso(job.finished_at),
        },
        "usage": {"seconds": seconds, "quantum_seconds": seconds},
        "bss": {"seconds": seconds},
        "executions": None,
        **(job.metrics or {}),
    }


def usage_seconds(db: Session, *, user: User) -> float:
    """How many seconds ``user``'s jobs have run, in all."""
    return store.usage_seconds(db, owner_id=user.id)


def usage_report(
    db: Session,
    *,
    user: User,
    owner: str | None = None,
    all_users: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """``GET /usage``: the caller's seconds; an admin's view of one user (``owner``) or of
    every user (``all_users``: one row per user with jobs in the period)."""
    if start is not None and end is not None and end <= start:
        raise InputValueError("end must be after start.")
    period = {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
    }
    owner_id = listed_owner(db, user=user, owner=owner, all_users=all_users, what="usage")
    if owner_id is None:
        rows = store.usage_by_owner(db, start=start, end=end)
        names = {row.id: row.name for row in user_store.list_users(db)}
        users = [
            {"user": names.get(owner_id, owner_id), "usage_consumed_seconds": seconds, "jobs": jobs}
            for owner_id, seconds, jobs in sorted(rows, key=lambda row: -row[1])
        ]
        return {"users": users, "period": period}
    target = user if owner_id == user.id else user_store.get_user(db, user_id=owner_id)
    return {
        "user": target.name if target is not None else owner_id,
        "usage_consumed_seconds": store.usage_seconds(db, owner_id=owner_id, start=start, end=end),
        "usage_limit_seconds": None,
        "usage_limit_reached": False,
        "period": period,
    }
