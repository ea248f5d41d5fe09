"""Issue 14: SamplerV2 jobs as fast as ``circuit-runner`` jobs, under load and one at a time.

Six rows, each against a baseline measured in the same run:

- throughput: Bell jobs (1,024 shots) from 8 client threads as 2 users, each thread
  waiting for its job's result before it submits the next, all through qruntime's own
  client (``SamplerV2``, and ``service.run("circuit-runner", ...)`` for the baseline).
  The kinds take turns in rounds, so that all meet the same machine;
- server CPU: the server process's own CPU time (user and system, its workers not
  counted) per SamplerV2 job of those rounds;
- the same SamplerV2 jobs in a ``Batch`` (one per user) and in one user's ``Session``
  (a dedicated session holds the backend while active, so a second user's session
  would wait for it), and EstimatorV2 jobs (<ZZ> of the Bell state, as 2 users), against
  the same ``circuit-runner`` rounds;
- latency: one SamplerV2 Bell job end to end against Aer's ``SamplerV2`` in-process, the
  two timed in alternating blocks of ten jobs.

Every job's result is checked: a Bell distribution over exactly its shots, or <ZZ> = 1.
"""

from __future__ import annotations

import os
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qiskit import QuantumCircuit

from bench.harness import Row, Server, add_user, interleaved, median_ms, timed, timed_threads

SHOTS = 1024
THREADS = 8
USERS = 2
ROUNDS = 5  # per kind, alternating (each round: a multiple of THREADS jobs)
BELL = {"00", "11"}


def bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` itself (not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    """What the rounds of one kind of job measured."""

    jobs: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    wrong: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms(self) -> float:
        return self.server_cpu / self.jobs * 1000 if self.jobs else float("inf")


# One job of a kind, run and checked: None if its result is right, else what is wrong.
Job = Callable[[QuantumCircuit], str | None]


def _not_bell(counts: dict[str, int]) -> str | None:
    """What is wrong with ``counts`` as a Bell distribution of ``SHOTS`` shots, if anything."""
    if set(counts) - BELL or sum(counts.values()) != SHOTS:
        return f"not a Bell distribution of {SHOTS} shots: {counts}"
    return None


def _sampler_job(service: Any, mode: Any = "aer_simulator") -> Job:
    """SamplerV2 Bell jobs in ``mode``: the backend (job mode), a Batch or a Session."""
    from qruntime import SamplerV2

    sampler = SamplerV2(mode=mode, service=service)

    def run(circuit: QuantumCircuit) -> str | None:
        return _not_bell(sampler.run([circuit], shots=SHOTS).result()[0].data.meas.get_counts())

    return run


def _estimator_job(service: Any) -> Job:
    """EstimatorV2 jobs: <ZZ> of the Bell state (its circuit without the measurements),
    checked (exactly 1 on the ideal simulator, but for the estimator's precision noise)."""
    from qiskit.quantum_info import SparsePauliOp

    from qruntime import EstimatorV2

    estimator = EstimatorV2(mode="aer_simulator", service=service)
    zz = SparsePauliOp("ZZ")
    state = bell().remove_final_measurements(inplace=False)

    def run(_circuit: QuantumCircuit) -> str | None:
        value = float(estimator.run([(state, zz)]).result()[0].data.evs)
        return None if abs(value - 1) <= 0.1 else f"<ZZ> of a Bell state was {value}, not 1"

    return run


def _runner_job(service: Any) -> Job:
    from qruntime import RunnerResult

    def run(circuit: QuantumCircuit) -> str | None:
        job = service.run(
            "circuit-runner",
            inputs={"circuits": circuit, "shots": SHOTS},
            options={"backend": "aer_simulator"},
            result_decoder=RunnerResult,
        )
        return _not_bell(job.result().get_counts())

    return run


def _round(srv: Server, jobs: list[Job], count: int, tally: Tally) -> None:
    """``count`` jobs from ``len(jobs)`` threads, each awaited; adds to ``tally``."""
    circuit = bell()
    lock = threading.Lock()

    def thread(job: Job, n: int) -> None:
        for _ in range(n):
            try:
                wrong = job(circuit)
            except Exception as exc:  # every failure is a wrong job, said in the row's note
                wrong = f"{type(exc).__name__}: {exc}"
            if wrong is not None:
                with lock:
                    tally.wrong.append(wrong)

    per_thread = count // len(jobs)
    pool = [threading.Thread(target=thread, args=(job, per_thread)) for job in jobs]
    cpu = cpu_seconds(srv.process.pid)
    tally.seconds += timed_threads(pool)
    tally.server_cpu += cpu_seconds(srv.process.pid) - cpu
    tally.jobs += per_thread * len(jobs)


def throughput_rows(srv: Server, *, jobs: int = 400) -> list[Row]:
    """SamplerV2 and circuit-runner Bell jobs from 8 threads as 2 users, in alternating rounds."""
    from qruntime import Batch, RuntimeService, Session

    tokens = [add_user(srv, f"primitive-load-{u}") for u in range(USERS)]
    services = [RuntimeService(url=srv.url, token=token) for token in tokens]
    batches = [Batch(service=service, backend="aer_simulator") for service in services]
    # One user's dedicated session: while it is active it holds the backend, so a second
    # user's session would wait for it (by design, as on a device), not run beside it.
    session = Session(service=services[0], backend="aer_simulator")
    try:
        # Each thread has its own primitive (or job function), its user's service shared.
        threads = {
            "sampler": [_sampler_job(services[t % USERS]) for t in range(THREADS)],
            "circuit-runner": [_runner_job(services[t % USERS]) for t in range(THREADS)],
            "batch": [
                _sampler_job(services[t % USERS], batches[t % USERS]) for t in range(THREADS)
            ],
            "session": [_sampler_job(services[0], session) for _ in range(THREADS)],
            "estimator": [_estimator_job(services[t % USERS]) for t in range(THREADS)],
        }
        tallies = {kind: Tally() for kind in threads}
        for kind in threads:  # warm: pooled workers, caches, connections; not counted
            _round(srv, threads[kind], 2 * THREADS, Tally())
        order = list(threads)
        for _ in range(ROUNDS):
            for kind in order:
                _round(srv, threads[kind], jobs // ROUNDS, tallies[kind])
            order.reverse()  # no kind always goes first
    finally:
        for mode in (*batches, session):
            mode.close()
        for service in services:
            service.close()
    sampler, runner = tallies["sampler"], tallies["circuit-runner"]
    wrong = sampler.wrong + runner.wrong
    note = (
        f"baseline: circuit-runner Bell jobs, same client, threads and users, in "
        f"{ROUNDS} rounds alternating with the SamplerV2 ones; server CPU per job "
        f"{sampler.server_cpu_ms:.2f} ms (SamplerV2), {runner.server_cpu_ms:.2f} ms "
        f"(circuit-runner); {len(wrong)} wrong results" + (f", first: {wrong[0]}" if wrong else "")
    )
    return [
        Row(
            f"SamplerV2: {sampler.jobs} Bell jobs, {THREADS} threads, {USERS} users",
            sampler.rate,
            runner.rate,
            "/s",
            ">= 300/s, >= 0.9x runner",
            sampler.rate >= 300 and sampler.rate >= 0.9 * runner.rate and not wrong,
            note,
        ),
        Row(
            "SamplerV2: server CPU per job (those jobs)",
            sampler.server_cpu_ms,
            runner.server_cpu_ms,
            "ms",
            "< 2 ms",
            sampler.server_cpu_ms < 2,
            "the server process's user + system time over the rounds / jobs (its workers "
            "not counted); baseline: the same for the circuit-runner rounds",
        ),
        *(_mode_row(kind, tallies[kind], runner) for kind in ("batch", "session", "estimator")),
    ]


def _mode_row(kind: str, tally: Tally, runner: Tally) -> Row:
    """SamplerV2 jobs in a batch (both users) or one user's session, or EstimatorV2 jobs,
    against job mode's circuit-runner rounds of the same run."""
    name = {
        "batch": f"SamplerV2 in a batch: {tally.jobs} Bell jobs, {THREADS} threads, "
        f"{USERS} users, a batch each",
        "session": f"SamplerV2 in a session: {tally.jobs} Bell jobs, {THREADS} threads, "
        "1 user, one session",
        "estimator": f"EstimatorV2: {tally.jobs} Bell <ZZ> jobs, {THREADS} threads, {USERS} users",
    }[kind]
    return Row(
        name,
        tally.rate,
        runner.rate,
        "/s",
        ">= 0.9x runner",
        tally.rate >= 0.9 * runner.rate and not tally.wrong,
        f"baseline: the circuit-runner rounds (job mode, {USERS} users); rounds alternate "
        f"with theirs; server CPU per job {tally.server_cpu_ms:.2f} ms; "
        f"{len(tally.wrong)} wrong results" + (f", first: {tally.wrong[0]}" if tally.wrong else ""),
    )


def latency_row(service: Any, *, repeat: int = 100, warmup: int = 10) -> Row:
    """One SamplerV2 Bell job end to end against Aer's SamplerV2 in-process."""
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    from qruntime import SamplerV2

    circuit = bell()
    aer = AerSampler()
    ours = SamplerV2(mode="aer_simulator", service=service)
    counts: dict[str, dict[str, int]] = {}
    bits: dict[str, Any] = {}  # each side's last BitArray

    def in_process(_: object = None) -> None:
        bits["aer"] = aer.run([circuit], shots=SHOTS).result()[0].data.meas
        counts["aer"] = bits["aer"].get_counts()

    def through_server(_: object = None) -> None:
        bits["qruntime"] = ours.run([circuit], shots=SHOTS).result()[0].data.meas
        counts["qruntime"] = bits["qruntime"].get_counts()

    for _ in range(warmup):
        in_process()
        through_server()
    samples = interleaved({"aer": in_process, "qruntime": through_server}, range(repeat))
    figure, baseline = median_ms(samples["qruntime"]), median_ms(samples["aer"])
    spread = {name: statistics.quantiles(times, n=4) for name, times in samples.items()}
    right = all(_not_bell(c) is None for c in counts.values())
    # Both sides' times hold the user's get_counts(): Qiskit's BitArray counts shot by
    # shot in Python, qruntime's decoded one in numpy. Said, so that the ratio can be read.
    counting = {name: median_ms(timed(array.get_counts, repeat=50)) for name, array in bits.items()}
    return Row(
        "SamplerV2 Bell job end to end (median)",
        figure,
        baseline,
        "ms",
        "<= 2x in-process Aer",
        figure <= 2 * baseline and right,
        f"{SHOTS} shots; baseline: Aer SamplerV2 in-process (default options); both timed "
        "in alternating blocks of 10 jobs; quartiles "
        + ", ".join(f"{name} {q[0] * 1000:.2f}/{q[2] * 1000:.2f} ms" for name, q in spread.items())
        + "; of which get_counts() (median): "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in counting.items()),
    )
