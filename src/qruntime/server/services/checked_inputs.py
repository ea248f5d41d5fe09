"""Inputs of built-in programs that passed their checks, remembered by content.

A job's inputs are checked before it is queued: every circuit (QPY) and array is
decoded under the server's limits, the program's JSON Schema is applied, and a
built-in primitive coerces and checks its PUBs. For a small job that is most of the
server's work, and a loop sends the same inputs again and again (the same PUBs, the
same shots). Built-in programs, the server's limits and its backends cannot change
while it runs, so inputs that passed once for a program and backend pass again:
`CheckedInputs` remembers them by a digest of their JSON text, and a repeat is
queued without decoding anything.

A variational loop sends the same circuit and observables with new parameter values
each time. What the checks conclude about a primitive's PUB depends on its parameter
values only through their shape and dtype (that the last axis matches the circuit's
parameters, that the shape broadcasts with the observables, that they read as
numbers). So for the built-in ``sampler`` and ``estimator``, `check_text` stands each
PUB's array of parameter values in for by its shape and dtype (decoded under the
server's limits): a loop's later submissions are decoded no further than their values.

Only a user's own submissions count: the digest includes the user, so no user can
tell from a faster answer what another one submitted. Uploaded programs are never
remembered (their owner may update them).

Usage::

    checked = CheckedInputs()
    text = check_text("sampler", inputs, params, limits=limits) or params
    key = checked.key(user_id=user.id, program_id="sampler", backend="aer_simulator",
                      text=text)
    if not checked.holds(key):
        ...  # decode and check; raises when the inputs are refused
        checked.add(key)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from qruntime.encoding import DecodeLimits, loads
from qruntime.errors import QRuntimeError

__all__ = ["CheckedInputs", "check_text"]

_DIGEST_BYTES = 16
# Where a built-in primitive's PUB holds its parameter values: [circuit, values, shots]
# and [circuit, observables, values, precision].
_VALUES_AT = {"sampler": 1, "estimator": 2}


def check_text(builtin: str | None, inputs: Any, text: str, *, limits: DecodeLimits) -> str | None:
    """What the checks of a built-in program's ``inputs`` (``text``, their JSON) depend on.

    ``text`` itself, but for the primitives: each PUB's parameter values, when they are
    an encoded array of real numbers, are replaced by null and their shape and dtype
    are listed apart (with the PUB's index: a PUB that sends null there reads
    differently).
    Arrays are decoded under ``limits``; None when one does not decode (the caller keys
    the inputs by ``text`` then, and the full checks refuse them with their own message,
    or decode them under wider limits).
    """
    at = _VALUES_AT.get(builtin or "")
    pubs = inputs.get("pubs") if at is not None and isinstance(inputs, dict) else None
    if at is None or not isinstance(pubs, list):
        return text
    skeleton: list[Any] = []
    shapes: list[list[Any]] = []
    for index, pub in enumerate(pubs):
        values = pub[at] if isinstance(pub, list) and len(pub) > at else None
        if not (isinstance(values, dict) and values.get("__type__") == "ndarray"):
            skeleton.append(pub)
            continue
        try:
            array = loads(json.dumps(values), limits=limits)
        except QRuntimeError:
            return None
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
            return text  # strings or complex numbers may read as numbers, or may not
        skeleton.append([*pub[:at], None, *pub[at + 1 :]])
        shapes.append([index, list(array.shape), array.dtype.str])
    if not shapes:
        return text
    return json.dumps([{**inputs, "pubs": skeleton}, shapes], separators=(",", ":"))


class CheckedInputs:
    """Digests of (user, program, backend, inputs) that passed every check; LRU, thread-safe.

    A digest is 16 bytes: the inputs themselves are never kept here.
    """

    def __init__(self, *, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max_entries = max_entries
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(*, user_id: str, program_id: str, backend: str, text: str) -> bytes:
        """The digest that stands for these inputs of this user, program and backend."""
        digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
        for part in (user_id, program_id, backend):
            encoded = part.encode()
            # Length-prefixed, so that no two different tuples read the same bytes.
            digest.update(len(encoded).to_bytes(4, "little"))
            digest.update(encoded)
        digest.update(text.encode())
        return digest.digest()

    def holds(self, key: bytes) -> bool:
        """Whether inputs with this digest passed before (and are remembered still)."""
        with self._lock:
            if key not in self._digests:
                return False
            self._digests.move_to_end(key)
            return True

    def add(self, key: bytes) -> None:
        """Remember that inputs with this digest passed every check."""
        with self._lock:
            self._digests[key] = None
            self._digests.move_to_end(key)
            while len(self._digests) > self._max_entries:
                self._digests.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._digests)
