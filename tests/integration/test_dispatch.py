"""The job runtime on its own: a real store, real workers, no HTTP in between."""

from __future__ import annotations

import asyncio
import base64
import functools
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session
from tests.stores import sqlite_store

from qruntime.backends import load_catalogue
from qruntime.errors import RuntimeInvalidStateError
from qruntime.schemas.jobs import JobCreate, JobState
from qruntime.schemas.programs import ProgramCreate
from qruntime.schemas.sessions import SessionCreate
from qruntime.server.executor import InlineExecutor
from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.services import jobs as job_service
from qruntime.server.services import programs as program_service
from qruntime.server.services import sessions as session_service
from qruntime.server.store import jobs as job_store
from qruntime.server.store.tables import Job, User


def test_a_built_in_job_cancelled_as_it_starts_is_killed_and_stays_cancelled(
    tmp_path: Path,
) -> None:
    """A built-in job starts from memory while the store learns that it runs. Cancelled
    in the store in that moment (before the runtime heard of the cancel), it is killed,
    its end does not overwrite the cancel, waiters hear "Cancelled", and its lane is freed.
    """
    settings, database, user = sqlite_store(tmp_path)
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    catalogue = load_catalogue(config)

    async def scenario() -> tuple[list[dict[str, object]], str, dict[str, object]]:
        # One lane: the next job can only run if the killed one gave its lane back.
        executor = InlineExecutor(catalogue_path=config)
        runtime = JobRuntime(db=database, catalogue=catalogue, executor=executor)
        await runtime.start()
        try:

            def submit(iterations: int, *, cancel: bool = False) -> str:
                payload = JobCreate(
                    program_id="hello-world",
                    backend="one_lane",
                    params={"iterations": iterations},
                )
                with database.session() as db:
                    job, builtin = job_service.submit_job(
                        db, user=user, payload=payload, catalogue=catalogue, settings=settings
                    )
                    db.commit()
                    runtime.notify(job, builtin=builtin)  # acted on once this coroutine yields
                    if cancel:  # in the store only: the runtime misses it
                        job_service.cancel_job(db, user=user, job_id=job.id)
                return job.id

            async def final(job_id: str) -> list[dict[str, object]]:
                queue = runtime.hub.subscribe(job_id)
                messages = []
                async with asyncio.timeout(60):
                    while not (message := await queue.get()).get("final"):
                        messages.append(message)
                return [*messages, message]

            cancelled = submit(50, cancel=True)
            messages = await final(cancelled)
            with database.session() as db:
                row = job_store.job_outcome(db, job_id=cancelled)
                assert row is not None
            after = submit(1)
            return messages, row.status, (await final(after))[-1]
        finally:
            await runtime.stop()

    messages, stored, after = asyncio.run(scenario())
    assert messages[-1]["status"] == "Cancelled"
    assert "result" not in messages[-1]
    assert stored == "Cancelled"
    assert not any(m.get("status") == "Completed" for m in messages)
    assert after["status"] == "Completed"
    database.dispose()


def test_a_job_whose_program_was_deleted_while_queued_fails_and_waiters_hear_it(
    tmp_path: Path,
) -> None:
    """The dispatcher fails a queued job whose program is gone, and says so through the
    hub, so a long poll on it ends then, not when its own time runs out.
    """
    settings, database, user = sqlite_store(tmp_path)
    catalogue = load_catalogue(None)
    with database.session() as db:
        program_id = _upload(db, user, name="doomed", description="deleted before it runs")
        payload = JobCreate(program_id=program_id, backend="aer_simulator")
        job, _ = job_service.submit_job(
            db, user=user, payload=payload, catalogue=catalogue, settings=settings
        )
        program_service.delete_program(db, user=user, program_id=program_id)
        db.commit()

    async def scenario() -> dict[str, object]:
        runtime = JobRuntime(db=database, catalogue=catalogue, executor=InlineExecutor())
        queue = runtime.hub.subscribe(job.id)  # before the runtime finds the job queued
        await runtime.start()
        try:
            async with asyncio.timeout(60):
                while not (message := await queue.get()).get("final"):
                    pass
            return message
        finally:
            await runtime.stop()

    message = asyncio.run(scenario())
    assert message["status"] == "Failed"
    assert "deleted before the job ran" in str(message["reason"])
    with database.session() as db:
        row = job_store.job_outcome(db, job_id=job.id)
        assert row is not None
        assert row.status == "Failed"
    database.dispose()


def _upload(db: Session, user: User, *, name: str, description: str) -> str:
    """Upload a program that returns 1, as ``user``; its id."""
    source = "def main(backend, user_messenger, **kw):\n    return 1\n"
    program = ProgramCreate(
        name=name,
        data=base64.b64encode(source.encode()).decode(),
        cost=60,
        description=description,
    )
    return program_service.create_program(
        db, user=user, payload=program, max_bytes=100_000, max_cost=3600
    )


async def _final(runtime: JobRuntime, job_id: str) -> dict[str, object]:
    """The final message of ``job_id``; read from the store if the job ended before this
    subscribed (a job that ran inline while another was awaited)."""
    queue = runtime.hub.subscribe(job_id)
    try:
        with runtime.db.session() as db:  # after subscribing: an end after this is heard
            row = job_store.job_outcome(db, job_id=job_id)
        if row is not None and JobState(row.status).is_final:
            return {"type": "state", "status": row.status, "reason": row.reason, "final": True}
        async with asyncio.timeout(60):
            while not (message := await queue.get()).get("final"):
                pass
        return message
    finally:
        runtime.hub.unsubscribe(job_id, queue)


def test_a_stored_job_runs_even_when_nobody_awaits_its_submission(tmp_path: Path) -> None:
    """A submission joins the store writer's next commit; if its request goes away while
    it waits (the client hung up, the server stops), the job is stored and still queued:
    never a stored job that the scheduler does not know."""
    settings, database, user = sqlite_store(tmp_path)
    catalogue = load_catalogue(None)

    async def scenario() -> tuple[str, dict[str, object]]:
        runtime = JobRuntime(db=database, catalogue=catalogue, executor=InlineExecutor())
        await runtime.start()
        try:
            payload = JobCreate(
                program_id="hello-world", backend="aer_simulator", params={"iterations": 1}
            )
            with database.session() as db:
                new = job_service.check_job(
                    db, user=user, payload=payload, catalogue=catalogue, settings=settings
                )
            stored = runtime.store_job(
                functools.partial(job_service.store_new_job, user=user, new=new),
                builtin=new.builtin,
            )
            request = asyncio.ensure_future(asyncio.shield(stored))
            await asyncio.sleep(0)
            request.cancel()  # the request is gone before the commit
            job_id = str(new.fields["id"])
            return job_id, await _final(runtime, job_id)
        finally:
            await runtime.stop()

    job_id, final = asyncio.run(scenario())
    assert final["status"] == "Completed"
    with database.session() as db:
        row = job_store.job_outcome(db, job_id=job_id)
        assert row is not None
        assert row.status == "Completed"
    database.dispose()


def test_a_session_that_stopped_taking_jobs_refuses_only_its_own(tmp_path: Path) -> None:
    """Submissions stored in one commit: the one whose session was closed after its checks
    is refused with the session's reason; the others are stored and run."""
    settings, database, user = sqlite_store(tmp_path)
    catalogue = load_catalogue(None)
    with database.session() as db:
        session = session_service.create_session(
            db,
            user=user,
            payload=SessionCreate(backend="aer_simulator"),
            catalogue=catalogue,
            interactive_ttl=60,
            max_ttl_limit=600,
        )
    params = {"iterations": 1}

    async def scenario() -> list[object]:
        runtime = JobRuntime(db=database, catalogue=catalogue, executor=InlineExecutor())
        await runtime.start()
        try:
            news = []
            with database.session() as db:
                for session_id in (None, session.id, None):
                    payload = JobCreate(
                        program_id="hello-world",
                        backend="aer_simulator",
                        params=params,
                        session_id=session_id,
                    )
                    news.append(
                        job_service.check_job(
                            db, user=user, payload=payload, catalogue=catalogue, settings=settings
                        )
                    )
            with database.session() as db:  # closed after the checks, before the insert
                session_service.close_session(db, user=user, session_id=session.id)
            outcomes: list[object] = list(
                await asyncio.gather(
                    *(
                        runtime.store_job(
                            functools.partial(job_service.store_new_job, user=user, new=new),
                            builtin=new.builtin,
                        )
                        for new in news
                    )
                )
            )
            for outcome in outcomes:
                if isinstance(outcome, Job):
                    outcomes.append((await _final(runtime, outcome.id))["status"])
            return outcomes
        finally:
            await runtime.stop()

    first, refused, third, *ends = asyncio.run(scenario())
    assert isinstance(first, Job)
    assert isinstance(third, Job)
    assert isinstance(refused, RuntimeInvalidStateError)
    assert "does not accept new jobs" in str(refused)
    assert ends == ["Completed", "Completed"]
    with database.session() as db:
        assert job_store.job_outcome(db, job_id=first.id) is not None
        stored = db.query(Job).filter(Job.session_id == session.id).count()
    assert stored == 0
    database.dispose()


def test_a_job_that_starts_its_session_stores_both_in_one_write(tmp_path: Path) -> None:
    """``start_session`` (the 0.12 protocol): the dedicated session takes the job's id and
    is stored with the job; the runtime learns of the session, and the job runs in it
    (it waited for ever: the scheduler holds a session's jobs until it knows the session).
    """
    settings, database, user = sqlite_store(tmp_path)
    catalogue = load_catalogue(None)

    async def scenario() -> tuple[object, dict[str, object]]:
        runtime = JobRuntime(db=database, catalogue=catalogue, executor=InlineExecutor())
        await runtime.start()
        try:
            payload = JobCreate(
                program_id="hello-world",
                backend="aer_simulator",
                params={"iterations": 1},
                start_session=True,
                session_time=120,
            )
            with database.session() as db:
                new = job_service.check_job(
                    db, user=user, payload=payload, catalogue=catalogue, settings=settings
                )
            job = await runtime.store_job(
                functools.partial(job_service.store_new_job, user=user, new=new),
                builtin=new.builtin,
                opens_session=True,
            )
            assert isinstance(job, Job)
            return job, await _final(runtime, job.id)
        finally:
            await runtime.stop()

    job, final = asyncio.run(scenario())
    assert isinstance(job, Job)
    assert job.session_id == job.id
    assert final["status"] == "Completed"
    with database.session() as db:
        session = session_service.owned_session(db, user=user, session_id=job.id)
        assert session.backend == "aer_simulator"
        assert session.max_ttl == 120
        assert session.mode == "dedicated"
    database.dispose()


def test_a_claim_reads_a_built_in_program_once(tmp_path: Path) -> None:
    """Built-in programs cannot change: what a claim reads of one is kept (a job another
    server queued costs no read of the programs table), an uploaded program's is not."""
    _settings, database, user = sqlite_store(tmp_path)
    with database.session() as db:
        uploaded = _upload(db, user, name="uploaded", description="read at each claim")
    runtime = JobRuntime(db=database, catalogue=load_catalogue(None), executor=InlineExecutor())
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM programs" in statement:
            reads.append(statement)

    event.listen(database.engine, "before_cursor_execute", count)
    with database.session() as db:
        for _ in range(3):
            assert runtime._builtin_programs.head(db, "circuit-runner").builtin == "circuit_runner"
            assert runtime._builtin_programs.head(db, uploaded).builtin is None
    assert len(reads) == 1 + 3
    database.dispose()
