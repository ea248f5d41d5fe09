"""Generated snapshots of device-like backends, in IBM's JSON shapes.

The values are drawn from ranges typical of IBM's Falcon-era processors (2021-2023):
errors, coherence times, frequencies and durations. The generator is seeded with the
device's name, so a snapshot is the same on every machine and in every process: a job's
result does not depend on which worker ran it.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["BUILTIN_DEVICES", "DeviceLayout", "generate_snapshot"]

_DT_NS = 2 / 9  # 0.222... ns, the drive sample time of IBM's Falcon devices
_SX_NS = 160 * _DT_NS  # 35.56 ns
_GRANULE_NS = 16 * _DT_NS  # pulses are aligned to 16 samples
_DATE = "2024-01-01T00:00:00+00:00"
_ONLINE_DATE = "2021-06-01T00:00:00+00:00"


@dataclass(frozen=True)
class DeviceLayout:
    """What is fixed about a generated device: its qubits, couplings and processor family."""

    num_qubits: int
    edges: tuple[tuple[int, int], ...]
    processor_type: tuple[tuple[str, str], ...]
    description: str


# Falcon r5 heavy-hex layout: 27 qubits, 28 couplings.
_HEAVY_HEX_27 = (
    (0, 1), (1, 2), (1, 4), (2, 3), (3, 5), (4, 7), (5, 8), (6, 7), (7, 10), (8, 9),
    (8, 11), (10, 12), (11, 14), (12, 13), (12, 15), (13, 14), (14, 16), (15, 18),
    (16, 19), (17, 18), (18, 21), (19, 20), (19, 22), (21, 23), (22, 25), (23, 24),
    (24, 25), (25, 26),
)  # fmt: skip

BUILTIN_DEVICES: dict[str, DeviceLayout] = {
    # T-shaped 5-qubit layout of IBM's Falcon r4T chips (Belem, Quito, Lima).
    "fake_5q": DeviceLayout(
        num_qubits=5,
        edges=((0, 1), (1, 2), (1, 3), (3, 4)),
        processor_type=(("family", "Falcon"), ("revision", "4")),
        description="5-qubit device-like backend (T-shaped Falcon layout, generated noise)",
    ),
    # 27-qubit heavy-hex layout of IBM's Falcon r5 chips.
    "fake_27q": DeviceLayout(
        num_qubits=27,
        edges=_HEAVY_HEX_27,
        processor_type=(("family", "Falcon"), ("revision", "5.11")),
        description="27-qubit device-like backend (heavy-hex Falcon layout, generated noise)",
    ),
}


def _granular(rng: random.Random, low_ns: float, high_ns: float) -> float:
    """A duration in [low, high] ns that is a whole number of 16-sample granules."""
    return rng.randint(int(low_ns / _GRANULE_NS) + 1, int(high_ns / _GRANULE_NS)) * _GRANULE_NS


def _nduv(name: str, unit: str, value: float) -> dict[str, Any]:
    return {"date": _DATE, "name": name, "unit": unit, "value": value}


def _gate(name: str, qubits: list[int], error: float, length_ns: float) -> dict[str, Any]:
    return {
        "qubits": qubits,
        "gate": name,
        "parameters": [_nduv("gate_error", "", error), _nduv("gate_length", "ns", length_ns)],
        "name": name + "_".join(str(q) for q in qubits),
    }


def generate_snapshot(name: str, layout: DeviceLayout) -> tuple[dict[str, Any], dict[str, Any]]:
    """IBM-format ``(configuration, properties)`` for a device; the same for the same name.

    Only the fields ``target_from_ibm_json`` reads and a few identifying ones are in the
    configuration: the catalogue derives the full document from the resulting ``Target``.
    """
    rng = random.Random(zlib.crc32(name.encode()))
    n = layout.num_qubits
    readout_ns = _granular(rng, 700, 5000)  # one readout pulse length per device, as on IBM's

    qubits: list[list[dict[str, Any]]] = []
    for _ in range(n):
        t1 = rng.uniform(60, 180)
        t2 = rng.uniform(40, min(160, 2 * t1))
        # Relaxation during readout makes a prepared 1 read as 0 more often than the reverse.
        p1_given_0 = rng.uniform(0.004, 0.02)
        p0_given_1 = rng.uniform(0.012, 0.05)
        qubits.append(
            [
                _nduv("T1", "us", t1),
                _nduv("T2", "us", t2),
                _nduv("frequency", "GHz", rng.uniform(4.8, 5.3)),
                _nduv("anharmonicity", "GHz", rng.uniform(-0.345, -0.33)),
                _nduv("readout_error", "", (p1_given_0 + p0_given_1) / 2),
                _nduv("prob_meas0_prep1", "", p0_given_1),
                _nduv("prob_meas1_prep0", "", p1_given_0),
                _nduv("readout_length", "ns", readout_ns),
            ]
        )

    gates: list[dict[str, Any]] = []
    for q in range(n):
        error = rng.uniform(1e-4, 6e-4)
        gates.append(_gate("id", [q], error, _SX_NS))
        gates.append(_gate("rz", [q], 0.0, 0.0))  # virtual: a frame change, no pulse
        gates.append(_gate("sx", [q], error, _SX_NS))
        gates.append(_gate("x", [q], error, 2 * _SX_NS))
        gates.append(
            {
                "qubits": [q],
                "gate": "reset",
                "parameters": [_nduv("gate_length", "ns", readout_ns + 1000 * _DT_NS)],
                "name": f"reset{q}",
            }
        )
    for a, b in layout.edges:
        error = rng.uniform(5e-3, 2e-2)
        length = _granular(rng, 250, 560)
        # The native cross-resonance pulse runs one way; the other way adds single-qubit
        # gates around it, so it is a little longer and a little worse.
        gates.append(_gate("cx", [a, b], error, length))
        gates.append(_gate("cx", [b, a], error * 1.04, length + 2 * _SX_NS))

    coupling = [[a, b] for a, b in layout.edges] + [[b, a] for a, b in layout.edges]
    configuration: dict[str, Any] = {
        "backend_name": name,
        "backend_version": "1.0.0",
        "n_qubits": n,
        "basis_gates": ["cx", "id", "rz", "sx", "x"],
        "gates": [
            {"name": "cx", "parameters": [], "qasm_def": "", "coupling_map": sorted(coupling)},
        ],
        "supported_instructions": [
            *("cx", "id", "rz", "sx", "x", "measure", "reset", "delay"),
            *("if_else", "for_loop", "while_loop", "switch_case"),
        ],
        "dt": _DT_NS,
        "dtm": _DT_NS,
        "timing_constraints": {
            "granularity": 16,
            "min_length": 64,
            "pulse_alignment": 16,
            "acquire_alignment": 16,
        },
        "online_date": _ONLINE_DATE,
        "processor_type": dict(layout.processor_type),
        "description": layout.description,
    }
    properties: dict[str, Any] = {
        "backend_name": name,
        "backend_version": "1.0.0",
        "last_update_date": _DATE,
        "qubits": qubits,
        "gates": gates,
        "general": [],
    }
    return configuration, properties
