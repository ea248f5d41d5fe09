"""Saved accounts: a server URL and API token kept in the user's config directory.

The file is ``accounts.json`` in ``platformdirs.user_config_dir("qruntime")``
(or the path in ``QRUNTIME_ACCOUNTS``), readable by its owner only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs

from qruntime.errors import InputValueError

__all__ = [
    "accounts_file",
    "delete_account",
    "load_account",
    "read_accounts",
    "resolve_account",
    "save_account",
]


def accounts_file() -> Path:
    override = os.environ.get("QRUNTIME_ACCOUNTS")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("qruntime")) / "accounts.json"


def read_accounts() -> dict[str, dict[str, str]]:
    path = accounts_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise InputValueError(f"The saved-accounts file {path} is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InputValueError(f"The saved-accounts file {path} is not a JSON object.")
    return data


def _write(accounts: dict[str, dict[str, str]]) -> None:
    path = accounts_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(accounts, fh, indent=2)
    os.chmod(path, 0o600)


def save_account(*, url: str, token: str, name: str, overwrite: bool) -> None:
    accounts = read_accounts()
    if name in accounts and not overwrite:
        raise InputValueError(
            f"An account named {name!r} is already saved; pass overwrite=True to replace it."
        )
    accounts[name] = {"url": url, "token": token}
    _write(accounts)


def load_account(name: str) -> dict[str, str] | None:
    return read_accounts().get(name)


def delete_account(name: str) -> bool:
    accounts = read_accounts()
    if accounts.pop(name, None) is None:
        return False
    _write(accounts)
    return True


def resolve_account(
    url: str | None = None, token: str | None = None, name: str | None = None
) -> tuple[str, str]:
    """The server URL and API token to use: the arguments, else ``QRUNTIME_URL`` and
    ``QRUNTIME_TOKEN``, else the saved account ``name`` (default ``"default"``).

    A ``name`` given explicitly fills what the arguments leave out, ahead of the
    environment.
    """
    if name is not None:
        saved = load_account(name)
        if saved is None:
            raise InputValueError(f"No saved account named {name!r}.")
        url, token = url or saved["url"], token or saved["token"]
    url = url or os.environ.get("QRUNTIME_URL") or None
    token = token or os.environ.get("QRUNTIME_TOKEN") or None
    if url is None or token is None:
        saved = load_account("default")
        if saved is None:
            raise InputValueError(
                "No qruntime server given: pass url= and token=, set QRUNTIME_URL and "
                "QRUNTIME_TOKEN, or save an account with RuntimeService.save_account(...)."
            )
        url, token = url or saved["url"], token or saved["token"]
    return url, token
