"""The runnable Aer simulator behind a catalogue entry, built once per process.

Building a device's noise model takes about 0.4 s for 27 qubits while a small circuit
runs in about 1 ms, so workers keep what they build. Aer is imported only when a simulator
is first built: the server and the client import this package without paying for Aer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qruntime.backends.catalogue import BackendEntry, BackendSpec
from qruntime.errors import QRuntimeError

if TYPE_CHECKING:
    from qiskit_aer import AerSimulator

__all__ = ["DeviceBackend", "build_simulator", "clear_simulator_cache"]

_cache: dict[BackendSpec, AerSimulator] = {}
_lock = threading.Lock()


class DeviceBackend(BackendV2):  # type: ignore[misc]
    """A backend that is only a ``Target``: what ``AerSimulator.from_backend`` reads.

    It cannot run circuits; the simulator built from it does.
    """

    def __init__(self, target: Target, *, name: str, description: str = "") -> None:
        super().__init__(name=name, description=description or None, backend_version="1.0.0")
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> int | None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024)

    def run(self, run_input: Any, **options: Any) -> Any:
        raise QRuntimeError(f"{self.name} only describes a device; run on build_simulator(...)")


def _ideal_simulator_class() -> type[AerSimulator]:
    """An ``AerSimulator`` that builds its ``target`` once, not on every access.

    Aer rebuilds the target of an ideal simulator each time it is read (about 1 ms);
    programs read ``backend.num_qubits`` and ``backend.target`` on every job.
    Changing an option drops the cached target.
    """
    from qiskit_aer import AerSimulator

    class IdealSimulator(AerSimulator):  # type: ignore[misc]
        _cached_target: Target | None = None

        @property
        def target(self) -> Target:
            if self._cached_target is None:
                self._cached_target = super().target
            return self._cached_target

        def set_option(self, key: str, value: Any) -> None:
            self._cached_target = None
            super().set_option(key, value)

    return IdealSimulator


def _build(entry: BackendEntry) -> AerSimulator:
    from qiskit_aer import AerSimulator

    spec = entry.spec
    if spec.kind == "aer":
        options: dict[str, Any] = {"method": spec.method}
        if spec.aer_device != "CPU":
            options["device"] = spec.aer_device
        simulator = _ideal_simulator_class()(**options)
    else:
        device = DeviceBackend(entry.target, name=spec.name, description=spec.description)
        # from_backend derives the noise model from the target: depolarizing and thermal
        # relaxation errors per gate, and (via ReadoutProperties) asymmetric readout errors.
        simulator = AerSimulator.from_backend(device)
    # Aer names it e.g. "aer_simulator_from(fake_27q)"; results should carry our name.
    simulator.name = spec.name
    return simulator


def build_simulator(entry: BackendEntry) -> AerSimulator:
    """The ``AerSimulator`` for ``entry``, cached in this process by the entry's spec.

    The same object is returned on every call: callers that change its options should
    set them per ``run`` call instead.
    """
    with _lock:
        simulator = _cache.get(entry.spec)
        if simulator is None:
            simulator = _cache[entry.spec] = _build(entry)
        return simulator


def clear_simulator_cache() -> None:
    """Forget every simulator built in this process (tests; a reloaded catalogue)."""
    with _lock:
        _cache.clear()
