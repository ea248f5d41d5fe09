"""Where jobs run: the executor interface and its implementations."""

from __future__ import annotations

from qruntime.server.executor.base import Executor, JobSpec, WorkerEvent
from qruntime.server.executor.inline import InlineExecutor
from qruntime.server.executor.local import LocalExecutor

__all__ = ["Executor", "InlineExecutor", "JobSpec", "LocalExecutor", "WorkerEvent"]
