"""The coupling map: its layout and its SVG, from the catalogue's own documents."""

from __future__ import annotations

import re

import numpy as np
import pytest

from qruntime.backends.catalogue import Catalogue, builtin_specs
from qruntime.backends.devices import BUILTIN_DEVICES
from qruntime.server.ui.chip_layout import coupling_edges, layout
from qruntime.server.ui.coupling_map import coupling_map_svg, read_calibration


@pytest.fixture(scope="module")
def falcon() -> tuple[dict, dict]:
    entry = Catalogue.from_specs(builtin_specs()).get("fake_27q")
    return entry.configuration(), entry.properties()


def test_heavy_hex_27_is_drawn_in_rows_as_ibm_draws_falcon() -> None:
    pos = layout(27, BUILTIN_DEVICES["fake_27q"].edges)
    rows = {}
    for qubit, (x, y) in enumerate(pos.tolist()):
        rows.setdefault(round(y, 3), []).append((x, qubit))
    # Two rows of ten joined by three bridges, four qubits hanging off: five levels.
    sizes = sorted(len(row) for row in rows.values())
    assert sizes == [2, 2, 3, 10, 10]
    long_rows = [sorted(row) for row in rows.values() if len(row) == 10]
    assert {tuple(q for _, q in row) for row in long_rows} == {
        (0, 1, 4, 7, 10, 12, 15, 18, 21, 23),
        (3, 5, 8, 11, 14, 16, 19, 22, 25, 26),
    }
    # Every coupling is one step across or one step up or down.
    for a, b in BUILTIN_DEVICES["fake_27q"].edges:
        assert np.linalg.norm(pos[a] - pos[b]) == pytest.approx(1.0)


def test_layout_is_deterministic_and_puts_no_two_qubits_together() -> None:
    edges = BUILTIN_DEVICES["fake_27q"].edges
    first, second = layout(27, edges), layout(27, list(reversed(edges)))
    assert np.array_equal(first, second)
    gaps = np.linalg.norm(first[:, None] - first[None, :], axis=2) + np.eye(27) * 9
    assert gaps.min() >= 0.99


def test_a_graph_that_is_no_lattice_still_gets_separate_spots() -> None:
    ring_with_chords = [(i, (i + 1) % 9) for i in range(9)] + [(0, 4), (2, 7), (3, 8)]
    pos = layout(9, ring_with_chords)
    gaps = np.linalg.norm(pos[:, None] - pos[None, :], axis=2) + np.eye(9) * 9
    assert gaps.min() > 0.3
    assert layout(4, None).tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]


def test_coupling_edges_are_undirected_once_and_in_range() -> None:
    assert coupling_edges([[1, 0], [0, 1], [1, 2], [2, 9], [3, 3]], 4) == [(0, 1), (1, 2)]


def test_svg_has_a_node_per_qubit_an_edge_per_coupling_and_tooltips(falcon) -> None:
    configuration, properties = falcon
    calibration = read_calibration(properties, num_qubits=27)
    svg = coupling_map_svg(configuration["coupling_map"], calibration)
    assert svg.count('<g class="qubit"') == 27
    assert svg.count('<g class="edge"') == 28
    first = calibration.qubits[0]
    assert first.t1_us is not None
    assert first.readout_error is not None
    assert f"readout error {first.readout_error * 100:.2f}%" in svg
    assert "Qubits: Readout error" in svg
    assert "Couplings: 2-qubit error" in svg


def test_colouring_follows_the_chosen_property(falcon) -> None:
    configuration, properties = falcon
    calibration = read_calibration(properties, num_qubits=27)
    by_t1 = coupling_map_svg(configuration["coupling_map"], calibration, colour_by="t1")
    by_readout = coupling_map_svg(configuration["coupling_map"], calibration)
    fills = re.compile(r'<circle[^>]*fill="(#[0-9a-f]{6})"')
    worst_t1 = min(calibration.qubits, key=lambda q: q.t1_us or 0).index
    best_t1 = max(calibration.qubits, key=lambda q: q.t1_us or 0).index
    t1_fills = fills.findall(by_t1)
    assert t1_fills[worst_t1] == "#a50026"  # the bad end of the scale
    assert t1_fills[best_t1] == "#1a9850"  # the good end
    assert t1_fills != fills.findall(by_readout)
    assert 'data-colour-by="t1"' in by_t1


def test_texts_from_the_documents_are_escaped() -> None:
    properties = {
        "qubits": [[{"name": "T1", "unit": "us", "value": 50.0}]],
        "gates": [
            {
                "qubits": [0],
                "gate": "<script>",
                "parameters": [{"name": "gate_error", "value": 0.1}],
            }
        ],
    }
    svg = coupling_map_svg([], read_calibration(properties, num_qubits=1), title="<b>x</b>")
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "<b>" not in svg


def test_without_properties_every_qubit_is_grey_and_the_legend_says_no_data() -> None:
    svg = coupling_map_svg([[0, 1], [1, 2]], read_calibration(None, num_qubits=3))
    assert svg.count('fill="#9aa0a6"') == 3
    assert "no data" in svg
