"""``qruntime sessions``: list, show, close and cancel your sessions and batches."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qruntime.cli.connect import (
    AccountOption,
    JsonOption,
    TokenOption,
    UrlOption,
    get_json,
    open_service,
)
from qruntime.cli.output import (
    print_json,
    print_more_hint,
    print_table,
    reports_errors,
    short_time,
)

__all__ = ["app"]

app = typer.Typer(
    help="Your sessions and batches: list, show, close, cancel.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SessionId = Annotated[str, typer.Argument(help="The session's id (see `qruntime sessions list`).")]


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f} s"


@app.command("list")
@reports_errors
def list_sessions(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 10,
    skip: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    state: Annotated[
        str | None,
        typer.Option(
            help="Only in this state: open, active, inactive or closed.", show_default=False
        ),
    ] = None,
    pending: Annotated[
        bool | None,
        typer.Option(
            "--pending/--closed",
            help="Only those not closed, or only closed ones.",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Only on this backend.", show_default=False)
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="Only this mode: dedicated or batch.", show_default=False)
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Admins: this user's (by name).", show_default=False),
    ] = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="Admins: every user's.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """List your sessions and batches, newest first (admins: another user's with --user,
    or everyone's with --all-users)."""
    with open_service(url, token, account) as service:
        page = get_json(
            service,
            "/sessions",
            limit=limit,
            offset=skip,
            state=state,
            pending=pending,
            backend=backend,
            mode=mode,
            user=user,
            all_users=all_users or None,
        )
    if as_json:
        print_json(page["sessions"])
        return
    print_table(
        ["id", "backend", "mode", "state", "accepting jobs", "jobs", "usage", "created"],
        (
            [
                s["id"],
                s["backend_name"],
                s["mode"],
                s["state"],
                "yes" if s["accepting_jobs"] else "no",
                f"{s['jobs']['total']} ({s['jobs']['pending']} pending)",
                _seconds(s["usage_time"]),
                short_time(s["created_at"]),
            ]
            for s in page["sessions"]
        ),
    )
    print_more_hint(shown=len(page["sessions"]), count=page["count"], skip=skip)


@app.command("show")
@reports_errors
def show(
    session_id: SessionId,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Show a session: state, clocks, jobs and usage."""
    with open_service(url, token, account) as service:
        details = get_json(service, f"/sessions/{session_id}")
    if as_json:
        print_json(details)
        return
    rows = [
        ("id", details["id"]),
        ("backend", details["backend_name"]),
        ("mode", details["mode"]),
        ("state", details["state"]),
        ("reason", details.get("state_reason") or ""),
        ("accepting jobs", "yes" if details["accepting_jobs"] else "no"),
        ("jobs", f"{details['jobs']['total']} ({details['jobs']['pending']} pending)"),
        ("max time", _seconds(details["max_ttl"])),
        ("interactive timeout", _seconds(details["interactive_ttl"])),
        ("time left", _seconds(details["active_ttl"])),
        ("elapsed", _seconds(details["elapsed_time"])),
        ("usage", _seconds(details["usage_time"])),
        ("created", short_time(details["created_at"])),
        ("activated", short_time(details["activated_at"])),
        ("closed", short_time(details["closed_at"])),
    ]
    print_table(["field", "value"], rows)


@app.command("close")
@reports_errors
def close(
    session_id: SessionId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Close a session: it accepts no new jobs; queued and running jobs finish."""
    from qruntime.client._session import Session

    with open_service(url, token, account) as service:
        Session.from_id(session_id, service=service).close()
    typer.echo(f"Closed session {session_id}.")


@app.command("cancel")
@reports_errors
def cancel(
    session_id: SessionId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Cancel a session: close it and cancel its queued jobs (running ones finish)."""
    from qruntime.client._session import Session

    with open_service(url, token, account) as service:
        Session.from_id(session_id, service=service).cancel()
    typer.echo(f"Cancelled session {session_id}.")
