"""The backend catalogue: Aer simulators and noisy device-like backends.

``load_catalogue()`` gives the backends a server offers (the built-in ones, or those a
TOML file names: :mod:`qruntime.backends.config_file`); each entry yields a Qiskit
``Target``, IBM-format JSON documents for the REST API, and (in workers)
``build_simulator(entry)``, the runnable Aer simulator.
"""

from __future__ import annotations

from qruntime.backends.catalogue import (
    BackendEntry,
    BackendSpec,
    Catalogue,
    builtin_specs,
)
from qruntime.backends.compact import (
    CompletedJob,
    DeviceRunner,
    clear_compact_cache,
    compact_circuit,
    compact_simulator,
    compact_target,
    run_circuits,
    run_compact,
)
from qruntime.backends.config_file import load_catalogue
from qruntime.backends.devices import BUILTIN_DEVICES, generate_snapshot
from qruntime.backends.ibm_format import (
    ReadoutProperties,
    target_from_ibm_json,
    target_to_configuration,
    target_to_properties,
)
from qruntime.backends.simulator import DeviceBackend, build_simulator, clear_simulator_cache

__all__ = [
    "BUILTIN_DEVICES",
    "BackendEntry",
    "BackendSpec",
    "Catalogue",
    "CompletedJob",
    "DeviceBackend",
    "DeviceRunner",
    "ReadoutProperties",
    "build_simulator",
    "builtin_specs",
    "clear_compact_cache",
    "clear_simulator_cache",
    "compact_circuit",
    "compact_simulator",
    "compact_target",
    "generate_snapshot",
    "load_catalogue",
    "run_circuits",
    "run_compact",
    "target_from_ibm_json",
    "target_to_configuration",
    "target_to_properties",
]
