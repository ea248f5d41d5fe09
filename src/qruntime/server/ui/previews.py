"""Readable previews of what a job holds: its result, inputs, interim results, metrics.

A result is decoded with the server's allow-listed decoder, under tight limits (a preview
is never worth much memory): a sampler's counts become a histogram drawn as inline SVG,
an estimator's expectation values a table with their standard deviations, a
circuit-runner result its counts; anything else is shown as JSON, cut short. A result
too large or not decodable is shown as JSON text, or named only; the raw download has it
all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from qruntime.encoding import DecodeLimits, loads
from qruntime.errors import QRuntimeError

__all__ = [
    "Preview",
    "histogram_svg",
    "inputs_summary",
    "interim_text",
    "metrics_rows",
    "preview_result",
]

#: Results longer than this are not decoded for a preview.
MAX_DECODED_TEXT = 8_000_000
_LIMITS = DecodeLimits(max_decoded_bytes=64_000_000, max_circuit_qubits=1_000)
#: Characters of JSON shown at most.
MAX_JSON_CHARS = 20_000
#: Characters of one interim result shown at most.
INTERIM_CHARS = 4_000
#: Bars of a histogram, and rows of an estimator table, at most.
MAX_BARS = 32
MAX_ROWS = 200
#: Pub results drawn at most (a sweep of many pubs shows its first ones).
MAX_PUBS = 8


@dataclass
class Preview:
    """What the result section shows: ``kind`` is histogram, estimator, json or none."""

    kind: str
    text: str = ""
    histograms: list[tuple[str, Markup, int]] = field(default_factory=list)
    tables: list[tuple[str, list[tuple[str, str, str]], int]] = field(default_factory=list)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text):,} characters in all: download the raw result)"


def interim_text(data: str) -> str:
    """An interim result as a page shows it: its JSON text, cut at `INTERIM_CHARS`."""
    return _cut(data, INTERIM_CHARS)


def histogram_svg(counts: Mapping[str, int], *, max_bars: int = MAX_BARS) -> tuple[Markup, int]:
    """Counts as horizontal bars, most frequent first: the SVG, and how many were left out."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown, rest = ranked[:max_bars], len(ranked) - max_bars
    total = sum(counts.values()) or 1
    top = max((count for _, count in shown), default=1) or 1
    label_chars = max((len(key) for key, _ in shown), default=1)
    label_width = min(8 + 7 * label_chars, 320)
    bar_space, row, width = 360, 18, label_width + 360 + 110
    height = row * len(shown) + 4
    parts = [
        f'<svg class="histogram" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>Counts of {len(counts)} outcomes, {sum(counts.values())} shots</title>",
    ]
    for index, (key, count) in enumerate(shown):
        y = index * row + 2
        bar = max(1.0, bar_space * count / top)
        label = escape(key if len(key) <= 44 else key[:41] + "...")
        parts.append(
            f'<g class="outcome" data-outcome="{escape(key)}" data-count="{count}">'
            f'<text x="{label_width - 6}" y="{y + 12}" text-anchor="end">{label}</text>'
            f'<rect class="bar" x="{label_width}" y="{y}" width="{bar:.1f}" height="{row - 4}"/>'
            f'<text x="{label_width + bar + 6:.1f}" y="{y + 12}">{count} '
            f"({100 * count / total:.1f}%)</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts)), max(rest, 0)


def _number(value: Any) -> str:
    number = complex(value)
    if number.imag:
        return f"{number.real:.6g}{number.imag:+.6g}j"
    return f"{number.real:.6g}"


def _primitive_preview(result: Any) -> Preview | None:
    """A `PrimitiveResult` of a sampler (counts) or an estimator (evs, stds)."""
    histograms: list[tuple[str, Markup, int]] = []
    tables: list[tuple[str, list[tuple[str, str, str]], int]] = []
    pubs = list(result)
    for index, pub in enumerate(pubs[:MAX_PUBS]):
        data = pub.data
        evs = getattr(data, "evs", None)
        if evs is not None:
            values = np.asarray(evs)
            stds = np.asarray(getattr(data, "stds", np.full(values.shape, np.nan)))
            if stds.shape != values.shape:
                stds = np.broadcast_to(stds, values.shape) if stds.size == 1 else stds
            rows = []
            for position in list(np.ndindex(values.shape))[:MAX_ROWS]:
                std = stds[position] if stds.shape == values.shape else float("nan")
                rows.append(
                    (
                        str(list(position)) if position else "—",
                        _number(values[position]),
                        _number(std),
                    )
                )
            tables.append((f"Pub {index}", rows, max(values.size - MAX_ROWS, 0)))
            continue
        for name in data:
            registers = getattr(data[name], "get_counts", None)
            if registers is None:
                continue
            svg, more = histogram_svg(registers())
            histograms.append((f"Pub {index}, register {name}", svg, more))
    if tables:
        return Preview(kind="estimator", tables=tables)
    if histograms:
        return Preview(kind="histogram", histograms=histograms)
    return None


def _runner_preview(result: Mapping[str, Any]) -> Preview | None:
    """A circuit-runner result (``Result.to_dict()``): each experiment's counts."""
    histograms = []
    for index, experiment in enumerate(list(result.get("results") or [])[:MAX_PUBS]):
        counts = ((experiment or {}).get("data") or {}).get("counts")
        if not isinstance(counts, dict):
            continue
        header = experiment.get("header") or {}
        width = int(header.get("memory_slots") or 0)
        bits = {}
        for key, count in counts.items():
            label = key
            if isinstance(key, str) and key.startswith("0x"):
                label = format(int(key, 16), f"0{width}b") if width else bin(int(key, 16))[2:]
            bits[str(label)] = int(count)
        svg, more = histogram_svg(bits)
        histograms.append((f"Circuit {index} ({header.get('name', '')})", svg, more))
    return Preview(kind="histogram", histograms=histograms) if histograms else None


def preview_result(text: str) -> Preview:
    """The preview of a job's result text (runtime-encoded JSON)."""
    if len(text) > MAX_DECODED_TEXT:
        return Preview(kind="none", text=f"The result has {len(text):,} characters: download it.")
    try:
        value = loads(text, limits=_LIMITS)
    except QRuntimeError:
        return Preview(kind="json", text=_cut(text, MAX_JSON_CHARS))
    kind = type(value).__name__
    preview: Preview | None = None
    try:
        if kind == "PrimitiveResult":
            preview = _primitive_preview(value)
        elif isinstance(value, dict) and "results" in value:
            preview = _runner_preview(value)
    except (TypeError, ValueError, KeyError, AttributeError):
        preview = None  # an unexpected shape: shown as JSON below
    if preview is not None:
        return preview
    try:
        shown = json.dumps(json.loads(text), indent=2)
    except ValueError:
        shown = text
    return Preview(kind="json", text=_cut(shown, MAX_JSON_CHARS))


def _summary(value: Any) -> str:
    if isinstance(value, dict):
        if "__type__" in value:
            return f"encoded {value['__type__']}"
        if not value:
            return "empty object"
        return f"object with {len(value)} field{'s' if len(value) != 1 else ''}: " + ", ".join(
            list(map(str, value))[:8]
        )
    if isinstance(value, list):
        kinds = sorted({_summary(item).split(":")[0] for item in value[:20]})
        return f"list of {len(value)}" + (f" ({'; '.join(kinds[:3])})" if value else "")
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


def inputs_summary(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Each input's name and a one-line description (types and sizes, not contents)."""
    return [(str(name), _summary(value)) for name, value in (params or {}).items()]


def metrics_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A job's metrics as (name, value) rows: nested fields named ``outer.inner``."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif value is None or value == {}:
            return
        elif isinstance(value, float):
            rows.append((prefix, f"{value:.6g}"))
        elif isinstance(value, list | dict):
            rows.append((prefix, _cut(json.dumps(value), 300)))
        else:
            rows.append((prefix, str(value)))

    walk("", metrics)
    return rows
