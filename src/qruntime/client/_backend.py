"""A server's backend as a Qiskit ``BackendV2``, rebuilt from its IBM-format JSON.

The client builds the ``Target`` with qruntime's own converter, so it needs neither
qiskit-ibm-runtime nor Aer: ``transpile(circuit, backend)`` works offline once the
configuration and properties have been fetched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qruntime.backends.ibm_format import target_from_ibm_json
from qruntime.errors import QRuntimeError

if TYPE_CHECKING:
    from qruntime.client._service import RuntimeService

__all__ = ["BackendStatus", "RemoteBackend"]

#: Fetches a backend's configuration and properties documents.
Documents = Callable[[], tuple[dict[str, Any], dict[str, Any] | None]]


@dataclass(frozen=True)
class BackendStatus:
    """A backend's status now, with the fields of qiskit-ibm-runtime's ``BackendStatus``."""

    backend_name: str
    backend_version: str
    operational: bool
    #: Jobs waiting in the backend's queue.
    pending_jobs: int
    status_msg: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendStatus:
        return cls(
            backend_name=str(data["backend_name"]),
            backend_version=str(data.get("backend_version", "")),
            operational=bool(data["operational"]),
            pending_jobs=int(data["pending_jobs"]),
            status_msg=str(data.get("status_msg", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RemoteBackend(BackendV2):  # type: ignore[misc]
    """A backend offered by a qruntime server.

    ``runner``, when given, is called as ``runner(circuits, **options)`` by :meth:`run`
    and returns the job; without one, circuits are submitted through a program instead.
    A backend from `from_summary` (what ``service.backends()`` gives) fetches its
    configuration and properties when first needed: its target, its documents.

    Usage::

        backend = RemoteBackend(configuration, properties)
        isa_circuit = transpile(circuit, backend)
    """

    #: The service this backend came from (``service.backend(...)`` sets it).
    service: RuntimeService | None = None
    # Set by BackendV2; a backend made from its list entry learns them on first use.
    online_date: Any
    backend_version: str | None

    def __init__(
        self,
        configuration: dict[str, Any],
        properties: dict[str, Any] | None,
        *,
        runner: Callable[..., Any] | None = None,
    ) -> None:
        self._start(configuration, runner=runner)
        self._keep(configuration, properties)

    @classmethod
    def from_summary(cls, summary: dict[str, Any], loader: Documents) -> RemoteBackend:
        """A backend known by its ``GET /backends`` entry (name, num_qubits, simulator,
        max_shots, ...); ``loader()`` returns its configuration and properties on first use.
        """
        backend = cls.__new__(cls)
        backend._start({"backend_name": summary["name"], **summary})
        backend._summary = dict(summary)
        backend._loader = loader
        return backend

    def _start(self, facts: dict[str, Any], *, runner: Callable[..., Any] | None = None) -> None:
        super().__init__(
            name=facts["backend_name"],
            description=facts.get("description") or None,
            online_date=facts.get("online_date"),
            backend_version=facts.get("backend_version", "1.0.0"),
        )
        self._summary: dict[str, Any] = {}
        self._loader: Documents | None = None
        self._target: Target | None = None
        self._runner = runner
        self.options.set_validator("shots", (1, int(facts.get("max_shots", 100_000))))

    def _keep(self, configuration: dict[str, Any], properties: dict[str, Any] | None) -> None:
        # Kept as copies: the documents are returned to callers, who may edit them.
        self._configuration = copy.deepcopy(configuration)
        self._properties = copy.deepcopy(properties)
        self._target = target_from_ibm_json(configuration, properties)
        self.online_date = configuration.get("online_date", self.online_date)
        self.backend_version = configuration.get("backend_version", self.backend_version)

    def _documents(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if self._target is None:
            assert self._loader is not None
            self._keep(*self._loader())
        return self._configuration, self._properties

    @property
    def target(self) -> Target:
        self._documents()
        assert self._target is not None
        return self._target

    @property
    def num_qubits(self) -> int:
        if self._target is None and "num_qubits" in self._summary:
            return int(self._summary["num_qubits"])
        return int(self.target.num_qubits)

    @property
    def max_circuits(self) -> int | None:
        if self._target is None and "max_experiments" in self._summary:
            value = self._summary["max_experiments"]
        else:
            value = self._documents()[0].get("max_experiments")
        return None if value is None else int(value)

    @property
    def simulator(self) -> bool:
        """True for a simulator; False for a device-like backend."""
        if self._target is None and "simulator" in self._summary:
            return bool(self._summary["simulator"])
        return bool(self._documents()[0].get("simulator", False))

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, seed_simulator=None)

    def configuration(self) -> dict[str, Any]:
        """The IBM-format configuration document this backend was built from (a copy)."""
        return copy.deepcopy(self._documents()[0])

    def properties(self) -> dict[str, Any] | None:
        """The IBM-format properties document (a copy), or None for an ideal simulator."""
        return copy.deepcopy(self._documents()[1])

    def status(self) -> BackendStatus:
        """Whether the backend is operational and how many jobs wait for it, asked now."""
        if self.service is None:
            raise QRuntimeError(
                f"Backend {self.name!r} was not read from a server: get it with "
                "service.backend(name) to ask for its status."
            )
        return BackendStatus.from_dict(self.service._api.get_json(f"/backends/{self.name}/status"))

    def __repr__(self) -> str:
        kind = "simulator" if self.simulator else "device-like"
        return f"<RemoteBackend {self.name!r} {self.num_qubits} qubits, {kind}>"

    def run(self, run_input: Any, **options: Any) -> Any:
        """Submit circuits through the runner the service plugged in."""
        if self._runner is None:
            raise QRuntimeError(
                f"Backend {self.name!r} cannot run circuits directly: submit circuits with "
                "service.run('circuit-runner', ...) or SamplerV2"
            )
        return self._runner(run_input, **options)
