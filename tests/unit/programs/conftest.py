"""Fixtures for the built-in programs: a recording messenger and real Aer backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

from qruntime.programs.circuit_runner import clear_pass_manager_cache
from qruntime.programs.mitigation import clear_calibration_cache

# Per-qubit readout errors: P(read 1 | prepared 0), P(read 0 | prepared 1).
READOUT_ERRORS = [(0.03, 0.08), (0.05, 0.10), (0.02, 0.06), (0.04, 0.07), (0.03, 0.05)]


class RecordingMessenger:
    """An in-process user messenger that keeps what the program published."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.finals: list[Any] = []

    def publish(self, message: Any, encoder: Any = None, final: bool = False) -> None:
        (self.finals if final else self.messages).append(message)


@pytest.fixture
def messenger() -> RecordingMessenger:
    return RecordingMessenger()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Backends in these tests share names, so caches keyed by name must not leak.
    clear_pass_manager_cache()
    clear_calibration_cache()
    yield
    clear_pass_manager_cache()
    clear_calibration_cache()


@pytest.fixture(scope="session")
def readout_errors() -> list[tuple[float, float]]:
    return list(READOUT_ERRORS)


@pytest.fixture(scope="session")
def ideal_backend() -> AerSimulator:
    return AerSimulator()


@pytest.fixture(scope="session")
def readout_noisy_backend() -> AerSimulator:
    """A 5-qubit device-like simulator with strong, known readout errors."""
    device = GenericBackendV2(5, seed=7)
    noise = NoiseModel(basis_gates=["cx", "id", "rz", "sx", "x"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 2), ["cx"])
    for qubit, (p10, p01) in enumerate(READOUT_ERRORS):
        noise.add_readout_error(ReadoutError([[1 - p10, p10], [p01, 1 - p01]]), [qubit])
    return AerSimulator.from_backend(device, noise_model=noise)


@pytest.fixture(scope="session")
def device_noisy_backend() -> AerSimulator:
    """A 5-qubit simulator with the generic device's own noise model."""
    return AerSimulator.from_backend(GenericBackendV2(5, seed=11))
