"""Which of qruntime's modules may import which: read from the source, imports of every kind.

Imports under ``if TYPE_CHECKING:`` and inside functions count too: a circle of
imports is a circle whether or not it bites at run time.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import qruntime

SOURCE = Path(qruntime.__file__).parent


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = ("qruntime", *path.relative_to(SOURCE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


@cache
def imports_of(name: str) -> frozenset[str]:
    """The qruntime modules that module ``name`` imports, anywhere in its source."""
    known = modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(known[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # "from package import module" names a module
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(m for m in found if m.startswith("qruntime") and m != name)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_client_imports_nothing_of_the_server_its_programs_or_workers() -> None:
    client = [name for name in modules() if _within(name, "qruntime.client")]
    assert client
    for name in client:
        for imported in imports_of(name):
            for side in ("qruntime.programs", "qruntime.server", "qruntime.worker"):
                assert not _within(imported, side), f"{name} imports {imported}"


def test_the_shared_primitives_code_imports_neither_side() -> None:
    shared = [name for name in modules() if _within(name, "qruntime.primitives")]
    assert {"qruntime.primitives.options", "qruntime.primitives.pubs"} <= set(shared)
    for name in shared:
        for imported in imports_of(name):
            for side in ("qruntime.client", "qruntime.programs", "qruntime.server"):
                assert not _within(imported, side), f"{name} imports {imported}"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("qruntime.backends.catalogue", "qruntime.backends.config_file"),
        ("qruntime.client._job", "qruntime.client._service"),
    ],
)
def test_these_modules_do_not_import_each_other(first: str, second: str) -> None:
    assert not (second in imports_of(first) and first in imports_of(second))
