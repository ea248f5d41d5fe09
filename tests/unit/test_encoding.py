"""The runtime JSON encoding: round trips, interop with qiskit-ibm-runtime, refusals."""

from __future__ import annotations

import base64
import io
import json
import sys
import warnings
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.circuit import Instruction, Parameter, ParameterExpression
from qiskit.circuit.library import RXGate
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.primitives.containers import (
    BindingsArray,
    BitArray,
    DataBin,
    EstimatorPub,
    ObservablesArray,
    PrimitiveResult,
    PubResult,
    SamplerPub,
    SamplerPubResult,
)
from qiskit.quantum_info import (
    DensityMatrix,
    Operator,
    Pauli,
    PauliLindbladMap,
    PauliList,
    SparsePauliOp,
    Statevector,
)
from qiskit.result import Result
from qiskit.transpiler import CouplingMap
from qiskit_ibm_runtime import RuntimeDecoder as IBMDecoder
from qiskit_ibm_runtime import RuntimeEncoder as IBMEncoder

from qruntime import encoding
from qruntime.encoding import (
    DecodedCircuits,
    DecodeLimits,
    RuntimeDecoder,
    RuntimeEncoder,
    _cast_int_keys,
    _flag_int_keys,
    dumps,
    loads,
)
from qruntime.errors import InputValueError, PayloadTooLargeError

THETA = Parameter("θ")
PHI = Parameter("phi")


def _bell(*, measure: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(2, metadata={"label": "bell", "n": 2})
    qc.h(0)
    qc.cx(0, 1)
    qc.rz(THETA, 1)
    if measure:
        qc.measure_all()
    return qc


def _sampler_result() -> PrimitiveResult[SamplerPubResult]:
    qc = _bell().assign_parameters([0.3])
    return StatevectorSampler(seed=7).run([qc], shots=16).result()


def _estimator_result() -> PrimitiveResult[PubResult]:
    qc = _bell(measure=False)
    pub = (qc, [SparsePauliOp("ZZ"), SparsePauliOp("XX")], [[0.1], [0.2]])
    return StatevectorEstimator().run([pub]).result()


def _aer_result() -> Result:
    from qiskit_aer import AerSimulator

    qc = _bell().assign_parameters([0.0])
    return AerSimulator(seed_simulator=3).run(qc, shots=32).result()


def _noise_model() -> Any:
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["h"])
    return model


# Values that both encoders write and both decoders read.
SHARED: dict[str, Callable[[], Any]] = {
    "circuit": _bell,
    "float_array": lambda: np.linspace(0.0, 1.0, 6).reshape(2, 3),
    "int_array": lambda: np.arange(5, dtype=np.int32),
    "complex_array": lambda: np.array([1 + 2j, -1j]),
    "bool_array": lambda: np.array([[True, False]]),
    "complex": lambda: complex(1.5, -2.0),
    "datetime": lambda: datetime(2026, 11, 21, 8, 0, 1, tzinfo=UTC),
    "set": lambda: {1, 2, "three"},
    "result": _aer_result,
    "parameter": lambda: THETA,
    "sparse_pauli_op": lambda: SparsePauliOp(["XZ", "YY"], [0.5, -1j]),
    "pauli": lambda: Pauli("-iXYZ"),
    "pauli_list": lambda: PauliList(["XX", "-ZI"]),
    "operator": lambda: Operator.from_label("XH"),
    "observables_array": lambda: ObservablesArray([{"ZZ": 1.0}, {"XI": 0.5, "IX": 0.5}]),
    "bindings_array": lambda: BindingsArray({("a", "b"): np.ones((3, 2)), "c": np.zeros(3)}),
    "bit_array": lambda: BitArray(np.array([[0], [3], [1]], dtype=np.uint8), 2),
    "data_bin": lambda: DataBin(evs=np.array([0.1, 0.2]), stds=np.array([0.0, 0.1]), shape=(2,)),
    "sampler_result": _sampler_result,
    "estimator_result": _estimator_result,
    "pub_result": lambda: _estimator_result()[0],
    "sampler_pub_result": lambda: _sampler_result()[0],
    "instruction": lambda: RXGate(0.25),
    "pauli_lindblad_map": lambda: PauliLindbladMap.from_list([("XX", 0.1), ("ZI", 0.2)]),
    "noise_model": _noise_model,
}

# Values only qruntime encodes (qiskit-ibm-runtime's decoder does not rebuild them).
OURS_ONLY: dict[str, Callable[[], Any]] = {
    "statevector": lambda: Statevector.from_label("+0"),
    "density_matrix": lambda: DensityMatrix.from_label("1"),
    "parameter_expression": lambda: 2 * THETA + PHI,
    "object_array": lambda: np.array([{"a": 1}, [1, 2]], dtype=object),
    "nested": lambda: {
        "circuits": [_bell(), _bell(measure=False)],
        "arrays": {"x": np.eye(2), "y": [np.arange(3), {"deep": np.ones(1)}]},
        "pubs": [(_bell(), np.array([[0.1], [0.2]]), 100)],
    },
}


def assert_same(actual: Any, expected: Any) -> None:
    """Structural equality for the types of this encoding (many lack a useful ``==``)."""
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray)
        assert actual.dtype == expected.dtype or expected.dtype == object
        assert actual.shape == expected.shape
        assert actual.tolist() == expected.tolist()
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert actual.keys() == expected.keys()
        for key, value in expected.items():
            assert_same(actual[key], value)
    elif isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple)
        assert len(actual) == len(expected)
        for item, value in zip(actual, expected, strict=True):
            assert_same(item, value)
    elif isinstance(expected, QuantumCircuit):
        assert isinstance(actual, QuantumCircuit)
        assert actual == expected
        assert actual.metadata == expected.metadata
    elif isinstance(expected, Result):
        assert isinstance(actual, Result)
        assert actual.to_dict() == expected.to_dict()
    elif isinstance(expected, ObservablesArray):
        assert isinstance(actual, ObservablesArray)
        assert actual.tolist() == expected.tolist()
    elif isinstance(expected, BindingsArray):
        assert isinstance(actual, BindingsArray)
        assert actual.shape == expected.shape
        assert_same(dict(actual.data), dict(expected.data))
    elif isinstance(expected, BitArray):
        # Decoded, it is a BitArray that counts in numpy (qruntime.primitives.bits).
        assert isinstance(actual, BitArray)
        assert actual == expected
        assert actual.get_counts() == expected.get_counts()
    elif isinstance(expected, DataBin):
        assert isinstance(actual, DataBin)
        assert actual.shape == expected.shape
        assert_same(dict(actual.items()), dict(expected.items()))
    elif isinstance(expected, PrimitiveResult):
        assert type(actual) is PrimitiveResult
        assert_same(list(actual), list(expected))
        assert actual.metadata == expected.metadata
    elif isinstance(expected, PubResult):
        assert type(actual) is type(expected)
        assert_same(actual.data, expected.data)
        assert actual.metadata == expected.metadata
    elif type(expected).__name__ == "NoiseModel":
        # to_dict() rewrites Pauli errors as unitaries, so compare what the model applies to.
        assert type(actual) is type(expected)
        assert actual.noise_instructions == expected.noise_instructions
        assert actual.basis_gates == expected.basis_gates
    elif isinstance(expected, ParameterExpression) and not isinstance(expected, Parameter):
        assert isinstance(actual, ParameterExpression)
        assert actual == expected
        assert actual.parameters == expected.parameters
    else:
        assert type(actual) is type(expected)
        assert actual == expected


@pytest.mark.parametrize("name", [*SHARED, *OURS_ONLY])
def test_value_survives_a_round_trip_through_our_encoding(name: str) -> None:
    value = {**SHARED, **OURS_ONLY}[name]()
    text = dumps(value)
    assert_same(loads(text), value)
    assert_same(json.loads(text, cls=RuntimeDecoder), value)


@pytest.mark.parametrize("name", list(SHARED))
def test_ibm_decoder_reads_what_we_encode(name: str) -> None:
    value = SHARED[name]()
    with warnings.catch_warnings():
        # qiskit-ibm-runtime reads noise models with Aer's deprecated NoiseModel.from_dict.
        warnings.filterwarnings("ignore", "from_dict has been deprecated", DeprecationWarning)
        decoded = json.loads(dumps(value), cls=IBMDecoder)
    assert_same(decoded, value)


def test_object_array_of_ragged_items_comes_back_as_object_array() -> None:
    decoded = loads(dumps(np.array([{"a": 1}, [1, 2]], dtype=object)))
    assert decoded.dtype == object
    assert decoded.tolist() == [{"a": 1}, [1, 2]]


@pytest.mark.parametrize("name", list(SHARED))
def test_we_decode_what_the_ibm_encoder_writes(name: str) -> None:
    value = SHARED[name]()
    assert_same(loads(json.dumps(value, cls=IBMEncoder)), value)


def test_parameter_keeps_its_identity_across_the_wire() -> None:
    decoded = loads(dumps(THETA))
    assert decoded.uuid == THETA.uuid
    assert decoded.name == "θ"


def test_parameters_in_decoded_expression_bind_like_the_originals() -> None:
    expression = loads(dumps(2 * THETA + PHI))
    assert float(expression.bind({THETA: 1.0, PHI: 0.5})) == pytest.approx(2.5)


def test_fully_bound_expression_is_sent_as_its_number() -> None:
    assert loads(dumps((THETA + 1).bind({THETA: 2.0}))) == pytest.approx(3.0)


def test_numpy_scalars_become_plain_json_values() -> None:
    values = [np.int64(3), np.int8(-2), np.float32(0.5), np.bool_(True), np.complex64(1j)]
    assert loads(dumps(values)) == [3, -2, 0.5, True, 1j]
    assert json.loads(dumps(values[:4])) == [3, -2, 0.5, True]


def test_coupling_map_is_sent_as_its_edge_list() -> None:
    assert loads(dumps(CouplingMap([[0, 1], [1, 2]]))) == [[0, 1], [1, 2]]


def test_pubs_are_sent_as_pub_like_lists() -> None:
    circuit = _bell(measure=False)
    pub = EstimatorPub.coerce((circuit, "ZZ", [0.3], 0.01))
    decoded = EstimatorPub.coerce(tuple(loads(dumps(pub))))
    assert decoded.circuit == circuit
    assert decoded.precision == 0.01
    assert decoded.parameter_values.as_array(circuit.parameters).tolist() == [0.3]
    sampler_pub = SamplerPub.coerce((_bell(), [0.2], 50))
    assert loads(dumps(sampler_pub))[2] == 50


# Not these two: each encoding names a fresh circuit ("circuit-123"), so no two are equal.
@pytest.mark.parametrize(
    "name", sorted({*SHARED, *OURS_ONLY} - {"instruction", "parameter_expression"})
)
def test_encoding_by_exact_type_is_what_the_isinstance_checks_give(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = {**SHARED, **OURS_ONLY}[name]()
    pubs = [
        EstimatorPub.coerce((_bell(measure=False), "ZZ", [0.3], 0.01)),
        SamplerPub.coerce((_bell(), [0.2], 50)),
    ]
    fast = dumps([value, pubs])
    monkeypatch.setattr(encoding, "_ENCODERS_BY_TYPE", {})
    assert dumps([value, pubs]) == fast


def test_only_exact_types_are_encoded_by_the_type_table() -> None:
    for cls in encoding._ENCODERS_BY_TYPE:
        # The first class that the isinstance checks of ``default`` test and that ``cls``
        # derives from is ``cls`` itself: no earlier check catches its objects.
        earlier = [datetime, date, complex, np.ndarray, np.generic, set, frozenset, CouplingMap]
        earlier += [Result, QuantumCircuit, Parameter, ParameterExpression, Instruction]
        earlier += [ObservablesArray, BindingsArray, BitArray, DataBin, EstimatorPub]
        earlier += [SamplerPub, SamplerPubResult, PubResult, PrimitiveResult]
        assert next(c for c in earlier if issubclass(cls, c)) is cls


@pytest.mark.parametrize("encoder", [RuntimeEncoder, IBMEncoder])
def test_estimator_pub_written_by_either_encoder_coerces_back(encoder: type[Any]) -> None:
    circuit = _bell(measure=False)
    pub = EstimatorPub.coerce((circuit, [SparsePauliOp("ZZ")], [[0.1], [0.2]], 0.05))
    decoded = EstimatorPub.coerce(tuple(loads(json.dumps(pub, cls=encoder))))
    assert decoded.circuit == circuit
    assert decoded.shape == pub.shape
    assert decoded.observables.tolist() == pub.observables.tolist()


def test_settings_with_an_argument_the_class_lacks_is_an_input_error() -> None:
    payload = json.loads(dumps(SparsePauliOp("X")))
    payload["__value__"]["extra"] = {"1": "a", "__int_keys__": True}
    with pytest.raises(InputValueError, match="SparsePauliOp"):
        loads(json.dumps(payload))


def test_int_keys_in_settings_come_back_as_ints() -> None:
    # No allow-listed class has int-keyed settings today: check the flag's round trip itself.
    flagged = json.loads(json.dumps(_flag_int_keys({1: {2: "x"}, "s": [{3: None}]})))
    assert flagged["__int_keys__"] is True
    assert _cast_int_keys(flagged) == {1: {2: "x"}, "s": [{3: None}]}


def test_qpy_version_can_be_lowered_for_older_readers() -> None:
    text = json.dumps(_bell(), cls=RuntimeEncoder, qpy_version=13)
    raw = zlib.decompress(base64.b64decode(json.loads(text)["__value__"]))
    assert raw[6] == 13  # the QPY header: b"QISKIT" then the format version
    assert loads(text) == _bell()


# --- refusals: nothing outside the allow-list is ever imported or built --------------------


def _settings(module: str, cls: str, value: Any) -> str:
    return json.dumps(
        {"__type__": "settings", "__module__": module, "__class__": cls, "__value__": value}
    )


def test_payload_naming_unlisted_class_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = _settings("subprocess", "Popen", {"args": ["touch", str(marker)]})
    with pytest.raises(InputValueError, match=r"subprocess\.Popen"):
        loads(payload)
    assert not marker.exists()


def test_payload_naming_unimported_module_leaves_it_unimported() -> None:
    assert "tabnanny" not in sys.modules
    with pytest.raises(InputValueError, match=r"tabnanny\.NannyNag"):
        loads(_settings("tabnanny", "NannyNag", {}))
    assert "tabnanny" not in sys.modules


def test_allowed_class_name_under_another_module_is_refused() -> None:
    with pytest.raises(InputValueError, match=r"os\.SparsePauliOp"):
        loads(_settings("os", "SparsePauliOp", {"data": ["X"]}))


def test_allowed_class_under_public_module_name_is_accepted() -> None:
    assert loads(_settings("qiskit.quantum_info", "Pauli", {"data": "XZ"})) == Pauli("XZ")


def test_json_type_payload_is_refused() -> None:
    payload = {
        "__type__": "_json",
        "__module__": "qiskit_ibm_runtime.utils.noise_learner_result",
        "__class__": "NoiseLearnerResult",
        "__value__": {},
    }
    with pytest.raises(InputValueError, match="NoiseLearnerResult"):
        loads(json.dumps(payload))


def test_unknown_type_is_refused_by_name() -> None:
    with pytest.raises(InputValueError, match="'Pickle'"):
        loads('{"__type__": "Pickle", "__value__": "gASV"}')


# --- malformed payloads ---------------------------------------------------------------------


def _typed(type_name: str, value: Any) -> str:
    return json.dumps({"__type__": type_name, "__value__": value})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pickled_array() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return zlib.compress(buffer.getvalue())


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_typed("QuantumCircuit", "not base64!"), "base64"),
        (_typed("QuantumCircuit", _b64(b"not zlib")), "QuantumCircuit"),
        (_typed("QuantumCircuit", _b64(zlib.compress(b"QISKIT garbage"))), "QuantumCircuit"),
        (_typed("QuantumCircuit", 12), "base64"),
        (_typed("ndarray", _b64(zlib.compress(b"\x93NUMPY nonsense"))), "ndarray"),
        (_typed("ndarray", _b64(_pickled_array())), "ndarray"),
        (_typed("ndarray", {"x": 1}), "ndarray"),
        (_typed("Parameter", _b64(b"\x00")), "truncated"),
        (_typed("complex", [1, 2, 3]), "complex"),
        (_typed("datetime", "yesterday"), "datetime"),
        (_typed("set", [[1], [2]]), "set"),
        (_typed("BitArray", {"array": [[1]], "num_bits": 1}), "BitArray"),
        (_typed("DataBin", {"shape": "wide", "fields": {}}), "shape"),
        (_typed("PubResult", {"data": {"x": 1}, "metadata": {}}), "DataBin"),
        (_typed("PrimitiveResult", {"pub_results": [1], "metadata": {}}), "PubResult"),
        (_typed("BindingsArray", {"shape": [2], "data": {"a": [1, 2]}}), "BindingsArray"),
        (_typed("Result", ["not", "a", "dict"]), "Result"),
        ('{"__type__": "complex"}', "__value__"),
        (_settings("qiskit.quantum_info", "SparsePauliOp", {"bogus": 1}), "SparsePauliOp"),
        (_settings("qiskit.quantum_info", "Pauli", ["X"]), "Pauli"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_payload_raises_input_error(payload: str | bytes, message: str) -> None:
    with pytest.raises(InputValueError, match=message):
        loads(payload)


def test_bit_array_with_too_few_bytes_for_its_bits_is_refused() -> None:
    text = dumps(BitArray(np.zeros((4, 1), dtype=np.uint8), 8))
    payload = json.loads(text)
    payload["__value__"]["num_bits"] = 20
    with pytest.raises(InputValueError, match="BitArray"):
        loads(json.dumps(payload))


def test_compressed_payload_over_the_size_cap_is_refused() -> None:
    text = dumps(np.zeros(1 << 16))
    assert loads(text, limits=DecodeLimits(max_decoded_bytes=1 << 20)).shape == (1 << 16,)
    with pytest.raises(PayloadTooLargeError, match="would produce more than 4096 bytes"):
        loads(text, limits=DecodeLimits(max_decoded_bytes=1 << 12))


def test_array_header_claiming_more_data_than_sent_is_refused() -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    payload = _typed("ndarray", _b64(zlib.compress(buffer.getvalue() + b"\0" * 64)))
    with pytest.raises(InputValueError, match="data is shorter"):
        loads(payload)


def test_deeply_nested_json_is_an_input_error() -> None:
    with pytest.raises(InputValueError, match="not valid JSON"):
        loads("[" * 100_000 + "]" * 100_000)


def test_qpy_payload_with_two_circuits_is_refused() -> None:
    buffer = io.BytesIO()
    qpy.dump([_bell(), _bell()], buffer)
    with pytest.raises(InputValueError, match="exactly one circuit"):
        loads(_typed("QuantumCircuit", _b64(zlib.compress(buffer.getvalue()))))


def test_plain_dicts_and_extrapolator_names_pass_through() -> None:
    assert loads('{"a": {"b": [1, 2.5, null]}}') == {"a": {"b": [1, 2.5, None]}}
    assert loads(_typed("ndarray", "linear")) == "linear"
    assert loads(_typed("to_json", {"x": 1})) == {"x": 1}


def test_circuit_sent_again_is_encoded_to_the_same_text() -> None:
    circuit = _bell()
    first, again = dumps(circuit), dumps(circuit)
    assert again == first
    raw = io.BytesIO()
    qpy.dump(circuit, raw, metadata_serializer=RuntimeEncoder)
    assert json.loads(first)["__value__"] == _b64(zlib.compress(raw.getvalue()))
    circuit.x(0)  # the same object, changed: its new content is sent
    changed = loads(dumps(circuit))
    assert changed == circuit
    assert changed != _bell()


def test_compressed_payloads_are_kept_only_within_bounds() -> None:
    rng = np.random.default_rng(3)
    for size in (10, 2_000, 1 << 19):
        data = rng.integers(0, 4, size=size, dtype=np.uint8).tobytes()
        assert encoding._pack(data) == _b64(zlib.compress(data))
        assert encoding._pack(data) == _b64(zlib.compress(data))
        assert (data in encoding._packed) == (size == 2_000)
    for _ in range(3 * encoding._MAX_KEPT_PACKS):
        encoding._pack(rng.integers(0, 4, size=2_000, dtype=np.uint8).tobytes())
    assert len(encoding._packed) <= encoding._MAX_KEPT_PACKS


def test_decoded_circuits_are_kept_by_text_and_each_caller_gets_its_own_copy() -> None:
    kept = DecodedCircuits()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    text = dumps({"circuits": circuit})
    first = loads(text, circuits=kept)["circuits"]
    assert len(kept) == 1
    first.x(1)  # a caller changes its circuit...
    first.metadata["mine"] = True
    second = loads(text, circuits=kept)["circuits"]
    assert second == circuit  # ...and the next one gets the circuit as it was sent
    assert second is not first
    assert "mine" not in (second.metadata or {})
    assert len(kept) == 1
    other = QuantumCircuit(3)
    other.h(2)
    assert loads(dumps(other), circuits=kept) == other
    assert len(kept) == 2


def test_decoded_circuits_stay_within_their_bounds() -> None:
    kept = DecodedCircuits(max_entries=3, max_instructions=100)
    texts = []
    for n in range(1, 6):
        circuit = QuantumCircuit(n)
        circuit.h(range(n))
        texts.append(dumps(circuit))
        loads(texts[-1], circuits=kept)
    assert len(kept) == 3  # the oldest went first
    big = QuantumCircuit(1)
    for _ in range(20):  # over a tenth of the instructions the cache may hold
        big.x(0)
    loads(dumps(big), circuits=kept)
    assert len(kept) == 3
    kept.clear()
    assert len(kept) == 0


def test_a_malformed_circuit_is_refused_every_time_and_never_kept() -> None:
    kept = DecodedCircuits()
    bad = json.dumps({"__type__": "QuantumCircuit", "__value__": "bm90IHFweQ=="})
    for _ in range(2):
        with pytest.raises(InputValueError, match="QuantumCircuit"):
            loads(bad, circuits=kept)
    assert len(kept) == 0


def test_a_callable_is_encoded_as_none_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="encoded as None"):
        text = dumps({"options": {"callback": print, "shots": 10}})
    assert loads(text) == {"options": {"callback": None, "shots": 10}}
