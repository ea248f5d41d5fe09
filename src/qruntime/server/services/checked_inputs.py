"""Inputs of built-in programs that passed their checks, remembered by content.

A job's inputs are checked before it is queued: every circuit (QPY) and array is
decoded under the server's limits, the program's JSON Schema is applied, and a
built-in primitive coerces and checks its PUBs. For a small job that is most of the
server's work, and a loop sends the same inputs again and again (the same PUBs, the
same shots). Built-in programs, the server's limits and its backends cannot change
while it runs, so inputs that passed once for a program and backend pass again:
`CheckedInputs` remembers them by a digest of their JSON text, and a repeat is
queued without decoding anything.

Only a user's own submissions count: the digest includes the user, so no user can
tell from a faster answer what another one submitted. Uploaded programs are never
remembered (their owner may update them).

Usage::

    checked = CheckedInputs()
    key = checked.key(user_id=user.id, program_id="sampler", backend="aer_simulator",
                      text=params)
    if not checked.holds(key):
        ...  # decode and check; raises when the inputs are refused
        checked.add(key)
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

__all__ = ["CheckedInputs"]

_DIGEST_BYTES = 16


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
