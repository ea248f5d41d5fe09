"""VQE with EstimatorV2 in a Session: the ground-state energy of H2, on aer_simulator.

Every iteration of the optimiser is one estimator job in the same session, so the
session's worker keeps the ansatz and only binds new parameter values. Run it against a
server::

    export QRUNTIME_URL=http://127.0.0.1:8000 QRUNTIME_TOKEN=qrt_...
    .venv/bin/python examples/vqe_session.py
"""

import numpy as np
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

from qruntime import EstimatorV2, RuntimeService, Session

# H2 at 0.735 Angstrom (STO-3G, parity mapping, two qubits): electronic energy in Hartree.
HAMILTONIAN = SparsePauliOp.from_list(
    [
        ("II", -1.052373245772859),
        ("IZ", 0.39793742484318045),
        ("ZI", -0.39793742484318045),
        ("ZZ", -0.01128010425623538),
        ("XX", 0.18093119978423156),
    ]
)


def main() -> None:
    service = RuntimeService()
    ansatz = real_amplitudes(2, reps=1)
    exact = float(np.linalg.eigvalsh(HAMILTONIAN.to_matrix()).min())
    energies = []

    with Session(service=service, backend="aer_simulator", max_time="10m") as session:
        # On an ideal simulator the estimator computes exact expectation values and
        # adds Gaussian noise of the requested precision.
        estimator = EstimatorV2(mode=session, options={"default_precision": 0.002})

        def energy(params: np.ndarray) -> float:
            result = estimator.run([(ansatz, HAMILTONIAN, params)]).result()
            value = float(result[0].data.evs)
            energies.append(value)
            if len(energies) % 10 == 0:
                print(f"iteration {len(energies)}: energy {value:.4f}")
            return value

        start = np.full(ansatz.num_parameters, 0.1)
        best = minimize(energy, start, method="COBYLA", options={"maxiter": 80})
        print(f"session {session.session_id}: {len(energies)} estimator jobs")

    print(f"VQE energy: {best.fun:.4f} Ha")
    print(f"exact energy: {exact:.4f} Ha")
    service.close()


if __name__ == "__main__":
    main()
