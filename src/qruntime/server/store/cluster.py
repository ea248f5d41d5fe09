"""Data access for several servers on one PostgreSQL: the leader's epoch and notices.

One server leads (it runs the scheduler): it holds the advisory lock `LEADER_LOCK`
on a connection of its own and bumps the epoch in ``cluster_leader`` when it takes
the lead. Its store writes are fenced by that epoch (`epoch_is_current`). Servers
hear of one another's writes on channel `CHANNEL`: triggers (migration 0007) send
most notices; `send_notice` sends the rest.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from qruntime.server.store.tables import ClusterLeader, utcnow

__all__ = [
    "BUMP_EPOCH",
    "CHANNEL",
    "LEADER_LOCK",
    "PREPARE_LOCK",
    "conninfo",
    "epoch_is_current",
    "keepalive_options",
    "leader",
    "listener_name",
    "live_servers",
    "record_nodes",
    "send_notice",
]

#: The channel every server LISTENs on.
CHANNEL = "qruntime"
#: Advisory lock keys: the leader's (held as long as it leads), and the one that
#: serialises preparing the database (migrations, the first users) at start.
LEADER_LOCK = 0x71727400_0001
PREPARE_LOCK = 0x71727400_0002

#: TCP keepalive for the leader lock and listener connections, in seconds: a peer that
#: vanishes without closing its socket (a dead machine, a cut network) is noticed after
#: IDLE + INTERVAL * COUNT seconds (11 s) at the latest, by PostgreSQL (which then
#: releases the dead leader's lock) and by the server itself (which then steps down).
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3

BUMP_EPOCH = (
    "UPDATE cluster_leader SET epoch = epoch + 1, server = %s, elected_at = now() "
    "WHERE id = 1 RETURNING epoch"
)

_leader = cast(Table, ClusterLeader.__table__)
_FENCE = (
    select(_leader.c.id)
    .where(_leader.c.id == 1, _leader.c.epoch == bindparam("epoch"))
    .with_for_update(read=True)
)


def conninfo(url: str) -> str:
    """A libpq connection string for a ``postgresql+psycopg://`` SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def keepalive_options() -> dict[str, Any]:
    """psycopg connect arguments: keepalives on both ends of the connection.

    PostgreSQL's own default (the kernel's, 7,200 s) would let a vanished leader hold
    its lock for two hours.
    """
    server_side = (
        f"-c tcp_keepalives_idle={KEEPALIVE_IDLE} "
        f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL} "
        f"-c tcp_keepalives_count={KEEPALIVE_COUNT} "
        f"-c tcp_user_timeout={1000 * (KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT)}"
    )
    return {
        "autocommit": True,
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE,
        "keepalives_interval": KEEPALIVE_INTERVAL,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": 1000 * (KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT),
        "options": server_side,
    }


def epoch_is_current(db: Session, *, epoch: int | None) -> bool:
    """Whether ``epoch`` is the leader's current one; holds the row until the commit,
    so that no new leader takes over while this transaction writes."""
    if epoch is None:
        return False
    return db.connection().execute(_FENCE, {"epoch": epoch}).first() is not None


def leader(db: Session) -> ClusterLeader | None:
    """The leader's row: its epoch, its server id and when it was elected."""
    return db.get(ClusterLeader, 1)


#: How a server's listening connection names itself to PostgreSQL: the live servers are
#: those with such a connection open.
_LISTENER = "qruntime "
_LIVE_SERVERS = text(
    "SELECT application_name, host(client_addr), backend_start FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name LIKE 'qruntime %' "
    "ORDER BY backend_start"
)


def listener_name(server_id: str, listen: str) -> str:
    """The ``application_name`` of a server's listening connection (at most 63 bytes)."""
    return f"{_LISTENER}{server_id} {listen}"[:63]


def live_servers(db: Session) -> list[dict[str, Any]]:
    """The servers listening on this database now, oldest first: ``server`` (its id),
    ``listen`` (the ``host:port`` it serves on), ``address`` (where its connection comes
    from; None over a Unix socket) and ``since`` (when that connection opened).

    PostgreSQL shows other roles' connections only to a superuser or a member of
    ``pg_read_all_stats``: servers on one database share one role.
    """
    found = []
    for name, address, since in db.execute(_LIVE_SERVERS):
        server_id, _, listen = str(name).removeprefix(_LISTENER).partition(" ")
        found.append({"server": server_id, "listen": listen, "address": address, "since": since})
    return found


def record_nodes(db: Session, *, epoch: int | None, nodes: list[dict[str, Any]]) -> bool:
    """Record the leader's nodes, if ``epoch`` is still the leader's: False if not (a
    deposed leader writes nothing)."""
    if epoch is None:
        return False
    done = db.execute(
        update(_leader)
        .where(_leader.c.id == 1, _leader.c.epoch == epoch)
        .values(nodes=nodes, nodes_at=utcnow())
    )
    return bool(cast(Any, done).rowcount)


def send_notice(db: Session, payload: str) -> None:
    """NOTIFY every server of ``payload``, when ``db``'s transaction commits."""
    db.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
    )
