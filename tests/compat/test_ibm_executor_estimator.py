"""The official client's executor-based EstimatorV2 on a 27-qubit device-like backend.

Its programs measure every qubit of the device; qruntime's executor samples the qubits
that never interact apart, so these jobs take seconds. Each mitigation must bring the
estimate closer to the exact value than the run without it, on a GHZ state whose
echoed CNOTs give the device's gate noise something to bite on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

#: <IZZ> + <XXX> of a GHZ-3 state.
EXACT = 2.0
SEED = 1234


def _echoed_ghz(backend: Any) -> tuple[Any, Any]:
    """An ISA GHZ-3 with three echoes (CNOT pairs that cancel) and its observable."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager

    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    for _ in range(3):
        # Barriers keep the transpiler from cancelling the pairs.
        circuit.barrier()
        circuit.cx(0, 1)
        circuit.cx(1, 2)
        circuit.barrier()
        circuit.cx(1, 2)
        circuit.cx(0, 1)
    isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)
    return isa, SparsePauliOp(["IZZ", "XXX"]).apply_layout(isa.layout)


def _estimator(backend: Any, **resilience: Any) -> Any:
    from qiskit_ibm_runtime.executor_estimator import EstimatorV2

    estimator = EstimatorV2(mode=backend)
    # qruntime's executor seeds its samplex draws and its simulator from this.
    estimator.options.experimental = {"seed_simulator": SEED}
    level = resilience.pop("level", None)
    if level is not None:
        estimator.options.resilience_level = level
    for name, value in resilience.items():
        setattr(estimator.options.resilience, name, value)
    return estimator


def _estimate(estimator: Any, pub: tuple[Any, Any]) -> float:
    result = estimator.run([pub]).result(timeout=300)  # a hang guard only
    return float(result[0].data.evs)


def test_default_options_finish_on_27_qubits_and_readout_mitigation_helps(
    ibm_service: Any,
) -> None:
    backend = ibm_service.backend("fake_27q")
    pub = _echoed_ghz(backend)

    raw = _estimate(_estimator(backend, level=0), pub)
    default = _estimate(_estimator(backend), pub)  # resilience level 1: TREX

    assert 1.0 < raw < EXACT
    assert abs(default - EXACT) < abs(raw - EXACT)


def test_zne_with_gate_folding_is_closer_than_readout_mitigation_alone(ibm_service: Any) -> None:
    backend = ibm_service.backend("fake_27q")
    pub = _echoed_ghz(backend)

    readout_only = _estimate(_estimator(backend, level=1), pub)
    folded = _estimator(backend, level=2)
    folded.options.resilience.zne.amplifier = "gate_folding"
    zne = _estimate(folded, pub)

    assert abs(zne - EXACT) < abs(readout_only - EXACT)


@pytest.mark.filterwarnings("ignore:The NoiseLearner class is deprecated:DeprecationWarning")
def test_pea_and_pec_with_learned_noise_are_closer_than_readout_mitigation_alone(
    ibm_service: Any,
) -> None:
    from qiskit_ibm_runtime.noise_learner import NoiseLearner

    from qruntime.box_noise import box_noise_model

    backend = ibm_service.backend("fake_27q")
    pub = _echoed_ghz(backend)
    circuit = pub[0]
    learned = NoiseLearner(mode=backend).run([circuit]).result(timeout=300)
    readout_only = _estimate(_estimator(backend, level=1), pub)

    pea = _estimator(backend, zne_mitigation=True)
    pea.options.resilience.zne.amplifier = "pea"
    pec = _estimator(backend, pec_mitigation=True)
    for estimator in (pea, pec):
        # Both spread their shots thin (extrapolation, quasi-probability signs).
        estimator.options.default_shots = 16_384
        boxes = estimator.find_unique_layers([pub])
        model = box_noise_model(circuit, boxes, learned)
        assert len(model) == len(boxes)
        estimator.options.resilience.layer_noise_model = model
    values = [_estimate(pea, pub), _estimate(pec, pub)]

    for value in values:
        assert abs(value - EXACT) < abs(readout_only - EXACT)


def test_seeded_estimator_jobs_repeat_their_values(ibm_service: Any) -> None:
    from qiskit_ibm_runtime.executor_estimator import EstimatorV2

    backend = ibm_service.backend("fake_27q")
    pub = _echoed_ghz(backend)
    first, second = (_estimate(_estimator(backend), pub) for _ in range(2))
    other = EstimatorV2(mode=backend)
    other.options.experimental = {"seed_simulator": SEED + 1}

    assert first == second
    assert _estimate(other, pub) != first
    assert np.isfinite(first)
