"""A walk over QPY bytes that refuses, before ``qpy.load`` reads them, what would blow up.

``qpy.load`` trusts the counts a QPY file declares: a circuit header claiming four million
qubits (a few bytes changed in a Bell circuit) makes it build four million qubits, which takes
gigabytes and most of a minute, and a file claiming 2**40 circuits has Qiskit's Rust reader
reserve room for them. This module reads the structure Qiskit documents (the ``qiskit.qpy``
module docstring and ``qiskit/qpy/formats.py``) without building anything, and refuses:

- a file that does not hold exactly one circuit, or that is of a QPY version it cannot check
  (older than 10, which Qiskit 0.45 introduced, or newer than 18);
- a circuit, nested circuit (control-flow block, custom gate definition), register or custom
  instruction declaring more than ``max_qubits`` qubits or clbits;
- a count (registers, variables, custom instructions, instructions, parameters...) or a size
  that the bytes present cannot hold: each item takes at least a fixed number of bytes, so a
  larger count is a lie, and is refused before anything loops over it.

What it does not read (the calibrations and layout trailers, the payloads of parameters other
than circuits and tuples) Qiskit reads element by element, failing at the end of the data.
The walk is linear in the size of the data and allocates nothing in proportion to it.
"""

from __future__ import annotations

import struct

__all__ = ["NEWEST_CHECKED_VERSION", "OLDEST_CHECKED_VERSION", "QpyRefusedError", "check_qpy"]

#: The QPY versions whose layout this module knows; others are refused, never loaded unchecked.
OLDEST_CHECKED_VERSION = 10
NEWEST_CHECKED_VERSION = 18

# qpy.load gives up at a tenth of the recursion limit (100 by default); so does this walk.
_MAX_DEPTH = 100

_FILE_HEADER = struct.Struct("!6sBBBBQc")  # magic, version, Qiskit's, circuits, symbol encoding
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_HEADER_V2 = struct.Struct("!HcHIIQIQ")  # versions 10 and 11
_HEADER_V12 = struct.Struct("!HcHIIQIQI")  # from 12: the number of standalone variables too
_REGISTER_V4 = struct.Struct("!c?IH?")  # type, standalone, size, name size, in circuit
_REGISTER_V18 = struct.Struct("!c?IH?B")  # ... and whether the bits are contiguous
_VAR = struct.Struct("!16scHc")  # uuid, usage, name size, then the type's first byte
_ANNOTATION_STATE = struct.Struct("!IQ")  # namespace size, state size
_VECTOR = struct.Struct("!HQ16s")  # name size, vector size, uuid (version 18's vector table)
_CUSTOM = struct.Struct("!HcII?QIIQ")  # name size, type, qubits, clbits, has definition...
_INSTRUCTION = struct.Struct("!HHHIIBHqII")
_PARAM = struct.Struct("!cQ")  # type, size
_ANNOTATION = struct.Struct("!IQ")  # namespace index, payload size
_ARG_SIZE = 5  # type, index
_INT_TYPE = b"u"  # the only variable type with a payload: its width (uint32)
_OTHER_TYPES = frozenset(b"bfd")
_PAULI_EVOLUTION = b"###PauliEvolutionGate_"


class QpyRefusedError(ValueError):
    """Raised when QPY data is refused before loading; the message says what was refused."""


def check_qpy(data: bytes, *, max_qubits: int) -> None:
    """Refuse ``data`` unless it is one circuit whose declared sizes are honest and in bounds.

    Raises ``QpyRefusedError`` (the runtime decoder turns it into an ``InputValueError``).
    """
    _Walk(data, max_qubits=max_qubits).file()


class _Walk:
    """One pass over a QPY file; each method reads from ``pos`` up to ``end``."""

    __slots__ = ("buf", "max_qubits", "version")

    def __init__(self, buf: bytes, *, max_qubits: int) -> None:
        self.buf = buf
        self.max_qubits = max_qubits
        self.version = 0

    def file(self) -> None:
        buf = self.buf
        if len(buf) < 7 or buf[:6] != b"QISKIT":
            raise QpyRefusedError("the data does not start as a QPY file does")
        version = self.version = buf[6]
        if not OLDEST_CHECKED_VERSION <= version <= NEWEST_CHECKED_VERSION:
            raise QpyRefusedError(
                f"QPY version {version} cannot be checked by this server, which reads "
                f"versions {OLDEST_CHECKED_VERSION} to {NEWEST_CHECKED_VERSION} "
                "(Qiskit 0.45 and later write them)"
            )
        end = len(buf)
        pos = _need(0, _FILE_HEADER.size + 1, end, "the file header")
        num_circuits = _FILE_HEADER.unpack_from(buf, 0)[5]
        if buf[_FILE_HEADER.size : pos] != b"q":
            raise QpyRefusedError("the file holds no circuit")
        if num_circuits != 1:
            raise QpyRefusedError(
                f"expected exactly one circuit in the QPY data, not {num_circuits}"
            )
        if version >= 16:  # a table of where each circuit starts
            start = pos
            pos = _need(pos, _U64.size, end, "the circuit table")
            if _U64.unpack_from(buf, start)[0] != pos:
                raise QpyRefusedError("the circuit does not start where the circuit table says")
        self.circuit(pos, end, 0)

    def circuit(self, pos: int, end: int, depth: int) -> None:
        """Check one circuit payload up to its instructions (the trailers are not read)."""
        if depth > _MAX_DEPTH:
            raise QpyRefusedError(f"circuits are nested more than {_MAX_DEPTH} deep")
        buf, version = self.buf, self.version
        header = _HEADER_V12 if version >= 12 else _HEADER_V2
        start, pos = pos, _need(pos, header.size, end, "a circuit header")
        fields = header.unpack_from(buf, start)
        name_size, _, phase_size, qubits, clbits, metadata_size = fields[:6]
        num_registers, num_instructions = fields[6:8]
        num_vars = fields[8] if version >= 12 else 0
        self._bits(qubits, "qubits", "a circuit")
        self._bits(clbits, "clbits", "a circuit")
        pos = _need(pos, name_size + phase_size, end, "the circuit's name and global phase")
        pos = _need(pos, metadata_size, end, "the circuit's metadata")
        pos = self._registers(pos, end, num_registers)
        pos = self._variables(pos, end, num_vars)
        if version >= 15:  # annotation namespaces and their serialiser states
            count, pos = _count(buf, pos, end, _U32, _ANNOTATION_STATE.size, "annotation states")
            for _ in range(count):
                start, pos = pos, _need(pos, _ANNOTATION_STATE.size, end, "an annotation state")
                namespace_size, state_size = _ANNOTATION_STATE.unpack_from(buf, start)
                pos = _need(pos, namespace_size + state_size, end, "an annotation state")
        if version >= 18:  # each parameter vector once; its size is not allocated by Qiskit
            count, pos = _count(buf, pos, end, _U16, _VECTOR.size, "parameter vectors")
            for _ in range(count):
                start, pos = pos, _need(pos, _VECTOR.size, end, "a parameter vector")
                pos = _need(pos, _VECTOR.unpack_from(buf, start)[0], end, "a parameter vector")
        pos = self._custom_instructions(pos, end, depth)
        if num_instructions > (end - pos) // _INSTRUCTION.size:
            raise QpyRefusedError(
                f"the circuit declares {num_instructions} instructions, more than its "
                f"{end - pos} remaining bytes can hold"
            )
        for _ in range(num_instructions):
            pos = self.instruction(pos, end, depth)

    def instruction(self, pos: int, end: int, depth: int, *, bits: bool = True) -> int:
        """Check one instruction; returns where the next one starts.

        A custom gate's base gate is written without its qubits and clbits (``bits=False``):
        both of Qiskit's readers skip them there, whatever the counts say.
        """
        buf = self.buf
        start = pos
        pos += _INSTRUCTION.size
        if pos > end:
            raise QpyRefusedError("the data ends inside an instruction")
        (name_size, label_size, num_params, qargs, cargs, extras, register_size) = (
            _INSTRUCTION.unpack_from(buf, start)[:7]
        )
        pos += name_size + label_size + register_size
        condition = extras & 0b11
        # Qiskit's Python reader (before version 13) always skips the register bytes, its Rust
        # reader only for a register condition: honest files agree, others are refused.
        if register_size and condition != 1:
            raise QpyRefusedError("an instruction names a condition register it does not use")
        if condition == 2:  # an expression, as one parameter
            pos = self.param(pos, end, depth)
        elif condition == 3:
            raise QpyRefusedError("an instruction has an unknown kind of condition")
        if bits:
            pos += (qargs + cargs) * _ARG_SIZE
        if pos > end:
            raise QpyRefusedError("the data ends inside an instruction")
        if num_params:
            if num_params > (end - pos) // _PARAM.size:
                raise QpyRefusedError("an instruction declares more parameters than the data holds")
            for _ in range(num_params):
                pos = self.param(pos, end, depth)
        if extras & 0x80:  # annotations
            count, pos = _count(buf, pos, end, _U32, _ANNOTATION.size, "annotations")
            for _ in range(count):
                start, pos = pos, _need(pos, _ANNOTATION.size, end, "an annotation")
                pos = _need(pos, _ANNOTATION.unpack_from(buf, start)[1], end, "an annotation")
        return pos

    def param(self, pos: int, end: int, depth: int) -> int:
        """Check one typed value; circuits and tuples (of blocks, of cases) are looked into."""
        start, pos = pos, _need(pos, _PARAM.size, end, "a parameter")
        kind, size = _PARAM.unpack_from(self.buf, start)
        start, pos = pos, _need(pos, size, end, "a parameter")
        if kind == b"q":
            self.circuit(start, pos, depth + 1)
        elif kind == b"t":
            count, inner = _count(self.buf, start, pos, _U64, _PARAM.size, "tuple items")
            for _ in range(count):
                inner = self.param(inner, pos, depth + 1)
        return pos

    def _registers(self, pos: int, end: int, count: int) -> int:
        buf = self.buf
        v18 = self.version >= 18
        header = _REGISTER_V18 if v18 else _REGISTER_V4
        if count > (end - pos) // header.size:
            raise QpyRefusedError(
                f"the circuit declares {count} registers, more than the data holds"
            )
        for _ in range(count):
            start, pos = pos, _need(pos, header.size, end, "a register")
            fields = header.unpack_from(buf, start)
            size, name_size = fields[2], fields[3]
            self._bits(size, "bits", "a register")
            if v18:
                contiguous = fields[5]
                if contiguous not in (0, 1):
                    raise QpyRefusedError("a register has an unknown kind of bit list")
                indices = 4 if contiguous else 4 * size  # the first index, or each (uint32)
            else:
                indices = 8 * size  # each index (int64)
            pos = _need(pos, name_size + indices, end, "a register")
        return pos

    def _variables(self, pos: int, end: int, count: int) -> int:
        buf = self.buf
        if count > (end - pos) // _VAR.size:
            raise QpyRefusedError(
                f"the circuit declares {count} variables, more than the data holds"
            )
        for _ in range(count):
            start, pos = pos, _need(pos, _VAR.size, end, "a variable")
            _, _, name_size, kind = _VAR.unpack_from(buf, start)
            if kind == _INT_TYPE:
                pos += 4
            elif kind[0] not in _OTHER_TYPES:
                raise QpyRefusedError(f"a variable has an unknown type {kind!r}")
            pos = _need(pos, name_size, end, "a variable")
        return pos

    def _custom_instructions(self, pos: int, end: int, depth: int) -> int:
        buf = self.buf
        count, pos = _count(buf, pos, end, _U64, _CUSTOM.size, "custom instructions")
        for _ in range(count):
            start, pos = pos, _need(pos, _CUSTOM.size, end, "a custom instruction")
            (name_size, kind, qubits, clbits, has_definition, size, _, _, base_size) = (
                _CUSTOM.unpack_from(buf, start)
            )
            self._bits(qubits, "qubits", "a custom instruction")
            self._bits(clbits, "clbits", "a custom instruction")
            if size and not has_definition:
                # Qiskit's Python reader skips a definition's bytes only when it has one.
                raise QpyRefusedError(
                    "a custom instruction without a definition has definition bytes"
                )
            name_start, pos = pos, _need(pos, name_size, end, "a custom instruction")
            definition, pos = pos, _need(pos, size, end, "a custom instruction's definition")
            pauli = kind == b"p" and buf.startswith(_PAULI_EVOLUTION, name_start, pos)
            if has_definition and not pauli:  # any other definition is a circuit
                self.circuit(definition, pos, depth + 1)
            base, pos = pos, _need(pos, base_size, end, "a custom instruction's base gate")
            if base_size:  # the base gate of a controlled gate: an instruction
                self.instruction(base, pos, depth + 1, bits=False)
        return pos

    def _bits(self, count: int, kind: str, what: str) -> None:
        if count > self.max_qubits:
            raise QpyRefusedError(
                f"{what} declares {count} {kind}; this server accepts at most {self.max_qubits}"
            )


def _need(pos: int, size: int, end: int, what: str) -> int:
    """``pos + size``, refusing a ``size`` the data between ``pos`` and ``end`` cannot hold."""
    if size > end - pos:
        raise QpyRefusedError(f"{what} claims {size} bytes, more than the {end - pos} left")
    return pos + size


def _count(
    buf: bytes, pos: int, end: int, field: struct.Struct, item_size: int, what: str
) -> tuple[int, int]:
    """A count read at ``pos`` and where its items start, refusing more than the data holds."""
    start, pos = pos, _need(pos, field.size, end, f"the number of {what}")
    count: int = field.unpack_from(buf, start)[0]
    if count > (end - pos) // item_size:
        raise QpyRefusedError(
            f"{count} {what} declared, more than the {end - pos} bytes left can hold"
        )
    return count, pos
