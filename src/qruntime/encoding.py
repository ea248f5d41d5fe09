"""The runtime JSON encoding: ``{"__type__": T, "__value__": V}`` for Qiskit and numpy values.

The wire format matches qiskit-ibm-runtime's ``RuntimeEncoder`` / ``RuntimeDecoder``, so
payloads written by either side can be read by the other. Decoding differs on purpose: it is
allow-listed. A ``settings`` payload is rebuilt only when its (module, class) pair is in
:data:`ALLOWED_SETTINGS_CLASSES`, a ``_json`` one only as the noise learner's classes of
:mod:`qruntime.layer_noise`; nothing named in a payload is ever imported. Every malformed
or refused payload raises :class:`~qruntime.errors.InputValueError`.

Payloads come from untrusted users, so decoding one is bounded (:class:`DecodeLimits`): what
decompressing its arrays and circuits produces, in total, is capped before it is produced
(:class:`~qruntime.errors.PayloadTooLargeError` beyond), an array's header must account for
exactly the data sent, and a circuit's QPY is checked (:mod:`qruntime._qpy_check`) before
``qpy.load`` builds anything it declares.

Usage::

    text = dumps({"circuits": [qc], "shots": 100})
    inputs = loads(text)
    # or, with the standard library:
    json.loads(text, cls=RuntimeDecoder)
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import struct
import sys
import uuid
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO, NoReturn, cast

import numpy as np
from qiskit import qpy
from qiskit.circuit import Instruction, Parameter, ParameterExpression, QuantumCircuit
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

from qruntime._lru import LRUCache
from qruntime._npy import load_array, save_array
from qruntime._qpy_check import QpyRefusedError, check_qpy
from qruntime.errors import InputValueError, PayloadTooLargeError, QRuntimeError
from qruntime.layer_noise import JSON_MODULES, LayerError, NoiseLearnerResult, PauliLindbladError
from qruntime.primitives.bits import CountingBitArray

__all__ = [
    "ALLOWED_SETTINGS_CLASSES",
    "DecodeLimits",
    "DecodedCircuits",
    "RuntimeDecoder",
    "RuntimeEncoder",
    "dumps",
    "loads",
]

#: Classes that a ``settings`` payload may name, as ``cls(**settings)`` rebuilds them.
#: Each is accepted under its defining module and under ``qiskit.quantum_info``.
ALLOWED_SETTINGS_CLASSES: dict[tuple[str, str], type[Any]] = {
    key: cls
    for cls in (SparsePauliOp, Pauli, PauliList, Operator, Statevector, DensityMatrix)
    for key in ((cls.__module__, cls.__name__), ("qiskit.quantum_info", cls.__name__))
}


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """What decoding one payload (one :func:`loads` call) may cost, checked before it is spent.

    ``max_decoded_bytes`` caps the bytes that decompressing the payload's arrays and circuits
    produces, all of them together (a zlib bomb is refused after producing nothing it keeps);
    ``max_circuit_qubits`` caps the qubits, and the clbits, that any circuit, nested circuit,
    register or custom instruction in it declares. The defaults are the server's.

    Usage::

        loads(text, limits=DecodeLimits(max_decoded_bytes=10_000_000, max_circuit_qubits=127))
    """

    max_decoded_bytes: int = 256_000_000
    max_circuit_qubits: int = 10_000

    def __post_init__(self) -> None:
        for name in ("max_decoded_bytes", "max_circuit_qubits"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"DecodeLimits.{name} must be an integer >= 0, not {value!r}")


_DEFAULT_LIMITS = DecodeLimits()

# qiskit-ibm-runtime writes ZNE extrapolator names under the "ndarray" type; pass them through.
_EXTRAPOLATOR_NAMES = frozenset(
    ["linear", "exponential", "double_exponential", "fallback"]
    + [f"polynomial_degree_{degree}" for degree in range(1, 8)]
)

# Compressed payloads kept by their bytes (see _pack): at most this many, of these sizes.
_MAX_KEPT_PACKS = 16
_MIN_KEPT_PACK = 1 << 10
_MAX_KEPT_PACK = 1 << 18
_packed: dict[bytes, str] = {}

# QPY's PARAMETER record: name length, 16 UUID bytes, then the UTF-8 name.
_PARAMETER_HEADER = struct.Struct("!H16s")
_MAX_PARAMETER_BYTES = _PARAMETER_HEADER.size + 0xFFFF
# Deflate's best case is 258 bytes from 2 bits (1032 to 1): compressed data shorter than the
# budget over this cannot expand past it. Longer data is measured before it is kept.
_MAX_INFLATE_RATIO = 1100
_INFLATE_CHUNK = 1 << 20


def dumps(obj: Any, *, qpy_version: int | None = None) -> str:
    """Encode ``obj`` as runtime JSON text."""
    return json.dumps(obj, cls=RuntimeEncoder, qpy_version=qpy_version)


def loads(
    text: str | bytes,
    *,
    limits: DecodeLimits | None = None,
    circuits: DecodedCircuits | None = None,
) -> Any:
    """Decode runtime JSON text; invalid JSON raises ``InputValueError`` too.

    ``limits`` bounds what decoding costs (:class:`DecodeLimits`, its defaults when None);
    a payload over them raises ``InputValueError`` or ``PayloadTooLargeError``.
    ``circuits`` keeps decoded circuits by their encoded text, for a caller that
    decodes the same circuits again and again (each call gets a copy of its own).
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, cls=RuntimeDecoder, limits=limits, circuits=circuits)
    except QRuntimeError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InputValueError(f"Payload is not valid JSON: {exc}") from exc


class RuntimeEncoder(json.JSONEncoder):
    """JSON encoder for runtime payloads (circuits, arrays, primitive containers...).

    ``qpy_version`` picks the QPY format version for circuits; by default the newest one the
    installed Qiskit writes. Pass it as ``json.dumps(obj, cls=RuntimeEncoder, qpy_version=13)``.
    """

    def __init__(self, *args: Any, qpy_version: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.qpy_version = qpy_version if qpy_version is not None else qpy.QPY_VERSION

    def default(self, o: Any) -> Any:
        # The usual payloads by their exact type first: several primitive containers are
        # typing Protocols, and each isinstance check against one of them is slow.
        encode = _ENCODERS_BY_TYPE.get(type(o))
        if encode is not None:
            return encode(self, o)
        if isinstance(o, datetime | date):
            return _typed("datetime", o.isoformat())
        if isinstance(o, complex):
            return _typed("complex", [o.real, o.imag])
        if isinstance(o, np.ndarray):
            return _encode_ndarray(self, o)
        if isinstance(o, np.generic):
            # numpy scalars become their Python value, which is then encoded in turn.
            return o.item()
        if isinstance(o, set | frozenset):
            return _typed("set", list(o))
        if isinstance(o, CouplingMap):
            return [list(edge) for edge in o.get_edges()]
        if isinstance(o, Result):
            return _typed("Result", o.to_dict())
        if isinstance(o, QuantumCircuit):
            return _encode_circuit(self, o)
        if isinstance(o, Parameter):
            return _typed("Parameter", _b64(_parameter_bytes(o)))
        if isinstance(o, ParameterExpression):
            if not o.parameters:
                return o.numeric()
            # A circuit's global phase carries the expression through QPY with public API.
            return _typed(
                "ParameterExpression", _pack(self._qpy_bytes(QuantumCircuit(global_phase=o)))
            )
        if isinstance(o, Instruction):
            # An instruction travels as the only operation of a circuit (as qiskit-ibm-runtime).
            circuit = QuantumCircuit(o.num_qubits, o.num_clbits)
            circuit.append(o, circuit.qubits, circuit.clbits)
            return _typed("Instruction", _pack(self._qpy_bytes(circuit)))
        if isinstance(o, ObservablesArray):
            return _encode_observables_array(self, o)
        if isinstance(o, BindingsArray):
            return _encode_bindings_array(self, o)
        if isinstance(o, BitArray):
            return _encode_bit_array(self, o)
        if isinstance(o, DataBin):
            return _encode_data_bin(self, o)
        if isinstance(o, EstimatorPub):
            return _encode_estimator_pub(self, o)
        if isinstance(o, SamplerPub):
            return _encode_sampler_pub(self, o)
        if isinstance(o, SamplerPubResult):
            return _encode_sampler_pub_result(self, o)
        if isinstance(o, PubResult):
            return _encode_pub_result(self, o)
        if isinstance(o, PrimitiveResult):
            return _encode_primitive_result(self, o)
        if isinstance(o, PauliLindbladMap):
            return _typed(
                "PauliLindbladMap", {"paulis": o.to_sparse_list(), "num_qubits": o.num_qubits}
            )
        if "qiskit_aer" in sys.modules:
            # Only an already-imported Aer can have made a NoiseModel: never import it here.
            from qiskit_aer.noise import NoiseModel

            if isinstance(o, NoiseModel):
                return _typed("NoiseModel", o.to_dict())
        if isinstance(o, NoiseLearnerResult):
            return _typed("NoiseLearnerResult", {"data": o.data, "metadata": o.metadata})
        if isinstance(o, LayerError | PauliLindbladError):
            # As IBM's encoder writes them, so that its client rebuilds its own classes.
            return {
                "__type__": "_json",
                "__module__": JSON_MODULES[0],
                "__class__": type(o).__name__,
                "__value__": o._json(),
            }
        if hasattr(o, "to_json"):
            return _typed("to_json", o.to_json())
        if hasattr(o, "settings"):
            return {
                "__type__": "settings",
                "__module__": type(o).__module__,
                "__class__": type(o).__name__,
                "__value__": _flag_int_keys(o.settings),
            }
        if callable(o):
            # As qiskit-ibm-runtime's encoder: an options dict that carries a callback
            # still serialises; the callable itself cannot travel.
            warnings.warn(
                f"Callable {o!r} cannot be sent to the server; it is encoded as None.",
                UserWarning,
                stacklevel=2,
            )
            return None
        return super().default(o)

    def _qpy_bytes(self, circuit: QuantumCircuit) -> bytes:
        buffer = io.BytesIO()
        qpy.dump(circuit, buffer, metadata_serializer=RuntimeEncoder, version=self.qpy_version)
        return buffer.getvalue()


def _encode_ndarray(_encoder: RuntimeEncoder, o: np.ndarray[Any, Any]) -> Any:
    if o.dtype == object:
        return _typed("ndarray", o.tolist())
    return _typed("ndarray", _pack(save_array(o)))


def _encode_circuit(encoder: RuntimeEncoder, o: QuantumCircuit) -> Any:
    return _typed("QuantumCircuit", _pack(encoder._qpy_bytes(o)))


def _encode_observables_array(_encoder: RuntimeEncoder, o: ObservablesArray) -> Any:
    return _typed("ObservablesArray", o.tolist())


def _encode_bindings_array(_encoder: RuntimeEncoder, o: BindingsArray) -> Any:
    data = {json.dumps(list(names)): values for names, values in o.data.items()}
    return _typed("BindingsArray", {"shape": o.shape, "data": data})


def _encode_bit_array(_encoder: RuntimeEncoder, o: BitArray) -> Any:
    return _typed("BitArray", {"array": o.array, "num_bits": o.num_bits})


def _encode_data_bin(_encoder: RuntimeEncoder, o: DataBin) -> Any:
    fields = dict(o.items())
    return _typed("DataBin", {"field_names": list(fields), "shape": o.shape, "fields": fields})


def _encode_estimator_pub(_encoder: RuntimeEncoder, o: EstimatorPub) -> Any:
    values = o.parameter_values.as_array(o.circuit.parameters)
    return [o.circuit, o.observables.tolist(), values, o.precision]


def _encode_sampler_pub(_encoder: RuntimeEncoder, o: SamplerPub) -> Any:
    return [o.circuit, o.parameter_values.as_array(o.circuit.parameters), o.shots]


def _encode_sampler_pub_result(_encoder: RuntimeEncoder, o: SamplerPubResult) -> Any:
    return _typed("SamplerPubResult", {"data": o.data, "metadata": o.metadata})


def _encode_pub_result(_encoder: RuntimeEncoder, o: PubResult) -> Any:
    return _typed("PubResult", {"data": o.data, "metadata": o.metadata})


def _encode_primitive_result(_encoder: RuntimeEncoder, o: PrimitiveResult[Any]) -> Any:
    return _typed("PrimitiveResult", {"pub_results": list(o), "metadata": o.metadata})


# Exactly what ``RuntimeEncoder.default`` does for an object of one of these very types (the
# first isinstance check there that such an object passes leads to the same function).
_ENCODERS_BY_TYPE: dict[type, Callable[[RuntimeEncoder, Any], Any]] = {
    np.ndarray: _encode_ndarray,
    QuantumCircuit: _encode_circuit,
    ObservablesArray: _encode_observables_array,
    BindingsArray: _encode_bindings_array,
    BitArray: _encode_bit_array,
    DataBin: _encode_data_bin,
    EstimatorPub: _encode_estimator_pub,
    SamplerPub: _encode_sampler_pub,
    SamplerPubResult: _encode_sampler_pub_result,
    PubResult: _encode_pub_result,
    PrimitiveResult: _encode_primitive_result,
}


class RuntimeDecoder(json.JSONDecoder):
    """JSON decoder for runtime payloads; allow-listed, and strict about malformed values.

    Raises ``InputValueError`` for an unknown ``__type__``, a ``settings`` payload naming a
    class outside :data:`ALLOWED_SETTINGS_CLASSES`, and any payload that cannot be rebuilt or
    is over ``limits`` (``PayloadTooLargeError`` for decompressed bytes). One decoder decodes
    one payload, as ``json.loads`` uses it: the decompression budget is spent across all its
    arrays and circuits, the JSON metadata of those circuits included.
    """

    def __init__(
        self,
        *args: Any,
        limits: DecodeLimits | None = None,
        circuits: DecodedCircuits | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("encoding", None)  # accepted (and ignored) by old callers of json.loads
        kwargs.pop("object_hook", None)
        super().__init__(*args, object_hook=self.object_hook, **kwargs)
        self.limits = limits if limits is not None else _DEFAULT_LIMITS
        self.circuits = circuits
        self._budget = _Budget(self.limits.max_decoded_bytes)

    def object_hook(self, obj: dict[str, Any]) -> Any:
        """Rebuild one ``{"__type__", "__value__"}`` object; other dicts pass unchanged."""
        if "__type__" not in obj:
            return obj
        type_name = obj["__type__"]
        if "__value__" not in obj:
            raise InputValueError(f"Malformed {type_name!r} payload: it has no '__value__'")
        if type_name == "_json":
            return _decode_json(obj)
        if type_name == "settings":
            return _decode_settings(obj)
        handler = _DECODERS.get(type_name) if isinstance(type_name, str) else None
        if handler is None:
            raise InputValueError(f"Unknown payload type {type_name!r}: refusing to decode it")
        try:
            return handler(self, obj["__value__"])
        except QRuntimeError:
            raise
        except QpyRefusedError as exc:
            raise InputValueError(f"Refused {type_name!r} payload: {exc}") from exc
        except Exception as exc:
            # Payloads come from untrusted users: whatever a library raises on a corrupt
            # value (QpyError, struct.error, zlib.error...), the caller sees an input error.
            raise InputValueError(f"Malformed {type_name!r} payload: {exc}") from exc

    def _unpack(self, value: Any) -> bytes:
        """The bytes of base64 text of zlib data, paid for from this payload's budget."""
        budget = self._budget
        # Honest zlib data is at most a little longer than what it expands to: text for more
        # than the budget is refused before it is even base64-decoded.
        if isinstance(value, str) and len(value) // 4 * 3 > _most_compressed(budget.left):
            budget.refuse()
        data = _unb64(value)
        if len(data) * _MAX_INFLATE_RATIO > budget.left:
            # It could expand past the budget: measure it first, one chunk held at a time.
            budget.ensure(_inflated_size(data, limit=budget.left))
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, budget.left + 1)
        budget.take(len(out))
        if not inflater.eof:
            raise ValueError("the zlib stream is truncated")
        return out

    def _decode_ndarray(self, value: Any) -> Any:
        if isinstance(value, str) and value in _EXTRAPOLATOR_NAMES:
            return value
        if isinstance(value, int | float | list):
            try:
                return np.array(value)
            except ValueError:  # ragged: it was an object array, written as nested lists
                return np.array(value, dtype=object)
        return load_array(self._unpack(value), exact=True)

    def _load_circuit(self, value: Any) -> QuantumCircuit:
        # Decompressed even when kept: a payload repeating a kept circuit pays for each copy.
        raw = self._unpack(value)
        limits = self.limits
        kept = self.circuits
        # Kept under the qubit limit it was checked against: a circuit checked under a looser
        # limit is never handed to a caller with a stricter one.
        key = f"{limits.max_circuit_qubits}:{value}" if kept is not None else ""
        if kept is not None:
            circuit = kept.get(key)
            if circuit is not None:
                return circuit
        check_qpy(raw, max_qubits=limits.max_circuit_qubits)
        loaded = _load_qpy(io.BytesIO(raw), self._metadata_decoder())
        if len(loaded) != 1 or not isinstance(loaded[0], QuantumCircuit):
            raise ValueError("expected exactly one circuit in the QPY data")
        if kept is not None:  # only now: a refused circuit is never kept
            kept.put(key, loaded[0])
        return loaded[0]

    def _metadata_decoder(self) -> type[json.JSONDecoder]:
        """The decoder QPY uses for circuit metadata: these limits, and this payload's budget."""
        # qpy.load calls it as json.loads does, cls(**kw): a partial serves as the class.
        make = functools.partial(_metadata_decoder, self.limits, self._budget)
        return cast(type[json.JSONDecoder], make)

    def _decode_parameter_expression(self, value: Any) -> Any:
        phase = self._load_circuit(value).global_phase
        if not isinstance(phase, ParameterExpression):
            raise ValueError("the QPY data carries no parameter expression")
        return phase

    def _decode_instruction(self, value: Any) -> Any:
        circuit = self._load_circuit(value)
        if len(circuit.data) != 1:
            raise ValueError("expected exactly one instruction")
        return circuit.data[0].operation


class _Budget:
    """The bytes that decompressing one payload may still produce.

    Shared by the decoders that QPY makes for the JSON metadata of the payload's circuits.
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def ensure(self, size: int) -> None:
        """Refuse a ``size`` over what is left."""
        if size > self.left:
            self.refuse()

    def refuse(self) -> NoReturn:
        raise PayloadTooLargeError(
            "Decompressing the arrays and circuits of the payload would produce more than "
            f"{self.limit} bytes, this server's limit for one payload."
        )

    def take(self, size: int) -> None:
        self.ensure(size)
        self.left -= size


def _most_compressed(size: int) -> int:
    """The most bytes that zlib writes for ``size`` bytes (stored blocks), with a margin."""
    return size + size // 1000 + 1024


def _inflated_size(data: bytes, *, limit: int) -> int:
    """How many bytes zlib ``data`` expands to, counting no further than past ``limit``."""
    inflater = zlib.decompressobj()
    size = 0
    pending = data
    while not inflater.eof and size <= limit:
        chunk = inflater.decompress(pending, _INFLATE_CHUNK)
        size += len(chunk)
        pending = inflater.unconsumed_tail
        if not pending and len(chunk) < _INFLATE_CHUNK:
            break  # all input used and no output held back: a truncated stream (found later)
    return size


class DecodedCircuits:
    """Decoded circuits kept by their encoded text (base64 of zlib of QPY), LRU.

    The decoder keys each circuit by that text prefixed with the qubit limit its QPY was
    checked under (``"10000:eJy..."``), so an entry only serves decoding under that limit.

    Decoding a circuit (QPY) costs far more than copying one, and iterative work
    sends the same circuit with every job. Entries are held apart from what callers
    get: `get` returns a copy, and `put` keeps a copy, so no caller can change
    what a later one receives. Bounded by entries and by instructions held (a
    circuit over a tenth of that is not kept). Thread-safe.
    """

    def __init__(self, *, max_entries: int = 256, max_instructions: int = 200_000) -> None:
        self._largest = max_instructions // 10
        self._entries: LRUCache[str, QuantumCircuit] = LRUCache(
            max_entries=max_entries, max_weight=max_instructions, weigh=_instructions
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, text: str) -> QuantumCircuit | None:
        circuit = self._entries.get(text)
        return None if circuit is None else circuit.copy()

    def put(self, text: str, circuit: QuantumCircuit) -> None:
        if _instructions(circuit) <= self._largest and text not in self._entries:
            self._entries.put(text, circuit.copy())

    def clear(self) -> None:
        self._entries.clear()


def _instructions(circuit: QuantumCircuit) -> int:
    return len(circuit.data) + 1


def _typed(type_name: str, value: Any) -> dict[str, Any]:
    return {"__type__": type_name, "__value__": value}


def _b64(data: bytes) -> str:
    return base64.standard_b64encode(data).decode("ascii")


def _pack(data: bytes) -> str:
    if len(data) < _MIN_KEPT_PACK or len(data) > _MAX_KEPT_PACK:
        return _b64(zlib.compress(data))
    # Kept by content: a loop sends the same circuit again and again, and QPY writes the
    # same bytes for it each time. The same bytes compress to the same text.
    packed = _packed.get(data)
    if packed is None:
        packed = _b64(zlib.compress(data))
        if len(_packed) >= _MAX_KEPT_PACKS:
            _packed.clear()
        _packed[data] = packed
    return packed


def _unb64(value: Any, *, max_bytes: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected base64 text, got {type(value).__name__}")
    if max_bytes is not None and len(value) > 4 * (max_bytes // 3 + 1):
        raise ValueError(f"the base64 text holds over {max_bytes} bytes")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"invalid base64 data ({exc})") from exc


def _load_qpy(stream: BinaryIO, metadata_decoder: type[json.JSONDecoder]) -> list[Any]:
    return list(qpy.load(stream, metadata_deserializer=metadata_decoder))


def _metadata_decoder(limits: DecodeLimits, budget: _Budget, **kwargs: Any) -> RuntimeDecoder:
    decoder = RuntimeDecoder(limits=limits, **kwargs)
    decoder._budget = budget
    return decoder


def _parameter_bytes(param: Parameter) -> bytes:
    name: bytes = param.name.encode("utf-8")
    uuid_bytes: bytes = param.uuid.bytes
    return _PARAMETER_HEADER.pack(len(name), uuid_bytes) + name


def _decode_parameter(value: Any) -> Parameter:
    data = _unb64(value, max_bytes=_MAX_PARAMETER_BYTES)
    if len(data) < _PARAMETER_HEADER.size:
        raise ValueError("the parameter record is truncated")
    name_size, uuid_bytes = _PARAMETER_HEADER.unpack_from(data)
    name = data[_PARAMETER_HEADER.size :]
    if len(name) != name_size:
        raise ValueError("the parameter name has the wrong length")
    return Parameter(name.decode("utf-8"), uuid=uuid.UUID(bytes=uuid_bytes))


def _decode_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("expected ISO 8601 text")
    return datetime.fromisoformat(value)


def _decode_complex(value: Any) -> complex:
    if not (isinstance(value, list) and len(value) == 2):
        raise TypeError("expected [real, imag]")
    real, imag = value
    if not all(isinstance(part, int | float) for part in (real, imag)):
        raise TypeError("expected two numbers")
    return complex(real, imag)


def _decode_set(value: Any) -> set[Any]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return set(value)


def _decode_result(value: Any) -> Result:
    if not isinstance(value, dict):
        raise TypeError("expected the dict of Result.to_dict()")
    return Result.from_dict(value)


def _decode_bindings_array(value: Any) -> BindingsArray:
    if not isinstance(value, dict):
        raise TypeError("expected a dict with 'shape' and 'data'")
    shape = value.get("shape")
    data = value.get("data")
    decoded: dict[tuple[str, ...], Any] = {}
    if data is not None:
        if not isinstance(data, dict):
            raise TypeError(f"'data' must be a dict, not {type(data).__name__}")
        for key, values in data.items():
            names = json.loads(key)
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise TypeError(f"key {key!r} is not a JSON list of parameter names")
            decoded[tuple(names)] = values
    return BindingsArray(decoded or None, shape=_shape(shape))


def _decode_bit_array(value: Any) -> BitArray:
    if not isinstance(value, dict) or not isinstance(value.get("array"), np.ndarray):
        raise TypeError("expected 'array' (an ndarray) and 'num_bits'")
    num_bits = value.get("num_bits")
    if not isinstance(num_bits, int):
        raise TypeError("'num_bits' must be an integer")
    # Qiskit's BitArray, counting its outcomes in numpy (same answers, far less CPU).
    return CountingBitArray(value["array"], num_bits)


def _decode_data_bin(value: Any) -> DataBin:
    if not isinstance(value, dict) or not isinstance(value.get("fields"), dict):
        raise TypeError("expected 'fields' (a dict) and 'shape'")
    return DataBin(shape=_shape(value.get("shape")) or (), **value["fields"])


def _decode_pub_result(cls: type[PubResult]) -> Callable[[Any], PubResult]:
    def decode(value: Any) -> PubResult:
        if not isinstance(value, dict) or not isinstance(value.get("data"), DataBin):
            raise TypeError("expected 'data' (a DataBin) and 'metadata'")
        metadata = value.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("'metadata' must be a dict")
        return cls(value["data"], metadata)

    return decode


def _decode_primitive_result(value: Any) -> PrimitiveResult[Any]:
    pubs = value.get("pub_results") if isinstance(value, dict) else None
    if not isinstance(pubs, list) or not all(isinstance(p, PubResult) for p in pubs):
        raise TypeError("expected 'pub_results' (a list of PubResult) and 'metadata'")
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError("'metadata' must be a dict")
    return PrimitiveResult(pubs, metadata)


def _decode_pauli_lindblad_map(value: Any) -> PauliLindbladMap:
    if not isinstance(value, dict):
        raise TypeError("expected 'paulis' and 'num_qubits'")
    terms = [tuple(term) for term in value["paulis"]]
    return PauliLindbladMap.from_sparse_list(terms, num_qubits=value["num_qubits"])


def _decode_noise_model(value: Any) -> Any:
    if not isinstance(value, dict):
        raise TypeError("expected the dict of NoiseModel.to_dict()")
    # Imported here: Aer costs half a second to import and most callers never need it.
    from qiskit_aer.noise import NoiseModel

    # Aer deprecated from_dict without a replacement, yet qiskit-ibm-runtime still sends
    # noise models as to_dict(): keep reading them, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return NoiseModel.from_dict(value)


def _decode_settings(obj: dict[str, Any]) -> Any:
    module, class_name = obj.get("__module__"), obj.get("__class__")
    if not (isinstance(module, str) and isinstance(class_name, str)):
        raise InputValueError("Malformed 'settings' payload: '__module__' and '__class__' needed")
    cls = ALLOWED_SETTINGS_CLASSES.get((module, class_name))
    if cls is None or obj["__type__"] != "settings":
        raise InputValueError(
            f"Refusing to decode {module}.{class_name}: the class is not on the allow-list"
        )
    settings = obj["__value__"]
    if not isinstance(settings, dict):
        raise InputValueError(f"Malformed settings for {class_name}: expected a dict")
    try:
        return cls(**_cast_int_keys(settings))
    except Exception as exc:  # the constructors raise QiskitError, ValueError, TypeError...
        raise InputValueError(f"Malformed settings for {class_name}: {exc}") from exc


# The classes a ``"_json"`` payload may name: the noise learner's, under IBM's modules.
_JSON_CLASSES: dict[str, Any] = {"LayerError": LayerError, "PauliLindbladError": PauliLindbladError}


def _decode_json(obj: dict[str, Any]) -> Any:
    module, class_name = obj.get("__module__"), obj.get("__class__")
    cls = _JSON_CLASSES.get(class_name) if isinstance(class_name, str) else None
    if cls is None or module not in JSON_MODULES:
        raise InputValueError(
            f"Refusing to decode {module}.{class_name}: the class is not on the allow-list"
        )
    fields = obj["__value__"]
    if not isinstance(fields, dict):
        raise InputValueError(f"Malformed {class_name}: expected a dict")
    try:
        return cls(**_cast_int_keys(fields))
    except Exception as exc:  # the constructors raise ValueError, TypeError, QiskitError...
        raise InputValueError(f"Malformed {class_name}: {exc}") from exc


def _decode_noise_learner_result(value: Any) -> NoiseLearnerResult:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise TypeError("a NoiseLearnerResult needs a list of layers under 'data'")
    if not all(isinstance(layer, LayerError) for layer in value["data"]):
        raise TypeError("each layer of a NoiseLearnerResult must be a LayerError")
    metadata = value.get("metadata")
    return NoiseLearnerResult(value["data"], metadata if isinstance(metadata, dict) else None)


def _flag_int_keys(value: Any) -> Any:
    """Copy of ``value`` where each dict with int keys carries ``"__int_keys__": True``."""
    if isinstance(value, dict):
        out = {key: _flag_int_keys(item) for key, item in value.items()}
        if any(isinstance(key, int) for key in value):
            out["__int_keys__"] = True
        return out
    if isinstance(value, list | tuple):
        return [_flag_int_keys(item) for item in value]
    return value


def _cast_int_keys(value: Any) -> Any:
    """Undo :func:`_flag_int_keys`: JSON turned the int keys into text."""
    if isinstance(value, dict):
        flagged = value.get("__int_keys__") is True
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if key == "__int_keys__" and flagged:
                continue
            if flagged and isinstance(key, str) and key.lstrip("-").isdigit():
                key = int(key)
            out[key] = _cast_int_keys(item)
        return out
    if isinstance(value, list):
        return [_cast_int_keys(item) for item in value]
    return value


def _shape(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(n, int) for n in value):
        return tuple(value)
    raise TypeError(f"a shape must be a list of integers, not {value!r}")


def _value_only(decode: Callable[[Any], Any]) -> Callable[[RuntimeDecoder, Any], Any]:
    return lambda _decoder, value: decode(value)


# How each ``__type__`` is rebuilt, from the decoder and the ``__value__``. Built once: a
# decoder is made for every payload, and again by QPY for each circuit's metadata.
_DECODERS: dict[str, Callable[[RuntimeDecoder, Any], Any]] = {
    "datetime": _value_only(_decode_datetime),
    "complex": _value_only(_decode_complex),
    "ndarray": RuntimeDecoder._decode_ndarray,
    "set": _value_only(_decode_set),
    "Result": _value_only(_decode_result),
    "QuantumCircuit": RuntimeDecoder._load_circuit,
    "Parameter": _value_only(_decode_parameter),
    "ParameterExpression": RuntimeDecoder._decode_parameter_expression,
    "Instruction": RuntimeDecoder._decode_instruction,
    "ObservablesArray": _value_only(ObservablesArray),
    "BindingsArray": _value_only(_decode_bindings_array),
    "BitArray": _value_only(_decode_bit_array),
    "DataBin": _value_only(_decode_data_bin),
    "PubResult": _value_only(_decode_pub_result(PubResult)),
    # qiskit-ibm-runtime's own subclass of PubResult; Qiskit has no such class.
    "EstimatorPubResult": _value_only(_decode_pub_result(PubResult)),
    "SamplerPubResult": _value_only(_decode_pub_result(SamplerPubResult)),
    "PrimitiveResult": _value_only(_decode_primitive_result),
    "PauliLindbladMap": _value_only(_decode_pauli_lindblad_map),
    "NoiseLearnerResult": _value_only(_decode_noise_learner_result),
    "NoiseModel": _value_only(_decode_noise_model),
    "to_json": _value_only(lambda value: value),
}
