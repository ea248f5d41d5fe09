"""``qruntime users`` and ``qruntime tokens``: an admin's commands, on a database or a server.

Each command works on a database by default (``--db``, ``--config`` or ``QRUNTIME_DB``,
else the same SQLite file ``qruntime serve`` uses) and says which one on stderr; a
database that is new is prepared as ``serve`` would, and the ``admin`` user created then
has its token printed. With ``--url`` (or ``--account``), the command goes through the
API of a running server instead, as an admin: the admin's API token comes from
``QRUNTIME_TOKEN`` or the saved account.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from qruntime.cli.connect import AccountOption, JsonOption
from qruntime.cli.output import (
    EXIT_USAGE,
    fail,
    print_json,
    print_table,
    reports_errors,
    short_time,
)
from qruntime.errors import QRuntimeError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qruntime.client._http import ApiClient
    from qruntime.server.settings import Settings

__all__ = [
    "ConfigOption",
    "DbOption",
    "database_label",
    "load_settings",
    "show_admin_token",
    "tokens_app",
    "users_app",
]

T = TypeVar("T")

users_app = typer.Typer(
    help="Manage users (on a database, or on a server with --url).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
tokens_app = typer.Typer(
    help="Manage API tokens (on a database, or on a server with --url).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_WHERE = "Where"
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: the config file's [server] db, else QRUNTIME_DB, else "
        "the SQLite file in your data directory that serve uses too).",
        rich_help_panel=_WHERE,
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML config file with a [server] table and [backends.NAME] tables "
        "(default: QRUNTIME_CONFIG).",
        rich_help_panel=_WHERE,
        show_default=False,
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Work through the API of the server at this URL, as an admin (your API token "
        "from QRUNTIME_TOKEN or the saved account), instead of on a database.",
        rich_help_panel=_WHERE,
        show_default=False,
    ),
]
UserName = Annotated[str, typer.Argument(help="The user's name.")]


# -- the database ----------------------------------------------------------------------------


def load_settings(db: str | None, config: Path | None, **overrides: object) -> Settings:
    """The server's settings for these options; a configuration mistake exits with 2."""
    from qruntime.server.settings import Settings

    try:
        return Settings.load(config_file=config, db_url=db, **overrides)
    except QRuntimeError as error:
        raise fail(str(error), code=EXIT_USAGE) from None


def database_label(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def show_admin_token(token: str, *, chosen: bool, stderr: bool) -> None:
    """Say that the ``admin`` user was created, with its token unless the operator chose it."""
    if chosen:
        typer.echo(
            "Created the user 'admin' with the API token from QRUNTIME_ADMIN_TOKEN.", err=stderr
        )
        return
    typer.echo("Created the user 'admin'. Its API token (shown once):", err=stderr)
    typer.echo(token, err=stderr)


@contextmanager
def _database(db: str | None, config: Path | None) -> Iterator[Session]:
    """A session on the database these options name, prepared; committed at the end."""
    from sqlalchemy.exc import SQLAlchemyError

    from qruntime.server.app import prepare_database
    from qruntime.server.store.database import Database

    settings = load_settings(db, config)
    typer.echo(f"Database: {database_label(settings.db_url)}", err=True)
    try:
        token = prepare_database(settings)
    except QRuntimeError as error:
        raise fail(str(error), code=EXIT_USAGE) from None
    except SQLAlchemyError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise fail(f"Cannot use the database: {first}", code=EXIT_USAGE) from None
    if token is not None:
        show_admin_token(token, chosen=bool(settings.admin_token), stderr=True)
    database = Database(settings.db_url)
    try:
        with database.session() as session:
            yield session
    finally:
        database.dispose()


def _api(url: str | None, account: str | None) -> ApiClient | None:
    """The API client of ``--url`` / ``--account``, or None to work on the database."""
    if url is None and account is None:
        return None
    from qruntime.client._account import resolve_account
    from qruntime.client._http import ApiClient

    try:
        server, token = resolve_account(url, None, account)
    except QRuntimeError:
        raise fail(
            "--url needs an admin's API token: set QRUNTIME_TOKEN, or save an account "
            "(RuntimeService.save_account(url, token)) and give --account.",
            code=EXIT_USAGE,
        ) from None
    typer.echo(f"Server: {server}", err=True)
    return ApiClient(server, token)


def _either(
    url: str | None,
    account: str | None,
    db: str | None,
    config: Path | None,
    *,
    remote: Callable[[ApiClient], T],
    local: Callable[[Session], T],
) -> T:
    """``remote`` through the server's API, or ``local`` on the database."""
    if (url is not None or account is not None) and (db is not None or config is not None):
        raise fail(
            "Give either --url/--account (a server) or --db/--config (a database).", code=EXIT_USAGE
        )
    api = _api(url, account)
    if api is None:
        with _database(db, config) as session:
            return local(session)
    try:
        return remote(api)
    finally:
        api.close()


def _user_row(user: Any) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "is_admin": user.is_admin,
        "created": user.created_at.isoformat(),
        "disabled": user.disabled_at is not None,
    }


# -- users -------------------------------------------------------------------------------------


@users_app.command("add")
@reports_errors
def users_add(
    name: UserName,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Create a user; its API token is the last line printed. It works on the servers that
    use the database named on stderr (or on the server of --url)."""
    from qruntime.server.services import auth

    def local(session: Session) -> str:
        return auth.create_user(session, name=name, is_admin=admin)[1]

    def remote(api: ApiClient) -> str:
        body = api.request("POST", "/users", json={"name": name, "is_admin": admin}).json()
        token: str = body["token"]
        return token

    token = _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"Created {'admin ' if admin else ''}user {name!r}. API token:")
    typer.echo(token)


@users_app.command("list")
@reports_errors
def users_list(
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """List the users."""
    from qruntime.server.services.auth import SYSTEM_USER
    from qruntime.server.store import users as store

    def local(session: Session) -> list[dict[str, Any]]:
        return [_user_row(u) for u in store.list_users(session) if u.name != SYSTEM_USER]

    def remote(api: ApiClient) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api.get_json("/users")
        return rows

    rows = _either(url, account, db, config, remote=remote, local=local)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["name", "admin", "disabled", "created"],
        (
            [
                r["name"],
                "yes" if r["is_admin"] else "",
                "yes" if r.get("disabled") else "",
                short_time(r["created"]),
            ]
            for r in rows
        ),
    )


def _set_disabled(
    name: str,
    disabled: bool,
    url: str | None,
    account: str | None,
    db: str | None,
    config: Path | None,
) -> None:
    from qruntime.server.services import users as service

    def local(session: Session) -> None:
        service.set_disabled(session, name=name, disabled=disabled)

    def remote(api: ApiClient) -> None:
        api.request("PATCH", f"/users/{name}", json={"disabled": disabled})

    _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"User {name!r} is {'disabled' if disabled else 'enabled'}.")


@users_app.command("disable")
@reports_errors
def users_disable(
    name: UserName,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Disable a user: it cannot log in, its access tokens stop working; its tokens,
    programs and jobs are kept (queued jobs still run) until it is enabled again."""
    _set_disabled(name, True, url, account, db, config)


@users_app.command("enable")
@reports_errors
def users_enable(
    name: UserName,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Enable a disabled user again."""
    _set_disabled(name, False, url, account, db, config)


@users_app.command("delete")
@reports_errors
def users_delete(
    name: UserName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Delete a user with its API tokens, programs (public ones too), jobs and sessions.
    Refused while a job of it, or one running its programs, is queued or running."""
    from qruntime.server.services import users as service

    if not yes:
        if not sys.stdin.isatty():
            raise fail(
                f"Deleting {name!r} deletes its programs and jobs too: add --yes.", code=EXIT_USAGE
            )
        typer.confirm(f"Delete {name!r} with its programs, jobs and sessions?", abort=True)

    def local(session: Session) -> None:
        service.delete_user(session, name=name)

    def remote(api: ApiClient) -> None:
        api.request("DELETE", f"/users/{name}")

    _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"Deleted user {name!r}.")


@users_app.command("reset-token")
@reports_errors
def users_reset_token(
    name: UserName,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Revoke all of a user's API tokens and give it a new one, the last line printed.
    On the database, this recovers a lost admin token: qruntime users reset-token admin."""
    from qruntime.server.services import users as service

    def local(session: Session) -> str:
        return service.reset_token(session, name=name)

    def remote(api: ApiClient) -> str:
        token: str = api.request("POST", f"/users/{name}/reset-token").json()["token"]
        return token

    token = _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"New API token for {name!r} (its older tokens are revoked):")
    typer.echo(token)


# -- tokens ------------------------------------------------------------------------------------


@tokens_app.command("create")
@reports_errors
def tokens_create(
    name: UserName,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Give a user one more API token; it is the last line printed."""
    from qruntime.server.services import auth
    from qruntime.server.services import users as service

    def local(session: Session) -> str:
        return auth.issue_api_token(session, user=service.find_user(session, name=name))

    def remote(api: ApiClient) -> str:
        token: str = api.request("POST", f"/users/{name}/tokens").json()["token"]
        return token

    token = _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"New API token for {name!r}:")
    typer.echo(token)


@tokens_app.command("list")
@reports_errors
def tokens_list(
    name: UserName,
    as_json: JsonOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """List a user's API tokens by id (the secrets are never stored, so never shown)."""
    from qruntime.server.services import users as service

    def local(session: Session) -> list[dict[str, Any]]:
        return [
            {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in row.items()
            }
            for row in service.list_api_tokens(session, name=name)
        ]

    def remote(api: ApiClient) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = api.get_json(f"/users/{name}/tokens")
        return rows

    rows = _either(url, account, db, config, remote=remote, local=local)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "created", "revoked", "last login"],
        (
            [
                r["id"],
                short_time(r["created"]),
                short_time(r["revoked"]),
                short_time(r["last_login"]),
            ]
            for r in rows
        ),
    )


@tokens_app.command("revoke")
@reports_errors
def tokens_revoke(
    name: UserName,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Revoke only this token (its secret).", show_default=False),
    ] = None,
    token_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Revoke only the token of this id (tokens list).", show_default=False
        ),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    url: ServerOption = None,
    account: AccountOption = None,
) -> None:
    """Revoke a user's API tokens (all, or one) and every access token made from them.
    Revoking nothing is an error (exit code 1)."""
    from qruntime.server.services import users as service

    if token is not None and token_id is not None:
        raise fail("Give --token or --id, not both.", code=EXIT_USAGE)

    def local(session: Session) -> int:
        return service.revoke_tokens(session, name=name, token=token, token_id=token_id)

    def remote(api: ApiClient) -> int:
        body = {"token": token, "id": token_id}
        count: int = api.request("POST", f"/users/{name}/tokens/revoke", json=body).json()[
            "revoked"
        ]
        return count

    count = _either(url, account, db, config, remote=remote, local=local)
    typer.echo(f"Revoked {count} API token(s) of {name!r}.")
