"""The unmodified qiskit-ibm-runtime client on IBM device snapshots that qruntime serves."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.filterwarnings(
    "ignore:The (Sampler|Estimator)V2 class is deprecated:DeprecationWarning"
)


def _ghz(n: int) -> Any:
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(n)
    circuit.h(0)
    for i in range(n - 1):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return circuit


def test_the_ibm_client_builds_a_133_qubit_target_transpiles_and_samples_on_it(
    ibm_service: Any,
) -> None:
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.fake_provider import FakeTorino

    assert "fake_torino" in {backend.name for backend in ibm_service.backends()}
    backend = ibm_service.backend("fake_torino")
    assert backend.num_qubits == 133
    assert backend.configuration().processor_type["family"] == "Heron"
    # The target the client builds from our documents is the snapshot's own.
    shipped = FakeTorino().target
    assert set(backend.target.operation_names) == set(shipped.operation_names)
    assert set(backend.target["cz"]) == set(shipped["cz"])
    for qargs, props in shipped["cz"].items():
        assert backend.target["cz"][qargs].error == pytest.approx(props.error)

    isa = generate_preset_pass_manager(
        backend=backend, optimization_level=1, seed_transpiler=1
    ).run(_ghz(4))
    for instruction in isa.data:
        if instruction.operation.name != "barrier":
            qargs = tuple(isa.find_bit(q).index for q in instruction.qubits)
            assert backend.target.instruction_supported(instruction.operation.name, qargs)

    counts = SamplerV2(mode=backend).run([isa], shots=4000).result(timeout=120)[0]
    counts = counts.data.meas.get_counts()
    ends = counts.get("0000", 0) + counts.get("1111", 0)
    assert 0.6 * 4000 < ends < 0.995 * 4000, counts  # the device's noise: not ideal, not garbage
