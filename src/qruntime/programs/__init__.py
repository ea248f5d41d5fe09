"""The built-in programs that ship with the server, listed like uploaded ones.

Each module in this package defines ``main(backend, user_messenger, **kwargs)``
and ``METADATA`` (``name``, ``description``, ``max_execution_time``, ``spec``).
Modules are imported only when asked for, so importing this package is cheap.
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

__all__ = ["BUILTIN_PROGRAMS", "load_builtin_metadata", "load_builtin_module"]

# Program id -> module name in this package.
BUILTIN_PROGRAMS: dict[str, str] = {
    "hello-world": "hello_world",
    "circuit-runner": "circuit_runner",
    "sampler": "sampler",
    "estimator": "estimator",
    "executor": "executor",
    "noise-learner": "noise_learner",
}


def load_builtin_module(program_id: str) -> ModuleType:
    """The module of a built-in program (it has ``main`` and ``METADATA``)."""
    try:
        module_name = BUILTIN_PROGRAMS[program_id]
    except KeyError:
        raise KeyError(f"{program_id!r} is not a built-in program") from None
    return importlib.import_module(f"{__name__}.{module_name}")


def load_builtin_metadata() -> list[dict[str, Any]]:
    """The metadata of every built-in program, each with its ``id`` added.

    Copies, so a caller may change them freely.
    """
    programs = []
    for program_id in BUILTIN_PROGRAMS:
        metadata = copy.deepcopy(load_builtin_module(program_id).METADATA)
        programs.append({"id": program_id, **metadata})
    return programs
