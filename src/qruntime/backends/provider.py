"""A lab's own Qiskit ``BackendV2`` in the catalogue: ``kind = "provider"``.

The configuration names a factory, ``factory = "package.module:callable"``, that returns
a ``BackendV2``: another vendor's plug-in, the lab's hardware driver, an
``AerSimulator.from_backend(...)`` with a noise model of its own. Each process calls it
once, on first use (the server to describe the backend, each worker to run on it);
jobs run through the backend's own ``run``.

Usage::

    backend = load_factory_backend("lab_sim", "lab_backends:make_backend")
    runner = ProviderRunner(catalogue.get("lab_sim"))   # what programs receive
    runner.run(transpile(circuit, runner), shots=100).result()
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from qruntime.errors import InputValueError

if TYPE_CHECKING:
    from qruntime.backends.catalogue import BackendEntry

__all__ = ["FACTORY", "ProviderRunner", "clear_provider_cache", "load_factory_backend"]

#: ``package.module:callable`` (the callable may be an attribute path: ``module:Class.make``).
FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

_lock = threading.Lock()
_backends: dict[tuple[str, str], BackendV2] = {}


def load_factory_backend(name: str, factory: str) -> BackendV2:
    """The ``BackendV2`` that ``factory`` returns for backend ``name``; once per process.

    Raises ``InputValueError`` in one line naming the backend, the factory and what went
    wrong: the module does not import, the callable is missing, it raised, or it
    returned something that is not a ``BackendV2``. A failure is not remembered: the
    next call tries again.
    """
    key = (name, factory)
    with _lock:
        backend = _backends.get(key)
        if backend is not None:
            return backend
        backend = _call_factory(name, factory)
        _backends[key] = backend
        return backend


def _call_factory(name: str, factory: str) -> BackendV2:
    def fail(why: str) -> InputValueError:
        reason = f"factory {factory!r} {why}"
        return InputValueError(f"backend {name!r}: {reason}", backend=name, reason=reason)

    if not FACTORY.match(factory):
        raise fail("is not 'package.module:callable'")
    module_name, _, attribute = factory.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except Exception as exc:  # any import-time error of the lab's module
        raise fail(f"cannot be loaded: {_one_line(exc)}") from None
    if not callable(target):
        raise fail("is not callable")
    try:
        backend = target()
    except Exception as exc:  # the lab's code: whatever it raises is reported, in one line
        raise fail(f"failed: {_one_line(exc)}") from None
    if not isinstance(backend, BackendV2):
        raise fail(f"returned a {type(backend).__name__}, not a Qiskit BackendV2")
    return backend


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def clear_provider_cache() -> None:
    """Forget every backend the factories made in this process (tests)."""
    with _lock:
        _backends.clear()


class ProviderRunner(BackendV2):  # type: ignore[misc]
    """A provider backend under its catalogue name, as programs receive it.

    Its target and options are the factory backend's; ``run`` hands circuits to the
    factory backend's ``run``. The factory is called on first use, not when the runner
    is made (the worker zygote makes runners before it forks its workers).
    ``parameter_binds`` (Aer's run option, which the built-in primitives use) is
    applied here, binding each circuit once per value, unless the backend is an
    ``AerSimulator`` that takes it itself.
    """

    def __init__(self, entry: BackendEntry) -> None:
        super().__init__(
            name=entry.name, description=entry.spec.description or None, backend_version="1.0.0"
        )
        self._entry = entry

    @property
    def backend(self) -> BackendV2:
        """The factory's backend (made on first use)."""
        return self._entry.backend

    @property
    def target(self) -> Target:
        return self.backend.target

    @property
    def max_circuits(self) -> int | None:
        return self.backend.max_circuits  # type: ignore[no-any-return]

    @property
    def options(self) -> Options:
        return self.backend.options

    def set_options(self, **fields: Any) -> None:
        self.backend.set_options(**fields)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024)

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> Any:
        """The factory backend's job for ``run_input`` (circuits are passed as a list)."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        binds = options.pop("parameter_binds", None)
        if binds is not None:
            if _takes_parameter_binds(self.backend):
                options["parameter_binds"] = binds
            else:
                circuits = _bind_each(circuits, binds)
        return self.backend.run(circuits, **options)


def _takes_parameter_binds(backend: BackendV2) -> bool:
    from qiskit_aer import AerSimulator

    return isinstance(backend, AerSimulator)


def _bind_each(
    circuits: list[QuantumCircuit], binds: Sequence[Mapping[Any, Sequence[float]]]
) -> list[QuantumCircuit]:
    """Aer's ``parameter_binds`` done by hand: circuit ``i`` once per value in ``binds[i]``.

    The order is Aer's: every binding of the first circuit, then of the next.
    """
    if len(binds) != len(circuits):
        raise InputValueError(
            f"parameter_binds must be a list of {len(circuits)} dicts, one per circuit"
        )
    bound: list[QuantumCircuit] = []
    for circuit, bind in zip(circuits, binds, strict=True):
        if not bind:
            bound.append(circuit)
            continue
        columns = {parameter: list(values) for parameter, values in bind.items()}
        count = len(next(iter(columns.values())))
        for row in range(count):
            values = {parameter: column[row] for parameter, column in columns.items()}
            bound.append(circuit.assign_parameters(values, inplace=False))
    return bound
