"""The entry module of a folder program: Bernstein-Vazirani finds a hidden bit string.

Its helper module sits next to it and is imported by name, as when ``python program.py``
runs in this folder. ``upload_folder_program.py`` uploads the folder with the metadata
in ``folder_program.json`` (``entry_point`` names this file).
"""

import numpy as np
from bv_circuits import bernstein_vazirani
from qiskit import transpile


def main(backend, user_messenger, secret, shots=500):
    circuit = transpile(bernstein_vazirani(secret), backend, seed_transpiler=3)
    counts = backend.run(circuit, shots=shots).result().get_counts()
    bits, hits = max(counts.items(), key=lambda item: item[1])
    return {
        "found": bits,
        "correct": bits == secret,
        "confidence": float(np.round(hits / shots, 3)),
    }
