"""Issue "Primitives": V2 primitives through qruntime against the same work in-process.

Baselines, measured in the same run on the same machine:

- SamplerV2: qiskit-ibm-runtime's local testing mode (``SamplerV2(mode=fake_backend)``,
  in-process) on a qiskit-ibm-runtime ``FakeBackendV2`` built from qruntime's own
  configuration and properties JSON of the device: the same device snapshot.
- EstimatorV2 VQE loop: Aer's ``EstimatorV2`` in-process, which does no error
  mitigation; qruntime's estimator runs with ``resilience_level=0`` to match.
- SamplerV2 Bell latency and throughput (:mod:`bench.primitive_load`): Aer's
  ``SamplerV2`` in-process, and ``circuit-runner`` jobs through the same client.

Both sides get the same ISA circuits (transpiled once, for the device's target), the
same shots or precision and the same parameter values.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.providers import BackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from bench.harness import Row, interleaved, median_ms, server, timed
from bench.primitive_load import latency_row, throughput_rows

SHOTS = 1024
VQE_PRECISION = 1 / 32  # 1024 shots per observable group on qruntime
# The targets: how many times faster qruntime must be than local testing mode.
SAMPLER_TARGETS = {"fake_5q": 3.0, "fake_27q": 10.0}


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


@contextmanager
def ibm_fake_backend(name: str) -> Iterator[BackendV2]:
    """qiskit-ibm-runtime's ``FakeBackendV2`` for qruntime's device ``name``.

    It reads the same configuration and properties documents that qruntime's
    ``/backends/{name}/configuration`` and ``/properties`` serve.
    """
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

    from qruntime.backends import load_catalogue

    entry = load_catalogue().get(name)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "conf.json").write_text(json.dumps(entry.configuration(), default=str))
        (Path(tmp) / "props.json").write_text(json.dumps(entry.properties(), default=str))
        fake_class = type(
            f"Fake_{name}",
            (FakeBackendV2,),
            {
                "dirname": tmp,
                "conf_filename": "conf.json",
                "props_filename": "props.json",
                "backend_name": name,
            },
        )
        backend = fake_class()
        _ = backend.target  # reads the files while they exist
        yield backend


def _ibm_sampler(backend: BackendV2) -> Any:
    import qiskit_ibm_runtime

    with warnings.catch_warnings():
        # 0.50 deprecates SamplerV2 for a client-side Sampler; local mode still runs it.
        warnings.simplefilter("ignore", DeprecationWarning)
        return qiskit_ibm_runtime.SamplerV2(mode=backend)


def sampler_rows(service: Any) -> list[Row]:
    """A Bell SamplerV2 job on each device: qruntime against local testing mode."""
    return [sampler_row(service, name, times) for name, times in SAMPLER_TARGETS.items()]


def sampler_row(service: Any, name: str, times: float, *, repeat: int = 7) -> Row:
    """A Bell SamplerV2 job on device ``name``; qruntime must be ``times`` faster."""
    from qruntime import SamplerV2
    from qruntime.backends import load_catalogue

    manager = generate_preset_pass_manager(
        optimization_level=1, target=load_catalogue().get(name).target, seed_transpiler=1
    )
    isa = manager.run(bell())
    with ibm_fake_backend(name) as fake:
        local = _ibm_sampler(fake)
        # Kept for the note: the same circuit gives the same kind of counts on both.
        local_counts = local.run([isa], shots=SHOTS).result()[0].data.meas.get_counts()
        baseline = median_ms(
            timed(lambda: local.run([isa], shots=SHOTS).result(), repeat=repeat, warmup=1)
        )
    ours = SamplerV2(mode=name, service=service)
    counts = ours.run([isa], shots=SHOTS).result()[0].data.meas.get_counts()
    figure = median_ms(timed(lambda: ours.run([isa], shots=SHOTS).result(), repeat=repeat))
    good = sum(counts.get(k, 0) for k in ("00", "11")) / SHOTS
    local_good = sum(local_counts.get(k, 0) for k in ("00", "11")) / SHOTS
    return Row(
        f"SamplerV2 Bell on {name}, {SHOTS} shots (median)",
        figure,
        baseline,
        "ms",
        f">= {times:g}x faster than local",
        figure * times <= baseline,
        f"baseline: qiskit-ibm-runtime local mode, same snapshot and ISA circuit; "
        f"P(00|11) {good:.3f} here, {local_good:.3f} local",
    )


def vqe_problem() -> tuple[QuantumCircuit, SparsePauliOp, np.ndarray[Any, Any]]:
    """A 4-qubit hardware-efficient ansatz, a transverse-field Ising Hamiltonian, 100 points."""
    from qiskit_aer import AerSimulator

    ansatz = efficient_su2(4, reps=2)
    manager = generate_preset_pass_manager(optimization_level=1, backend=AerSimulator())
    isa = manager.run(ansatz)
    terms = [("ZZ", [i, i + 1], -1.0) for i in range(3)] + [("X", [i], -0.5) for i in range(4)]
    observable = SparsePauliOp.from_sparse_list(terms, num_qubits=4).apply_layout(isa.layout)
    rng = np.random.default_rng(11)
    values = rng.uniform(-np.pi, np.pi, size=(100, isa.num_parameters))
    return isa, observable, values


def vqe_row(service: Any) -> Row:
    """100 EstimatorV2 iterations in a session against Aer's EstimatorV2 in-process."""
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    from qruntime import EstimatorV2, Session

    isa, observable, values = vqe_problem()
    aer = AerEstimator(
        options={"default_precision": VQE_PRECISION, "run_options": {"seed_simulator": 3}}
    )
    energies = {"aer": 0.0, "qruntime": 0.0}

    def aer_step(row: np.ndarray[Any, Any]) -> None:
        energies["aer"] = float(aer.run([(isa, observable, row)]).result()[0].data.evs)

    with Session(service=service, backend="aer_simulator") as session:
        estimator = EstimatorV2(
            mode=session,
            options={"resilience_level": 0, "default_precision": VQE_PRECISION},
        )

        def our_step(row: np.ndarray[Any, Any]) -> None:
            result = estimator.run([(isa, observable, row)]).result()
            energies["qruntime"] = float(result[0].data.evs)

        for row in values[:3]:  # warm: Aer's pass managers, the session's worker
            aer_step(row)
            our_step(row)
        samples = interleaved({"aer": aer_step, "qruntime": our_step}, values)
    totals = {name: sum(times) * 1000 for name, times in samples.items()}
    figure, baseline = totals["qruntime"], totals["aer"]
    return Row(
        f"EstimatorV2 VQE loop in a session ({len(values)} it.)",
        figure,
        baseline,
        "ms",
        "<= 1.3x in-process Aer",
        figure <= 1.3 * baseline,
        "baseline: Aer EstimatorV2 in-process (exact evs plus precision noise, no "
        "mitigation); qruntime resilience_level=0, precision 1/32 (1024 shots); both "
        "loops timed in alternating blocks of 10 iterations; last energy "
        f"{energies['qruntime']:.3f} here, {energies['aer']:.3f} Aer",
    )


def run() -> list[Row]:
    from qruntime import RuntimeService

    with server() as srv, RuntimeService(url=srv.url, token=srv.token) as service:
        rows = [*sampler_rows(service), latency_row(service), vqe_row(service)]
        return [*rows, *throughput_rows(srv)]
