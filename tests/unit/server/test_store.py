"""The store on SQLite and on PostgreSQL: migrations, users and tokens, programs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect

from qruntime.errors import ConflictError, InputValueError, NotAuthorizedError
from qruntime.server.app import prepare_database
from qruntime.server.services import auth
from qruntime.server.settings import Settings
from qruntime.server.store import programs as program_store
from qruntime.server.store.database import Database, normalise_url
from qruntime.server.store.tables import utcnow


@pytest.fixture
def database(db_url: str):
    settings = Settings(db_url=db_url, admin_token="qrt_admin_token_for_tests")
    assert prepare_database(settings) == "qrt_admin_token_for_tests"
    db = Database(db_url)
    yield db
    db.dispose()


def test_migrations_create_every_table(database: Database) -> None:
    tables = set(inspect(database.engine).get_table_names())
    assert {"users", "api_tokens", "access_tokens", "programs", "jobs", "alembic_version"} <= tables


def test_prepare_database_is_idempotent_and_creates_admin_once(database: Database) -> None:
    settings = Settings(db_url=database.url, admin_token="qrt_other_admin_token")
    assert prepare_database(settings) is None
    with database.session() as session:
        grant = auth.login(session, api_token="qrt_admin_token_for_tests", ttl=60)
        assert grant.user.name == "admin"
        assert grant.user.is_admin
        with pytest.raises(NotAuthorizedError):
            auth.login(session, api_token="qrt_other_admin_token", ttl=60)


def test_tokens_are_stored_hashed(database: Database) -> None:
    with database.session() as session:
        _, token = auth.create_user(session, name="alice")
    with database.engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("SELECT * FROM api_tokens"))
    assert token not in dump
    assert auth.hash_token(token) in dump


def test_access_token_round_trip_expiry_and_logout(database: Database) -> None:
    with database.session() as session:
        _, token = auth.create_user(session, name="alice")
        grant = auth.login(session, api_token=token, ttl=60)
    with database.session() as session:
        assert auth.authenticate(session, access_token=grant.token).name == "alice"
        auth.logout(session, access_token=grant.token)
    with database.session() as session, pytest.raises(NotAuthorizedError):
        auth.authenticate(session, access_token=grant.token)


def test_revoking_an_api_token_revokes_its_access_tokens(database: Database) -> None:
    with database.session() as session:
        _, token = auth.create_user(session, name="alice")
        grant = auth.login(session, api_token=token, ttl=60)
        assert auth.revoke_tokens(session, name="alice") == 1
    with database.session() as session:
        with pytest.raises(NotAuthorizedError):
            auth.authenticate(session, access_token=grant.token)
        with pytest.raises(NotAuthorizedError):
            auth.login(session, api_token=token, ttl=60)


def test_access_token_is_a_jwt_with_expiry(database: Database) -> None:
    import base64
    import json

    with database.session() as session:
        grant = auth.login(session, api_token="qrt_admin_token_for_tests", ttl=120)
    payload = grant.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["exp"] - claims["iat"] == 120
    assert grant.expires_at - grant.created_at == timedelta(seconds=120)


def test_duplicate_and_invalid_user_names_are_refused(database: Database) -> None:
    with database.session() as session:
        auth.create_user(session, name="alice")
    with database.session() as session, pytest.raises(ConflictError):
        auth.create_user(session, name="alice")
    with database.session() as session, pytest.raises(ConflictError):
        auth.create_user(session, name="system")
    with database.session() as session, pytest.raises(InputValueError):
        auth.create_user(session, name="bad name!")


def test_builtin_programs_are_registered_public_and_owned_by_system(database: Database) -> None:
    with database.session() as session:
        found = program_store.get_program(session, program_id="hello-world")
        assert found is not None
        program, owner = found
        assert owner == "system"
        assert program.is_public
        assert "def main(" in program.source


def test_timestamps_come_back_timezone_aware(database: Database) -> None:
    with database.session() as session:
        user, _ = auth.create_user(session, name="zed")
    with database.session() as session:
        again = session.get(type(user), user.id)
        assert again is not None
        assert again.created_at.tzinfo is not None
        assert abs((utcnow() - again.created_at).total_seconds()) < 60


def test_database_urls_are_normalised() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("/tmp/x.db") == "sqlite:////tmp/x.db"


def test_in_memory_sqlite_is_refused_with_advice() -> None:
    with pytest.raises(InputValueError, match="file path"):
        Database("sqlite://")
