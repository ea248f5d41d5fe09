"""The store writer: writes in order, batched, and one failure does not sink the others."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, insert, select

from qruntime.errors import ServiceUnavailableError
from qruntime.server.scheduler.writer import StoreWriter
from qruntime.server.store.database import Database
from qruntime.server.store.tables import ServerSecret


def _add(name: str):
    def write(db) -> str:
        db.execute(insert(ServerSecret).values(name=name, value="v"))
        return name

    return write


def test_writes_run_in_order_and_a_failing_one_fails_alone(sqlite_database) -> None:
    async def scenario() -> list[object]:
        writer = StoreWriter(sqlite_database, max_batch=64)
        futures = [writer.submit(_add(f"s{i}")) for i in range(50)]
        futures.insert(25, writer.submit(_add("s3")))  # a duplicate key: this one fails
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        writer.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == 1
    assert [o for o in outcomes if not isinstance(o, Exception)] == [f"s{i}" for i in range(50)]
    with sqlite_database.session() as db:
        assert db.scalar(select(func.count()).select_from(ServerSecret)) == 50


def test_close_writes_what_is_queued(sqlite_database) -> None:
    async def scenario() -> None:
        writer = StoreWriter(sqlite_database)
        for i in range(10):
            writer.submit(_add(f"s{i}"))
        writer.close()

    asyncio.run(scenario())
    with sqlite_database.session() as db:
        assert db.scalar(select(func.count()).select_from(ServerSecret)) == 10


def test_a_failed_fence_refuses_fenced_writes_and_lets_the_others_through(
    sqlite_database,
) -> None:
    """A server that no longer leads must not write what only the leader writes (a job's
    start or end), but still stores what any server may (a job's submission)."""
    leading = [True]
    fences: list[bool] = []

    def fence(db) -> bool:
        fences.append(leading[0])
        return leading[0]

    async def scenario() -> list[object]:
        writer = StoreWriter(sqlite_database, fence=fence)
        outcomes = await asyncio.gather(
            writer.submit(_add("leader-1")), writer.submit(_add("anyone-1"), fenced=False)
        )
        leading[0] = False
        later = await asyncio.gather(
            writer.submit(_add("leader-2")),
            writer.submit(_add("anyone-2"), fenced=False),
            return_exceptions=True,
        )
        # A batch of unfenced writes alone does not ask the fence.
        asked = len(fences)
        alone = await writer.submit(_add("anyone-3"), fenced=False)
        writer.close()
        return [*outcomes, *later, alone, len(fences) - asked]

    *outcomes, alone, asked_after = asyncio.run(scenario())
    assert outcomes[:2] == ["leader-1", "anyone-1"]
    assert isinstance(outcomes[2], ServiceUnavailableError)
    assert outcomes[3] == "anyone-2"
    assert alone == "anyone-3"
    assert asked_after == 0
    with sqlite_database.session() as db:
        names = set(db.scalars(select(ServerSecret.name)))
    assert names == {"leader-1", "anyone-1", "anyone-2", "anyone-3"}


def test_a_lost_connection_costs_no_write(postgres_url: str) -> None:
    """The writer keeps one connection; when PostgreSQL drops it (a restart, an operator's
    pg_terminate_backend), the next batch is written on a new one, not failed."""
    from qruntime.server.app import prepare_database
    from qruntime.server.settings import Settings

    database = Database(postgres_url)
    prepare_database(Settings(db_url=postgres_url, admin_token="qrt_test_" + "0" * 32), database)

    async def scenario() -> list[str]:
        writer = StoreWriter(database)
        names = [await writer.submit(_add("before"))]
        pid = await writer.submit(
            lambda db: db.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        )
        with database.session() as db:
            db.connection().exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        names.append(await writer.submit(_add("after")))
        writer.close()
        return names

    try:
        assert asyncio.run(scenario()) == ["before", "after"]
        with database.session() as db:
            assert set(db.scalars(select(ServerSecret.name))) >= {"before", "after"}
    finally:
        database.dispose()
