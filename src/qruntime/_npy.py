"""The ``.npy`` bytes of the runtime encoding's ``ndarray`` values, written and read quickly.

An encoded array is exactly what ``np.save(allow_pickle=False)`` writes, and it is read as
``np.load(allow_pickle=False)`` reads it. Both numpy functions parse or build the text header
with ``repr`` and ``ast.literal_eval``, which costs more than the rest for the small arrays of
a primitive result. Here, for plain numeric arrays:

- :func:`save_array` reuses the header that ``np.save`` wrote for an earlier array of the same
  dtype, order and shape (the header depends on nothing else), after checking once that
  ``np.save`` wrote that header followed by the raw data;
- :func:`load_array` reads the header that ``np.save`` writes with one regular expression.

Anything else (other dtypes, header versions or spellings) takes numpy's own path, so the
bytes written and the arrays read, errors included, are numpy's. Either way, the bytes are
untrusted: the data must hold what the header's shape and dtype claim, checked before
numpy allocates anything, so a few bytes cannot claim a huge array. The runtime decoder asks
for ``exact=True``: nothing may follow the data either (``np.load`` ignores what does).
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

__all__ = ["load_array", "save_array"]

# Simple dtypes only: no fields, no subarrays, no objects, a fixed item size.
_SIMPLE_KINDS = frozenset("biufc")
# Headers kept for at most this many (dtype, order, shape) triples.
_MAX_HEADERS = 256
# np.load refuses a longer header unless it trusts the file (numpy's default).
_MAX_HEADER_SIZE = 10_000
# The largest dimension numpy's shapes hold.
_MAX_DIM = int(np.iinfo(np.intp).max)
_MAGIC_1_0 = b"\x93NUMPY\x01\x00"
_PREFIX_SIZE = len(_MAGIC_1_0) + 2  # the magic, then the header length (uint16, little-endian)
_DIM = rb"(?:0|[1-9][0-9]*)"
# The header exactly as np.save writes it: the keys sorted, the shape as repr() writes a
# tuple, then spaces and a newline. Any other spelling is left to np.load.
_HEADER = re.compile(
    rb"\{'descr': '([<>|][biufc][0-9]+)', 'fortran_order': (True|False), "
    rb"'shape': \((|" + _DIM + rb",|" + _DIM + rb"(?:, " + _DIM + rb")+)\), \} *\n"
)

_headers: dict[tuple[str, bool, tuple[int, ...]], bytes] = {}
_dtypes: dict[bytes, np.dtype[Any]] = {}


def save_array(array: np.ndarray[Any, Any]) -> bytes:
    """``np.save(array, allow_pickle=False)``, as bytes."""
    dtype = array.dtype
    if (
        type(array) is not np.ndarray
        or dtype.kind not in _SIMPLE_KINDS
        or dtype.metadata is not None
    ):
        return _np_save(array)
    # As np.save decides: Fortran order only for an array that is not also C-contiguous.
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    key = (dtype.str, fortran, array.shape)
    data = array.tobytes(order="F" if fortran else "C")
    header = _headers.get(key)
    if header is not None:
        return header + data
    saved = _np_save(array)
    header = saved[: len(saved) - len(data)]
    if saved == header + data and len(_headers) < _MAX_HEADERS:
        _headers[key] = header
    return saved


def load_array(raw: bytes, *, exact: bool = False) -> np.ndarray[Any, Any]:
    """The array of ``np.save`` bytes, as ``np.load(allow_pickle=False)`` reads it.

    Raises ``ValueError`` when the header claims more data than ``raw`` holds, or with
    ``exact`` any other amount than it holds (checked before allocating anything: the array
    then costs no more than ``raw``), or when ``raw`` is not a single ``.npy`` array.
    """
    if raw[: len(_MAGIC_1_0)] == _MAGIC_1_0 and len(raw) >= _PREFIX_SIZE:
        header_size = int.from_bytes(raw[len(_MAGIC_1_0) : _PREFIX_SIZE], "little")
        offset = _PREFIX_SIZE + header_size
        match = _HEADER.fullmatch(raw, _PREFIX_SIZE, offset)
        if match is not None and header_size <= _MAX_HEADER_SIZE and offset <= len(raw):
            dtype = _dtype(match[1])
            if dtype is not None:
                dims = match[3]
                shape = tuple(int(dim) for dim in dims.split(b",") if dim) if dims else ()
                count = math.prod(shape)
                _check_size(shape, dtype, len(raw) - offset, exact=exact)
                if count:
                    # A copy (the bytes are read-only), then shaped as np.load shapes it.
                    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).copy()
                elif max(shape, default=0) <= _MAX_DIM:
                    # As np.load makes an empty one (every PUB without parameters sends one).
                    flat = np.ndarray(0, dtype=dtype)
                else:  # a dimension numpy cannot hold: its own error
                    return _np_load(raw, exact=exact)
                if match[2] == b"True":
                    return flat.reshape(shape[::-1]).transpose()
                return flat.reshape(shape)
    return _np_load(raw, exact=exact)


def _dtype(descr: bytes) -> np.dtype[Any] | None:
    """The dtype of a simple ``descr``, or None for one numpy refuses (np.load then says why)."""
    dtype = _dtypes.get(descr)
    if dtype is None:
        try:
            dtype = np.dtype(descr.decode("ascii"))
        except (TypeError, ValueError):
            return None
        if dtype.kind not in _SIMPLE_KINDS or dtype.itemsize == 0:
            return None
        # Bounded: the pattern admits few valid descriptors ('<f8', '|b1'...).
        _dtypes[descr] = dtype
    return dtype


def _np_save(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _np_load(raw: bytes, *, exact: bool = False) -> np.ndarray[Any, Any]:
    stream = io.BytesIO(raw)
    # Read the .npy header first: a few bytes may claim a huge shape, and np.load would
    # allocate it before finding the data missing.
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    # Object arrays are pickles, of no fixed size: np.load refuses them before reading them.
    if not dtype.hasobject:
        _check_size(shape, dtype, len(raw) - stream.tell(), exact=exact)
    stream.seek(0)
    array = np.load(stream, allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError("the data is not a single .npy array")
    return array


def _check_size(shape: tuple[int, ...], dtype: np.dtype[Any], size: int, *, exact: bool) -> None:
    """Refuse data of ``size`` bytes shorter than the header claims (or, ``exact``, longer)."""
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > size or (exact and claimed != size):
        relation = "shorter" if size < claimed else "longer"
        raise ValueError(
            f"the header claims shape {shape} of {dtype.str} ({claimed} bytes) "
            f"but the data is {relation} ({size} bytes)"
        )
