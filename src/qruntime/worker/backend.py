"""The backend object a program's ``main`` receives, built from the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qruntime.backends import Catalogue, DeviceRunner, build_simulator, load_catalogue
from qruntime.backends.provider import ProviderRunner

__all__ = ["get_backend", "get_catalogue", "install_catalogue", "preload_backends"]

# Per process: the zygote fills these before forking, so children inherit them warm.
_catalogues: dict[Path | None, Catalogue] = {}
_runners: dict[tuple[Path | None, str], DeviceRunner | ProviderRunner] = {}


def get_catalogue(path: Path | None = None) -> Catalogue:
    """The catalogue at ``path`` (the built-in one for None), read once per process."""
    catalogue = _catalogues.get(path)
    if catalogue is None:
        catalogue = _catalogues[path] = load_catalogue(path)
    return catalogue


def install_catalogue(path: Path, tables: dict[str, Any]) -> None:
    """Make ``tables`` (`read_catalogue_tables` of ``path``) this process's catalogue for ``path``.

    The zygote is given the tables, not the file: it never reads the server's settings.
    """
    from qruntime.backends.config_file import specs_from_tables

    _catalogues[path] = Catalogue.from_specs(specs_from_tables(path, tables))


def get_backend(name: str, *, catalogue_path: Path | None = None) -> Any:
    """The runnable Qiskit ``BackendV2`` for backend ``name``.

    An ideal simulator is the ``AerSimulator`` itself; a device-like backend is a
    `DeviceRunner`, which has the device's target and simulates only the qubits a
    circuit touches, with their noise (the full 27-qubit noise model costs ~0.5 s per
    run); a provider backend is a `ProviderRunner`, whose factory runs on first use.
    The same object is returned on every call in a process. Raises
    ``BackendNotFoundError`` for a name that is not in the catalogue.
    """
    entry = get_catalogue(catalogue_path).get(name)
    if entry.spec.kind == "aer":
        return build_simulator(entry)
    runner = _runners.get((catalogue_path, name))
    if runner is None:
        made = DeviceRunner(entry) if entry.spec.kind == "device" else ProviderRunner(entry)
        runner = _runners[(catalogue_path, name)] = made
    return runner


def preload_backends(*, catalogue_path: Path | None = None) -> list[str]:
    """Build every simulator of the catalogue now; returns their names."""
    catalogue = get_catalogue(catalogue_path)
    for entry in catalogue:
        # Device-like backends run through DeviceRunner, which builds small noise models
        # per qubit set on demand: the full device simulator (0.6 s for 27 qubits) is not
        # needed, so it is not built. A provider's factory is not called here either: the
        # zygote, which preloads, never runs a lab's code.
        get_backend(entry.name, catalogue_path=catalogue_path)
    return catalogue.names()
