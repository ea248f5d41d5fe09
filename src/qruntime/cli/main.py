"""The ``qruntime`` command: serve; manage users and tokens; use a server from the shell.

The server and admin commands live here and in `qruntime.cli.admin`; the commands for
daily work (``status``, ``backends``, ``programs``, ``run``, ``jobs``, ``sessions``) talk
to a server as the Python client does, in their own modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qruntime.cli import jobs, programs, sessions, status
from qruntime.cli.admin import (
    ConfigOption,
    DbOption,
    database_label,
    load_settings,
    show_admin_token,
    tokens_app,
    users_app,
)
from qruntime.cli.connect import AccountOption, TokenOption, UrlOption
from qruntime.cli.output import EXIT_USAGE, fail
from qruntime.errors import QRuntimeError

if TYPE_CHECKING:
    from qruntime.server.executor.base import Executor
    from qruntime.server.settings import Settings

app = typer.Typer(
    name="qruntime",
    no_args_is_help=True,
    add_completion=False,
    # Help texts name TOML tables such as [server]: no markup, so they show as written.
    rich_markup_mode=None,
)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(programs.app, name="programs")
app.add_typer(jobs.app, name="jobs")
app.add_typer(sessions.app, name="sessions")
app.command("status")(status.status)
app.command("backends")(status.backends)
app.command("usage")(status.usage)
app.command("cluster")(status.cluster)
app.command("run")(jobs.run)


def _show_version(value: bool) -> None:
    if value:
        from qruntime._version import __version__

        typer.echo(f"qruntime {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """qruntime: a self-hosted quantum runtime service for Qiskit users.

    The commands that use a server find it as the Python client does: --url and --token,
    else QRUNTIME_URL and QRUNTIME_TOKEN, else the saved account. Exit codes: 0 done, 1
    refused by the server or the database (or a job did not complete), 2 a mistake in the
    command line or the configuration.
    """


def _check_before_start(settings: Settings) -> None:
    """Refuse, in one line, what would fail later in a worker or half way through start-up."""
    from qruntime.server.services.auth import MIN_API_TOKEN_CHARS

    admin_token = settings.admin_token
    if admin_token is not None and len(admin_token) < MIN_API_TOKEN_CHARS:
        raise fail(
            f"QRUNTIME_ADMIN_TOKEN must be at least {MIN_API_TOKEN_CHARS} characters long "
            f"(it has {len(admin_token)}).",
            code=EXIT_USAGE,
        )
    if settings.config_file is not None:
        from qruntime.backends.config_file import read_specs

        try:
            read_specs(settings.config_file)  # the [backends] tables, as the workers read them
        except QRuntimeError as error:
            raise fail(str(error), code=EXIT_USAGE) from None


class _NoZygote:
    """What ``serve`` kills on a failed start when it launched no zygote ahead (its jobs
    run on Ray, or it shares PostgreSQL and starts workers only if it leads): nothing."""

    def kill(self) -> None:
        pass


def _check_executor(settings: Settings) -> bool:
    """Whether jobs run on Ray; fail in one line on an unknown executor or a missing Ray."""
    if settings.executor not in ("local", "ray"):
        raise fail(f"Unknown executor {settings.executor!r}: use local or ray.", code=EXIT_USAGE)
    if settings.executor == "local":
        return False
    from qruntime.server.executor.ray import import_ray

    try:
        import_ray()
    except QRuntimeError as error:
        raise fail(f"Cannot start: {error}.", code=EXIT_USAGE) from None
    return True


def _reset_hint(db: str | None, config: Path | None, settings: Settings) -> str:
    """The command that replaces a lost admin token on this server's database."""
    command = "qruntime users reset-token admin"
    if config is not None:
        command += f" --config {config}"
    if db is not None or config is None:
        command += f" --db {database_label(settings.db_url)}"
    return command


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    drain_seconds: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="On SIGTERM or SIGINT, seconds to let running jobs finish before stopping; "
            "the rest run again after the restart. Default 30 (QRUNTIME_DRAIN_SECONDS, "
            "drain_seconds in [server]).",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            help="Where jobs run: local (worker processes here, the default) or ray (a Ray "
            "cluster; pip install 'qruntime[ray]'). executor in [server].",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="The Ray cluster of --executor ray, as head:6379 (default RAY_ADDRESS). "
            "ray_address in [server].",
        ),
    ] = None,
) -> None:
    """Start the server (SQLite, local workers and Aer backends unless configured otherwise).

    On the first start with an empty database it creates the user admin and prints its API
    token once; QRUNTIME_ADMIN_TOKEN (at least 16 characters) chooses that token instead.
    A lost admin token is replaced with: qruntime users reset-token admin.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from qruntime.server.executor.local import LaunchedZygote, launch_zygote

    settings = load_settings(
        db,
        config,
        host=host,
        port=port,
        drain_seconds=drain_seconds,
        executor=executor,
        ray_address=ray_address,
    )
    _check_before_start(settings)
    on_ray = _check_executor(settings)
    # The workers take longest to start (Qiskit, Aer, a warm-up): start them first, so
    # that they get ready while this process imports the server and prepares the database.
    # Not on PostgreSQL: there only the server that takes the lead starts its workers.
    lone = settings.db_url.startswith("sqlite")
    try:
        if on_ray or not lone:
            zygote: LaunchedZygote | _NoZygote = _NoZygote()
        else:
            zygote = launch_zygote(catalogue_path=settings.config_file)
    except QRuntimeError as error:  # a configuration file that cannot be read
        raise fail(str(error), code=EXIT_USAGE) from None
    try:
        from qruntime.server.app import create_app, prepare_database
        from qruntime.server.executor.local import LocalExecutor
        from qruntime.server.serving import serve as serve_app

        token = prepare_database(settings)
    except (QRuntimeError, SQLAlchemyError) as error:
        zygote.kill()
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise fail(f"Cannot prepare the database: {first}", code=EXIT_USAGE) from None
    except BaseException:
        zygote.kill()
        raise
    if token is not None:
        show_admin_token(token, chosen=bool(settings.admin_token), stderr=False)
    else:
        typer.echo(f"A lost admin token is replaced with: {_reset_hint(db, config, settings)}")
    typer.echo(f"Database: {database_label(settings.db_url)}")
    typer.echo(f"API: http://{settings.host}:{settings.port}  (OpenAPI docs at /docs)")
    typer.echo(f"Dashboard: http://{settings.host}:{settings.port}/  (sign in with an API token)")
    if on_ray:
        from qruntime.server.executor.ray import RayExecutor

        jobs_run: Executor = RayExecutor.from_settings(settings)
        typer.echo(f"Executor: Ray ({settings.ray_address or 'RAY_ADDRESS'})")
    else:
        launched = zygote if isinstance(zygote, LaunchedZygote) else None
        jobs_run = LocalExecutor.from_settings(settings, zygote=launched)
    app = create_app(settings, executor=jobs_run, prepare=False)  # prepared just above
    serve_app(
        app,
        host=settings.host,
        port=settings.port,
        drain_seconds=settings.drain_seconds,
        log_level=log_level,
    )


@app.command("env")
def env(
    ibm: Annotated[
        bool, typer.Option("--ibm", help="Settings for the official qiskit-ibm-runtime client.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Print export lines for your server and API token, for your shell.

    eval "$(qruntime env)" sets QRUNTIME_URL and QRUNTIME_TOKEN (for the qruntime client
    and these commands); eval "$(qruntime env --ibm)" sets what the unmodified
    qiskit-ibm-runtime client reads. The server and token come from --url and --token,
    else the environment, else the saved account.
    """
    from qruntime.cli.ibm_env import ibm_environment, shell_exports
    from qruntime.client._account import resolve_account

    try:
        server, api_token = resolve_account(url, token, account)
    except QRuntimeError as error:
        raise fail(str(error), code=EXIT_USAGE) from None
    variables = (
        ibm_environment(url=server, token=api_token)
        if ibm
        else {"QRUNTIME_URL": server, "QRUNTIME_TOKEN": api_token}
    )
    typer.echo(shell_exports(variables), nl=False)


if __name__ == "__main__":  # pragma: no cover
    app()
