"""How the client commands find their server: as the Python client does.

The URL and API token come from ``--url`` and ``--token``, else ``QRUNTIME_URL`` and
``QRUNTIME_TOKEN``, else a saved account (``--account NAME``, default ``default``,
saved with ``RuntimeService.save_account(url, token)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from qruntime.client._http import ApiClient
    from qruntime.client._service import RuntimeService

__all__ = [
    "AccountOption",
    "JsonOption",
    "TokenOption",
    "UrlOption",
    "api_of",
    "get_json",
    "open_service",
]

_PANEL = "Connection"

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="The server's URL (default: QRUNTIME_URL, else the saved account).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Your API token (default: QRUNTIME_TOKEN, else the saved account). "
        "Others on this machine can see command lines: prefer the variable.",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        help="A saved account, by name (RuntimeService.save_account(url, token, name=...)).",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (the API's shapes) for scripts.")
]


def open_service(url: str | None, token: str | None, account: str | None) -> RuntimeService:
    """A `RuntimeService` for these options (the client's own rules fill the rest)."""
    from qruntime.client._service import RuntimeService

    return RuntimeService(url=url, token=token, name=account)


def api_of(service: RuntimeService) -> ApiClient:
    """The service's HTTP client: the commands print the API's own JSON shapes."""
    return service._api


def get_json(service: RuntimeService, path: str, **params: Any) -> Any:
    """``GET path`` with ``params`` (None values left out)."""
    return api_of(service).get_json(path, params=params)
