"""Fixtures shared by the server's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qruntime.server.store.database import Database
from qruntime.server.store.migrate import upgrade


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of the test's own."""
    db = Database(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(db.engine)
    yield db
    db.dispose()
