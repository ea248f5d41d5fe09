"""The two connections a server among several keeps to PostgreSQL, each on a thread.

`NoticeListener` LISTENs on channel ``qruntime`` and hands each payload to the event
loop as it arrives (no polling: the thread blocks on the socket). `LeaderLock` waits
for the leader's advisory lock (blocked in ``pg_advisory_lock``, not retrying), bumps
the epoch once it has it, and then holds it for as long as its connection lives.

Both connections have TCP keepalives lowered on both ends
(`qruntime.server.store.cluster.keepalive_options`): when a leader's machine or
network dies, PostgreSQL drops its lock, and the leader itself notices, within 11 s;
a killed leader's socket is closed by its kernel, and its lock goes at once.

Both threads stop on a notice on the server's own channel (``stop_channel``), which
`JobRuntime.stop` sends; a standby still waiting for the lock is cancelled instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from qruntime.server.store.cluster import BUMP_EPOCH, CHANNEL, LEADER_LOCK, keepalive_options

__all__ = ["LeaderLock", "Notice", "NoticeListener", "parse_notice"]

logger = logging.getLogger("qruntime.cluster")

#: Seconds between two tries to reach PostgreSQL again after a connection broke.
RECONNECT_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice: its ``kind``, the ``server`` that wrote it, the row's ``key`` (a job
    or session id) and the kind's other ``fields``; a completed job's ``result`` where
    the notice carries it."""

    kind: str
    server: str
    key: str
    fields: tuple[str, ...] = ()
    result: str | None = None


# How many fields each kind has after kind, server and key; the last may hold spaces.
_FIELDS = {"q": 4, "j": 6, "i": 1, "S": 0, "k": 0, "m": 0}


def parse_notice(payload: str) -> Notice | None:
    """The notice in ``payload`` (see migration 0007 for the shapes); None if malformed.

    ``q SERVER JOB SEQ OWNER SESSION BACKEND``: a job was queued.
    ``j SERVER JOB OLD NEW SEQ OWNER SESSION BACKEND``: a job's status changed; when it
    became Completed, followed by a newline and its result if that is small and the job
    not private (migration 0010).
    ``i SERVER JOB SEQ``: an interim result was stored. ``S SERVER SESSION``: a session
    was opened or closed. ``k SERVER JOB``: kill a running job. ``m SERVER EPOCH``: a
    new leader read the queue (every notice sent before it has arrived).
    """
    kind = payload[:1]
    count = _FIELDS.get(kind)
    if count is None:
        return None
    result: str | None = None
    if kind == "j":
        payload, newline, rest = payload.partition("\n")
        result = rest if newline else None
    parts = payload.split(" ", 2 + count)
    if len(parts) < 3 + count:
        return None
    return Notice(kind=kind, server=parts[1], key=parts[2], fields=tuple(parts[3:]), result=result)


class _Connected:
    """A thread that keeps one PostgreSQL connection, reconnecting when it breaks."""

    def __init__(
        self, conninfo: str, *, stop_channel: str, name: str, application_name: str = "qruntime"
    ) -> None:
        self.conninfo = conninfo
        self.stop_channel = stop_channel
        self._name = name
        #: What PostgreSQL shows of this connection (``pg_stat_activity``): the cluster
        #: view finds the live servers by it. PostgreSQL keeps 63 bytes of it.
        self.application_name = application_name[:63]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end: it does on the next notice on ``stop_channel``."""
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.cancel_safe(timeout=2.0)  # a query still waiting (for the lock)

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self.conninfo, application_name=self.application_name, **keepalive_options()
                ) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {self.stop_channel}")
                    self._session(conn)
            except psycopg.Error as error:
                if not self._stopping.is_set():
                    logger.error("%s: connection to PostgreSQL lost: %s", self._name, error)
            finally:
                self._conn = None
                self._ended()
            # Not a poll for work: a pause before reaching a database that went away.
            self._stopping.wait(RECONNECT_DELAY)

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """The connection is gone (or the thread stops)."""

    def _until_stopped(self, conn: psycopg.Connection[Any]) -> None:
        for notice in conn.notifies():
            if notice.channel == self.stop_channel and self._stopping.is_set():
                return


class NoticeListener(_Connected):
    """Hands ``on_notice`` on the loop what ``heard`` (called on this thread) makes of each
    payload on `CHANNEL`: a payload it makes None of does not wake the loop.

    ``on_connected(first)`` is called on the loop each time LISTEN is in place; after a
    reconnection (``first`` False) notices may have been missed meanwhile.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        stop_channel: str,
        on_notice: Callable[[Any], None],
        on_connected: Callable[[bool], None],
        heard: Callable[[str], Any] = lambda payload: payload,
        application_name: str = "qruntime",
    ) -> None:
        super().__init__(
            conninfo,
            stop_channel=stop_channel,
            name="qrt-notices",
            application_name=application_name,
        )
        self.on_notice = on_notice
        self.heard = heard
        self.on_connected = on_connected
        self._first = True

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self._call(self.on_connected, self._first)
        self._first = False
        for notice in conn.notifies():
            if notice.channel == self.stop_channel:
                if self._stopping.is_set():
                    return
                continue
            heard = self.heard(notice.payload)
            if heard is not None:
                self._call(self.on_notice, heard)


class LeaderLock(_Connected):
    """Waits for the leader's lock; ``on_elected(epoch)`` once held, ``on_lost()`` once
    the connection that holds it is gone (both on the loop)."""

    def __init__(
        self,
        conninfo: str,
        *,
        stop_channel: str,
        server_id: str,
        on_elected: Callable[[int], None],
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__(
            conninfo,
            stop_channel=stop_channel,
            name="qrt-leader-lock",
            application_name=f"qruntime-lock {server_id}",
        )
        self.server_id = server_id
        self.on_elected = on_elected
        self.on_lost = on_lost
        self._elected = False

    def _session(self, conn: psycopg.Connection[Any]) -> None:
        # Blocks until the leader's connection is gone: PostgreSQL wakes it, no retries.
        conn.execute("SELECT pg_advisory_lock(%s)", (LEADER_LOCK,))
        if self._stopping.is_set():
            return
        row = conn.execute(BUMP_EPOCH, (self.server_id,)).fetchone()
        assert row is not None  # migration 0007 wrote the row
        self._elected = True
        self._call(self.on_elected, int(row[0]))
        self._until_stopped(conn)  # returns on the stop notice; raises if the link dies

    def _ended(self) -> None:
        if self._elected:
            self._elected = False
            self._call(self.on_lost)
