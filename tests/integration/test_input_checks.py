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

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from tests.stores import sqlite_store

from qruntime.backends import Catalogue, load_catalogue
from qruntime.encoding import RuntimeEncoder
from qruntime.errors import InputValueError
from qruntime.schemas.jobs import JobCreate
from qruntime.schemas.programs import ProgramCreate
from qruntime.server.services import jobs as job_service
from qruntime.server.services import programs as program_service
from qruntime.server.services.checked_inputs import CheckedInputs
from qruntime.server.services.programs import BuiltinHeads
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
    settings, database, admin_user = sqlite_store(tmp_path)
    with database.session() as db:
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


def _make_ansatz() -> QuantumCircuit:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.cx(0, 1)
    qc.rz(b, 1)
    return qc


_ANSATZ = _make_ansatz()  # one circuit: its parameters' ids are part of its QPY


def _estimator_params(values: object) -> dict[str, object]:
    inputs = {"pubs": [[_ANSATZ, {"ZZ": 1.0, "XI": 0.5}, values, 0.01]], "version": 2}
    params: dict[str, object] = json.loads(json.dumps(inputs, cls=RuntimeEncoder))
    return params


def test_a_loop_with_new_parameter_values_of_the_same_shape_is_checked_once(
    store: Store,
) -> None:
    checked = CheckedInputs()
    rng = np.random.default_rng(5)
    for _ in range(3):
        _submit(
            store,
            store.admin,
            checked,
            _estimator_params(rng.uniform(size=2)),
            program_id="estimator",
        )
    assert len(checked) == 1
    _submit(
        store,
        store.admin,
        checked,
        _estimator_params(rng.uniform(size=(4, 2))),
        program_id="estimator",
    )
    assert len(checked) == 2  # another shape: checked on its own
    # Integers read as numbers too, but they are another dtype: checked on their own.
    _submit(
        store, store.admin, checked, _estimator_params(np.array([1, 2])), program_id="estimator"
    )
    assert len(checked) == 3
    sampler = QuantumCircuit(2)
    sampler.compose(_ANSATZ, inplace=True)
    sampler.measure_all()
    inputs = {"pubs": [[sampler, rng.uniform(size=(3, 2)), 10]], "version": 2}
    for _ in range(2):
        inputs["pubs"][0][1] = rng.uniform(size=(3, 2))  # type: ignore[index]
        params = json.loads(json.dumps(inputs, cls=RuntimeEncoder))
        _submit(store, store.admin, checked, params)
    assert len(checked) == 4


def test_values_that_do_not_fit_are_refused_after_values_that_did(store: Store) -> None:
    checked = CheckedInputs()
    _submit(
        store, store.admin, checked, _estimator_params(np.array([0.1, 0.2])), program_id="estimator"
    )
    wrong = _estimator_params(np.array([0.1, 0.2, 0.3]))  # three values, two parameters
    with pytest.raises(InputValueError, match="3 per set"):
        _submit(store, store.admin, checked, wrong, program_id="estimator")
    # Where the array was, something that is not one: not taken for the array's shape.
    for stand_in in (None, {"__values__": [[2], "<f8"]}):
        params = _estimator_params(np.array([0.1, 0.2]))
        params["pubs"][0][2] = stand_in  # type: ignore[index]
        with pytest.raises(InputValueError):
            _submit(store, store.admin, checked, params, program_id="estimator")
    # Strings of digits might read as numbers; these do not, and are refused.
    words = _estimator_params(np.array(["ab", "cd"]))
    with pytest.raises(InputValueError):
        _submit(store, store.admin, checked, words, program_id="estimator")
    assert len(checked) == 1


def test_an_array_that_does_not_decode_is_refused_by_the_full_checks(store: Store) -> None:
    checked = CheckedInputs()
    good = _estimator_params(np.array([0.1, 0.2]))
    _submit(store, store.admin, checked, good, program_id="estimator")
    broken = _estimator_params(np.array([0.1, 0.2]))
    broken["pubs"][0][2]["__value__"] = "not base64 at all"  # type: ignore[index]
    with pytest.raises(InputValueError):
        _submit(store, store.admin, checked, broken, program_id="estimator")


def _on_loop(
    store: Store, checked: CheckedInputs, params: dict[str, object], **kw: object
) -> job_service.NewJob | job_service.InputDigest | None:
    """`remembered_job` of an estimator job with ``params`` (the admin's unless ``user=``)."""
    payload = JobCreate(program_id="estimator", backend="aer_simulator", params=params)
    arguments: dict[str, object] = {
        "user": store.admin,
        "payload": payload,
        "catalogue": store.catalogue,
        "settings": store.settings,
        "queued_by_user": 0,
        "builtins": kw.pop("builtins"),
        "checked": checked,
        **kw,
    }
    return job_service.remembered_job(**arguments)  # type: ignore[arg-type]


def _remembered(
    store: Store, checked: CheckedInputs, params: dict[str, object], **kw: object
) -> job_service.NewJob | None:
    """The job checked on the loop; None when it is not (new inputs come back from the
    loop as their digest, for check_job)."""
    found = _on_loop(store, checked, params, **kw)
    return found if isinstance(found, job_service.NewJob) else None


def _check(
    store: Store,
    checked: CheckedInputs,
    builtins: BuiltinHeads,
    params: dict[str, object],
    digest: job_service.InputDigest | None = None,
) -> job_service.NewJob:
    """`check_job` of the admin's estimator job with ``params`` (the thread's full checks)."""
    payload = JobCreate(program_id="estimator", backend="aer_simulator", params=params)
    with store.database.session() as db:
        return job_service.check_job(
            db,
            user=store.admin,
            payload=payload,
            catalogue=store.catalogue,
            settings=store.settings,
            builtins=builtins,
            checked=checked,
            digest=digest,
        )


def test_a_remembered_submission_is_checked_without_the_store_or_a_thread(store: Store) -> None:
    from qruntime.errors import QuotaExceededError

    checked, builtins = CheckedInputs(), BuiltinHeads()
    first = _estimator_params(np.array([0.1, 0.2]))
    # Nothing kept yet: the program's head is read from the store by check_job first.
    assert _remembered(store, checked, first, builtins=builtins) is None
    checked_job = _check(store, checked, builtins, first)
    later = _estimator_params(np.array([0.3, 0.4]))
    new = _remembered(store, checked, later, builtins=builtins)
    assert new is not None
    assert new.builtin == "estimator"
    assert new.fields["id"] != checked_job.fields["id"]
    assert json.loads(new.fields["params"]) == later  # the job runs its own values
    # Another user, another shape, or large inputs: not for the loop.
    assert _remembered(store, checked, later, builtins=builtins, user=store.other) is None
    assert (
        _remembered(store, checked, _estimator_params(np.zeros((2, 2))), builtins=builtins) is None
    )
    rng = np.random.default_rng(1)
    _check(store, checked, builtins, _estimator_params(rng.uniform(size=(20_000, 2))))
    bigger = _estimator_params(rng.uniform(size=(20_000, 2)))  # remembered, but large
    assert _remembered(store, checked, bigger, builtins=builtins) is None
    # The quota still holds.
    with pytest.raises(QuotaExceededError):
        _remembered(
            store,
            checked,
            later,
            builtins=builtins,
            queued_by_user=store.settings.max_queued_jobs_per_user,
        )


def test_new_inputs_read_on_the_loop_are_not_read_again_on_the_thread(store: Store) -> None:
    """New inputs of a kept program come back from the loop as their text and digest;
    check_job takes them as they are and remembers the digest for the next job."""
    checked, builtins = CheckedInputs(), BuiltinHeads()
    _check(store, checked, builtins, _estimator_params(np.array([0.1, 0.2])))  # keeps the head
    fresh = _estimator_params(np.array([[0.1, 0.2], [0.3, 0.4]]))  # a new shape
    digest = _on_loop(store, checked, fresh, builtins=builtins)
    assert isinstance(digest, job_service.InputDigest)
    assert json.loads(digest.params) == fresh
    new = _check(store, checked, builtins, fresh, digest)
    assert new.fields["params"] == digest.params
    assert checked.holds(digest.key)
    later = _estimator_params(np.array([[0.5, 0.6], [0.7, 0.8]]))
    assert _remembered(store, checked, later, builtins=builtins) is not None
