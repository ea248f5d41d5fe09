"""A job's inputs are checked before it is queued; a built-in program's are checked once.

A real store and the server's own submission code, no HTTP in between: inputs of a
built-in program that passed for a user, program and backend are remembered (by a
digest), so a loop that submits them again is not decoded and checked again. Refused
inputs are refused every time, and another user's inputs are checked on their own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from qiskit import QuantumCircuit

from qruntime.backends import Catalogue, load_catalogue
from qruntime.encoding import RuntimeEncoder
from qruntime.errors import InputValueError
from qruntime.schemas.jobs import JobCreate
from qruntime.schemas.programs import ProgramCreate
from qruntime.server.app import prepare_database
from qruntime.server.services import jobs as job_service
from qruntime.server.services import programs as program_service
from qruntime.server.services.checked_inputs import CheckedInputs
from qruntime.server.settings import Settings
from qruntime.server.store import users as user_store
from qruntime.server.store.database import Database
from qruntime.server.store.tables import User


@dataclass
class Store:
    database: Database
    settings: Settings
    catalogue: Catalogue
    admin: User
    other: User


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    settings = Settings(db_url=url, admin_token="qrt_test_" + "0" * 32)
    database = Database(url)
    prepare_database(settings, database)
    with database.session() as db:
        admin = db.query(User).filter(User.name == "admin").one()
        admin_user = User(id=admin.id, name=admin.name, is_admin=True, created_at=admin.created_at)
        other = user_store.add_user(db, user_id="other-user", name="other", is_admin=False)
        other_user = User(id=other.id, name=other.name, is_admin=False, created_at=other.created_at)
    yield Store(database, settings, load_catalogue(None), admin_user, other_user)
    database.dispose()


def _bell(*, measured: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    if measured:
        qc.measure_all()
    return qc


def _sampler_params(circuit: QuantumCircuit, shots: int = 100) -> dict[str, object]:
    inputs = {"pubs": [[circuit, None, shots]], "version": 2}
    params: dict[str, object] = json.loads(json.dumps(inputs, cls=RuntimeEncoder))
    return params


def _submit(
    store: Store,
    user: User,
    checked: CheckedInputs,
    params: dict[str, object],
    *,
    program_id: str = "sampler",
    backend: str = "aer_simulator",
) -> str:
    payload = JobCreate(program_id=program_id, backend=backend, params=params)
    with store.database.session() as db:
        job, _ = job_service.submit_job(
            db,
            user=user,
            payload=payload,
            catalogue=store.catalogue,
            settings=store.settings,
            checked=checked,
        )
        db.commit()
        return job.id


def test_inputs_that_passed_are_remembered_per_user_program_and_backend(store: Store) -> None:
    checked = CheckedInputs()
    params = _sampler_params(_bell())
    first = _submit(store, store.admin, checked, params)
    again = _submit(store, store.admin, checked, params)
    assert first != again  # both queued
    assert len(checked) == 1
    _submit(store, store.other, checked, params)  # another user: checked on its own
    assert len(checked) == 2
    _submit(store, store.admin, checked, params, backend="fake_5q")
    assert len(checked) == 3
    _submit(store, store.admin, checked, _sampler_params(_bell(), shots=101))
    assert len(checked) == 4


def test_refused_inputs_are_refused_every_time(store: Store) -> None:
    checked = CheckedInputs()
    params = _sampler_params(_bell(measured=False))
    for _ in range(2):
        with pytest.raises(InputValueError, match="no measurements"):
            _submit(store, store.admin, checked, params)
    assert len(checked) == 0


def test_inputs_that_passed_on_one_backend_are_checked_again_on_a_narrower_one(
    store: Store,
) -> None:
    checked = CheckedInputs()
    wide = QuantumCircuit(6)
    wide.h(range(6))
    wide.measure_all()
    params = _sampler_params(wide)
    _submit(store, store.admin, checked, params)  # aer_simulator is wide enough
    with pytest.raises(InputValueError, match="qubits"):
        _submit(store, store.admin, checked, params, backend="fake_5q")


def test_an_uploaded_programs_inputs_are_checked_every_time(store: Store) -> None:
    checked = CheckedInputs()
    source = "def main(backend, user_messenger, **kwargs):\n    return 1\n"
    with store.database.session() as db:
        program_id = program_service.create_program(
            db,
            user=store.admin,
            payload=ProgramCreate(
                name="uploaded",
                data=base64.b64encode(source.encode()).decode(),
                cost=60,
                description="an uploaded program",
            ),
            max_bytes=100_000,
            max_cost=3600,
        )
    for _ in range(2):
        _submit(store, store.admin, checked, {"n": 1}, program_id=program_id)
    assert len(checked) == 0
