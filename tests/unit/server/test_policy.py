"""The scheduling policy, on its own: sessions first, then fair share, then FIFO."""

from __future__ import annotations

from qruntime.server.scheduler.policy import QueuedJob, Scheduler, SessionInfo

BACKEND = "device"


class Queue:
    def __init__(self) -> None:
        self.scheduler = Scheduler(usage_window=3600)
        self.seq = 0

    def add(self, owner: str, session: str | None = None, backend: str = BACKEND) -> str:
        self.seq += 1
        job_id = f"{owner}-{self.seq}"
        self.scheduler.push(QueuedJob(self.seq, job_id, backend, owner, session))
        return job_id

    def session(self, session_id: str, owner: str, *, mode: str = "dedicated", ttl: float = 10):
        info = SessionInfo(session_id, owner, BACKEND, mode, "open", ttl)
        self.scheduler.sessions[session_id] = info
        return info

    def run_one(self, now: float, *, duration: float = 1.0, lanes: int = 1) -> list[str]:
        """Start what may start, and finish it ``duration`` later."""
        picked = self.scheduler.pick(BACKEND, lanes, now=now)
        for job in picked:
            self.scheduler.usage.started(job.job_id, backend=BACKEND, owner_id=job.owner_id, at=now)
        for job in picked:
            self.scheduler.usage.ended(job.job_id, at=now + duration)
            if job.session_id:
                info = self.scheduler.sessions[job.session_id]
                info.running -= 1
                info.last_job_ended_at = now + duration
        return [job.job_id for job in picked]


def test_single_user_jobs_run_first_come_first_served() -> None:
    q = Queue()
    ids = [q.add("alice") for _ in range(5)]
    started = [q.run_one(now=float(i))[0] for i in range(5)]
    assert started == ids
    assert len(q.scheduler) == 0


def test_fair_share_puts_a_newcomer_ahead_of_a_flood() -> None:
    q = Queue()
    for _ in range(100):
        q.add("alice")
    first = q.run_one(now=0.0)  # alice has used the backend now
    bob = q.add("bob")
    following = [q.run_one(now=2.0 + i)[0] for i in range(2)]
    assert first[0].startswith("alice")
    assert bob in following


def test_fair_share_orders_users_by_recent_use() -> None:
    q = Queue()
    q.scheduler.usage.add(backend=BACKEND, owner_id="heavy", seconds=100, at=0)
    q.scheduler.usage.add(backend=BACKEND, owner_id="light", seconds=1, at=0)
    heavy = q.add("heavy")
    light = q.add("light")
    assert q.run_one(now=1.0) == [light]
    assert q.run_one(now=2.0) == [heavy]


def test_usage_older_than_the_window_is_forgotten() -> None:
    q = Queue()
    q.scheduler.usage.add(backend=BACKEND, owner_id="old", seconds=1000, at=0)
    assert q.scheduler.usage.used(backend=BACKEND, owner_id="old", now=4000) == 0


def test_active_dedicated_session_goes_first_and_holds_the_lane() -> None:
    q = Queue()
    for _ in range(20):
        q.add("alice")
    assert q.run_one(now=-2.0)[0].startswith("alice")
    info = q.session("s1", "bob", ttl=10)
    b1 = q.add("bob", "s1")
    # bob's first session job waits in the normal queue, where fair share favours him
    assert q.run_one(now=0.0) == [b1]
    assert info.state == "active"
    b2 = q.add("bob", "s1")
    b3 = q.add("bob", "s1")
    assert q.run_one(now=1.0) == [b2]
    assert q.run_one(now=2.0) == [b3]
    # nothing queued in the session: the lane stays held during the interactive timeout
    assert q.run_one(now=4.0) == []
    assert q.scheduler.holder(BACKEND, now=4.0) is info
    # after it, alice's jobs resume
    assert q.run_one(now=14.0)[0].startswith("alice")


def test_second_dedicated_session_waits_for_the_first_to_be_inactive() -> None:
    q = Queue()
    q.session("s1", "bob", ttl=10)
    q.session("s2", "carol", ttl=10)
    b1 = q.add("bob", "s1")
    c1 = q.add("carol", "s2")
    assert q.run_one(now=0.0) == [b1]
    assert q.run_one(now=2.0) == []  # bob's session holds the backend
    q.scheduler.sessions["s1"].state = "inactive"
    assert q.run_one(now=3.0) == [c1]


def test_closed_session_without_jobs_does_not_hold() -> None:
    q = Queue()
    q.session("s1", "bob", ttl=10)
    q.add("bob", "s1")
    q.run_one(now=0.0)
    del q.scheduler.sessions["s1"]  # what the runtime does when it closes
    a = q.add("alice")
    assert q.run_one(now=2.0) == [a]


def test_active_batch_uses_every_free_lane_before_outside_jobs() -> None:
    q = Queue()
    q.session("b", "bob", mode="batch")
    outside = q.add("alice")
    first = q.add("bob", "b")
    assert q.scheduler.pick(BACKEND, 1, now=0.0)[0].job_id in {outside, first}
    q.scheduler.sessions["b"].state = "active"
    more = [q.add("bob", "b") for _ in range(3)]
    picked = [job.job_id for job in q.scheduler.pick(BACKEND, 3, now=1.0)]
    assert len(picked) == 3
    assert all(job_id.startswith("bob") for job_id in picked)  # alice waits, if still queued
    assert set(picked) <= {first, *more}


def test_dropping_a_sessions_jobs_updates_the_counts() -> None:
    q = Queue()
    q.session("s1", "bob")
    for _ in range(3):
        q.add("bob", "s1")
    assert q.scheduler.queued_by("bob") == 3
    assert len(q.scheduler.drop_session_jobs("s1")) == 3
    assert q.scheduler.queued_by("bob") == 0
    assert len(q.scheduler) == 0


def test_a_removed_job_is_never_picked_and_frees_its_owners_count() -> None:
    q = Queue()
    first, second, third = (q.add("alice") for _ in range(3))
    assert q.scheduler.queued_by("alice") == 3
    assert second in q.scheduler
    assert q.scheduler.remove(QueuedJob(2, second, BACKEND, "alice"))
    assert second not in q.scheduler
    assert q.scheduler.queued_by("alice") == 2
    assert not q.scheduler.remove(QueuedJob(2, second, BACKEND, "alice"))  # already gone
    started = [q.run_one(now=float(i))[0] for i in range(2)]
    assert started == [first, third]
    assert first not in q.scheduler  # picked jobs leave the queue too
    assert len(q.scheduler) == 0
    assert q.scheduler.backends() == set()


def test_removing_a_sessions_last_job_forgets_its_stream() -> None:
    q = Queue()
    q.session("s1", "bob")
    job = q.add("bob", session="s1")
    assert q.scheduler.queued_in_session("s1") == 1
    assert q.scheduler.remove(QueuedJob(1, job, BACKEND, "bob", "s1"))
    assert q.scheduler.queued_in_session("s1") == 0
    assert q.run_one(now=0.0) == []
