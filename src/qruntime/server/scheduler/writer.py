"""One thread writes what the runtime records; what waits is written in one transaction.

Under load, jobs start and end faster than one commit each would allow for nothing:
the writer takes every write that is waiting (up to a batch), runs them in order in one
transaction, commits once, and hands all their results back to the event loop at once.
A write that fails is not allowed to take the others down with it: the batch is rolled
back and its writes run again one transaction each.

The thread keeps one connection for as long as it writes (no checkout from the pool, and
on PostgreSQL no ping, per transaction); after a failed transaction it takes a new one.

With several servers on one PostgreSQL, a ``fence`` runs first in each transaction that
holds a fenced write: a leader that lost the lead writes nothing more of what only the
leader may write (`ServiceUnavailableError`). Writes that any server may make (a job's
submission) are not fenced, and are written whoever leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from qruntime.errors import ServiceUnavailableError
from qruntime.server.store.database import Database

__all__ = ["StoreWriter"]

T = TypeVar("T")
Write = Callable[[Session], Any]
_Item = tuple[Write, "asyncio.Future[Any]", bool]  # the write, its future, fenced

logger = logging.getLogger("qruntime.scheduler")


class StoreWriter:
    """Runs writes in submission order on its own thread, batched into transactions."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 256,
        fence: Callable[[Session], bool] | None = None,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.fence = fence
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None  # the thread's own

    def submit(self, write: Callable[[Session], T], *, fenced: bool = True) -> asyncio.Future[T]:
        """Queue ``write(db)``; the future gets its result once it is committed. On the loop.

        ``fenced=False``: written even when the fence says this server no longer leads.
        """
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="qrt-writer", daemon=True)
            self._thread.start()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put((write, future, fenced))
        return future

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            outcomes = self._write(batch)
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_deliver, batch, outcomes)
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a broken one: the pool discards it
                self._connection.close()
            self._connection = None

    def _write(self, batch: list[_Item], *, again: bool = True) -> list[tuple[bool, Any]]:
        try:
            if self._connection is None:
                self._connection = self.db.engine.connect()
            with self._connection.begin(), self.db.bound_session(self._connection) as db:
                leads = True
                if self.fence is not None and any(fenced for _, _, fenced in batch):
                    leads = self.fence(db)
                results: list[tuple[bool, Any]] = [
                    (True, write(db)) if leads or not fenced else (False, _not_leading())
                    for write, _, fenced in batch
                ]
                db.flush()  # what the writes added; the connection's transaction commits
        except Exception as exc:
            self._drop_connection()
            if again and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                # The database dropped the kept connection (it restarted, or an operator
                # ended the session): the same batch on a new one.
                logger.warning("the store writer's connection was lost; writing on a new one")
                return self._write(batch, again=False)
            if len(batch) == 1:
                return [(False, exc)]
            logger.warning("a batch of %d writes failed; writing them one by one", len(batch))
            return [self._write([item])[0] for item in batch]
        return results


def _not_leading() -> ServiceUnavailableError:
    return ServiceUnavailableError("this server no longer leads: nothing written")


def _deliver(batch: list[_Item], outcomes: list[tuple[bool, Any]]) -> None:
    for (_, future, _), (ok, value) in zip(batch, outcomes, strict=True):
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
