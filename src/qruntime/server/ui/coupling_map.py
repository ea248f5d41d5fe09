"""A backend's coupling map as an inline SVG, and its calibration as table rows.

Both are drawn on the server from the backend's IBM ``configuration`` and ``properties``
documents (what ``/backends/{name}/configuration`` and ``/properties`` serve), so the
page needs no JavaScript and no plotting library.

IBM's documents carry no qubit coordinates: :mod:`~qruntime.server.ui.chip_layout`
computes them (heavy-hex and square chips come out in rows, as IBM draws them).

Usage::

    calibration = read_calibration(properties, num_qubits=27)
    svg = coupling_map_svg(configuration["coupling_map"], calibration, colour_by="t1")
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Literal

from qruntime.server.ui.chip_layout import coupling_edges, layout

__all__ = [
    "COLOUR_BY",
    "Calibration",
    "PairCalibration",
    "QubitCalibration",
    "coupling_map_svg",
    "read_calibration",
]

ColourBy = Literal["readout_error", "t1"]
#: What the qubits can be coloured by: value -> label of the page's selector.
COLOUR_BY: dict[str, str] = {"readout_error": "Readout error", "t1": "T1"}

# Drawing units: one unit of layout distance (about one coupling) is this many pixels.
_SCALE = 46.0
_RADIUS = 13.0
_MARGIN = 24.0
_LEGEND_HEIGHT = 64.0
_MISSING = "#9aa0a6"  # no value: grey, named in the legend
# Good to bad: green, yellow, orange, red (readable on white, distinct for most
# colour-vision deficiencies because lightness falls along the scale as well).
_STOPS = ((0.0, (26, 152, 80)), (0.35, (166, 217, 106)), (0.6, (254, 224, 139)),
          (0.8, (244, 109, 67)), (1.0, (165, 0, 38)))  # fmt: skip


@dataclass(frozen=True)
class QubitCalibration:
    """One qubit's calibration; ``None`` where the properties document has no value."""

    index: int
    t1_us: float | None = None
    t2_us: float | None = None
    frequency_ghz: float | None = None
    readout_error: float | None = None
    #: Single-qubit gate name -> error (``sx``, ``x``, ...).
    gate_errors: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PairCalibration:
    """The two-qubit gates on one coupling, in either direction."""

    qubits: tuple[int, int]  # the lower index first
    #: (gate name, directed qubits, error or None, length in ns or None), one per gate.
    gates: tuple[tuple[str, tuple[int, int], float | None, float | None], ...]

    @property
    def error(self) -> float | None:
        """The lowest error of the pair's gates: the one a transpiler would choose."""
        errors = [error for _, _, error, _ in self.gates if error is not None]
        return min(errors) if errors else None


@dataclass(frozen=True)
class Calibration:
    """What the dashboard shows of a properties document."""

    qubits: tuple[QubitCalibration, ...]
    pairs: tuple[PairCalibration, ...]
    #: Single-qubit gate names found, in a stable order (the table's columns).
    gate_names: tuple[str, ...]
    last_update: str | None = None


def _value(parameters: Iterable[dict[str, Any]], name: str) -> float | None:
    for item in parameters:
        if item.get("name") == name and isinstance(item.get("value"), int | float):
            return float(item["value"])
    return None


def _in_unit(value: float | None, unit: str, *, base: str) -> float | None:
    """``value`` given in ``unit`` converted to ``base`` (``us`` or ``GHz``)."""
    if value is None:
        return None
    factors = {
        "us": {"s": 1e6, "ms": 1e3, "us": 1.0, "µs": 1.0, "ns": 1e-3},
        "GHz": {"Hz": 1e-9, "kHz": 1e-6, "MHz": 1e-3, "GHz": 1.0},
    }[base]
    return value * factors.get(unit, 1.0)


def _parameter(parameters: list[dict[str, Any]], name: str, *, base: str) -> float | None:
    unit = next((str(p.get("unit", "")) for p in parameters if p.get("name") == name), base)
    return _in_unit(_value(parameters, name), unit, base=base)


def read_calibration(properties: dict[str, Any] | None, *, num_qubits: int) -> Calibration:
    """The calibration in IBM's ``properties`` document (none for an ideal simulator)."""
    if not properties:
        return Calibration(tuple(QubitCalibration(q) for q in range(num_qubits)), (), ())
    single: dict[int, dict[str, float]] = {}
    gate_names: list[str] = []
    by_pair: dict[tuple[int, int], list[tuple[str, tuple[int, int], float | None, float | None]]]
    by_pair = {}
    for gate in properties.get("gates", []):
        qubits, parameters = gate.get("qubits", []), gate.get("parameters", [])
        name = str(gate.get("gate", ""))
        error = _value(parameters, "gate_error")
        if len(qubits) == 1 and error is not None and name not in ("id", "reset", "delay"):
            single.setdefault(int(qubits[0]), {})[name] = error
            if name not in gate_names:
                gate_names.append(name)
        elif len(qubits) == 2:
            a, b = int(qubits[0]), int(qubits[1])
            length = _value(parameters, "gate_length")
            by_pair.setdefault((min(a, b), max(a, b)), []).append((name, (a, b), error, length))
    qubits = []
    for index in range(num_qubits):
        rows = properties["qubits"][index] if index < len(properties.get("qubits", [])) else []
        qubits.append(
            QubitCalibration(
                index=index,
                t1_us=_parameter(rows, "T1", base="us"),
                t2_us=_parameter(rows, "T2", base="us"),
                frequency_ghz=_parameter(rows, "frequency", base="GHz"),
                readout_error=_value(rows, "readout_error"),
                gate_errors=single.get(index, {}),
            )
        )
    pairs = tuple(PairCalibration(pair, tuple(gates)) for pair, gates in sorted(by_pair.items()))
    return Calibration(
        tuple(qubits), pairs, tuple(gate_names), properties.get("last_update_date") or None
    )


def _colour(fraction: float) -> str:
    """The scale's colour at ``fraction`` in [0, 1] (0 is good, 1 is bad)."""
    fraction = min(max(fraction, 0.0), 1.0)
    for (low, a), (high, b) in itertools.pairwise(_STOPS):
        if fraction <= high:
            t = (fraction - low) / (high - low)
            return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))
    return "#" + "".join(f"{x:02x}" for x in _STOPS[-1][1])


@dataclass(frozen=True)
class _Scale:
    """Maps values to colours, between the lowest and highest value shown."""

    low: float
    high: float
    higher_is_better: bool

    @classmethod
    def of(cls, values: Iterable[float | None], *, higher_is_better: bool) -> _Scale | None:
        present = [v for v in values if v is not None and math.isfinite(v)]
        if not present:
            return None
        return cls(min(present), max(present), higher_is_better)

    def colour(self, value: float | None) -> str:
        if value is None:
            return _MISSING
        span = self.high - self.low
        fraction = (value - self.low) / span if span > 0 else 0.0
        return _colour(1.0 - fraction if self.higher_is_better else fraction)


def _fmt(value: float | None, unit: str = "", *, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value * 100:.{digits - 1}f}%"
    return f"{value:.{digits}g}{(' ' + unit) if unit else ''}"


def _qubit_title(qubit: QubitCalibration) -> str:
    parts = [
        f"Qubit {qubit.index}",
        f"T1 {_fmt(qubit.t1_us, 'µs')}",
        f"T2 {_fmt(qubit.t2_us, 'µs')}",
        f"frequency {_fmt(qubit.frequency_ghz, 'GHz', digits=4)}",
        f"readout error {_fmt(qubit.readout_error, '%')}",
    ]
    parts += [f"{name} error {_fmt(error, '%')}" for name, error in qubit.gate_errors.items()]
    return "; ".join(parts)


def _pair_title(pair: PairCalibration) -> str:
    a, b = pair.qubits
    gates = [
        f"{name} {x}→{y}: error {_fmt(error, '%')}, {_fmt(length, 'ns')}"
        for name, (x, y), error, length in pair.gates
    ]
    return f"Qubits {a}-{b}" + ("; " + "; ".join(gates) if gates else "")


def _legend_bar(x: float, y: float, label: str, scale: _Scale | None, unit: str, key: str) -> str:
    """A gradient bar from good to bad with the values at its ends."""
    width = 170.0
    if scale is None:
        return (
            f'<text x="{x:.1f}" y="{y + 12:.1f}" class="cm-legend-label">{escape(label)}: '
            "no data</text>"
        )
    stops = "".join(
        f'<stop offset="{offset:.2f}" stop-color="{_colour(offset)}"/>' for offset, _ in _STOPS
    )
    good, bad = (scale.high, scale.low) if scale.higher_is_better else (scale.low, scale.high)
    as_percent = unit == "%"
    good_text = _fmt(good, "%" if as_percent else unit)
    bad_text = _fmt(bad, "%" if as_percent else unit)
    return (
        f'<linearGradient id="cm-grad-{key}">{stops}</linearGradient>'
        f'<text x="{x:.1f}" y="{y + 10:.1f}" class="cm-legend-label">{escape(label)}</text>'
        f'<rect x="{x:.1f}" y="{y + 16:.1f}" width="{width:.0f}" height="10" '
        f'fill="url(#cm-grad-{key})" stroke="#555" stroke-width="0.5"/>'
        f'<text x="{x:.1f}" y="{y + 40:.1f}" class="cm-legend-value">{escape(good_text)} '
        "(best)</text>"
        f'<text x="{x + width:.1f}" y="{y + 40:.1f}" text-anchor="end" '
        f'class="cm-legend-value">{escape(bad_text)}</text>'
    )


def coupling_map_svg(
    coupling_map: Iterable[Sequence[int]] | None,
    calibration: Calibration,
    *,
    colour_by: str = "readout_error",
    title: str = "Coupling map",
) -> str:
    """The coupling map as an ``<svg>`` element: a circle per qubit coloured by
    ``colour_by`` (``readout_error`` or ``t1``), a line per coupling coloured by its best
    two-qubit gate error, a ``<title>`` tooltip on each, and a legend below.

    Every text from the documents is escaped: the SVG is safe to put in a page as is.
    """
    num_qubits = len(calibration.qubits)
    by = "t1" if colour_by == "t1" else "readout_error"
    pos = layout(num_qubits, coupling_map) * _SCALE + _MARGIN + _RADIUS
    width = max(float(pos[:, 0].max()) + _MARGIN + _RADIUS, 440.0) if num_qubits else 440.0
    height = (float(pos[:, 1].max()) + _MARGIN + _RADIUS) if num_qubits else _MARGIN
    qubit_values = [q.t1_us if by == "t1" else q.readout_error for q in calibration.qubits]
    qubit_scale = _Scale.of(qubit_values, higher_is_better=by == "t1")
    pairs = {pair.qubits: pair for pair in calibration.pairs}
    edge_scale = _Scale.of((p.error for p in calibration.pairs), higher_is_better=False)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="coupling-map" role="img" '
        f'viewBox="0 0 {width:.0f} {height + _LEGEND_HEIGHT:.0f}" '
        f'width="{width:.0f}" data-colour-by="{by}" aria-labelledby="cm-title">',
        f'<title id="cm-title">{escape(title)}: {num_qubits} qubits, coloured by '
        f"{escape(COLOUR_BY[by].lower())}</title>",
        '<g class="cm-edges">',
    ]
    for a, b in coupling_edges(coupling_map, num_qubits):
        pair = pairs.get((a, b), PairCalibration((a, b), ()))
        colour = edge_scale.colour(pair.error) if edge_scale else _MISSING
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(
            f'<g class="edge" data-qubits="{a}-{b}"><title>{escape(_pair_title(pair))}</title>'
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{colour}" stroke-width="6" stroke-linecap="round"/></g>'
        )
    parts.append('</g><g class="cm-qubits">')
    for qubit, value in zip(calibration.qubits, qubit_values, strict=True):
        x, y = pos[qubit.index]
        colour = qubit_scale.colour(value) if qubit_scale else _MISSING
        parts.append(
            f'<g class="qubit" data-qubit="{qubit.index}">'
            f"<title>{escape(_qubit_title(qubit))}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_RADIUS:.0f}" fill="{colour}" '
            'stroke="#333" stroke-width="1"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{qubit.index}</text></g>'
        )
    parts.append("</g>")
    legend_y = height + 6
    parts.append('<g class="cm-legend">')
    unit = "%" if by == "readout_error" else "µs"
    parts.append(_legend_bar(_MARGIN, legend_y, f"Qubits: {COLOUR_BY[by]}", qubit_scale, unit, "q"))
    parts.append(
        _legend_bar(_MARGIN + 220, legend_y, "Couplings: 2-qubit error", edge_scale, "%", "e")
    )
    parts.append("</g></svg>")
    return "".join(parts)
