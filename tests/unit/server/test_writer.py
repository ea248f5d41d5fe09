"""The store writer: writes in order, batched, and one failure does not sink the others."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from qruntime.server.scheduler.writer import StoreWriter
from qruntime.server.store.database import Database
from qruntime.server.store.migrate import upgrade
from qruntime.server.store.tables import ServerSecret


@pytest.fixture
def database(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(db.engine)
    yield db
    db.dispose()


def _add(name: str):
    def write(db) -> str:
        db.execute(insert(ServerSecret).values(name=name, value="v"))
        return name

    return write


def test_writes_run_in_order_and_a_failing_one_fails_alone(database) -> None:
    async def scenario() -> list[object]:
        writer = StoreWriter(database, max_batch=64)
        futures = [writer.submit(_add(f"s{i}")) for i in range(50)]
        futures.insert(25, writer.submit(_add("s3")))  # a duplicate key: this one fails
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        writer.close()
        return outcomes

    outcomes = asyncio.run(scenario())
    failed = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failed) == 1
    assert [o for o in outcomes if not isinstance(o, Exception)] == [f"s{i}" for i in range(50)]
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(ServerSecret)) == 50


def test_close_writes_what_is_queued(database) -> None:
    async def scenario() -> None:
        writer = StoreWriter(database)
        for i in range(10):
            writer.submit(_add(f"s{i}"))
        writer.close()

    asyncio.run(scenario())
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(ServerSecret)) == 10
