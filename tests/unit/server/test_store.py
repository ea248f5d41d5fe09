"""The store on SQLite and on PostgreSQL: migrations, users and tokens, programs."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from sqlalchemy import column, delete, func, insert, inspect, select, table

from qruntime.errors import ConflictError, InputValueError, NotAuthorizedError
from qruntime.schemas import ProgramCreate
from qruntime.server.app import prepare_database
from qruntime.server.services import auth, users
from qruntime.server.services import programs as program_service
from qruntime.server.settings import Settings
from qruntime.server.store import jobs as job_store
from qruntime.server.store import programs as program_store
from qruntime.server.store.database import Database, normalise_url
from qruntime.server.store.migrate import upgrade
from qruntime.server.store.tables import Job, JobCount, Program, User, utcnow


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
        assert users.revoke_tokens(session, name="alice") == 1
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


def test_builtin_heads_keep_built_in_programs_only(database: Database) -> None:
    """A built-in program's head is read once; a user's program is read every time, so
    an update or a deletion is seen by the next submission.
    """
    builtins = program_service.BuiltinHeads()
    source = base64.b64encode(b"def main(backend, user_messenger, **kw):\n    return 1\n")
    with database.session() as session:
        admin = session.query(User).filter(User.name == "admin").one()
        payload = ProgramCreate(name="mine", data=source.decode(), cost=60, description="d")
        mine = program_service.create_program(
            session, user=admin, payload=payload, max_bytes=10_000, max_cost=3600
        )
        session.commit()
        head = builtins.head(session, "circuit-runner")
        assert head is not None
        assert head.builtin == "circuit_runner"
        assert builtins.head(session, "no-such-program") is None
        first = builtins.head(session, mine)
        assert first is not None
        assert first.max_execution_time == 60
    with database.session() as session:
        # Gone from the table: still known as a built-in, and the user's program is gone.
        session.execute(delete(Program).where(Program.id.in_(["circuit-runner", mine])))
        again = builtins.head(session, "circuit-runner")
        assert again is not None
        assert again.builtin == "circuit_runner"
        assert builtins.head(session, mine) is None
        session.rollback()


def _job_row(job_id: str, owner_id: str, seq: int) -> dict[str, object]:
    return {
        "id": job_id,
        "seq": seq,
        "owner_id": owner_id,
        "program_id": "hello-world",
        "backend": "aer_simulator",
        "status": "Queued",
        "params": "{}",
        "tags": [],
        "logs": "",
        "max_execution_time": 60,
        "created_at": utcnow(),
    }


def test_job_counts_are_backfilled_and_kept_by_the_database(db_url: str) -> None:
    """Migration 0003 counts the jobs already there; its triggers follow every insert and
    delete, whoever makes them, and the first page of a list reads the count from there.
    """
    db = Database(db_url)
    try:
        upgrade(db.engine, "0002")
        alice_id, bob_id = "alice-id", "bob-id"
        with db.engine.begin() as connection:
            # Not through the store: its User has columns that later migrations add.
            for user_id, name in ((alice_id, "alice"), (bob_id, "bob")):
                connection.execute(insert(User), {"id": user_id, "name": name, "is_admin": False})
            # The jobs table as 0002 left it: the model's later columns are not there yet.
            row = _job_row("a0", alice_id, 0)
            columns = Job.__table__.c  # type: ignore[attr-defined]
            jobs_0002 = table("jobs", *(column(name, columns[name].type) for name in row))
            for seq in range(3):
                connection.execute(insert(jobs_0002), _job_row(f"a{seq}", alice_id, seq))
        upgrade(db.engine)
        with db.session() as session:
            jobs, total = job_store.list_jobs(session, owner_id=alice_id, limit=2, offset=0)
            assert (len(jobs), total) == (2, 3)
            for job_id, owner in (("a3", alice_id), ("b0", bob_id)):
                fields = _job_row(job_id, owner, 0)
                del fields["seq"]  # the store numbers submissions itself
                job_store.add_job(session, **fields)
            session.commit()
        with db.engine.begin() as connection:  # not through the store: still counted
            connection.execute(insert(Job), _job_row("a4", alice_id, 5))
        with db.session() as session:
            doomed = session.get(Job, "a0")
            assert doomed is not None
            job_store.delete_job(session, job=doomed)
            session.commit()
            counts = dict(session.execute(select(JobCount.owner_id, JobCount.total)).all())
            assert counts == {alice_id: 4, bob_id: 1}
            _, total = job_store.list_jobs(session, owner_id=alice_id, limit=10, offset=0)
            assert total == 4
            # With a filter the count is of the matching jobs, as before.
            _, running = job_store.list_jobs(
                session, owner_id=alice_id, limit=10, offset=0, statuses=["Running"]
            )
            assert running == 0
            _, none = job_store.list_jobs(session, owner_id="nobody", limit=10, offset=0)
            assert none == 0
        with db.engine.begin() as connection:  # a deleted user takes its count along
            connection.execute(delete(User).where(User.id == bob_id))
        with db.session() as session:
            assert session.get(JobCount, bob_id) is None
    finally:
        db.dispose()


def test_a_sessions_job_is_inserted_only_if_the_session_takes_it(database: Database) -> None:
    """One statement checks the session and inserts the job: the session must exist, be the
    job owner's, run on the job's backend and accept jobs; otherwise nothing is written."""
    from qruntime.server.store import sessions as session_store

    with database.session() as session:
        alice, _ = auth.create_user(session, name="alice")
        bob, _ = auth.create_user(session, name="bob")
        session_store.add_session(
            session,
            id="s1",
            owner_id=alice.id,
            backend="aer_simulator",
            mode="dedicated",
            state="open",
            accepting_jobs=True,
            max_ttl=600,
            interactive_ttl=60,
        )
        session.commit()
    refused = [
        {"owner_id": bob.id},  # another user's session
        {"backend": "fake_5q"},  # another backend
        {"session_id": "missing"},
    ]
    with database.session() as session:
        for number, change in enumerate(refused):
            row = {**_job_row(f"no{number}", alice.id, 0), "session_id": "s1", **change}
            del row["seq"]
            assert job_store.add_job_in_session(session, **row) is None
        row = {**_job_row("yes", alice.id, 0), "session_id": "s1", "private": True}
        del row["seq"]
        job = job_store.add_job_in_session(session, **row)
        assert job is not None
        assert job.seq == 1
        session_store.update_session(session, session_id="s1", accepting_jobs=False)
        closed = {**row, "id": "late"}
        assert job_store.add_job_in_session(session, **closed) is None
        session.commit()
    with database.session() as session:
        stored = session.get(Job, "yes")
        assert stored is not None
        assert (stored.session_id, stored.private, stored.tags) == ("s1", True, [])
        assert stored.created_at.tzinfo is not None
        assert session.scalar(select(func.count()).select_from(Job)) == 1
