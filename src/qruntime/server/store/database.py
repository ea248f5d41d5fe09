"""The database engine: SQLite (WAL) by default, PostgreSQL for production.

`Database` owns the engine and the session factory; `create_app` makes one and
disposes of it on shutdown. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import Connection, Engine, Row, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from qruntime.errors import InputValueError

__all__ = ["AnyRow", "Database", "normalise_url"]

logger = logging.getLogger("qruntime.store")

#: A result row of a Core statement (the hot paths read columns, not ORM objects).
AnyRow: TypeAlias = Row[*tuple[Any, ...]]


def normalise_url(url: str) -> str:
    """Accept the spellings users type and return a SQLAlchemy URL.

    ``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://`` (psycopg 3);
    a bare path becomes a SQLite URL.
    """
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _prepare_sqlite_file(database: str) -> None:
    """Create the SQLite file's directory, readable by the server's user only.

    Sandboxed jobs run as other uids: a database they could read would leak every
    user's data, so the directory is mode 700 and the file mode 600.
    """
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class _SQLiteWriteLock:
    """One writing transaction at a time in this process, queued on a lock.

    SQLite lets one connection write at a time; another that tries waits in SQLite's
    busy handler, which sleeps 1, 2, 5, 10 ... up to 100 ms between tries. Under a
    burst of submissions those sleeps were the slowest requests. Taking this lock at a
    transaction's first write (and releasing it at its end) hands the database from one
    writer to the next at once. Reads never take it (WAL: they do not block writers).
    """

    _KEY = "qruntime_writing"
    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
    #: A transaction that waits longer than this goes on without the lock and is left
    #: to SQLite's busy handling, as if there were no lock: never a deadlock.
    _PATIENCE = 10.0

    def __init__(self, engine: Engine) -> None:
        # A plain lock, not an RLock: FastAPI may commit a request's session on
        # another thread than the one that wrote.
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine, "commit", self._release)
        event.listen(engine, "rollback", self._release)
        event.listen(engine.pool, "reset", self._reset)

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.info.get(self._KEY) or not statement.lstrip()[:7].upper().startswith(self._WRITES):
            return
        if self._lock.acquire(timeout=self._PATIENCE):
            conn.info[self._KEY] = True
        else:
            logger.warning("waited %.0f s for the SQLite write lock; going on", self._PATIENCE)

    def _release(self, conn: Any) -> None:
        self._release_info(conn.info)

    def _reset(self, dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        self._release_info(connection_record.info)

    def _release_info(self, info: dict[str, Any]) -> None:
        if info.pop(self._KEY, False):
            self._lock.release()


class Database:
    """An engine and its session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False, server_id: str | None = None) -> None:
        """``server_id`` (PostgreSQL): names this server in the notices its writes send
        to the other servers (the ``qruntime.server`` setting of its connections)."""
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
            raise InputValueError(f"Invalid database URL {url!r}: {exc}") from exc
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            if parsed.database in (None, "", ":memory:"):
                raise InputValueError(
                    "An in-memory SQLite database cannot be shared by the server's threads; "
                    "give a file path instead."
                )
            _prepare_sqlite_file(parsed.database)
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            if server_id is not None:
                given = parsed.query.get("options", "")
                given = given if isinstance(given, str) else " ".join(given)
                kwargs["connect_args"] = {
                    "options": f"{given} -c qruntime.server={server_id}".strip()
                }
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            _SQLiteWriteLock(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def bound_session(self, connection: Connection) -> Session:
        """A session on ``connection`` inside the transaction it has begun: the caller
        commits (or rolls back) the connection's transaction, the session only flushes."""
        return Session(bind=connection, expire_on_commit=False)

    def dispose(self) -> None:
        self.engine.dispose()
