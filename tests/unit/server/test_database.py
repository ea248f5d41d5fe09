"""The database wrapper: SQLite writers take turns on an in-process lock."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from qruntime.server.store.database import Database
from qruntime.server.store.tables import ServerSecret


def _write(db: Database, name: str) -> None:
    with db.session() as session:
        session.execute(insert(ServerSecret).values(name=name, value="v"))


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


def _count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(ServerSecret)) or 0


def test_a_write_committed_on_another_thread_lets_the_next_writer_in(sqlite_database) -> None:
    # FastAPI may run a request's writes and its session's commit on different threads.
    session = Session(sqlite_database.engine)
    writer = _in_thread(lambda: session.execute(insert(ServerSecret).values(name="a", value="v")))
    writer.join(5)
    committer = _in_thread(session.commit)
    committer.join(5)
    session.close()
    follower = _in_thread(_write, sqlite_database, "b")
    follower.join(5)  # the lock's patience is 10 s: a lock left taken would show here
    assert not follower.is_alive()
    assert _count(sqlite_database) == 2


def _write_then_fail(db: Database) -> None:
    with db.session() as session:
        session.execute(insert(ServerSecret).values(name="a", value="v"))
        raise RuntimeError("the request failed")


def test_a_rolled_back_write_lets_the_next_writer_in(sqlite_database) -> None:
    with pytest.raises(RuntimeError):
        _write_then_fail(sqlite_database)
    follower = _in_thread(_write, sqlite_database, "b")
    follower.join(5)
    assert not follower.is_alive()
    assert _count(sqlite_database) == 1


def test_many_concurrent_writers_all_commit(sqlite_database) -> None:
    errors: list[BaseException] = []

    def many(prefix: str) -> None:
        try:
            for i in range(40):
                _write(sqlite_database, f"{prefix}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [_in_thread(many, f"t{n}") for n in range(8)]
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _count(sqlite_database) == 320
