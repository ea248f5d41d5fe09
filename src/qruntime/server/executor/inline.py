"""The executor double for fast tests of the server: one persistent, unsandboxed worker.

Every job outside a session, built-in or uploaded, runs in the same warm worker
process, one at a time, with no fork per job and no sandbox. A dedicated
session's jobs run in a worker of the session's own (also unsandboxed), as with
``LocalExecutor``, so session caches behave as in production. Still separate
processes: Aer must never simulate in the server's own process.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from qruntime.server.executor.local import LocalExecutor

__all__ = ["InlineExecutor"]


class InlineExecutor(LocalExecutor):
    """``LocalExecutor`` with one pooled worker that runs uploaded programs too; tests only.

    ``end_session`` is ``LocalExecutor``'s: it stops the session's worker.
    """

    def __init__(
        self,
        *,
        catalogue_path: Path | None = None,
        log_limit_bytes: int = 1_000_000,
        env: Mapping[str, str] | None = None,
        caches: bool = True,
    ) -> None:
        super().__init__(
            catalogue_path=catalogue_path,
            pool_size=1,
            log_limit_bytes=log_limit_bytes,
            sandbox=False,
            uploads_in_pool=True,
            env=env,
            caches=caches,
        )
