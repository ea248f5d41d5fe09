"""qiskit-ibm-runtime's ``Executor`` and its client-side primitives against a real server."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def _bell() -> Any:
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def _rotated_bell() -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    circuit = QuantumCircuit(2)
    circuit.rx(Parameter("theta"), 0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def _isa(circuit: Any, backend: Any) -> Any:
    from qiskit.transpiler import generate_preset_pass_manager

    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)


def test_executor_circuit_item_returns_bits_per_register_shaped_like_the_arguments(
    ibm_service: Any,
) -> None:
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import Parameter
    from qiskit_ibm_runtime import Executor, QuantumProgram
    from qiskit_ibm_runtime.results import QuantumProgramResult

    backend = ibm_service.backend("aer_simulator")
    program = QuantumProgram(shots=50, passthrough_data={"tag": "sweep", "x": np.arange(3)})
    # Two registers; theta = pi flips qubit 0 only, which "low" bit 0 records.
    circuit = QuantumCircuit(
        QuantumRegister(2), ClassicalRegister(2, "low"), ClassicalRegister(1, "high")
    )
    circuit.rx(Parameter("theta"), 0)
    circuit.measure([0, 1, 0], [0, 1, 2])
    program.append_circuit_item(circuit, circuit_arguments=np.array([[[0.0], [np.pi]]] * 3))
    job = Executor(backend).run(program)
    result = job.result(timeout=60)

    assert isinstance(result, QuantumProgramResult)
    assert job.primitive_id == "executor"
    low, high = result[0]["low"], result[0]["high"]
    assert low.shape == (3, 2, 50, 2)
    assert high.shape == (3, 2, 50, 1)
    assert low.dtype == bool
    assert not low[:, 0].any()
    assert not high[:, 0].any()
    assert low[:, 1, :, 0].all()
    assert high[:, 1].all()
    assert not low[:, 1, :, 1].any()
    assert result.passthrough_data["tag"] == "sweep"
    np.testing.assert_array_equal(result.passthrough_data["x"], np.arange(3))
    assert [part.idx_item for span in result.metadata.chunk_timing for part in span.parts] == [0]


def test_executor_runs_several_items_on_a_noisy_device_like_backend(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import Executor, QuantumProgram

    backend = ibm_service.backend("fake_5q")
    program = QuantumProgram(shots=400)
    program.append_circuit_item(_isa(_bell(), backend))
    program.append_circuit_item(_isa(_rotated_bell(), backend), circuit_arguments=np.array([np.pi]))
    result = Executor(backend).run(program).result(timeout=60)

    assert len(result) == 2
    bell = result[0]["meas"]
    assert bell.shape == (400, 2)
    agree = np.count_nonzero(bell[:, 0] == bell[:, 1])
    # Noisy but mostly correlated; both outcomes seen.
    assert agree > 320
    assert 0 < np.count_nonzero(bell[:, 0]) < 400
    flipped = result[1]["meas"]
    assert flipped.shape == (400, 2)
    assert np.count_nonzero(flipped.all(axis=1)) > 300


def test_client_side_sampler_with_twirling_runs_through_samplex_items(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.executor_sampler import SamplerV2

    backend = ibm_service.backend("aer_simulator")
    sampler = SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    sampler.options.twirling.enable_measure = True
    sampler.options.twirling.num_randomizations = 16
    sampler.options.twirling.shots_per_randomization = 5
    job = sampler.run([_isa(_bell(), backend)], shots=80)
    result = job.result(timeout=60)

    counts = result[0].data.meas.get_counts()
    assert sum(counts.values()) == 80
    # Measurement twirling flips bits on the device; the client flips them back.
    assert set(counts) == {"00", "11"}
    assert job.primitive_id == "executor"

    # The executor's own answer: 16 randomizations of 5 shots, with the flips it applied.
    from qiskit_ibm_runtime.decoders.executor.decoder import ExecutorResultDecoder

    raw = job.result(decoder=ExecutorResultDecoder)
    bits, flips = raw[0]["meas"], raw[0]["measurement_flips.meas"]
    assert bits.shape == (16, 5, 2)
    assert flips.shape[0] == 16
    assert flips.any()
    corrected = bits ^ flips.reshape(16, 1, 2)
    assert np.all(corrected[..., 0] == corrected[..., 1])


def test_client_side_sampler_sweeps_parameters_across_randomizations(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.executor_sampler import SamplerV2

    backend = ibm_service.backend("aer_simulator")
    sampler = SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    sampler.options.twirling.num_randomizations = 3
    sampler.options.twirling.shots_per_randomization = 20
    values = np.array([[0.0], [np.pi], [0.0]])
    result = sampler.run([(_isa(_rotated_bell(), backend), values)], shots=60).result(timeout=60)

    meas = result[0].data.meas
    assert meas.shape == (3,)
    assert meas.num_shots == 60
    assert meas[0].get_counts() == {"00": 60}
    assert meas[1].get_counts() == {"11": 60}
    assert meas[2].get_counts() == {"00": 60}


def test_client_side_estimator_measures_a_bell_state(ibm_service: Any) -> None:
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime.executor_estimator import EstimatorV2

    backend = ibm_service.backend("aer_simulator")
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    isa = _isa(circuit, backend)
    observables = [SparsePauliOp("ZZ").apply_layout(isa.layout), SparsePauliOp("XX")]
    estimator = EstimatorV2(mode=backend)
    estimator.options.default_shots = 2000
    result = estimator.run([(isa, observables)]).result(timeout=60)

    values = result[0].data.evs
    assert values.shape == (2,)
    np.testing.assert_allclose(values, [1.0, 1.0], atol=0.1)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"schema_version": "v2.0", "quantum_program": {"shots": 0}}, "invalid executor params"),
        ({"schema_version": "v9.9", "quantum_program": {}}, r"v9\.9.+ is unknown here; use v0\.1"),
    ],
)
def test_malformed_executor_params_fail_the_job_with_the_reason(
    ibm_service: Any, params: dict[str, Any], reason: str
) -> None:
    from qiskit_ibm_runtime import RuntimeJobFailureError

    backend = ibm_service.backend("aer_simulator")
    job = ibm_service._run(program_id="executor", inputs=params, options={"backend": backend.name})
    with pytest.raises(RuntimeJobFailureError, match=reason):
        job.result(timeout=60)


def test_executor_params_without_a_schema_version_are_refused_at_submission(
    ibm_service: Any,
) -> None:
    from qiskit_ibm_runtime.exceptions import IBMRuntimeError

    backend = ibm_service.backend("aer_simulator")
    # ``_run`` is how the client's primitives submit; it lets a test send broken params.
    with pytest.raises(IBMRuntimeError) as info:
        ibm_service._run(
            program_id="executor", inputs={"quantum_program": {}}, options={"backend": backend.name}
        )
    assert "400" in str(info.value)
    assert "schema_version" in str(info.value)


def _params() -> dict[str, Any]:
    from qiskit_ibm_runtime import QuantumProgram
    from qiskit_ibm_runtime.options_models.executor import ExecutorOptions
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    program = QuantumProgram(shots=5)
    program.append_circuit_item(_bell())
    encoder = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"].encoder
    params: dict[str, Any] = encoder(program, ExecutorOptions()).model_dump(mode="json")
    return params


def test_without_the_ibm_client_installed_executor_jobs_say_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from qiskit_aer import AerSimulator

    from qruntime.errors import InputValueError, QRuntimeError
    from qruntime.programs import executor

    params = _params()
    # None in sys.modules makes an import fail as if the package were not installed.
    for name in [m for m in sys.modules if m.split(".")[0] == "qiskit_ibm_runtime"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "qiskit_ibm_runtime", None)

    with pytest.raises(InputValueError, match="install qiskit-ibm-runtime"):
        executor.validate(params, num_qubits=5)
    with pytest.raises(QRuntimeError, match="install qiskit-ibm-runtime to use the executor"):
        executor.main(AerSimulator(), None, **params)


def test_executor_and_client_side_estimator_jobs_run_in_a_batch(ibm_service: Any) -> None:
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import Batch, Executor, QuantumProgram
    from qiskit_ibm_runtime.executor_estimator import EstimatorV2

    backend = ibm_service.backend("fake_5q")
    program = QuantumProgram(shots=100)
    program.append_circuit_item(_isa(_bell(), backend))
    with Batch(backend=backend) as batch:
        job = Executor(batch).run(program)
        # With readout mitigation (TREX) the estimator adds measurement-twirled samplex items.
        circuit = _isa(_bell().remove_final_measurements(inplace=False), backend)
        observable = SparsePauliOp("ZZ").apply_layout(circuit.layout)
        estimator = EstimatorV2(mode=batch)
        estimator.options.resilience.measure_mitigation = True
        estimated = estimator.run([(circuit, observable)]).result(timeout=60)
        assert job.result(timeout=60)[0]["meas"].shape == (100, 2)
    assert job.session_id == batch.session_id
    assert 0.8 < float(estimated[0].data.evs) <= 1.1


def test_executor_jobs_run_in_a_dedicated_session(ibm_service: Any) -> None:
    from qiskit_ibm_runtime import Executor, QuantumProgram, Session

    backend = ibm_service.backend("fake_5q")
    program = QuantumProgram(shots=100)
    program.append_circuit_item(_isa(_bell(), backend))
    with Session(backend=backend) as session:
        executor = Executor(session)
        first, second = executor.run(program), executor.run(program)
        shapes = [job.result(timeout=60)[0]["meas"].shape for job in (first, second)]
    assert shapes == [(100, 2), (100, 2)]
    assert first.session_id == second.session_id == session.session_id
