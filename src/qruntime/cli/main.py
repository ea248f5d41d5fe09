"""The ``qruntime`` command: serve, and manage users and tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qruntime.errors import QRuntimeError

app = typer.Typer(
    name="qruntime",
    help="qruntime: a self-hosted quantum runtime service for Qiskit users.",
    no_args_is_help=True,
    add_completion=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: QRUNTIME_DB, else a SQLite file)."),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file ([server], [backends.*]).")
]


def _fail(error: QRuntimeError) -> typer.Exit:
    typer.echo(f"Error: {error}", err=True)
    return typer.Exit(code=2)


def _settings(db: str | None, config: Path | None, **overrides: object):  # type: ignore[no-untyped-def]
    from qruntime.server.settings import Settings

    return Settings.load(config_file=config, db_url=db, **overrides)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the server (SQLite, local workers and Aer backends unless configured otherwise)."""
    from qruntime.server.executor.local import LocalExecutor, launch_zygote

    try:
        settings = _settings(db, config, host=host, port=port)
    except QRuntimeError as error:
        raise _fail(error) from None
    # The workers take longest to start (Qiskit, Aer, a warm-up): start them first, so
    # that they get ready while this process imports the server and prepares the database.
    try:
        zygote = launch_zygote(catalogue_path=settings.config_file)
    except QRuntimeError as error:  # a configuration file that cannot be read
        raise _fail(error) from None
    try:
        import uvicorn

        from qruntime.server.app import create_app, prepare_database

        token = prepare_database(settings)
    except QRuntimeError as error:
        zygote.kill()
        raise _fail(error) from None
    except BaseException:
        zygote.kill()
        raise
    if token is not None:
        if settings.admin_token:
            typer.echo("Created the user 'admin' with the API token from QRUNTIME_ADMIN_TOKEN.")
        else:
            typer.echo("Created the user 'admin'. Its API token (shown once):")
            typer.echo(token)
    typer.echo(f"Database: {settings.db_url}")
    typer.echo(f"API: http://{settings.host}:{settings.port}  (OpenAPI docs at /docs)")
    executor = LocalExecutor.from_settings(settings, zygote=zygote)
    app = create_app(settings, executor=executor, prepare=False)  # prepared just above
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)


@users_app.command("add")
def users_add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a user; its API token is the last line printed."""
    from qruntime.server.app import prepare_database
    from qruntime.server.services import auth
    from qruntime.server.store.database import Database

    try:
        settings = _settings(db, config)
        prepare_database(settings)
        database = Database(settings.db_url)
        try:
            with database.session() as session:
                user, token = auth.create_user(session, name=name, is_admin=admin)
        finally:
            database.dispose()
    except QRuntimeError as error:
        raise _fail(error) from None
    typer.echo(f"Created {'admin ' if user.is_admin else ''}user {user.name!r}. API token:")
    typer.echo(token)


@users_app.command("list")
def users_list(db: DbOption = None, config: ConfigOption = None) -> None:
    """List the users."""
    from rich.console import Console
    from rich.table import Table

    from qruntime.server.app import prepare_database
    from qruntime.server.services.auth import SYSTEM_USER
    from qruntime.server.store import users as store
    from qruntime.server.store.database import Database

    try:
        settings = _settings(db, config)
        prepare_database(settings)
    except QRuntimeError as error:
        raise _fail(error) from None
    database = Database(settings.db_url)
    try:
        with database.session() as session:
            rows = [u for u in store.list_users(session) if u.name != SYSTEM_USER]
    finally:
        database.dispose()
    table = Table("name", "admin", "created")
    for user in rows:
        table.add_row(user.name, "yes" if user.is_admin else "", user.created_at.isoformat())
    Console().print(table)


@tokens_app.command("create")
def tokens_create(name: str, db: DbOption = None, config: ConfigOption = None) -> None:
    """Give a user one more API token; it is the last line printed."""
    from qruntime.server.services import auth
    from qruntime.server.store import users as store
    from qruntime.server.store.database import Database

    database = Database(_settings(db, config).db_url)
    try:
        with database.session() as session:
            user = store.get_user_by_name(session, name=name)
            if user is None or name == auth.SYSTEM_USER:
                typer.echo(f"Error: no user named {name!r}.", err=True)
                raise typer.Exit(code=2)
            token = auth.issue_api_token(session, user=user)
    finally:
        database.dispose()
    typer.echo(f"New API token for {name!r}:")
    typer.echo(token)


@tokens_app.command("revoke")
def tokens_revoke(
    name: str,
    token: Annotated[
        str | None, typer.Option("--token", help="Revoke only this token (default: all).")
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a user's API tokens, and every access token made from them."""
    from qruntime.server.services import auth
    from qruntime.server.store.database import Database

    try:
        database = Database(_settings(db, config).db_url)
        try:
            with database.session() as session:
                count = auth.revoke_tokens(session, name=name, token=token)
        finally:
            database.dispose()
    except QRuntimeError as error:
        raise _fail(error) from None
    typer.echo(f"Revoked {count} API token(s) of {name!r}.")


@app.command("env")
def env(
    ibm: Annotated[
        bool, typer.Option("--ibm", help="Settings for the official qiskit-ibm-runtime client.")
    ] = False,
) -> None:
    """Print ``export`` lines for QRUNTIME_URL and QRUNTIME_TOKEN: eval "$(qruntime env --ibm)"."""
    import os

    from qruntime.cli.ibm_env import ibm_environment, shell_exports

    if not ibm:
        typer.echo("Say which client: qruntime env --ibm", err=True)
        raise typer.Exit(code=2)
    url, token = os.environ.get("QRUNTIME_URL"), os.environ.get("QRUNTIME_TOKEN")
    missing = [
        name for name, value in (("QRUNTIME_URL", url), ("QRUNTIME_TOKEN", token)) if not value
    ]
    if missing:
        typer.echo(
            f"Error: set {' and '.join(missing)} first (the server's URL and your API token).",
            err=True,
        )
        raise typer.Exit(code=2)
    assert url is not None
    assert token is not None
    typer.echo(shell_exports(ibm_environment(url=url, token=token)), nl=False)


if __name__ == "__main__":  # pragma: no cover
    app()
