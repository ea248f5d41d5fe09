"""The database engine: SQLite (WAL) by default, PostgreSQL for production.

`Database` owns the engine and the session factory; `create_app` makes one and
disposes of it on shutdown. Nothing here runs at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import Engine, Row, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from qruntime.errors import InputValueError

__all__ = ["AnyRow", "Database", "normalise_url"]

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


class Database:
    """An engine and its session factory for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
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
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
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

    def dispose(self) -> None:
        self.engine.dispose()
