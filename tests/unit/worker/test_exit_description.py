"""How the executor words the end of a process that sent no terminal message."""

from __future__ import annotations

import signal

import pytest

from qruntime.server.executor.local import _describe_exit


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ((3, None), ("crashed", "exited with code 3 before returning a result")),
        ((0, None), ("crashed", "exited before returning a result")),
        ((None, signal.SIGSEGV), ("crashed", "killed by signal SIGSEGV")),
        (
            (None, signal.SIGXCPU),
            ("limit_exceeded", "CPU time limit exceeded (killed by signal SIGXCPU)"),
        ),
        (None, ("crashed", "the worker process was lost")),
    ],
)
def test_exit_status_is_described_for_a_human(
    status: tuple[int | None, int | None] | None, expected: tuple[str, str]
) -> None:
    assert _describe_exit(status) == expected
