"""The program environment: what uploaded programs can import, and their dependency checks.

Jobs run on the server's own interpreter (the zygote is started from it, with the same
``sys.path`` and ``PYTHONPATH``), and the sandbox shows that installation read-only: a
program can import the standard library and every distribution installed there. Nothing
is installed at job time. A program declares what it needs as pip requirements
(``"numpy>=1.26"``, ``"networkx"``); `check_dependencies` refuses at upload one that is
not installed or whose installed version does not match, naming it.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from qruntime.errors import InputValueError

__all__ = ["check_dependencies", "environment_listing", "installed_packages"]


def installed_packages() -> dict[str, tuple[str, str]]:
    """Canonical name -> (name, version) of each distribution on ``sys.path``.

    Read afresh on each call: a package an admin installs is seen without a restart. The
    first one found on ``sys.path`` wins, as for an import.
    """
    found: dict[str, tuple[str, str]] = {}
    for distribution in metadata.distributions(path=list(sys.path)):
        name = distribution.metadata["Name"]
        if not name:
            continue
        found.setdefault(canonicalize_name(name), (name, distribution.version))
    return found


def environment_listing() -> dict[str, object]:
    """``GET /programs/environment``: the Python version and the installed packages."""
    packages = sorted(installed_packages().values(), key=lambda item: item[0].lower())
    return {
        "python": platform.python_version(),
        "packages": [{"name": name, "version": version} for name, version in packages],
    }


def check_dependencies(dependencies: list[str] | None) -> list[str]:
    """The requirements, each checked against the environment; `InputValueError` names
    the first that is not a valid requirement, is missing, or does not match."""
    if not dependencies:
        return []
    installed = installed_packages()
    checked: list[str] = []
    for text in dependencies:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise InputValueError(
                f"Dependency {text!r} is not a pip requirement ({exc})."
            ) from None
        if requirement.url:
            raise InputValueError(
                f"Dependency {text!r} names a URL: nothing is installed at job time; "
                "name a package installed in the program environment."
            )
        if requirement.marker is not None and not requirement.marker.evaluate():
            checked.append(str(requirement))  # not for this platform: nothing to check
            continue
        have = installed.get(canonicalize_name(requirement.name))
        if have is None:
            raise InputValueError(
                f"Dependency {requirement.name!r} is not installed in this server's program "
                "environment (GET /programs/environment lists what is); ask an admin to "
                "install it, or remove it from the program's dependencies."
            )
        name, version = have
        if requirement.specifier and not _matches(requirement, version):
            raise InputValueError(
                f"Dependency {text!r} does not match the installed {name} {version}."
            )
        checked.append(str(requirement))
    return checked


def _matches(requirement: Requirement, version: str) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    return requirement.specifier.contains(parsed, prereleases=True)
