"""The store writer: writes in order, batched, and one failure does not sink the others."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, insert, select

from qruntime.server.scheduler.writer import StoreWriter
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
