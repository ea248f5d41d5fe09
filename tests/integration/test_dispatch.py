"""The job runtime on its own: a real store, real workers, no HTTP in between."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from qruntime.backends import load_catalogue
from qruntime.schemas.jobs import JobCreate
from qruntime.schemas.programs import ProgramCreate
from qruntime.server.app import prepare_database
from qruntime.server.executor import InlineExecutor
from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.services import jobs as job_service
from qruntime.server.services import programs as program_service
from qruntime.server.settings import Settings
from qruntime.server.store import jobs as job_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import User


def test_a_built_in_job_cancelled_as_it_starts_is_killed_and_stays_cancelled(
    tmp_path: Path,
) -> None:
    """A built-in job starts from memory while the store learns that it runs. Cancelled
    in the store in that moment (before the runtime heard of the cancel), it is killed,
    its end does not overwrite the cancel, waiters hear "Cancelled", and its lane is freed.
    """
    url = f"sqlite:///{tmp_path / 'q.db'}"
    settings = Settings(db_url=url, admin_token="qrt_test_" + "0" * 32)
    database = Database(url)
    prepare_database(settings, database)
    config = tmp_path / "q.toml"
    config.write_text('[backends.one_lane]\nkind = "aer"\nlanes = 1\n')
    catalogue = load_catalogue(config)
    with database.session() as db:
        admin = db.query(User).filter(User.name == "admin").one()
        user = User(id=admin.id, name=admin.name, is_admin=True, created_at=admin.created_at)

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
    url = f"sqlite:///{tmp_path / 'q.db'}"
    settings = Settings(db_url=url, admin_token="qrt_test_" + "0" * 32)
    database = Database(url)
    prepare_database(settings, database)
    catalogue = load_catalogue(None)
    source = "def main(backend, user_messenger, **kw):\n    return 1\n"
    with database.session() as db:
        admin = db.query(User).filter(User.name == "admin").one()
        user = User(id=admin.id, name=admin.name, is_admin=True, created_at=admin.created_at)
        program = ProgramCreate(
            name="doomed",
            data=base64.b64encode(source.encode()).decode(),
            cost=60,
            description="deleted before it runs",
        )
        program_id = program_service.create_program(
            db, user=user, payload=program, max_bytes=100_000, max_cost=3600
        )
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
