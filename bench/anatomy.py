"""Where the time of one SamplerV2 job goes, stage by stage (``python -m bench.anatomy``).

Bell jobs (each with its own shot count, so that the server checks every one) run one
after another through qruntime's own client against a real server. Each stage is read
off one clock (every process runs on this machine):

- the client's start and end, around ``SamplerV2.run`` and ``result()``;
- the job's ``metrics()``: when the server stored it (``created``), when the scheduler
  started it (``running``), when the result was recorded (``finished``), and the
  worker's own ``timing`` (when it began, and its seconds decoding, in the program's
  ``main`` and encoding the result).

Three pieces run inside a request and are timed in this process with the same code on
the same PUB instead: the client's PUB checks and encoding, the server's input checks
and the client's decoding of the result. The stages are medians over the jobs; they
add up to about the median end-to-end time.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from qiskit import QuantumCircuit

from bench.harness import Row, server, timed

JOBS = 60

STAGES = (
    ("client: check PUBs and options, encode", "encode"),
    ("HTTP request, auth, server input checks", "submit"),
    ("store the job, commit, schedule", "store"),
    ("hand the job to a worker (pipe)", "handoff"),
    ("worker: decode the inputs", "decode"),
    ("worker: run the sampler (Aer)", "run"),
    ("worker: encode the result", "result_encode"),
    ("result to the server, recorded", "record"),
    ("result written, long poll answered (HTTP)", "deliver"),
    ("client: decode the result", "client_decode"),
)


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _median_seconds(function: Callable[[], object]) -> float:
    return statistics.median(timed(function, repeat=200, warmup=20))


def in_process_pieces(shots: int, result_text: str) -> dict[str, float]:
    """The pieces that run inside a request, timed here with the same code."""
    from qruntime.backends import load_catalogue
    from qruntime.client._primitives import PrimitiveResultDecoder
    from qruntime.encoding import DecodedCircuits, RuntimeEncoder, loads
    from qruntime.primitives.options import resolve_options
    from qruntime.primitives.pubs import coerce_sampler_pubs
    from qruntime.programs import sampler
    from qruntime.spec_schema import best_validation_error

    circuit = bell()

    def encode() -> str:
        wire: dict[str, Any] = {}
        resolve_options("sampler", wire)
        pubs = coerce_sampler_pubs([circuit], default_shots=shots)
        return json.dumps({"pubs": pubs, "options": wire, "version": 2}, cls=RuntimeEncoder)

    text = encode()
    params = json.loads(text)
    schema = sampler.METADATA["spec"]["parameters"]
    num_qubits = load_catalogue().get("aer_simulator").spec.num_qubits
    circuits = DecodedCircuits()  # the server keeps the circuits it decoded

    def check() -> None:
        best_validation_error(schema, params, label="spec.parameters")
        sampler.validate(loads(text, circuits=circuits), num_qubits=num_qubits)

    return {
        "encode": _median_seconds(encode),
        "check": _median_seconds(check),
        "client_decode": _median_seconds(lambda: PrimitiveResultDecoder.decode(result_text)),
    }


def measure(service: Any, jobs: int = JOBS) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of each stage, and of the totals (end to end, and until submitted)."""
    from qruntime import SamplerV2
    from qruntime.encoding import RuntimeEncoder

    sampler = SamplerV2(mode="aer_simulator", service=service)
    circuit = bell()
    for _ in range(10):  # warm: the pooled workers, the connections
        sampler.run([circuit], shots=100).result()
    records = []
    result_text = ""
    for i in range(jobs):
        shots = 1000 + i
        start = time.time()
        job = sampler.run([circuit], shots=shots)
        submitted = time.time()
        result = job.result()
        end = time.time()
        records.append((start, submitted, end, job.metrics()))
        result_text = json.dumps(result, cls=RuntimeEncoder)
    pieces = in_process_pieces(1000 + jobs, result_text)
    stages: dict[str, list[float]] = {key: [] for _, key in STAGES}
    totals: dict[str, list[float]] = {"end_to_end": [], "submitted": []}
    for start, submitted, end, metrics in records:
        stamps, timing = metrics["timestamps"], metrics["timing"]
        created, running = _seconds(stamps["created"]), _seconds(stamps["running"])
        finished = _seconds(stamps["finished"])
        began = _seconds(timing["started"])
        sent = began + timing["decode"] + timing["run"] + timing["encode"]
        received = end - pieces["client_decode"]
        values = {
            "encode": pieces["encode"],
            "submit": created - start - pieces["encode"],
            "store": running - created,
            "handoff": began - running,
            "decode": timing["decode"],
            "run": timing["run"],
            "result_encode": timing["encode"],
            "record": finished - sent,
            "deliver": received - finished,
            "client_decode": pieces["client_decode"],
        }
        for key, value in values.items():
            stages[key].append(value)
        totals["end_to_end"].append(end - start)
        totals["submitted"].append(submitted - start)
    medians = {key: statistics.median(values) for key, values in stages.items()}
    medians["check"] = pieces["check"]
    return medians, {key: statistics.median(values) for key, values in totals.items()}


def table(stages: dict[str, float], totals: dict[str, float]) -> str:
    """The stages as text: milliseconds and share of the end-to-end median."""
    whole = totals["end_to_end"]
    lines = [f"{'one SamplerV2 Bell job (medians)':48} {'ms':>7} {'share':>6}"]
    for label, key in STAGES:
        lines.append(f"{label:48} {stages[key] * 1000:7.3f} {stages[key] / whole:6.1%}")
        if key == "submit":
            lines.append(
                f"{'  of which the server input checks (in-process)':48} "
                f"{stages['check'] * 1000:7.3f}"
            )
    lines.append(f"{'sum of the stages':48} {sum(stages[k] for _, k in STAGES) * 1000:7.3f}")
    lines.append(f"{'end to end':48} {whole * 1000:7.3f}")
    lines.append(f"{'  run() returned (job stored) after':48} {totals['submitted'] * 1000:7.3f}")
    return "\n".join(lines)


def run(jobs: int = JOBS) -> list[Row]:
    from qruntime import RuntimeService

    with server() as srv, RuntimeService(url=srv.url, token=srv.token) as service:
        stages, totals = measure(service, jobs)
    print(table(stages, totals))
    rows = [
        Row(
            f"SamplerV2 Bell job anatomy: {label}",
            stages[key] * 1000,
            None,
            "ms",
            "-",
            True,
        )
        for label, key in STAGES
    ]
    rows.append(
        Row(
            "SamplerV2 Bell job anatomy: end to end",
            totals["end_to_end"] * 1000,
            None,
            "ms",
            "-",
            True,
            f"median of {jobs} jobs, each with its own shot count; the stages are medians",
        )
    )
    return rows


if __name__ == "__main__":
    run()
