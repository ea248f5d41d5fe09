"""Sampler results whose counts are taken in numpy, not shot by shot in Python.

Qiskit's :class:`~qiskit.primitives.BitArray` builds ``get_counts()`` by turning every
shot into a string in a Python loop: ~1.5 ms for 1,024 shots of a Bell circuit, more
than the rest of a SamplerV2 job costs the client. :class:`CountingBitArray` is a
``BitArray`` (decoded results are this class; everything else about them is Qiskit's)
whose ``get_counts``, ``get_int_counts`` and ``get_bitstrings`` find the distinct
outcomes with one ``numpy.unique`` and convert only those. The answers are Qiskit's,
key for key and in the same order (the order in which outcomes first occur).

Arrays derived from one (indexing, ``slice_shots``, ``&``...) are Qiskit's own
``BitArray`` again: correct, with Qiskit's speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qiskit.primitives import BitArray

__all__ = ["CountingBitArray"]


class CountingBitArray(BitArray):  # type: ignore[misc]  # qiskit's class is untyped here
    """A ``BitArray`` that counts its outcomes in numpy (see the module's text)."""

    def _outcomes(self, loc: Any) -> tuple[list[int], np.ndarray, np.ndarray] | None:
        """The distinct outcomes at ``loc`` as ints in first-seen order, how often each
        occurs, and for each shot the position of its outcome in that list.

        None where Qiskit's loop does something other than one outcome per row (a ``loc``
        that leaves more than the shots and bytes axes) or there are no bytes to compare.
        """
        arr = self._array.reshape(-1, self._array.shape[-1]) if loc is None else self._array[loc]
        if arr.ndim != 2 or arr.shape[-1] == 0:
            return None
        width = arr.shape[-1]
        mask = np.frombuffer(((1 << self.num_bits) - 1).to_bytes(width, "big"), dtype=np.uint8)
        if width <= 8:  # each shot as one big-endian 64-bit integer: numpy sorts those fastest
            padded = np.zeros((arr.shape[0], 8), dtype=np.uint8)
            padded[:, 8 - width :] = arr & mask
            rows = padded.view(">u8").ravel()
        else:  # each shot as an opaque run of bytes (compared as big-endian numbers are)
            rows = np.ascontiguousarray(arr & mask).view(np.dtype((np.void, width))).ravel()
        found, first, inverse, counts = np.unique(
            rows, return_index=True, return_inverse=True, return_counts=True
        )
        order = np.argsort(first, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        if width <= 8:
            values = [int(found[i]) for i in order]
        else:
            values = [int.from_bytes(found[i].tobytes(), "big") for i in order]
        return values, counts[order], position[inverse.ravel()]

    def _bitstring(self, value: int) -> str:
        """An outcome as Qiskit writes it: ``num_bits`` binary digits."""
        return bin(value)[2:].zfill(self.num_bits)

    def _counted(self, loc: Any, key: Any) -> dict[Any, int] | None:
        """``{key(outcome): count}`` at ``loc``; None where Qiskit's own loop must count."""
        outcomes = self._outcomes(loc)
        if outcomes is None:
            return None
        values, counts, _ = outcomes
        return {key(v): int(n) for v, n in zip(values, counts, strict=True)}

    def get_counts(self, loc: int | tuple[int, ...] | None = None) -> dict[str, int]:
        counts = self._counted(loc, self._bitstring)
        return super().get_counts(loc) if counts is None else counts

    def get_int_counts(self, loc: int | tuple[int, ...] | None = None) -> dict[int, int]:
        counts = self._counted(loc, int)
        return super().get_int_counts(loc) if counts is None else counts

    def get_bitstrings(self, loc: int | tuple[int, ...] | None = None) -> list[str]:
        outcomes = self._outcomes(loc)
        if outcomes is None:
            return super().get_bitstrings(loc)  # type: ignore[no-any-return]
        values, _, shots = outcomes
        keys = [self._bitstring(v) for v in values]
        return [keys[i] for i in shots.tolist()]
