"""A server's backend as a Qiskit ``BackendV2``, rebuilt from its IBM-format JSON.

The client builds the ``Target`` with qruntime's own converter, so it needs neither
qiskit-ibm-runtime nor Aer: ``transpile(circuit, backend)`` works offline once the
configuration and properties have been fetched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qruntime.backends.ibm_format import target_from_ibm_json
from qruntime.errors import QRuntimeError

__all__ = ["RemoteBackend"]


class RemoteBackend(BackendV2):  # type: ignore[misc]
    """A backend offered by a qruntime server.

    ``runner``, when given, is called as ``runner(circuits, **options)`` by :meth:`run`
    and returns the job; without one, circuits are submitted through a program instead.

    Usage::

        backend = RemoteBackend(configuration, properties)
        isa_circuit = transpile(circuit, backend)
    """

    def __init__(
        self,
        configuration: dict[str, Any],
        properties: dict[str, Any] | None,
        *,
        runner: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__(
            name=configuration["backend_name"],
            description=configuration.get("description") or None,
            online_date=configuration.get("online_date"),
            backend_version=configuration.get("backend_version", "1.0.0"),
        )
        # Kept as copies: the documents are returned to callers, who may edit them.
        self._configuration = copy.deepcopy(configuration)
        self._properties = copy.deepcopy(properties)
        self._target = target_from_ibm_json(configuration, properties)
        self._runner = runner
        self.options.set_validator("shots", (1, int(configuration.get("max_shots", 100_000))))

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> int | None:
        value = self._configuration.get("max_experiments")
        return None if value is None else int(value)

    @property
    def simulator(self) -> bool:
        """True for a simulator; False for a device-like backend."""
        return bool(self._configuration.get("simulator", False))

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None)

    def configuration(self) -> dict[str, Any]:
        """The IBM-format configuration document this backend was built from (a copy)."""
        return copy.deepcopy(self._configuration)

    def properties(self) -> dict[str, Any] | None:
        """The IBM-format properties document (a copy), or None for an ideal simulator."""
        return copy.deepcopy(self._properties)

    def run(self, run_input: Any, **options: Any) -> Any:
        """Submit circuits through the runner the service plugged in."""
        if self._runner is None:
            raise QRuntimeError(
                f"Backend {self.name!r} cannot run circuits directly: submit circuits with "
                "service.run('circuit-runner', ...) or SamplerV2"
            )
        return self._runner(run_input, **options)
