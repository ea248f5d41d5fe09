"""``SamplerV2`` and ``EstimatorV2``: Qiskit's V2 primitives, run by a qruntime server.

They submit the built-in ``sampler`` and ``estimator`` programs with the inputs
``{"pubs", "options", "version": 2}`` (which any other client may send too) and
return the :class:`~qruntime.client._job.RuntimeJob`, whose ``result()`` is a
Qiskit ``PrimitiveResult``. PUBs are coerced with Qiskit's rules and checked by
the same code the server runs, so bad input fails here, before a request.

Usage::

    with Session(service=service, backend="fake_27q") as session:
        sampler = SamplerV2(mode=session, options={"default_shots": 4000})
        counts = sampler.run([bell]).result()[0].data.meas.get_counts()
        estimator = EstimatorV2(mode=session, options={"resilience_level": 2})
        evs = estimator.run([(ansatz, hamiltonian, params)]).result()[0].data.evs
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.primitives.containers import EstimatorPub, PrimitiveResult, SamplerPub
from qiskit.providers import BackendV2

from qruntime.client._decoders import ResultDecoder
from qruntime.client._job import RuntimeJob
from qruntime.client._options import (
    EstimatorOptions,
    Options,
    PrimitiveKind,
    SamplerOptions,
    coerce_options,
    wire_options,
)
from qruntime.errors import InputValueError, QRuntimeError
from qruntime.primitives.options import PrimitiveOptions, resolve_options
from qruntime.primitives.pubs import check_width, coerce_estimator_pubs, coerce_sampler_pubs

if TYPE_CHECKING:
    from qruntime.client._backend import RemoteBackend
    from qruntime.client._service import RuntimeService
    from qruntime.client._session import Session

__all__ = ["Estimator", "EstimatorV2", "Sampler", "SamplerV2"]

OptionsLike = SamplerOptions | EstimatorOptions | Options | Mapping[str, Any] | None


class PrimitiveResultDecoder(ResultDecoder):
    """Decodes a primitive job's result, which must be a ``PrimitiveResult``."""

    @classmethod
    def decode(cls, data: str) -> PrimitiveResult[Any]:
        decoded = super().decode(data)
        if not isinstance(decoded, PrimitiveResult):
            raise QRuntimeError(
                f"the server returned {type(decoded).__name__}, not a PrimitiveResult"
            )
        return decoded


class _Primitive:
    """What the sampler and the estimator share: where they run and how they submit."""

    _kind: ClassVar[PrimitiveKind]

    def __init__(
        self,
        mode: str | BackendV2 | Session | None = None,
        options: OptionsLike = None,
        *,
        session: Session | None = None,
        backend: str | BackendV2 | None = None,
        service: RuntimeService | None = None,
    ) -> None:
        given = [m for m in (mode, session, backend) if m is not None]
        if not given:
            from qruntime.client._session import current_session

            active = current_session()
            if active is not None:  # created inside ``with Session(...)``: run in it
                given = [active]
        if len(given) != 1:
            raise InputValueError(
                f"{type(self).__name__} needs exactly one of mode=, session= or backend= "
                f"(a backend name or object, a Session or a Batch); got {len(given)}"
            )
        target = given[0]
        self._session: Session | None = None
        self._backend: str | BackendV2 | None = None
        if isinstance(target, str | BackendV2):
            self._backend = target
            found = service or getattr(target, "service", None)
            if found is None:
                from qruntime.client._service import RuntimeService

                found = RuntimeService()  # from QRUNTIME_URL / the saved account
            self._service: RuntimeService = found
        elif _is_session(target):
            self._session = target
            self._service = target.service
        else:
            raise InputValueError(
                "mode must be a backend name, a backend object, a Session or a Batch, "
                f"not {type(target).__name__}"
            )
        self._options: SamplerOptions | EstimatorOptions = coerce_options(self._kind, options)

    @property
    def mode(self) -> str | BackendV2 | Session:
        """The session, batch or backend the jobs run in."""
        mode = self._session if self._session is not None else self._backend
        assert mode is not None
        return mode

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def service(self) -> RuntimeService:
        return self._service

    def backend(self) -> RemoteBackend:
        """The backend the jobs run on."""
        return self._service.backend(self.backend_name)

    @property
    def backend_name(self) -> str:
        if self._session is not None:
            return self._session.backend()
        if isinstance(self._backend, str):
            return self._backend
        name: str = getattr(self._backend, "name", "")
        return name

    def _resolved_options(self) -> tuple[dict[str, Any], PrimitiveOptions]:
        """The options as sent, and checked again: they may have been edited since."""
        wire = wire_options(self._options)
        return wire, resolve_options(self._kind, wire)

    def _check_width(self, pubs: list[SamplerPub] | list[EstimatorPub]) -> None:
        # Only a backend object in hand is checked here; the server checks every job.
        num_qubits = getattr(self._backend, "num_qubits", None)
        if isinstance(num_qubits, int):
            check_width(pubs, num_qubits=num_qubits)

    def _submit(
        self, pubs: list[SamplerPub] | list[EstimatorPub], wire: dict[str, Any]
    ) -> RuntimeJob:
        options = self._options
        inputs = {"pubs": pubs, "options": wire, "version": 2}
        environment = options.environment
        run_options = {
            key: value
            for key, value in (
                ("log_level", environment.log_level),
                ("job_tags", environment.job_tags),
                ("private", environment.private),
                ("max_execution_time", options.max_execution_time),
            )
            if value is not None
        }
        decoders = (ResultDecoder, PrimitiveResultDecoder)
        if self._session is not None:
            return self._session.run(
                self._kind,
                inputs,
                options=run_options,
                callback=environment.callback,
                result_decoder=decoders,
            )
        run_options["backend"] = self.backend_name
        return self._service.run(
            self._kind,
            inputs,
            options=run_options,
            callback=environment.callback,
            result_decoder=decoders,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mode={self.mode!r}>"


class SamplerV2(_Primitive, BaseSamplerV2):  # type: ignore[misc]  # qiskit is untyped
    """Qiskit's V2 Sampler, run by a qruntime server.

    ``mode`` is a backend (name or object), a ``Session`` or a ``Batch``; the older
    ``session=`` and ``backend=`` keywords work too. ``options`` is a
    :class:`SamplerOptions`, a dict of the same names, or an older ``Options``::

        sampler = SamplerV2(mode="aer_simulator", service=service, options={"default_shots": 100})
        result = sampler.run([bell, (ansatz, values)]).result()
    """

    _kind = "sampler"

    @property
    def options(self) -> SamplerOptions:
        """The options of later jobs; edit them in place or assign new ones."""
        assert isinstance(self._options, SamplerOptions)
        return self._options

    @options.setter
    def options(self, value: OptionsLike) -> None:
        self._options = coerce_options(self._kind, value)

    def run(self, pubs: Iterable[Any] | QuantumCircuit, *, shots: int | None = None) -> RuntimeJob:
        """Sample each PUB (a circuit, or ``(circuit, parameter_values, shots)``).

        ``shots`` is for the PUBs that give none (else ``options.default_shots``).
        Raises ``InputValueError`` before submitting when a PUB or an option is bad.
        """
        wire, resolved = self._resolved_options()
        if shots is not None:
            _check_positive("shots", shots, integer=True)
        default = shots if shots is not None else resolved.default_shots
        coerced = coerce_sampler_pubs(_pub_list(pubs), default_shots=int(default or 1))
        self._check_width(coerced)
        return self._submit(coerced, wire)


class EstimatorV2(_Primitive, BaseEstimatorV2):  # type: ignore[misc]  # qiskit is untyped
    """Qiskit's V2 Estimator, run by a qruntime server.

    Takes ``mode`` and ``options`` like :class:`SamplerV2`, with
    :class:`EstimatorOptions`::

        estimator = EstimatorV2(mode=session, options={"resilience_level": 2})
        evs = estimator.run([(ansatz, hamiltonian, values)]).result()[0].data.evs
    """

    _kind = "estimator"

    @property
    def options(self) -> EstimatorOptions:
        """The options of later jobs; edit them in place or assign new ones."""
        assert isinstance(self._options, EstimatorOptions)
        return self._options

    @options.setter
    def options(self, value: OptionsLike) -> None:
        self._options = coerce_options(self._kind, value)

    def run(
        self, pubs: Iterable[Any] | QuantumCircuit, *, precision: float | None = None
    ) -> RuntimeJob:
        """Estimate each PUB: ``(circuit, observables, parameter_values, precision)``.

        ``precision`` is for the PUBs that give none (else ``options.default_precision``).
        Raises ``InputValueError`` before submitting when a PUB or an option is bad.
        """
        wire, resolved = self._resolved_options()
        if precision is not None:
            _check_positive("precision", precision, integer=False)
        default = precision if precision is not None else resolved.default_precision
        coerced = coerce_estimator_pubs(_pub_list(pubs), default_precision=float(default))
        self._check_width(coerced)
        return self._submit(coerced, wire)


#: The names of the older API.
Sampler = SamplerV2
Estimator = EstimatorV2


def _is_session(obj: Any) -> TypeGuard[Session]:
    """A Session or Batch, or anything shaped like one (duck-typed on purpose)."""
    run, backend = getattr(obj, "run", None), getattr(obj, "backend", None)
    return hasattr(obj, "service") and callable(run) and callable(backend)


def _pub_list(pubs: Iterable[Any] | QuantumCircuit) -> list[Any]:
    if isinstance(pubs, QuantumCircuit | SamplerPub | EstimatorPub):
        return [pubs]  # one bare PUB: accepted as a list of one
    if isinstance(pubs, str | bytes | Mapping) or not isinstance(pubs, Iterable):
        raise InputValueError(f"pubs must be a list of PUBs, not {type(pubs).__name__}")
    return list(pubs)


def _check_positive(name: str, value: Any, *, integer: bool) -> None:
    kind = Integral if integer else Real
    if isinstance(value, bool) or not isinstance(value, kind) or not float(value) > 0:
        wanted = "an integer > 0" if integer else "a number > 0"
        raise InputValueError(f"{name} must be {wanted}, not {value!r}")
