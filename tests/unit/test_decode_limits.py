"""Decoding is bounded: no payload makes ``loads`` blow up memory or time.

Bombs are built the way an attacker would: a real circuit's QPY with a count in a header
changed, zlib data of a gigabyte of zeros, an array header that lies about its data. Memory
is measured as the growth of the process's peak RSS (Rust allocations included) or, where
only Python allocates, with tracemalloc.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qpy, transpile
from qiskit.circuit import (
    AncillaRegister,
    Gate,
    IfElseOp,
    Parameter,
    ParameterVector,
    Qubit,
)
from qiskit.circuit.annotated_operation import AnnotatedOperation, InverseModifier
from qiskit.circuit.classical import expr, types
from qiskit.circuit.library import PauliEvolutionGate, UnitaryGate, XGate
from qiskit.quantum_info import SparsePauliOp, random_unitary
from qiskit_ibm_runtime.fake_provider import FakeKolkataV2
from tests.probes import reset_peak_rss, status_kib

from qruntime._qpy_check import NEWEST_CHECKED_VERSION, QpyRefusedError, check_qpy
from qruntime.encoding import DecodedCircuits, DecodeLimits, RuntimeEncoder, dumps, loads
from qruntime.errors import InputValueError, PayloadTooLargeError
from qruntime.server.settings import Settings

MB = 1 << 20
GB = 1 << 30
# The QPY versions the installed Qiskit writes; each must be checked, none loaded unchecked.
WRITTEN_VERSIONS = range(qpy.QPY_COMPATIBILITY_VERSION, qpy.QPY_VERSION + 1)


# --- helpers ---------------------------------------------------------------------------------


def _typed(type_name: str, value: Any) -> dict[str, Any]:
    return {"__type__": type_name, "__value__": value}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _qpy(circuit: QuantumCircuit, version: int | None = None) -> bytes:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer, version=version or qpy.QPY_VERSION)
    return buffer.getvalue()


def _circuit_payload(raw_qpy: bytes) -> str:
    return json.dumps(_typed("QuantumCircuit", _b64(zlib.compress(raw_qpy))))


def _patch_bits(raw: bytes, declared: tuple[int, int], *, qubits: int | None = None,
                clbits: int | None = None) -> bytes:  # fmt: skip
    """``raw`` with the one circuit header declaring ``declared`` (qubits, clbits) changed.

    A circuit header holds, in order, the name's size, the global phase's type ('f' here)
    and size (8), then the qubits and clbits: that run of bytes finds the header.
    """
    marker = b"f\x00\x08" + struct.pack("!II", *declared)
    assert raw.count(marker) == 1, "the circuit header to patch is not found exactly once"
    at = raw.index(marker) + 3
    new = (declared[0] if qubits is None else qubits, declared[1] if clbits is None else clbits)
    return raw[:at] + struct.pack("!II", *new) + raw[at + 8 :]


def _bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    return circuit


def _zeros_zlib(prefix: bytes, zeros: int) -> bytes:
    """zlib data of ``prefix`` then ``zeros`` zero bytes, built without compressing them all.

    After a full flush deflate restarts from nothing, so each further megabyte of zeros
    compresses to the same bytes: they are repeated, and the checksum is computed directly.
    """
    chunk = MB
    assert zeros % chunk == 0
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: header and trailer by hand
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(chunk)) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(bytes(chunk)) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert again == block
    body = head + block * (zeros // chunk - 1) + again + deflate.flush()
    checksum = zlib.adler32(prefix)
    low, high = checksum & 0xFFFF, checksum >> 16  # zero bytes add the low sum to the high one
    high = (high + zeros * low) % 65521
    return b"\x78\xda" + body + struct.pack("!I", (high << 16) | low)


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def _array_bomb(size: int) -> dict[str, Any]:
    """An ndarray payload of ``size`` bytes of zeros (a float64 array), a thousandth as sent."""
    raw = _zeros_zlib(_npy_header((size // 8,)), size)
    return _typed("ndarray", _b64(raw))


def _reset_peak_rss() -> None:
    if not reset_peak_rss():
        pytest.skip("this system does not let a process reset its peak RSS")


def _growth(call: Callable[[], object]) -> tuple[int, int, float]:
    """Peak RSS growth and tracemalloc peak (bytes), and seconds, of ``call()`` (which raises)."""
    _reset_peak_rss()
    before = status_kib("VmRSS")
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InputValueError) as caught:
            call()
    finally:
        elapsed = time.monotonic() - started
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert caught.value.status_code in (400, 413)
    return (status_kib("VmHWM") - before) * 1024, traced, elapsed


# --- the zlib helper builds what it says ------------------------------------------------------


def test_the_zero_bomb_helper_builds_valid_zlib_data() -> None:
    data = _zeros_zlib(b"head", 4 * MB)
    assert zlib.decompress(data) == b"head" + bytes(4 * MB)
    assert len(_zeros_zlib(b"", GB)) < 1.1 * MB


# --- QPY header bombs -------------------------------------------------------------------------


@pytest.mark.parametrize("version", WRITTEN_VERSIONS)
def test_a_qpy_header_claiming_millions_of_qubits_is_refused_quickly(version: int) -> None:
    # Unchecked, this circuit took 46 s and 2 GB of the server's memory.
    bomb = _patch_bits(_qpy(_bell(), version), (2, 2), qubits=4_000_000)
    growth, _, elapsed = _growth(lambda: loads(_circuit_payload(bomb)))
    assert elapsed < 2
    assert growth < 50 * MB


def test_the_refusal_names_what_was_declared_and_the_limit() -> None:
    bomb = _patch_bits(_qpy(_bell()), (2, 2), clbits=4_000_000)
    with pytest.raises(InputValueError, match=r"4000000 clbits.*at most 10000") as caught:
        loads(_circuit_payload(bomb))
    assert caught.value.status_code == 400


def test_the_qubit_limit_is_the_callers() -> None:
    text = _circuit_payload(_qpy(QuantumCircuit(30)))
    assert loads(text).num_qubits == 30
    with pytest.raises(InputValueError, match=r"30 qubits.*at most 27"):
        loads(text, limits=DecodeLimits(max_circuit_qubits=27))


@pytest.mark.parametrize("version", [13, qpy.QPY_VERSION])
@pytest.mark.parametrize("where", ["control-flow block", "gate definition"])
def test_a_nested_circuit_claiming_millions_of_qubits_is_refused(version: int, where: str) -> None:
    body = QuantumCircuit(7, 3)
    body.x(range(7))
    outer = QuantumCircuit(9, 4)
    if where == "control-flow block":
        outer.append(IfElseOp((outer.clbits[0], 1), body), range(7), range(3))
    else:
        outer.append(body.to_instruction(), range(7), range(3))
    bomb = _patch_bits(_qpy(outer, version), (7, 3), qubits=3_000_000)
    growth, _, elapsed = _growth(lambda: loads(_circuit_payload(bomb)))
    assert elapsed < 2
    assert growth < 50 * MB


def _header_start(raw: bytes) -> int:
    version = raw[6]
    return 20 + (8 if version >= 16 else 0)  # file header, type key, circuit table


def test_an_instruction_count_the_data_cannot_hold_is_refused() -> None:
    raw = _qpy(_bell())
    at = _header_start(raw) + struct.calcsize("!HcHIIQI")
    assert struct.unpack_from("!Q", raw, at)[0] == 4  # h, cx, two measures
    bomb = raw[:at] + struct.pack("!Q", 10**12) + raw[at + 8 :]
    with pytest.raises(InputValueError, match="1000000000000 instructions"):
        loads(_circuit_payload(bomb))


@pytest.mark.parametrize("version", [13, 17, qpy.QPY_VERSION])
def test_a_register_larger_than_its_data_or_the_limit_is_refused(version: int) -> None:
    raw = _qpy(QuantumCircuit(QuantumRegister(3, "qq")), version)
    marker = b"q\x01" + struct.pack("!IH", 3, 2)  # type, standalone, size, name size
    assert raw.count(marker) == 1
    at = raw.index(marker) + 2
    # Over the limit; then under it but more bits than the data has indices for. Version 18
    # writes a contiguous register's first index only: there, only the limit bounds its size.
    for size in (5_000_000, 9_000) if version < 18 else (5_000_000,):
        bomb = raw[:at] + struct.pack("!I", size) + raw[at + 4 :]
        with pytest.raises(InputValueError, match="Refused 'QuantumCircuit' payload: a register"):
            loads(_circuit_payload(bomb))


def test_a_file_claiming_a_trillion_circuits_is_refused() -> None:
    raw = _qpy(_bell())
    bomb = raw[:10] + struct.pack("!Q", 10**12) + raw[18:]
    with pytest.raises(InputValueError, match="exactly one circuit"):
        loads(_circuit_payload(bomb))


@pytest.mark.parametrize("version", [1, 9, NEWEST_CHECKED_VERSION + 1, 200])
def test_a_qpy_version_that_cannot_be_checked_is_refused_with_a_clear_message(
    version: int,
) -> None:
    raw = bytearray(_qpy(_bell()))
    raw[6] = version
    with pytest.raises(InputValueError, match=f"QPY version {version} cannot be checked"):
        loads(_circuit_payload(bytes(raw)))


def test_every_qpy_version_the_installed_qiskit_writes_can_be_checked() -> None:
    # Fails when Qiskit starts writing a version this server has not learnt to check.
    assert qpy.QPY_VERSION <= NEWEST_CHECKED_VERSION
    for version in WRITTEN_VERSIONS:
        check_qpy(_qpy(_bell(), version), max_qubits=2)


@pytest.mark.parametrize("version", [10, 11, 12])
def test_versions_read_by_qiskits_python_reader_are_checked_too(version: int) -> None:
    # Qiskit no longer writes these; a version 13 file of a circuit without parameters is
    # laid out as they are, once the header loses what version 12 added to it.
    raw = bytearray(_qpy(_bell(), 13))
    raw[6] = version
    if version < 12:
        start = _header_start(bytes(raw))
        del raw[start + 33 : start + 37]  # the count of standalone variables
    assert loads(_circuit_payload(bytes(raw))) == _bell()
    with pytest.raises(InputValueError, match="4000000 qubits"):
        loads(_circuit_payload(_patch_bits(bytes(raw), (2, 2), qubits=4_000_000)))


def test_truncated_or_lying_qpy_structure_is_refused_not_loaded() -> None:
    raw = _qpy(_bell())
    for cut in (5, 30, 60, len(raw) // 2):
        with pytest.raises(QpyRefusedError):
            check_qpy(raw[:cut], max_qubits=10)


# --- zlib bombs -------------------------------------------------------------------------------


def test_a_gigabyte_of_zeros_as_an_array_is_refused_within_a_small_memory_bound() -> None:
    # Unchecked, 1.4 MB of such requests took 2 GB of the server's memory.
    payload = json.dumps({"x": _array_bomb(GB)})
    assert len(payload) < 2 * MB
    growth, traced, _ = _growth(lambda: loads(payload))
    assert traced < 16 * MB
    assert growth < 64 * MB


def test_a_zlib_bomb_is_refused_with_413_and_says_the_limit() -> None:
    payload = json.dumps(_typed("QuantumCircuit", _b64(_zeros_zlib(b"QISKIT", GB))))
    with pytest.raises(PayloadTooLargeError, match="more than 256000000 bytes") as caught:
        loads(payload)
    assert caught.value.status_code == 413


def test_three_bombs_in_one_payload_are_refused() -> None:
    bombs = [_array_bomb(GB) for _ in range(3)]
    payload = json.dumps({"a": bombs[0], "b": [bombs[1], {"c": bombs[2]}]})
    growth, traced, _ = _growth(lambda: loads(payload))
    assert traced < 16 * MB
    assert growth < 64 * MB


def test_the_budget_is_shared_by_all_arrays_and_circuits_of_a_payload() -> None:
    limits = DecodeLimits(max_decoded_bytes=10 * MB)
    arrays = [_array_bomb(4 * MB) for _ in range(3)]  # each fits, together they do not
    assert loads(json.dumps(arrays[:2]), limits=limits)[0].shape == (MB // 2,)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLargeError):
            loads(json.dumps(arrays), limits=limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * MB  # what the budget allows (arrays and their bytes), not more


def test_arrays_in_a_circuits_metadata_are_paid_from_the_same_budget() -> None:
    circuit = QuantumCircuit(1, metadata={"noise": np.zeros(MB // 8)})
    text = dumps(circuit)
    assert loads(text, limits=DecodeLimits(max_decoded_bytes=2 * MB)) == circuit
    with pytest.raises(PayloadTooLargeError):
        loads(json.dumps([json.loads(text)] * 2), limits=DecodeLimits(max_decoded_bytes=2 * MB))


def test_base64_text_longer_than_the_budget_is_refused_before_decoding() -> None:
    payload = json.dumps(_typed("ndarray", "A" * (4 * MB)))
    with pytest.raises(PayloadTooLargeError):
        loads(payload, limits=DecodeLimits(max_decoded_bytes=MB))
    parameter = json.dumps(_typed("Parameter", "A" * (200_000)))
    with pytest.raises(InputValueError, match="base64 text holds over"):
        loads(parameter)


def test_a_truncated_zlib_stream_is_malformed_not_too_large() -> None:
    data = zlib.compress(_npy_header((4,)) + bytes(32))
    with pytest.raises(InputValueError, match="truncated") as caught:
        loads(json.dumps(_typed("ndarray", _b64(data[:-6]))))
    assert caught.value.status_code == 400


# --- arrays whose header lies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "data", "relation"),
    [((1000,), bytes(80), "shorter"), ((2,), bytes(100), "longer"), ((0,), bytes(8), "longer")],
    ids=["claims more", "claims less", "claims none"],
)
def test_an_array_whose_shape_lies_about_its_data_is_refused(
    shape: tuple[int, ...], data: bytes, relation: str
) -> None:
    payload = json.dumps(_typed("ndarray", _b64(zlib.compress(_npy_header(shape) + data))))
    with pytest.raises(InputValueError, match=f"data is {relation}"):
        loads(payload)


def test_a_lying_shape_with_another_header_spelling_is_refused_too() -> None:
    # Not as np.save writes it (the keys in another order): numpy's own header parser.
    header = "{'shape': (1000000, 1000000), 'fortran_order': False, 'descr': '<f8'}"
    text = header.encode("latin1") + b" " * (63 - len(header) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + bytes(64)
    with pytest.raises(InputValueError, match="data is shorter"):
        loads(json.dumps(_typed("ndarray", _b64(zlib.compress(raw)))))


# --- the decoded-circuit cache ----------------------------------------------------------------


def test_a_refused_circuit_is_never_kept() -> None:
    kept = DecodedCircuits()
    bomb = _circuit_payload(_patch_bits(_qpy(_bell()), (2, 2), qubits=4_000_000))
    for _ in range(2):
        with pytest.raises(InputValueError, match="4000000 qubits"):
            loads(bomb, circuits=kept)
    assert len(kept) == 0


def test_a_kept_circuit_does_not_skip_a_stricter_limit() -> None:
    kept = DecodedCircuits()
    text = dumps(QuantumCircuit(30))
    assert loads(text, circuits=kept).num_qubits == 30
    assert len(kept) == 1
    with pytest.raises(InputValueError, match="30 qubits"):
        loads(text, circuits=kept, limits=DecodeLimits(max_circuit_qubits=20))


def test_a_kept_circuit_sent_many_times_is_paid_for_each_time() -> None:
    kept = DecodedCircuits()
    circuit = QuantumCircuit(2)
    for _ in range(2000):
        circuit.x(0)
    text = dumps(circuit)
    size = len(_qpy(circuit))
    limits = DecodeLimits(max_decoded_bytes=10 * size)
    assert loads(text, circuits=kept, limits=limits) == circuit
    payload = json.dumps([json.loads(text)] * 11)
    with pytest.raises(PayloadTooLargeError):
        loads(payload, circuits=kept, limits=limits)


def test_limits_must_be_sensible() -> None:
    with pytest.raises(ValueError, match="max_decoded_bytes"):
        DecodeLimits(max_decoded_bytes=-1)


def test_the_default_limits_are_the_servers() -> None:
    # Workers decode with the defaults what the server accepted with its settings.
    settings = Settings(db_url="sqlite://")
    assert DecodeLimits() == DecodeLimits(
        max_decoded_bytes=settings.max_decoded_bytes,
        max_circuit_qubits=settings.max_circuit_qubits,
    )


# --- legitimate circuits and arrays still round-trip ------------------------------------------


def _parameterised() -> QuantumCircuit:
    theta, phi = Parameter("θ"), Parameter("phi")
    vector = ParameterVector("v", 3)
    circuit = QuantumCircuit(3, global_phase=theta / 2)
    circuit.rx(theta, 0)
    circuit.ry(2 * phi + vector[0], 1)
    circuit.rz(vector[2], 2)
    circuit.cx(0, 1)
    return circuit


def _registers() -> QuantumCircuit:
    loose = [Qubit(), Qubit()]
    shared = QuantumRegister(bits=loose, name="shared")  # not standalone: bits of its own
    circuit = QuantumCircuit(
        QuantumRegister(3, "q"), ClassicalRegister(2, "c"), AncillaRegister(1, "anc"), loose
    )
    circuit.add_register(shared)
    circuit.h(0)
    circuit.cx(0, 5)
    circuit.measure([0, 1], [0, 1])
    return circuit


def _control_flow() -> QuantumCircuit:
    qr, cr = QuantumRegister(3, "q"), ClassicalRegister(3, "c")
    circuit = QuantumCircuit(qr, cr)
    circuit.h(0)
    circuit.measure(0, 0)
    with circuit.if_test((cr[0], 1)) as else_:
        circuit.x(1)
    with else_:
        circuit.z(1)
    with circuit.while_loop((cr, 2)):
        circuit.x(2)
        circuit.measure(2, 2)
    with circuit.for_loop(range(3)) as index:
        circuit.rx(index * 0.5, 0)
    with circuit.switch(cr) as case:
        with case(0, 1):
            circuit.x(0)
        with case(case.DEFAULT):
            circuit.y(0)
    with circuit.if_test(expr.logic_and(expr.bit_and(cr, 3), cr[1])):
        circuit.h(2)
    return circuit


def _custom_gates() -> QuantumCircuit:
    inner = QuantumCircuit(2, name="entangle")
    inner.h(0)
    inner.cx(0, 1)
    entangle = inner.to_gate()
    circuit = QuantumCircuit(4, 1)
    circuit.append(entangle, [0, 1])
    circuit.append(entangle.control(1, ctrl_state=0), [2, 0, 1])
    circuit.append(Gate("opaque", 2, [0.5]), [1, 2])
    circuit.append(AnnotatedOperation(XGate(), InverseModifier()), [3])
    circuit.append(UnitaryGate(random_unitary(4, seed=3)), [0, 3])
    circuit.append(PauliEvolutionGate(SparsePauliOp(["XX", "ZZ"], [0.5, 0.2]), time=0.3), [0, 1])
    circuit.measure(3, 0)
    return circuit


def _variables() -> QuantumCircuit:
    flag = expr.Var.new("flag", types.Bool())
    count = expr.Var.new("count", types.Uint(8))
    circuit = QuantumCircuit(2, 2, inputs=[flag])
    circuit.add_var(count, expr.lift(3, types.Uint(8)))
    circuit.measure(0, 0)
    with circuit.if_test(expr.logic_and(flag, circuit.clbits[0])):
        circuit.store(count, expr.lift(5, types.Uint(8)))
        circuit.x(1)
    return circuit


def _transpiled() -> QuantumCircuit:
    circuit = QuantumCircuit(4)
    circuit.h(0)
    for i in range(3):
        circuit.cx(i, i + 1)
    circuit.measure_all()
    return transpile(circuit, FakeKolkataV2(), optimization_level=1, seed_transpiler=11)


LEGITIMATE = {
    "bell": _bell,
    "parameterised": _parameterised,
    "registers": _registers,
    "control flow": _control_flow,
    "custom gates": _custom_gates,
    "variables": _variables,
    "transpiled to 27 qubits": _transpiled,
}


@pytest.fixture(scope="module", params=list(LEGITIMATE))
def legitimate(request: pytest.FixtureRequest) -> QuantumCircuit:
    return LEGITIMATE[request.param]()


@pytest.mark.parametrize("version", WRITTEN_VERSIONS)
def test_legitimate_circuits_round_trip_in_every_written_qpy_version(
    legitimate: QuantumCircuit, version: int
) -> None:
    try:
        _qpy(legitimate, version)
    except qpy.UnsupportedFeatureForVersion:
        pytest.skip(f"QPY {version} cannot hold this circuit")
    text = json.dumps({"c": legitimate}, cls=RuntimeEncoder, qpy_version=version)
    decoded = loads(text, limits=DecodeLimits(max_circuit_qubits=27))["c"]
    assert decoded == legitimate
    if legitimate.layout is not None:
        assert decoded.layout.initial_index_layout() == legitimate.layout.initial_index_layout()
        assert decoded.layout.routing_permutation() == legitimate.layout.routing_permutation()


def test_legitimate_circuits_are_kept_and_handed_out_again() -> None:
    kept = DecodedCircuits()
    text = dumps([make() for make in LEGITIMATE.values()])
    first = loads(text, circuits=kept)
    assert len(kept) == len(LEGITIMATE)
    assert loads(text, circuits=kept) == first


def test_legitimate_arrays_round_trip_up_to_the_budget() -> None:
    arrays = [
        np.zeros((512, 512)),  # 2 MB of zeros: compresses a thousandfold, and is fine
        np.arange(24, dtype=">i4").reshape(2, 3, 4),
        np.asfortranarray(np.linspace(0, 1, 12).reshape(3, 4)),
        np.array([1 + 2j, 3j], dtype="<c8"),
        np.zeros((0, 4)),
        np.array(True),
    ]
    decoded = loads(dumps(arrays), limits=DecodeLimits(max_decoded_bytes=3 * MB))
    for got, sent in zip(decoded, arrays, strict=True):
        assert got.dtype == sent.dtype
        np.testing.assert_array_equal(got, sent)
