"""The ``.npy`` bytes of encoded arrays: exactly np.save's, read exactly as np.load reads them."""

from __future__ import annotations

import io
import struct
import warnings
from typing import Any

import numpy as np
import pytest

from qruntime import _npy
from qruntime._npy import load_array, save_array

DTYPES = [
    "?", "i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "u1", "<u2", ">u4", "<u8", ">u8",
    "<f2", "<f4", ">f4", "<f8", ">f8", "<c8", ">c8", "<c16", ">c16", np.longdouble,
    np.clongdouble, "<U3", "|S4", "<M8[ns]", "<m8[s]", "|V8",
    [("a", "<i4"), ("b", ">f8")],
]  # fmt: skip
SHAPES = [(), (0,), (1,), (5,), (2, 3), (3, 1), (2, 0, 3), (2, 3, 4), (1, 1, 1)]


def _arrays() -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    arrays = []
    for dtype in DTYPES:
        for shape in SHAPES:
            raw = rng.integers(0, 256, size=np.dtype(dtype).itemsize * int(np.prod(shape)))
            arrays.append(np.frombuffer(raw.astype(np.uint8).tobytes(), dtype=dtype).reshape(shape))
    base = np.arange(24, dtype="<f8").reshape(2, 3, 4) + 0.5
    arrays += [
        np.asfortranarray(base),
        np.asfortranarray(base.astype(">c16")),
        base[:, ::2],  # neither C- nor Fortran-contiguous
        base.transpose(1, 0, 2),
        np.asfortranarray(base)[:, :, ::3],
        np.array([np.nan, -np.inf, np.inf, -0.0]),
        np.array(True),
        np.array(1 + 2j),
        np.array([[True, False]], order="F"),
        np.zeros((4, 0), order="F"),
    ]
    return arrays


ARRAYS = _arrays()


def _np_save(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _same_array(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> None:
    assert type(actual) is type(expected)
    assert actual.dtype == expected.dtype
    assert actual.dtype.str == expected.dtype.str
    assert actual.shape == expected.shape
    assert actual.tobytes(order="A") == expected.tobytes(order="A")
    for flag in ("C_CONTIGUOUS", "F_CONTIGUOUS", "WRITEABLE", "OWNDATA", "ALIGNED"):
        assert actual.flags[flag] == expected.flags[flag], flag


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_saved_bytes_are_those_of_np_save_every_time(array: np.ndarray[Any, Any]) -> None:
    expected = _np_save(array)
    assert save_array(array) == expected
    assert save_array(array.copy(order="K")) == _np_save(array.copy(order="K"))
    assert save_array(array) == expected  # now from the kept header


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype.str}{a.shape}")
def test_loaded_array_is_what_np_load_returns(array: np.ndarray[Any, Any]) -> None:
    raw = _np_save(array)
    _same_array(load_array(raw), np.load(io.BytesIO(raw), allow_pickle=False))
    # Extra bytes after the data are ignored, as np.load ignores them.
    _same_array(load_array(raw + b"\0" * 9), np.load(io.BytesIO(raw), allow_pickle=False))


def test_loaded_array_does_not_share_the_payload_bytes() -> None:
    raw = _np_save(np.arange(4.0))
    array = load_array(raw)
    array[0] = 7.0
    assert load_array(raw)[0] == 0.0


def test_header_is_kept_per_dtype_order_and_shape_only_after_checking_it() -> None:
    array = np.arange(6, dtype=">i4").reshape(3, 2)
    save_array(array)
    header = _npy._headers[(">i4", False, (3, 2))]
    assert _np_save(array) == header + array.tobytes()
    save_array(np.asfortranarray(array))
    assert (">i4", True, (3, 2)) in _npy._headers


def test_arrays_numpy_cannot_save_without_pickle_are_refused_alike() -> None:
    array = np.array([1, "a"], dtype=object)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        save_array(array)


def test_a_subclass_of_ndarray_is_saved_as_numpy_saves_it() -> None:
    masked = np.ma.masked_array(np.arange(4.0), mask=[0, 1, 0, 0])
    assert save_array(masked) == _np_save(masked)


def _npy_bytes(header: str, data: bytes = b"", *, version: tuple[int, int] = (1, 0)) -> bytes:
    text = header.encode("latin1")
    size = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text + data


def _outcome(load: Any, raw: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns about Python 2 headers
        try:
            return load(raw)
        except Exception as exc:
            return type(exc), str(exc)


F8 = np.arange(6, dtype="<f8").tobytes()


def _header(
    shape: str = "(6,)", *, descr: str = "'<f8'", fortran: str = "False", end: str = " }\n"
) -> str:
    return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape},{end}"


@pytest.mark.parametrize(
    "raw",
    [
        _npy_bytes(_header(), F8),
        _npy_bytes(_header(), F8[:-1]),
        _npy_bytes(_header()),
        _npy_bytes(_header("(2, 3)", fortran="True"), F8),
        _npy_bytes(_header("(2, 3,)"), F8),
        _npy_bytes(_header("(6)"), F8),
        _npy_bytes(_header("(06,)"), F8),
        _npy_bytes(_header("(-6,)"), F8),
        _npy_bytes(_header("(6L,)"), F8),
        _npy_bytes(_header(fortran="0"), F8),
        _npy_bytes(_header(descr="'<f3'"), F8),
        _npy_bytes(_header(descr="'<b0'"), F8),
        _npy_bytes(_header(descr="'|O'"), F8),
        _npy_bytes(_header(end=" 'x': 1}\n"), F8),
        _npy_bytes("{'fortran_order': False, 'descr': '<f8', 'shape': (6,), }\n", F8),
        _npy_bytes(_header(end=" }"), F8),
        _npy_bytes(_header(end=" }\t\n"), F8),
        _npy_bytes(_header(end=" }" + " " * 10_000 + "\n")),
        _npy_bytes(_header(), F8, version=(2, 0)),
        _npy_bytes(_header("(0, 99999999999999999999)")),
        _npy_bytes(_header("(10000000, 10000000)")),
        _npy_bytes(_header(), F8)[:20],
        b"\x93NUMPY\x01\x00\xff",
        b"\x93NUMPY\x09\x00" + b"\0" * 80,
        b"PK\x03\x04" + b"\0" * 80,
        b"",
    ],
)
def test_any_header_reads_as_numpy_reads_it_or_fails_alike(raw: bytes) -> None:
    fast, reference = _outcome(load_array, raw), _outcome(_npy._np_load, raw)
    if isinstance(reference, np.ndarray):
        _same_array(fast, reference)
    else:
        assert fast == reference


def test_plain_numeric_arrays_are_read_without_numpys_header_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raws = [_np_save(a) for a in ARRAYS if a.dtype.kind in "biufc" and a.size]
    expected = [np.load(io.BytesIO(raw), allow_pickle=False) for raw in raws]
    monkeypatch.setattr(_npy, "_np_load", None)  # calling it would raise TypeError
    for raw, array in zip(raws, expected, strict=True):
        _same_array(load_array(raw), array)


def test_empty_arrays_are_read_without_numpys_header_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every PUB without parameters sends an empty array of values: the fast path reads it."""
    arrays = [np.zeros((0,)), np.zeros((4, 0)), np.zeros((0, 3), dtype="<i4", order="F")]
    raws = [_np_save(a) for a in arrays]
    expected = [np.load(io.BytesIO(raw), allow_pickle=False) for raw in raws]
    monkeypatch.setattr(_npy, "_np_load", None)  # calling it would raise TypeError
    for raw, array in zip(raws, expected, strict=True):
        _same_array(load_array(raw, exact=True), array)


def test_dtype_metadata_is_dropped_with_numpys_warning_every_time() -> None:
    array = np.zeros(3, dtype=np.dtype("<f8", metadata={}))
    for _ in range(2):
        with pytest.warns(UserWarning, match="metadata on a dtype"):
            assert save_array(array) == _np_save(array.astype("<f8"))
