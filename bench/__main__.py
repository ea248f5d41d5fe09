"""``python -m bench [--only NAME]``: run the benchmarks, print one table, write results.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import (
    anatomy,
    dashboard,
    deep_queue,
    devices,
    hostile,
    jobs,
    load,
    primitives,
    ray_executor,
    servers,
    sessions,
    startup,
)
from bench.harness import Row, report

BENCHMARKS = {
    "jobs": jobs.run,
    "sessions": sessions.run,
    "load": load.run,
    "deep_queue": deep_queue.run,
    "startup": startup.run,
    "primitives": primitives.run,
    "devices": devices.run,
    "hostile": hostile.run,
    "anatomy": anatomy.run,
    "servers": servers.run,
    "ray": ray_executor.run,
    "dashboard": dashboard.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    args = parser.parse_args()
    rows: list[Row] = []
    for name, run in BENCHMARKS.items():
        if args.only and name != args.only:
            continue
        rows.extend(run())
    print(report(rows, path=Path(__file__).parent / "results.json"))
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
