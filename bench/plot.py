"""The latency distribution of the load benchmark, drawn as a PNG."""

from __future__ import annotations

from pathlib import Path


def latency_png(submit_ms: list[float], completion_ms: list[float], *, path: Path) -> None:
    """Two cumulative distributions (submit, completion) on a log time axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server; must precede pyplot
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    for label, samples in (("submit (POST /jobs)", submit_ms), ("completion", completion_ms)):
        if not samples:
            continue
        ordered = sorted(samples)
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axis.step(ordered, fractions, where="post", label=f"{label}, n={len(ordered)}")
    axis.set_xscale("log")
    axis.set_xlabel("latency (ms)")
    axis.set_ylabel("fraction of jobs")
    axis.set_title("qruntime load benchmark: latency distribution")
    axis.axhline(0.99, color="grey", linewidth=0.5, linestyle=":")
    axis.grid(True, which="both", linewidth=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
