"""IBM device snapshots that qiskit-ibm-runtime ships, found by their IBM names.

qiskit-ibm-runtime keeps a configuration and a properties JSON file for each IBM device
of its fake provider (``fake_provider/backends/torino/conf_torino.json``, ...). The
catalogue serves them under their own names (``fake_torino``), read from disk: importing
qiskit-ibm-runtime costs over a second and it is not a dependency. Each device's module
is read as text for its class name (``FakeTorino``), backend name and file names.

Usage::

    snapshot = find_snapshot("fake_torino")            # or "FakeTorino"
    snapshot_header(snapshot).num_qubits               # 133
    [s.name for s in select_snapshots(["Eagle"])]      # every 127-qubit Eagle
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qruntime.errors import InputValueError

__all__ = [
    "INSTALL_HINT",
    "Snapshot",
    "SnapshotHeader",
    "find_snapshot",
    "runtime_package_missing",
    "select_snapshots",
    "snapshot_header",
    "snapshots",
]

INSTALL_HINT = "pip install qiskit-ibm-runtime"

_CLASS = re.compile(r"^class (Fake\w+)\(", re.MULTILINE)
_FIELD = r"{}\s*=\s*[\"']([^\"']+)[\"']"


@dataclass(frozen=True)
class Snapshot:
    """One device of qiskit-ibm-runtime's fake provider and its two JSON files."""

    #: IBM's name for it, e.g. ``fake_torino``.
    name: str
    #: The fake provider's class, e.g. ``FakeTorino``.
    class_name: str
    configuration: Path
    properties: Path


@dataclass(frozen=True)
class SnapshotHeader:
    """What the catalogue lists about a snapshot before its calibration data is read."""

    num_qubits: int
    #: The processor family (``Eagle``, ``Heron``, ``Falcon``, ...), "" when not recorded.
    family: str
    revision: str

    @property
    def processor(self) -> str:
        if not self.family:
            return "processor not recorded"
        return f"{self.family} r{self.revision}" if self.revision else self.family


def runtime_package_missing() -> bool:
    """Whether qiskit-ibm-runtime is absent from this Python environment."""
    return _package_root() is None


def _package_root() -> Path | None:
    try:
        spec = importlib.util.find_spec("qiskit_ibm_runtime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def snapshots() -> dict[str, Snapshot]:
    """Every snapshot of the installed qiskit-ibm-runtime by IBM name, in name order.

    Raises ``InputValueError`` with the install command when the package is absent.
    """
    root = _package_root()
    if root is None:
        raise InputValueError(
            f"IBM device snapshots need the qiskit-ibm-runtime package: run `{INSTALL_HINT}`"
        )
    return _scan(root / "fake_provider" / "backends")


@functools.cache
def _scan(folder: Path) -> dict[str, Snapshot]:
    found: dict[str, Snapshot] = {}
    for module in sorted(folder.glob("*/fake_*.py")):
        source = module.read_text(encoding="utf-8")
        names = _CLASS.findall(source)
        fields = {
            key: re.search(_FIELD.format(key), source)
            for key in ("conf_filename", "props_filename", "backend_name")
        }
        if len(names) != 1 or not all(fields.values()):
            continue  # not a device with configuration and properties files
        conf, props, name = (match.group(1) if match else "" for match in fields.values())
        if (module.parent / conf).is_file() and (module.parent / props).is_file():
            found[name] = Snapshot(name, names[0], module.parent / conf, module.parent / props)
    return dict(sorted(found.items()))


def find_snapshot(name: str) -> Snapshot:
    """The snapshot of IBM name ``name`` (``fake_torino``) or class ``name`` (``FakeTorino``)."""
    known = snapshots()
    if name in known:
        return known[name]
    for snapshot in known.values():
        if snapshot.class_name == name:
            return snapshot
    raise InputValueError(
        f"{name!r}: qiskit-ibm-runtime ships no such device snapshot "
        f"(e.g. 'fake_torino' or 'FakeTorino'; {len(known)} are installed)"
    )


@functools.cache
def snapshot_header(snapshot: Snapshot) -> SnapshotHeader:
    """Size and processor family, from the configuration file alone (read once)."""
    try:
        configuration = json.loads(snapshot.configuration.read_text(encoding="utf-8"))
        num_qubits = int(configuration["n_qubits"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputValueError(
            f"{str(snapshot.configuration)!r} is not an IBM backend configuration: {exc}"
        ) from None
    processor = configuration.get("processor_type") or {}
    return SnapshotHeader(
        num_qubits=num_qubits,
        family=str(processor.get("family") or ""),
        revision=str(processor.get("revision") or ""),
    )


def select_snapshots(selection: str | Sequence[str]) -> list[Snapshot]:
    """The snapshots a ``[catalogue] fake_provider`` value names, each once, in order.

    ``"all"`` is every snapshot; otherwise each item is an IBM name or a shell-style
    pattern of names (``fake_torino``, ``fake_k*``), a class name (``FakeTorino``), or a
    processor family (``Heron``, ``Eagle``, ``Falcon``, any case). An item that matches
    nothing raises ``InputValueError``.
    """
    known = snapshots()
    items = [selection] if isinstance(selection, str) else list(selection)
    chosen: dict[str, Snapshot] = {}
    for item in items:
        if item == "all":
            matched = list(known.values())
        elif item.startswith("fake_") or any(c in item for c in "*?["):
            matched = [s for s in known.values() if fnmatch.fnmatchcase(s.name, item)]
        elif item.startswith("Fake"):
            matched = [s for s in known.values() if s.class_name == item]
        else:
            family = item.lower()
            matched = [s for s in known.values() if snapshot_header(s).family.lower() == family]
        if not matched:
            families = sorted({snapshot_header(s).family for s in known.values()} - {""})
            raise InputValueError(
                f"{item!r} matches no device snapshot of qiskit-ibm-runtime: give 'all', "
                f"names or patterns (fake_torino, fake_k*), or a family ({', '.join(families)})"
            )
        chosen.update((s.name, s) for s in matched)
    return list(chosen.values())
