"""A real LocalExecutor (real zygote, real forks, real Aer) on a loop in a background thread."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from qruntime.server.executor import Executor, JobSpec, LocalExecutor, WorkerEvent
from qruntime.worker.sandbox import uid_has_processes

T = TypeVar("T")


class Harness:
    """Drives an executor that lives on its own event loop thread."""

    def __init__(self, make: Callable[[], Executor]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.executor = make()
        self.call(self.executor.start(), timeout=120)
        self._count = 0

    @staticmethod
    def worker_alive(identity: list[Any]) -> bool:
        """Whether the worker that reported ``identity`` (qrtest_programs.identity) lives.

        As root each sandboxed worker leads a PID namespace of its own (its pid there
        is 1) and holds a uid no other live process has: the uid names it.
        """
        uid, pid, _token = identity
        if os.geteuid() == 0:
            return uid_has_processes(uid)
        return Path(f"/proc/{pid}").exists()

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spec(self, **fields: Any) -> JobSpec:
        self._count += 1
        values: dict[str, Any] = {
            "job_id": f"job-{self._count}",
            "program_id": "test-program",
            "backend": "aer_simulator",
            "inputs": "{}",
        }
        values.update(fields)
        return JobSpec(**values)

    def submit(self, spec: JobSpec) -> tuple[list[WorkerEvent], asyncio.Event]:
        """Submit and return the list the events go to and an event set at the terminal one."""
        events: list[WorkerEvent] = []

        async def go() -> asyncio.Event:
            done = asyncio.Event()

            def on_event(event: WorkerEvent) -> None:
                assert threading.current_thread() is self.thread
                events.append(event)
                if event.kind in ("result", "error"):
                    done.set()

            self.executor.submit(spec, on_event)
            return done

        return events, self.call(go())

    def wait(self, done: asyncio.Event, timeout: float = 60) -> None:
        async def go() -> None:
            await asyncio.wait_for(done.wait(), timeout)

        self.call(go(), timeout=timeout + 5)

    def run(self, spec: JobSpec, *, timeout: float = 60) -> list[WorkerEvent]:
        """Run one job to its end; checks the event order contract on the way."""
        events, done = self.submit(spec)
        self.wait(done, timeout)
        time.sleep(0.02)  # nothing may follow the terminal event
        kinds = [e.kind for e in events]
        assert kinds[0] == "running", kinds
        assert kinds.count("running") == 1, kinds
        assert sum(k in ("result", "error") for k in kinds) == 1, kinds
        assert kinds[-1] in ("result", "error"), kinds
        return events

    def close(self) -> None:
        self.call(self.executor.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def program_modules(root: Path) -> Path:
    """A package of tiny built-in-style programs for the pool, importable via PYTHONPATH.

    Readable by everyone: the sandboxed workers that import it run as other uids.
    """
    root.chmod(0o755)
    package = root / "qrtest_programs"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    # Which worker process ran a job: see Harness.worker_alive.
    (package / "identity.py").write_text(
        "import os, uuid\n"
        "TOKEN = uuid.uuid4().hex  # imported in the worker: one per process\n"
        "def identity():\n"
        "    return [os.getuid(), os.getpid(), TOKEN]\n"
    )
    (package / "counter.py").write_text(
        "from qrtest_programs.identity import identity\n"
        "CALLS = 0\n"
        "def main(backend, user_messenger, **kwargs):\n"
        "    global CALLS\n"
        "    CALLS += 1\n"
        "    return {'calls': CALLS, 'pid': identity(), 'echo': kwargs}\n"
    )
    (package / "whoami.py").write_text(
        "import os, resource\n"
        "def main(backend, user_messenger, **kwargs):\n"
        "    return [os.getuid(), resource.getrlimit(resource.RLIMIT_AS)[0]]\n"
    )
    # A built-in whose input makes it allocate without bound, as a decoding bomb would.
    (package / "hog.py").write_text(
        "def main(backend, user_messenger, **kwargs):\n"
        "    blocks = []\n"
        "    while True:\n"
        "        blocks.append(bytearray(50_000_000))\n"
    )
    (package / "sleeper.py").write_text(
        "import os, time\n"
        "from qrtest_programs.identity import identity\n"
        "def main(backend, user_messenger, seconds=60, crash=False):\n"
        "    user_messenger.publish(identity())\n"
        "    if crash:\n"
        "        os._exit(5)\n"
        "    time.sleep(seconds)\n"
        "    return 'slept'\n"
    )
    return root


@pytest.fixture(scope="package")
def programs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return program_modules(tmp_path_factory.mktemp("programs"))


@pytest.fixture
def make_harness() -> Iterator[Callable[[Callable[[], Executor]], Harness]]:
    """Start extra executors in a test; each is stopped afterwards."""
    made: list[Harness] = []

    def make(factory: Callable[[], Executor]) -> Harness:
        made.append(Harness(factory))
        return made[-1]

    yield make
    for h in made:
        h.close()


@pytest.fixture(scope="package")
def harness(programs_dir: Path) -> Iterator[Harness]:
    modules = programs_dir
    env = {"PYTHONPATH": str(modules), "QRUNTIME_TEST_SECRET": "do-not-leak"}
    h = Harness(
        lambda: LocalExecutor(
            pool_size=2,
            memory_limit_bytes=512 * 1024**2,
            log_limit_bytes=200_000,
            process_limit=32,
            env=env,
        )
    )
    yield h
    h.close()
