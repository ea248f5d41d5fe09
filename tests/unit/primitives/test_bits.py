"""CountingBitArray answers exactly as Qiskit's BitArray, key for key and in order."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from qiskit.primitives import BitArray

from qruntime.encoding import RuntimeDecoder, RuntimeEncoder
from qruntime.primitives.bits import CountingBitArray


def _pair(array: np.ndarray, num_bits: int) -> tuple[BitArray, CountingBitArray]:
    return BitArray(array.copy(), num_bits), CountingBitArray(array.copy(), num_bits)


def _same(qiskit: BitArray, ours: CountingBitArray, loc: object = None) -> None:
    for method in ("get_counts", "get_int_counts", "get_bitstrings"):
        expected = getattr(qiskit, method)(loc)
        got = getattr(ours, method)(loc)
        assert got == expected, method
        if isinstance(expected, dict):
            assert list(got) == list(expected), f"{method}: order of first occurrence"
            assert all(type(n) is int for n in got.values())


@pytest.mark.parametrize("num_bits", [1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 130])
def test_random_shots_count_as_qiskit_counts_them(num_bits: int) -> None:
    rng = np.random.default_rng(num_bits)
    width = (num_bits + 7) // 8
    # Stray bits above num_bits in the first byte (Qiskit masks them away) included.
    array = rng.integers(0, 256, size=(3, 2, 200, width), dtype=np.uint8)
    array[..., 1::3, :] = array[..., :1, :]  # repeated outcomes, so counts exceed one
    qiskit, ours = _pair(array, num_bits)
    _same(qiskit, ours)
    for loc in [(0, 0), (2, 1), (1, -1)]:
        _same(qiskit, ours, loc)


def test_a_bell_distribution_from_a_sampler_counts_the_same() -> None:
    rng = np.random.default_rng(7)
    array = rng.choice(np.array([0, 3], dtype=np.uint8), size=(1024, 1))
    qiskit, ours = _pair(array, 2)
    _same(qiskit, ours)
    assert set(ours.get_counts()) == {"00", "11"}
    assert sum(ours.get_counts().values()) == 1024


def test_a_loc_that_keeps_more_than_one_row_per_shot_behaves_as_qiskit() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4, 1)
    qiskit, ours = _pair(array, 5)
    _same(qiskit, ours, 0)  # (3, 4, 1): Qiskit joins rows; ours defers to Qiskit


def test_no_shots_and_no_bits() -> None:
    qiskit, ours = _pair(np.zeros((0, 1), dtype=np.uint8), 3)
    _same(qiskit, ours)
    assert ours.get_counts() == {}
    qiskit, ours = _pair(np.zeros((4, 0), dtype=np.uint8), 0)
    for array in (qiskit, ours):  # Qiskit cannot count zero-bit shots; neither do we
        with pytest.raises(ValueError, match="cannot reshape"):
            array.get_counts()


def test_it_is_a_bitarray_and_derived_arrays_are_qiskits() -> None:
    ours = CountingBitArray(np.array([[1], [2], [1]], dtype=np.uint8), 2)
    assert isinstance(ours, BitArray)
    assert ours == BitArray(np.array([[1], [2], [1]], dtype=np.uint8), 2)
    sliced = ours.slice_shots([0, 2])
    assert sliced.get_counts() == {"01": 2}
    assert pickle.loads(pickle.dumps(ours)).get_counts() == {"01": 2, "10": 1}
    with pytest.raises(ValueError, match="bytes per shot"):
        CountingBitArray(np.zeros((2, 2), dtype=np.uint8), 3)


def test_decoded_results_are_counting_bit_arrays() -> None:
    array = np.array([[3], [0], [3], [3]], dtype=np.uint8)
    text = json.dumps(BitArray(array, 2), cls=RuntimeEncoder)
    decoded = json.loads(text, cls=RuntimeDecoder)
    assert isinstance(decoded, CountingBitArray)
    assert decoded.get_counts() == {"11": 3, "00": 1}
    # Re-encoded, it is the same wire value as Qiskit's.
    assert json.loads(json.dumps(decoded, cls=RuntimeEncoder)) == json.loads(text)
