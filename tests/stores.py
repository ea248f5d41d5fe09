"""A prepared SQLite store for tests that call the server's services without HTTP."""

from __future__ import annotations

from pathlib import Path

from qruntime.server.app import prepare_database
from qruntime.server.settings import Settings
from qruntime.server.store.database import Database
from qruntime.server.store.tables import User


def sqlite_store(tmp_path: Path) -> tuple[Settings, Database, User]:
    """A migrated SQLite store in ``tmp_path``, its settings, and its admin (detached)."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    settings = Settings(db_url=url, admin_token="qrt_test_" + "0" * 32)
    database = Database(url)
    prepare_database(settings, database)
    with database.session() as db:
        admin = db.query(User).filter(User.name == "admin").one()
        user = User(id=admin.id, name=admin.name, is_admin=True, created_at=admin.created_at)
    return settings, database, user
