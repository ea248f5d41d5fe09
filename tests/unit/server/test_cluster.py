"""Several servers on one PostgreSQL: the epoch fence on dispatch, and the notices."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from qruntime.backends import load_catalogue
from qruntime.server.app import prepare_database
from qruntime.server.executor import InlineExecutor
from qruntime.server.scheduler.cluster import ClusterRuntime
from qruntime.server.scheduler.notices import Notice, parse_notice
from qruntime.server.services import auth
from qruntime.server.settings import Settings
from qruntime.server.store import cluster
from qruntime.server.store import jobs as job_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import utcnow


@pytest.fixture
def database(postgres_url: str) -> Iterator[Database]:
    assert prepare_database(Settings(db_url=postgres_url, builtin_programs=False)) is not None
    db = Database(postgres_url)
    yield db
    db.dispose()


def _bump(db: Database) -> int:
    with psycopg.connect(cluster.conninfo(db.url), autocommit=True) as conn:
        row = conn.execute(cluster.BUMP_EPOCH, ("test",)).fetchone()
    assert row is not None
    return int(row[0])


def _queue(db: Database, job_id: str, *, private: bool = False) -> None:
    with db.session() as session:
        user, _ = auth.create_user(session, name=f"u{job_id}")
        job_store.add_job(
            session,
            id=job_id,
            owner_id=user.id,
            program_id="p",
            backend="aer_simulator",
            status="Queued",
            params="{}",
            max_execution_time=60,
            created_at=utcnow(),
            private=private,
        )


def _claim(db: Database, job_id: str, epoch: int | None) -> bool:
    with db.session() as session:
        row = job_store.claim_job(
            session,
            job_id=job_id,
            sources=["Queued"],
            status="Running",
            running_at=utcnow(),
            epoch=epoch,
        )
        return row is not None


def _state(db: Database, job_id: str) -> tuple[str, int]:
    with db.session() as session:
        job = job_store.get_job(session, job_id=job_id)
        assert job is not None
        return job.status, job.dispatches


@pytest.mark.postgres
def test_a_stale_epoch_cannot_dispatch(database: Database) -> None:
    _queue(database, "j1")
    old = _bump(database)
    new = _bump(database)  # another server took the lead
    assert not _claim(database, "j1", old)
    assert _state(database, "j1") == ("Queued", 0)
    assert _claim(database, "j1", new)
    assert _state(database, "j1") == ("Running", 1)
    assert not _claim(database, "j1", new), "a job is claimed once"
    assert _state(database, "j1") == ("Running", 1)


@pytest.mark.postgres
def test_a_new_leader_waits_for_a_claim_in_flight(database: Database) -> None:
    _queue(database, "j2")
    epoch = _bump(database)
    with database.session() as session:
        assert cluster.epoch_is_current(session, epoch=epoch)
        row = job_store.claim_job(
            session,
            job_id="j2",
            sources=["Queued"],
            status="Running",
            running_at=utcnow(),
            epoch=epoch,
        )
        assert row is not None
        # The claim's transaction is open: a bump (a new leader) cannot pass it.
        with psycopg.connect(cluster.conninfo(database.url), autocommit=True) as conn:
            conn.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                conn.execute(cluster.BUMP_EPOCH, ("usurper",))
    assert _bump(database) == epoch + 1  # once it committed
    with database.session() as session:
        assert not cluster.epoch_is_current(session, epoch=epoch)
        assert cluster.epoch_is_current(session, epoch=epoch + 1)


@pytest.mark.postgres
def test_writes_send_notices_in_their_transaction(database: Database) -> None:
    with psycopg.connect(cluster.conninfo(database.url), autocommit=True) as conn:
        conn.execute(f"LISTEN {cluster.CHANNEL}")
        _queue(database, "j3")
        with database.session() as session:
            job_store.update_job(session, job_id="j3", status="Cancelled")
            job_store.append_log(session, job_id="j3", text="not announced\n")
        heard = [parse_notice(n.payload) for n in conn.notifies(timeout=5, stop_after=2)]
    assert [n.kind for n in heard if n is not None] == ["q", "j"]
    queued, changed = heard
    assert queued is not None
    assert changed is not None
    assert (queued.key, queued.fields[2:]) == ("j3", ("-", "aer_simulator"))
    assert changed.fields[:2] == ("Queued", "Cancelled")


def _complete(db: Database, job_id: str, result: str) -> None:
    with db.session() as session:
        job_store.finish_job(
            session,
            job_id=job_id,
            sources=["Queued"],
            status="Completed",
            reason=None,
            result=result,
            finished_at=utcnow(),
            usage_seconds=None,
            metrics=None,
        )


@pytest.mark.postgres
def test_a_completed_jobs_notice_carries_its_result_unless_private_or_large(
    database: Database,
) -> None:
    small, large = '{"counts": {"00": 51, "11": 49}}', '"' + "x" * 9000 + '"'
    for job_id, private in (("r1", False), ("r2", True), ("r3", False)):
        _queue(database, job_id, private=private)
    with psycopg.connect(cluster.conninfo(database.url), autocommit=True) as conn:
        conn.execute(f"LISTEN {cluster.CHANNEL}")
        _complete(database, "r1", small)
        _complete(database, "r2", small)
        _complete(database, "r3", large)  # over NOTIFY's limit: still written, not sent
        heard = [parse_notice(n.payload) for n in conn.notifies(timeout=5, stop_after=3)]
    ended = {n.key: n for n in heard if n is not None and n.kind == "j"}
    assert ended["r1"].fields[:2] == ("Queued", "Completed")
    assert ended["r1"].result == small
    assert ended["r2"].result is None  # a private result is read once, from the store
    assert ended["r3"].result is None
    with database.session() as session:
        row = job_store.job_outcome(session, job_id="r3")
        assert row is not None
        assert row.result == large


def test_notices_are_parsed_and_malformed_ones_ignored() -> None:
    assert parse_notice('j ab12 job1 Running Completed 7 owner - aer\n{"a": "b c"}') == Notice(
        kind="j",
        server="ab12",
        key="job1",
        fields=("Running", "Completed", "7", "owner", "-", "aer"),
        result='{"a": "b c"}',
    )
    assert parse_notice("j ab12 job1 Queued Running 7 owner - aer").result is None  # type: ignore[union-attr]
    assert parse_notice("q ab12 job1 7 owner - my backend") == Notice(
        kind="q", server="ab12", key="job1", fields=("7", "owner", "-", "my backend")
    )
    assert parse_notice("i - job1 3") == Notice(kind="i", server="-", key="job1", fields=("3",))
    assert parse_notice("S ab12 sess") == Notice(kind="S", server="ab12", key="sess")
    for bad in ("", "z a b", "q ab12 job1", "i ab12"):
        assert parse_notice(bad) is None


@pytest.mark.postgres
def test_a_server_hears_a_jobs_progress_only_where_someone_listens(database: Database) -> None:
    """The listener's thread lets through an interim result or a job's state short of its
    end only where someone listens to that job; a job's end always; its own never."""
    runtime = ClusterRuntime(
        db=database, catalogue=load_catalogue(None), executor=InlineExecutor(), server_id="me"
    )
    running = "j other job1 Queued Running 7 owner - aer_simulator"
    interim = "i other job1 0"
    ended = 'j other job1 Running Completed 7 owner - aer_simulator\n{"a": 1}'
    assert not runtime._heard(running)
    assert not runtime._heard(interim)
    assert runtime._heard(ended)
    queue = runtime.hub.subscribe("job1")
    assert runtime._heard(running)
    assert runtime._heard(interim)
    runtime.hub.unsubscribe("job1", queue)
    assert not runtime._heard("j me job1 Running Completed 7 owner - aer_simulator")
    assert not runtime._heard("q other job2 8 owner - aer_simulator")  # it does not lead
    assert not runtime._heard("j other job1 Queued")  # malformed


def test_resources_text_reads_as_ray_counts_and_memory_in_gib() -> None:
    from qruntime.schemas.server import resources_text

    amounts = {"GPU": 1.0, "CPU": 2.0, "memory": 8 * 1024**3, "lab_qpu_1": 1.0}
    assert resources_text(amounts) == "CPU=2 GPU=1 lab_qpu_1=1 memory=8.0GiB"
    assert resources_text({}) == ""


def test_a_listeners_name_fits_postgresql_and_carries_the_servers_address() -> None:
    from qruntime.server.store.cluster import listener_name

    assert listener_name("3f9a0c1e", "0.0.0.0:8000") == "qruntime 3f9a0c1e 0.0.0.0:8000"
    assert len(listener_name("3f9a0c1e", "h" * 100 + ":8000")) == 63


def test_only_the_current_leaders_epoch_records_the_nodes(database: Database) -> None:
    old = _bump(database)
    new = _bump(database)  # another server took the lead
    nodes = [{"node_id": "n1", "address": "10.0.0.5", "ready": True, "resources": {"CPU": 4}}]
    with database.session() as session:
        assert cluster.record_nodes(session, epoch=old, nodes=[]) is False
        assert cluster.record_nodes(session, epoch=None, nodes=[]) is False
        assert cluster.record_nodes(session, epoch=new, nodes=nodes) is True
    with database.session() as session:
        row = cluster.leader(session)
        assert row is not None
        assert row.nodes == nodes
        assert row.nodes_at is not None
