"""A lab's own BackendV2 in the catalogue: ``kind = "provider"`` with a factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from tests import lab_backends

from qruntime.backends import load_catalogue, target_from_ibm_json
from qruntime.backends.config_file import read_catalogue_tables, specs_from_tables
from qruntime.backends.provider import ProviderRunner, clear_provider_cache
from qruntime.errors import InputValueError

FACTORY = "tests.lab_backends:line_backend"


@pytest.fixture(autouse=True)
def _fresh_factories() -> Iterator[None]:
    clear_provider_cache()
    yield
    clear_provider_cache()


def write(tmp_path: Path, factory: str = FACTORY, extra: str = "") -> Path:
    path = tmp_path / "backends.toml"
    path.write_text(f'[backends.lab_line]\nkind = "provider"\nfactory = "{factory}"\n{extra}')
    return path


def test_provider_backend_is_served_with_its_targets_gates_and_calibration(
    tmp_path: Path,
) -> None:
    entry = load_catalogue(write(tmp_path)).get("lab_line")
    assert (entry.spec.kind, entry.spec.num_qubits, entry.spec.lanes) == ("provider", 5, 1)
    configuration = entry.configuration()
    assert configuration["backend_name"] == "lab_line"
    assert configuration["basis_gates"] == sorted(lab_backends.BASIS_GATES)
    assert configuration["simulator"] is False
    assert configuration["description"] == lab_backends.DESCRIPTION
    assert sorted(configuration["coupling_map"]) == sorted(lab_backends.LINE)
    properties = entry.properties()
    assert properties is not None
    assert len(properties["qubits"]) == 5
    # What a client rebuilds is the factory backend's own target.
    rebuilt = target_from_ibm_json(configuration, properties)
    original = lab_backends.line_backend().target
    assert set(rebuilt.operation_names) == set(original.operation_names)
    for qargs, props in original["cz"].items():
        assert rebuilt["cz"][qargs].error == pytest.approx(props.error)
    assert rebuilt.qubit_properties[0].t1 == pytest.approx(original.qubit_properties[0].t1)


def test_provider_lanes_and_simulator_flag_come_from_the_file(tmp_path: Path) -> None:
    entry = load_catalogue(write(tmp_path, extra="lanes = 3\nsimulator = true\n")).get("lab_line")
    assert (entry.spec.lanes, entry.spec.simulator) == (3, True)
    assert entry.configuration()["simulator"] is True


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            "tests.lab_backends:broken_backend",
            "failed: ConnectionError: the lab's control rack does not answer",
        ),
        ("tests.lab_backends:not_a_backend", "returned a dict, not a Qiskit BackendV2"),
        ("tests.no_such_module:make", "cannot be loaded: ModuleNotFoundError"),
        ("tests.lab_backends:missing", "cannot be loaded: AttributeError"),
    ],
)
def test_a_failing_factory_names_the_backend_and_the_error_in_one_line(
    tmp_path: Path, factory: str, message: str
) -> None:
    path = write(tmp_path, factory)
    with pytest.raises(InputValueError, match=message) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: [backends.lab_line]: factory '{factory}' ")
    assert "\n" not in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('kind = "provider"\n', "needs factory"),
        ('kind = "provider"\nfactory = "no colon"\n', "is not 'package.module:callable'"),
        ('kind = "provider"\nfactory = "a:b"\nmethod = "statevector"\n', "unknown key"),
        ('kind = "provider"\nfactory = "a:b"\nsimulator = 1\n', "must be bool"),
    ],
)
def test_provider_table_mistakes_are_refused_before_any_factory_runs(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(f"[backends.lab]\n{body}")
    with pytest.raises(InputValueError, match=message):
        load_catalogue(path)


def test_the_zygotes_reading_of_the_file_never_calls_a_factory(tmp_path: Path) -> None:
    path = write(tmp_path, "tests.lab_backends:broken_backend")
    specs = specs_from_tables(path, read_catalogue_tables(path))
    (spec,) = [s for s in specs if s.name == "lab_line"]
    assert (spec.kind, spec.num_qubits) == ("provider", 0)


def test_runner_runs_on_the_factory_backend_made_once_per_process(tmp_path: Path) -> None:
    entry = load_catalogue(write(tmp_path)).get("lab_line")
    runner = ProviderRunner(entry)
    assert runner.name == "lab_line"
    assert runner.backend is entry.backend  # one factory call for the process
    assert runner.target.num_qubits == 5

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = transpile(bell, runner, seed_transpiler=1)
    assert set(isa.count_ops()) <= {"cz", "rx", "ry", "measure", "barrier"}
    counts = runner.run(isa, shots=2000, seed_simulator=3).result().get_counts()
    together = counts.get("00", 0) + counts.get("11", 0)
    assert 0.9 * 2000 < together < 2000  # a Bell state, with the backend's noise


def test_runner_binds_parameters_itself_in_aers_order(tmp_path: Path) -> None:
    runner = ProviderRunner(load_catalogue(write(tmp_path)).get("lab_line"))
    theta = Parameter("theta")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    circuit.measure_all()
    isa = transpile(circuit, runner, seed_transpiler=1)
    plain = transpile(QuantumCircuit(1, 1), runner)
    plain.measure(0, 0)
    result = runner.run(
        [isa, plain], shots=400, seed_simulator=5, parameter_binds=[{theta: [0.0, 3.14159]}, {}]
    ).result()
    ones = [result.get_counts(i).get("1", 0) for i in range(3)]
    assert len(result.results) == 3
    assert ones[0] < 40
    assert ones[1] > 360
    assert ones[2] < 40
