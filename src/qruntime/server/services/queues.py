"""What the dashboard's overview shows: each backend's lanes and queue, and who waits.

Read from the store, which every server process shares: lanes busy are the backend's
running jobs, the queue its queued ones, the holder its active dedicated session.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from qruntime.backends import Catalogue
from qruntime.server.services.users import require_admin
from qruntime.server.store import queues as store
from qruntime.server.store import users as user_store
from qruntime.server.store.tables import User, utcnow

__all__ = ["BackendLoad", "UserQueue", "backend_loads", "queues_by_user"]


@dataclass(frozen=True)
class BackendLoad:
    """One backend as the overview shows it."""

    name: str
    lanes: int
    busy: int
    queued: int
    finished_last_hour: int
    operational: bool
    #: The active dedicated session holding the backend: its id when it is the caller's
    #: (or the caller is an admin), else None with ``held`` True.
    holder_session: str | None
    holder_user: str | None
    held: bool


@dataclass(frozen=True)
class UserQueue:
    """One user's queued and running jobs (admins' overview)."""

    user: str
    queued: int
    running: int


def backend_loads(db: Session, *, user: User, catalogue: Catalogue) -> list[BackendLoad]:
    """Every backend's lanes busy/total, queue length, holding session and recent output."""
    busy: defaultdict[str, int] = defaultdict(int)
    queued: defaultdict[str, int] = defaultdict(int)
    for backend, _owner, status, count in store.pending_counts(db):
        (busy if status == "Running" else queued)[backend] += count
    finished = store.finished_since(db, since=utcnow() - timedelta(hours=1))
    holders = {session.backend: session for session in store.active_dedicated_sessions(db)}
    names = user_store.user_names(db, user_ids={s.owner_id for s in holders.values()})
    loads = []
    for entry in catalogue:
        holder = holders.get(entry.name)
        visible = holder is not None and (user.is_admin or holder.owner_id == user.id)
        loads.append(
            BackendLoad(
                name=entry.name,
                lanes=entry.spec.lanes,
                busy=busy[entry.name],
                queued=queued[entry.name],
                finished_last_hour=finished.get(entry.name, 0),
                operational=entry.unavailable_reason is None,
                holder_session=holder.id if visible and holder is not None else None,
                holder_user=names.get(holder.owner_id) if visible and holder else None,
                held=holder is not None,
            )
        )
    return loads


def queues_by_user(db: Session, *, user: User) -> list[UserQueue]:
    """Each user's queued and running jobs, most queued first (admins only)."""
    require_admin(user, "see every user's queue")
    counts: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _backend, owner_id, status, count in store.pending_counts(db):
        counts[owner_id][0 if status == "Queued" else 1] += count
    names = user_store.user_names(db, user_ids=set(counts))
    rows = [UserQueue(names.get(o, o), q, r) for o, (q, r) in counts.items()]
    return sorted(rows, key=lambda row: (-row.queued, -row.running, row.user))
