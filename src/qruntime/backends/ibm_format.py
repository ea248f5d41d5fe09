"""Convert between a Qiskit ``Target`` and IBM's backend JSON documents.

IBM describes a backend with a ``configuration`` document (qubits, gates, coupling map,
limits) and a ``properties`` document (calibration data: T1, T2, frequencies, gate and
readout errors, durations). The server sends these shapes so that stock
qiskit-ibm-runtime clients can read them; our own client turns them back into a
``Target`` with :func:`target_from_ibm_json`, without importing qiskit-ibm-runtime.

Units follow IBM: times in the JSON are in ns (``dt``, gate and readout lengths) or us
(T1, T2), frequencies in GHz; a ``Target`` holds seconds and Hz.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from qiskit.circuit import Gate, Instruction, Parameter, QuantumCircuit
from qiskit.circuit.controlflow import ForLoopOp, IfElseOp, SwitchCaseOp, WhileLoopOp
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import QubitProperties
from qiskit.transpiler import InstructionProperties, Target

__all__ = [
    "CONTROL_FLOW_OPS",
    "NON_UNITARY_OPS",
    "ReadoutProperties",
    "target_from_ibm_json",
    "target_to_configuration",
    "target_to_properties",
]

NON_UNITARY_OPS = frozenset({"measure", "reset", "delay"})
CONTROL_FLOW_OPS: dict[str, type[Instruction]] = {
    "if_else": IfElseOp,
    "while_loop": WhileLoopOp,
    "for_loop": ForLoopOp,
    "switch_case": SwitchCaseOp,
}
_TIMING_KEYS = ("granularity", "min_length", "pulse_alignment", "acquire_alignment")


class ReadoutProperties(InstructionProperties):  # type: ignore[misc]
    """Measurement properties that keep IBM's asymmetric readout errors.

    ``error`` is the mean readout error; ``prob_meas1_prep0`` and ``prob_meas0_prep1`` are
    the two flip probabilities. Aer's ``NoiseModel.from_backend`` reads these attributes
    when present, so the noisy simulator reproduces the asymmetry.
    """

    def __new__(
        cls,
        duration: float | None = None,
        error: float | None = None,
        prob_meas1_prep0: float | None = None,
        prob_meas0_prep1: float | None = None,
    ) -> ReadoutProperties:
        return super().__new__(cls, duration=duration, error=error)  # type: ignore[no-any-return]

    def __init__(
        self,
        duration: float | None = None,
        error: float | None = None,
        prob_meas1_prep0: float | None = None,
        prob_meas0_prep1: float | None = None,
    ) -> None:
        self.prob_meas1_prep0 = prob_meas1_prep0
        self.prob_meas0_prep1 = prob_meas0_prep1

    def __reduce__(self) -> tuple[Any, ...]:
        # The base class pickles only duration and error; keep the asymmetry through
        # copy.deepcopy and pickling (workers receive targets both ways).
        return (
            type(self),
            (self.duration, self.error, self.prob_meas1_prep0, self.prob_meas0_prep1),
        )


# --------------------------------------------------------------------------- JSON -> Target


def _nduv_map(items: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Name -> value in SI units for a list of IBM name/date/unit/value records."""
    scale = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    scale |= {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
    out: dict[str, float] = {}
    for item in items:
        unit = item.get("unit", "") or ""
        value = item.get("value")
        if value is None:
            continue
        out[str(item["name"])] = float(value) * scale.get(unit, 1.0)
    return out


def _instruction_for(
    name: str, gate_configs: Mapping[str, Mapping[str, Any]]
) -> Instruction | None:
    standard = get_standard_gate_name_mapping()
    if name in standard:
        return standard[name]
    config = gate_configs.get(name)
    if config is None:
        return None
    # A gate Qiskit does not know: an opaque gate of the right size, as IBM's converter does.
    coupling = config.get("coupling_map") or []
    params = [Parameter(p) for p in config.get("parameters", [])]
    return Gate(name=name, num_qubits=len(coupling[0]) if coupling else 0, params=params)


def target_from_ibm_json(
    configuration: Mapping[str, Any], properties: Mapping[str, Any] | None
) -> Target:
    """Build the ``Target`` an IBM configuration (and optional properties) describe.

    Follows the rules of IBM's own converter: the instructions are the basis gates plus
    the supported measure/reset/delay and control-flow operations; qubits and gates marked
    ``operational: 0`` are left out; measurement error and duration come from the qubit
    records. Gates Qiskit cannot name and that have no entry in ``gates`` are dropped.
    """
    num_qubits = int(configuration["n_qubits"])
    kwargs: dict[str, Any] = {"num_qubits": num_qubits}
    if configuration.get("dt") is not None:
        kwargs["dt"] = float(configuration["dt"]) * 1e-9
    for key, value in (configuration.get("timing_constraints") or {}).items():
        if key in _TIMING_KEYS:
            kwargs[key] = int(value)

    basis = set(configuration.get("basis_gates") or [])
    supported = set(configuration.get("supported_instructions") or NON_UNITARY_OPS)
    names = basis | (supported & NON_UNITARY_OPS) | (supported & set(CONTROL_FLOW_OPS))
    gate_configs = {g["name"]: g for g in configuration.get("gates") or []}

    qubit_records: dict[int, dict[str, float]] = {}
    gate_records: dict[str, dict[tuple[int, ...], dict[str, float]]] = {}
    if properties:
        for index, records in enumerate(properties.get("qubits") or []):
            qubit_records[index] = _nduv_map(records)
        for gate in properties.get("gates") or []:
            qargs = tuple(int(q) for q in gate["qubits"])
            gate_records.setdefault(gate["gate"], {})[qargs] = _nduv_map(gate["parameters"])
    faulty = {q for q, rec in qubit_records.items() if rec.get("operational", 1.0) == 0.0}
    if qubit_records:
        kwargs["qubit_properties"] = [
            QubitProperties(
                t1=qubit_records.get(q, {}).get("T1"),
                t2=qubit_records.get(q, {}).get("T2"),
                frequency=qubit_records.get(q, {}).get("frequency"),
            )
            for q in range(num_qubits)
        ]
    target = Target(**kwargs)

    for name in sorted(names):
        if name in CONTROL_FLOW_OPS:
            target.add_instruction(CONTROL_FLOW_OPS[name], name=name)
            continue
        instruction = _instruction_for(name, gate_configs)
        if instruction is None:
            continue
        props: dict[tuple[int, ...], InstructionProperties | None] | None = None
        coupling = gate_configs.get(name, {}).get("coupling_map")
        if coupling:
            props = {tuple(int(q) for q in qargs): None for qargs in coupling}
        for qargs, record in gate_records.get(name, {}).items():
            if faulty.intersection(qargs) or record.get("operational", 1.0) == 0.0:
                if props is not None:
                    props.pop(qargs, None)
                continue
            props = {} if props is None else props
            props[qargs] = InstructionProperties(
                duration=record.get("gate_length"), error=record.get("gate_error")
            )
        if name == "measure" and qubit_records:
            props = {}
            for q in range(num_qubits):
                if q in faulty:
                    continue
                rec = qubit_records.get(q, {})
                props[(q,)] = ReadoutProperties(
                    duration=rec.get("readout_length"),
                    error=rec.get("readout_error"),
                    prob_meas1_prep0=rec.get("prob_meas1_prep0"),
                    prob_meas0_prep1=rec.get("prob_meas0_prep1"),
                )
        if name in NON_UNITARY_OPS and props is None:
            props = {(q,): None for q in range(num_qubits) if q not in faulty}
        target.add_instruction(instruction, props, name=name)
    return target


# --------------------------------------------------------------------------- Target -> JSON


def _qasm_def(name: str, instruction: Instruction) -> str:
    """An OpenQASM 2 ``gate`` declaration for a standard gate, in terms of U and CX."""
    from qiskit import transpile  # deferred: only needed when a configuration is built

    params = [f"p{i}" for i in range(len(instruction.params))]
    qubits = [f"q{i}" for i in range(instruction.num_qubits)]
    head = f"gate {name}" + (f"({','.join(params)})" if params else "") + f" {','.join(qubits)}"
    if not isinstance(instruction, Gate):
        return head + " { }"
    gate = instruction.base_class(*[Parameter(p) for p in params]) if params else instruction
    circuit = QuantumCircuit(instruction.num_qubits)
    circuit.append(gate, range(instruction.num_qubits))
    body = transpile(circuit, basis_gates=["u", "cx"], optimization_level=0)
    lines = []
    for inst in body.data:
        args = ",".join(qubits[body.find_bit(q).index] for q in inst.qubits)
        if inst.operation.name == "u":
            angles = ",".join(str(p) for p in inst.operation.params)
            lines.append(f"U({angles}) {args};")
        else:
            lines.append(f"CX {args};")
    return head + " { " + " ".join(lines) + " }"


@functools.cache
def _standard_qasm_def(name: str) -> str:
    # Decomposing costs a transpile per gate: about 1 s for Aer's 40 gates, so once only.
    return _qasm_def(name, get_standard_gate_name_mapping()[name])


def _qargs_of(target: Target, name: str) -> list[tuple[int, ...]] | None:
    qargs = target.qargs_for_operation_name(name)
    return None if qargs is None else sorted(qargs)


def target_to_configuration(
    target: Target,
    *,
    backend_name: str,
    backend_version: str = "1.0.0",
    simulator: bool = False,
    max_shots: int = 100_000,
    max_experiments: int = 300,
    description: str = "",
    online_date: datetime | str = "2024-01-01T00:00:00+00:00",
    processor_type: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """IBM's ``configuration`` document for ``target`` (JSON-ready: plain types only).

    ``extra`` entries are added last (e.g. ``quantum_volume``) and may override any key.
    """
    standard = get_standard_gate_name_mapping()
    names = list(target.operation_names)
    control_flow = sorted(n for n in names if n in CONTROL_FLOW_OPS)
    non_unitary = sorted(n for n in names if n in NON_UNITARY_OPS)
    basis = sorted(n for n in names if n not in CONTROL_FLOW_OPS and n not in NON_UNITARY_OPS)

    gates: list[dict[str, Any]] = []
    for name in basis:
        instruction = target.operation_from_name(name)
        params = getattr(standard.get(name), "params", instruction.params)
        entry: dict[str, Any] = {
            "name": name,
            "parameters": [f"p{i}" for i in range(len(params))],
            "qasm_def": (
                _standard_qasm_def(name) if name in standard else _qasm_def(name, instruction)
            ),
        }
        qargs = _qargs_of(target, name)
        if qargs is not None:
            entry["coupling_map"] = [list(q) for q in qargs]
        gates.append(entry)

    coupling = target.build_coupling_map()
    coupling_map = None if coupling is None else sorted([a, b] for a, b in coupling.get_edges())
    dt_ns = None if target.dt is None else target.dt * 1e9
    config: dict[str, Any] = {
        "backend_name": backend_name,
        "backend_version": backend_version,
        "n_qubits": target.num_qubits,
        "basis_gates": basis,
        "gates": gates,
        "supported_instructions": basis + non_unitary + control_flow,
        "coupling_map": coupling_map,
        "local": False,
        "simulator": simulator,
        "conditional": bool(control_flow),
        "open_pulse": False,
        "memory": True,
        "max_shots": max_shots,
        "max_experiments": max_experiments,
        "n_registers": 1,
        "credits_required": False,
        "dynamic_reprate_enabled": True,
        "rep_delay_range": [0.0, 500.0],
        "default_rep_delay": 250.0,
        "meas_levels": [2],
        "meas_map": [list(range(target.num_qubits))],
        "description": description,
        "online_date": online_date if isinstance(online_date, str) else online_date.isoformat(),
        "processor_type": dict(processor_type or {}),
        "supported_features": ["qobj"],
        "input_allowed": ["job", "runtime"],
    }
    if dt_ns is not None:
        config["dt"] = dt_ns
        config["dtm"] = dt_ns
    config["timing_constraints"] = {key: int(getattr(target, key)) for key in _TIMING_KEYS}
    config.update(extra or {})
    return config


def _nduv(name: str, unit: str, value: float, date: str) -> dict[str, Any]:
    return {"date": date, "name": name, "unit": unit, "value": value}


def target_to_properties(
    target: Target,
    *,
    backend_name: str,
    backend_version: str = "1.0.0",
    last_update_date: datetime | str = "2024-01-01T00:00:00+00:00",
) -> dict[str, Any] | None:
    """IBM's ``properties`` document for ``target``, or None when it holds no calibration data.

    An ideal simulator's target (no qubit properties, no errors or durations) has none.
    """
    date = last_update_date if isinstance(last_update_date, str) else last_update_date.isoformat()
    qubit_props = target.qubit_properties
    measure = target["measure"] if "measure" in target.operation_names else {}
    if not qubit_props and not any(p is not None for p in measure.values()):
        return None

    qubits: list[list[dict[str, Any]]] = []
    for q in range(target.num_qubits):
        records: list[dict[str, Any]] = []
        qp = qubit_props[q] if qubit_props else None
        if qp is not None and qp.t1 is not None:
            records.append(_nduv("T1", "us", qp.t1 * 1e6, date))
        if qp is not None and qp.t2 is not None:
            records.append(_nduv("T2", "us", qp.t2 * 1e6, date))
        if qp is not None and qp.frequency is not None:
            records.append(_nduv("frequency", "GHz", qp.frequency * 1e-9, date))
        readout = measure.get((q,))
        if readout is None and (q,) not in measure and measure:
            records.append(_nduv("operational", "", 0, date))
        if readout is not None:
            if readout.error is not None:
                p10 = getattr(readout, "prob_meas1_prep0", None)
                p01 = getattr(readout, "prob_meas0_prep1", None)
                records.append(_nduv("readout_error", "", readout.error, date))
                records.append(_nduv("prob_meas0_prep1", "", p01 or readout.error, date))
                records.append(_nduv("prob_meas1_prep0", "", p10 or readout.error, date))
            if readout.duration is not None:
                records.append(_nduv("readout_length", "ns", readout.duration * 1e9, date))
        qubits.append(records)

    gates: list[dict[str, Any]] = []
    for name in sorted(target.operation_names):
        if name in CONTROL_FLOW_OPS or name in ("measure", "delay"):
            continue
        for qargs, props in sorted(target[name].items(), key=lambda kv: kv[0] or ()):
            if qargs is None or props is None:
                continue
            params = []
            if props.error is not None:
                params.append(_nduv("gate_error", "", props.error, date))
            if props.duration is not None:
                params.append(_nduv("gate_length", "ns", props.duration * 1e9, date))
            if not params:
                continue
            gates.append(
                {
                    "qubits": list(qargs),
                    "gate": name,
                    "parameters": params,
                    "name": name + "_".join(str(q) for q in qargs),
                }
            )
    return {
        "backend_name": backend_name,
        "backend_version": backend_version,
        "last_update_date": date,
        "qubits": qubits,
        "gates": gates,
        "general": [],
    }
