"""Hostile program specs through the real server: refused at upload, harmless at job time.

A spec's JSON Schemas run in the server's process: a backtracking regex could hold it, and a
remote ``$ref`` would make it fetch a URL at each submission.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.probes import Listener

from qruntime import InputValueError

SOURCE = "def main(backend, user_messenger, **kwargs):\n    return 'ok'\n"
CATASTROPHIC = "^(a+)+$"


def metadata(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "description": "a program with a hostile spec",
        "max_execution_time": 60,
        "spec": {"parameters": parameters},
    }


def referring_to(ref: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": {"$ref": ref}}}


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


class HealthPoller:
    """Asks ``/health`` over and over from a thread, recording how long each answer took."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/health"
        self.answers: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                status = http.get(self.url).status_code
                self.answers.append((status, time.perf_counter() - started))
                self._stop.wait(0.05)

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_remote_reference_is_refused_at_upload_and_never_fetched(
    make_server, db_url: str, listener: Listener
) -> None:
    service = make_server(db_url).service()
    with pytest.raises(InputValueError) as info:
        service.upload_program(data=SOURCE, metadata=metadata("remote", referring_to(listener.url)))
    message = str(info.value)
    assert "spec.parameters" in message
    assert repr(listener.url) in message
    assert "Remote and file references are not fetched" in message
    assert listener.connections == 0


def test_file_reference_is_refused_with_a_400_not_a_500(make_server, tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text('{"type": "integer"}')
    service = make_server().service()
    with pytest.raises(InputValueError, match="not fetched"):
        service.upload_program(
            data=SOURCE, metadata=metadata("file", referring_to(target.as_uri()))
        )


def test_catastrophic_pattern_is_accepted_and_refuses_a_job_at_once(
    make_server, db_url: str
) -> None:
    server = make_server(db_url)
    service = server.service()
    parameters = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": CATASTROPHIC}},
    }
    program_id = service.upload_program(data=SOURCE, metadata=metadata("redos", parameters))

    with HealthPoller(server.url) as health:
        time.sleep(0.2)  # a few answers before, for a baseline
        started = time.perf_counter()
        with pytest.raises(InputValueError, match="does not match") as info:
            service.run(program_id, inputs={"s": "a" * 29 + "!"}, options={"backend": "fake_5q"})
        elapsed = time.perf_counter() - started
        time.sleep(0.2)

    assert "Invalid input s:" in str(info.value)
    assert elapsed < 5
    assert len(health.answers) >= 4
    assert all(status == 200 for status, _ in health.answers)
    assert max(seconds for _, seconds in health.answers) < 2


def test_stored_spec_with_a_remote_reference_refuses_jobs_without_fetching(
    make_server, db_url: str, listener: Listener
) -> None:
    from qruntime.server.store import programs as store
    from qruntime.server.store.database import Database

    server = make_server(db_url)
    service = server.service()
    program_id = service.upload_program(data=SOURCE, metadata=metadata("old", {"type": "object"}))
    # As if stored by a server from before the upload checks.
    db = Database(server.db_url)
    try:
        with db.session() as session:
            found = store.get_program(session, program_id=program_id)
            assert found is not None
            found[0].spec = {"parameters": referring_to(listener.url)}
    finally:
        db.dispose()

    for _ in range(3):
        with pytest.raises(InputValueError, match="The program's spec is invalid"):
            service.run(program_id, inputs={"a": 1}, options={"backend": "fake_5q"})
    assert listener.connections == 0
