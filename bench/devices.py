"""Issue "Backends users recognise": a 133-qubit IBM snapshot, and a long catalogue.

- SamplerV2 Bell on ``fake_torino`` (133-qubit Heron) in a session, warm, against
  qiskit-ibm-runtime's local testing mode on the same snapshot (its ``FakeBackendV2``
  built from qruntime's own configuration and properties, as in :mod:`bench.primitives`),
  same ISA circuit and shots. qruntime simulates the two qubits the circuit touches
  with their noise; local mode builds the whole device's noise model on every run.
- ``service.backends()`` on a server that offers every device snapshot qiskit-ibm-runtime
  ships (``[catalogue] fake_provider = "all"``): one request, each backend's documents
  fetched when it is used. Baseline: fetching every backend's configuration and
  properties, what listing cost before, measured on the same (warm) server.
"""

from __future__ import annotations

import time
from typing import Any

from qiskit.transpiler import generate_preset_pass_manager

from bench.harness import Row, median_ms, server, timed
from bench.primitives import SHOTS, _ibm_sampler, bell, ibm_fake_backend

DEVICE = "fake_torino"
SESSION_TARGET = 20.0  # times faster than local mode
LIST_TARGET_MS = 200.0


def session_row(service: Any, *, repeat: int = 9) -> Row:
    """A Bell SamplerV2 job on the 133-qubit device in a session, warm."""
    from qruntime import SamplerV2, Session
    from qruntime.backends import load_catalogue

    manager = generate_preset_pass_manager(
        optimization_level=1, target=load_catalogue().get(DEVICE).target, seed_transpiler=1
    )
    isa = manager.run(bell())
    with ibm_fake_backend(DEVICE) as fake:
        local = _ibm_sampler(fake)
        # Each local run costs the same (it builds the device's noise model): no warm-up.
        baseline = median_ms(
            timed(lambda: local.run([isa], shots=SHOTS).result(), repeat=3, warmup=0)
        )
    with Session(service=service, backend=DEVICE) as session:
        sampler = SamplerV2(mode=session)
        counts = sampler.run([isa], shots=SHOTS).result()[0].data.meas.get_counts()
        figure = median_ms(timed(lambda: sampler.run([isa], shots=SHOTS).result(), repeat=repeat))
    good = sum(counts.get(k, 0) for k in ("00", "11")) / SHOTS
    return Row(
        f"SamplerV2 Bell on {DEVICE} (133 q) in a session",
        figure,
        baseline,
        "ms",
        f">= {SESSION_TARGET:g}x faster than local",
        figure * SESSION_TARGET <= baseline,
        f"baseline: qiskit-ibm-runtime local mode, same snapshot and ISA circuit, median of 3; "
        f"P(00|11) {good:.3f} here",
    )


def listing_row(*, repeat: int = 7) -> Row:
    """``service.backends()`` with every IBM device snapshot in the catalogue."""
    from qruntime import RuntimeService

    with (
        server(config='[catalogue]\nfake_provider = "all"\n') as srv,
        RuntimeService(url=srv.url, token=srv.token) as service,
    ):
        count = len(service.backends())
        figure = median_ms(timed(lambda: service.backends(refresh=True), repeat=repeat))

        def every_document() -> None:
            for backend in service.backends(refresh=True):
                backend.configuration()

        every_document()  # the server builds each document once; time it warm
        start = time.perf_counter()
        every_document()
        baseline = (time.perf_counter() - start) * 1000
    return Row(
        f"service.backends() with {count} backends",
        figure,
        baseline,
        "ms",
        f"< {LIST_TARGET_MS:g} ms",
        figure < LIST_TARGET_MS,
        'catalogue: [catalogue] fake_provider = "all" plus the built-ins; baseline: every '
        "backend's configuration and properties fetched (warm server), as listing did before",
    )


def run() -> list[Row]:
    from qruntime import RuntimeService

    with server() as srv, RuntimeService(url=srv.url, token=srv.token) as service:
        rows = [session_row(service)]
    return [*rows, listing_row()]
