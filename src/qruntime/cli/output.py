"""What the commands print: rich tables for people, JSON for scripts, one line per error.

Exit codes: 0 done; 1 the server or the database refused, or a job did not complete;
2 a mistake on the command line or in the configuration.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qruntime.errors import QRuntimeError

__all__ = [
    "EXIT_FAILED",
    "EXIT_USAGE",
    "console",
    "error",
    "fail",
    "parse_time",
    "print_json",
    "print_more_hint",
    "print_table",
    "reports_errors",
    "short_time",
]

#: The server or the database refused, or a job ended without a result.
EXIT_FAILED = 1
#: A mistake on the command line or in the configuration.
EXIT_USAGE = 2

P = ParamSpec("P")
R = TypeVar("R")


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr); rich styles only on a terminal."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    """Print ``Error: message`` on stderr."""
    console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}")


def fail(message: str, *, code: int = EXIT_FAILED) -> typer.Exit:
    """Print the error and return the exit to raise: ``raise fail("...")``."""
    error(message)
    return typer.Exit(code=code)


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a qruntime error raised by ``command`` into one line and exit code 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except QRuntimeError as exc:
            raise fail(str(exc) or type(exc).__name__) from None

    return run


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO date or time given to ``option``; exit 2 with an example when it is not one."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option} {value!r}: give an ISO date or time, e.g. 2025-01-31 or 2025-01-31T12:00.",
            code=EXIT_USAGE,
        ) from None


def print_more_hint(*, shown: int, count: int, skip: int) -> None:
    """Say on stderr how to see the next page when a listing has more than it showed."""
    if count > skip + shown:
        console(stderr=True).print(f"{shown} of {count} shown: use --skip {skip + shown}")


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, and nothing else (for scripts)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def short_time(value: str | datetime | None) -> str:
    """A timestamp as local time to the second, for tables."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    flex: str | None = None,
    title: str | None = None,
) -> None:
    """A table, one line per row: every column is as wide as its longest cell (ids can be
    copied whole), except ``flex`` (a description), which takes what is left, cut with an
    ellipsis."""
    cells = [[escape("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]
    out = console()
    # What the other columns and the borders ("│ x " per column and a last "│") leave.
    spare = out.width - sum(w + 3 for name, w in zip(columns, widths, strict=True) if name != flex)
    table = Table(title=title)
    for name, width in zip(columns, widths, strict=True):
        if name == flex:
            table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=max(spare - 4, 12))
        else:
            table.add_column(name, no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    out.print(table)
