"""Tiny requests that used to freeze the server: shared by the benchmark and the tests.

Each builder returns what a hostile client sends; the server must refuse each one
quickly, with a 4xx, and stay responsive and small while it does.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, qpy

MB = 1 << 20
GB = 1 << 30
#: A pattern that backtracks catastrophically under Python's `re`, and an input for it.
REDOS_PATTERN = "^(a+)+$"
REDOS_INPUT = "a" * 30 + "!"


def typed(type_name: str, value: Any) -> dict[str, Any]:
    return {"__type__": type_name, "__value__": value}


def qpy_header_bomb(qubits: int = 4_000_000) -> dict[str, Any]:
    """A Bell circuit whose QPY circuit header claims ``qubits`` qubits (84 bytes changed)."""
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    raw = buffer.getvalue()
    marker = b"f\x00\x08" + struct.pack("!II", 2, 2)  # phase type and size, qubits, clbits
    assert raw.count(marker) == 1
    at = raw.index(marker) + 3
    bomb = raw[:at] + struct.pack("!I", qubits) + raw[at + 4 :]
    return typed("QuantumCircuit", base64.b64encode(zlib.compress(bomb)).decode("ascii"))


def zlib_array_bomb(size: int = GB) -> dict[str, Any]:
    """An ndarray of ``size`` bytes of zeros, sent as a thousandth of that.

    Built without compressing them all: after a full flush deflate restarts from nothing,
    so each megabyte of zeros compresses to the same bytes, and the checksum is computed.
    """
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (size // 8,)}
    )
    prefix = header.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(MB)) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = head + block * (size // MB) + deflate.flush()
    checksum = zlib.adler32(prefix)
    low, high = checksum & 0xFFFF, ((checksum >> 16) + size * (checksum & 0xFFFF)) % 65521
    data = b"\x78\xda" + body + struct.pack("!I", (high << 16) | low)
    return typed("ndarray", base64.b64encode(data).decode("ascii"))


def endless_body(total: int, *, chunk: int = MB) -> Iterator[bytes]:
    """``total`` bytes in chunks, sent without a Content-Length (chunked encoding)."""
    block = b"x" * chunk
    for _ in range(total // chunk):
        yield block
