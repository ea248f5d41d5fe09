"""Factories of a lab's own backends, for ``kind = "provider"`` in the tests.

Imported as ``tests.lab_backends`` in the test process, and as ``lab_backends`` by
workers, which see a copy of this file in a folder on their ``PYTHONPATH`` (see
`copy_to`): the sandbox shows only the Python installation, qruntime and those folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from qiskit.providers.fake_provider import GenericBackendV2

#: A gate set no built-in backend has: CZ with X and Y rotations (no rz, sx or x).
BASIS_GATES = ["cz", "rx", "ry"]
#: A line of five qubits, coupled both ways.
LINE = [[0, 1], [1, 0], [1, 2], [2, 1], [2, 3], [3, 2], [3, 4], [4, 3]]
#: The description the factory's backend carries.
DESCRIPTION = "A lab's 5-qubit line with CZ, RX and RY"


def line_backend() -> GenericBackendV2:
    """A noisy 5-qubit backend with a distinctive gate set (seeded: the same everywhere)."""
    # Copies: GenericBackendV2 adds measure, delay and reset to the list it is given.
    backend = GenericBackendV2(
        num_qubits=5, basis_gates=list(BASIS_GATES), coupling_map=[*LINE], seed=7
    )
    backend.description = DESCRIPTION
    return backend


def broken_backend() -> GenericBackendV2:
    """A factory that fails, as a driver does when its hardware is unreachable."""
    raise ConnectionError("the lab's control rack does not answer\n(second line of detail)")


def not_a_backend() -> object:
    """A factory that returns something else than a ``BackendV2``."""
    return {"num_qubits": 5}


def copy_to(folder: Path) -> Path:
    """This module as ``lab_backends.py`` in ``folder``, readable by every worker's uid."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    target = folder / "lab_backends.py"
    shutil.copyfile(__file__, target)
    target.chmod(0o644)
    return folder
