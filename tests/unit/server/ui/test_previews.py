"""Result previews: counts become a histogram, estimator values a table, the rest JSON."""

from __future__ import annotations

import json

import numpy as np
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult

from qruntime.encoding import dumps
from qruntime.server.ui.previews import (
    MAX_BARS,
    histogram_svg,
    inputs_summary,
    metrics_rows,
    preview_result,
)


def test_sampler_counts_become_a_histogram_with_every_outcome() -> None:
    bits = BitArray.from_samples(["00", "11", "11", "01"], num_bits=2)
    result = PrimitiveResult([SamplerPubResult(DataBin(meas=bits))])
    preview = preview_result(dumps(result))
    assert preview.kind == "histogram"
    (title, svg, more) = preview.histograms[0]
    assert "meas" in title
    assert more == 0
    assert 'data-outcome="11" data-count="2"' in svg
    assert 'data-outcome="00" data-count="1"' in svg


def test_estimator_values_come_with_their_standard_deviations() -> None:
    data = DataBin(evs=np.array([0.5, -0.25]), stds=np.array([0.01, 0.02]), shape=(2,))
    preview = preview_result(dumps(PrimitiveResult([PubResult(data)])))
    assert preview.kind == "estimator"
    rows = preview.tables[0][1]
    assert rows == [("[0]", "0.5", "0.01"), ("[1]", "-0.25", "0.02")]


def test_other_results_are_shown_as_json() -> None:
    preview = preview_result(json.dumps({"answer": 42}))
    assert preview.kind == "json"
    assert '"answer": 42' in preview.text


def test_a_result_that_does_not_decode_is_shown_as_text_not_an_error() -> None:
    preview = preview_result('{"__type__": "os.system", "__value__": "rm -rf /"}')
    assert preview.kind == "json"
    assert "os.system" in preview.text


def test_a_histogram_draws_the_most_frequent_outcomes_and_escapes_labels() -> None:
    counts = {format(i, "08b"): i + 1 for i in range(MAX_BARS + 5)}
    svg, more = histogram_svg(counts)
    assert more == 5
    assert svg.count("<g ") == MAX_BARS
    svg, _ = histogram_svg({"<script>": 3})
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg


def test_inputs_and_metrics_are_summarised() -> None:
    summary = dict(inputs_summary({"pubs": [[{"__type__": "QuantumCircuit"}]], "shots": 10}))
    assert summary["pubs"].startswith("list of 1")
    assert summary["shots"] == "10"
    rows = dict(metrics_rows({"usage": {"seconds": 1.5}, "cache": {"hits": 2}, "none": None}))
    assert rows == {"usage.seconds": "1.5", "cache.hits": "2"}
