"""``qruntime status``, ``backends``, ``usage`` and ``cluster``: the server, its backends and
their queues, what your jobs used, and the servers and nodes behind it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

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
    console,
    parse_time,
    print_json,
    print_table,
    reports_errors,
    short_time,
)
from qruntime.schemas.server import resources_text

if TYPE_CHECKING:
    from qruntime.client._service import RuntimeService

__all__ = ["backends", "cluster", "status", "usage"]


def _backends(service: RuntimeService) -> list[dict[str, Any]]:
    """Each backend's size, kind, lanes, status and queue, in the server's order (from
    the list and each backend's status: no configuration documents are built)."""
    found = []
    for summary in get_json(service, "/backends")["backends"]:
        state = get_json(service, f"/backends/{summary['name']}/status")
        found.append(
            {
                "name": summary["name"],
                "num_qubits": summary["num_qubits"],
                "kind": summary["kind"],
                "lanes": summary["lanes"],
                "simulator": bool(summary["simulator"]),
                "operational": state["operational"],
                "pending_jobs": state["pending_jobs"],
                "status_msg": state.get("status_msg", ""),
                "description": summary.get("description") or "",
            }
        )
    return found


_KINDS = {"aer": "simulator", "device": "device-like", "provider": "provider"}


def _print_backends(rows: list[dict[str, Any]]) -> None:
    print_table(
        ["name", "qubits", "kind", "lanes", "status", "queued", "description"],
        (
            [
                row["name"],
                row["num_qubits"],
                _KINDS.get(row["kind"], row["kind"]),
                row["lanes"],
                "online" if row["operational"] else f"offline ({row['status_msg']})",
                row["pending_jobs"],
                row["description"],
            ]
            for row in rows
        ),
        flex="description",
    )


@reports_errors
def backends(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """List the server's backends: qubits, kind, status and the jobs queued for each."""
    with open_service(url, token, account) as service:
        rows = _backends(service)
    if as_json:
        print_json(rows)
    else:
        _print_backends(rows)


@reports_errors
def usage(
    start: Annotated[
        str | None,
        typer.Option(help="Only jobs that ended at or after (ISO time).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(help="Only jobs that ended before (ISO time).", show_default=False),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Admins: this user's usage (by name).", show_default=False),
    ] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Admins: every user's seconds and jobs.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Seconds your jobs have run (in all, or of the jobs that ended between --start and
    --end); admins: another user's with --user, or every user's with --all-users."""
    with open_service(url, token, account) as service:
        report = get_json(
            service,
            "/usage",
            start=_isoformat(parse_time(start, "--start")),
            end=_isoformat(parse_time(end, "--end")),
            user=user,
            all_users=all_users or None,
        )
    if as_json:
        print_json(report)
        return
    if "users" in report:
        print_table(
            ["user", "seconds", "jobs"],
            (
                [row["user"], f"{row['usage_consumed_seconds']:.1f}", str(row["jobs"])]
                for row in report["users"]
            ),
        )
        return
    console().print(f"{report['user']}: {report['usage_consumed_seconds']:.1f} s of job time")


def _isoformat(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@reports_errors
def status(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Show the server (its version), who you are, its backends and queues, and your
    pending jobs."""
    with open_service(url, token, account) as service:
        health = get_json(service, "/health")
        me = get_json(service, "/users/me")
        rows = _backends(service)
        pending = get_json(service, "/jobs", pending=True, limit=1)["count"]
        report = {
            "url": service.url,
            "version": health.get("version"),
            "user": me["name"],
            "is_admin": me["is_admin"],
            "backends": rows,
            "queued_jobs": sum(row["pending_jobs"] for row in rows),
            "your_pending_jobs": pending,
        }
    if as_json:
        print_json(report)
        return
    out = console()
    role = " (admin)" if report["is_admin"] else ""
    out.print(f"Server:  {report['url']}  qruntime {report['version']}")
    out.print(f"User:    {report['user']}{role}")
    out.print(
        f"Queue:   {report['queued_jobs']} job(s) queued on the server; "
        f"{pending} of yours queued or running"
    )
    _print_backends(rows)


def _reachable(server: dict[str, Any]) -> str:
    """``host:port`` to reach a listed server: a server that listens on every address
    (``0.0.0.0``) is reached where its database connection comes from."""
    host, _, port = server["listen"].rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]") and server["address"]:
        host = server["address"]
    return f"{host}:{port}"


@reports_errors
def cluster(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Admins: the servers on the server's database, which one leads, and the nodes jobs
    run on (with their running jobs where the leader answers)."""
    with open_service(url, token, account) as service:
        view = get_json(service, "/cluster")
    if as_json:
        print_json(view)
        return
    out = console()
    ray = f" (Ray at {view['ray_address']})" if view["ray_address"] else ""
    out.print(f"Store:    {view['store']}; jobs run on the {view['executor']} executor{ray}")
    leader = view["leader"]
    if leader["server"] is None:
        out.print("Leader:   none yet")
    else:
        epoch = f", epoch {leader['epoch']}" if leader["epoch"] is not None else ""
        gone = "" if leader["alive"] else " (gone; a standby, if any, takes over)"
        out.print(f"Leader:   {leader['server']} since {short_time(leader['since'])}{epoch}{gone}")
    out.print(f"Jobs:     {view['queued_jobs']} queued, {view['running_jobs']} running")
    print_table(
        ["server", "listens on", "connects from", "since", "role"],
        (
            [
                row["server"] + (" (this)" if row["this"] else ""),
                row["listen"],
                row["address"] or "local",
                short_time(row["since"]),
                "leader" if row["leader"] else "standby",
            ]
            for row in view["servers"]
        ),
    )
    nodes = view["nodes"]
    leading = [row for row in view["servers"] if row["leader"]]
    where = f" (qruntime cluster --url http://{_reachable(leading[0])})" if leading else ""
    if nodes is None:
        out.print(f"Nodes:    none recorded by the leader yet; ask it{where}")
        return
    if view["nodes_as_of"] is not None:
        out.print(
            f"Nodes:    as the leader recorded them at {short_time(view['nodes_as_of'])}; "
            f"their running jobs from the leader{where}"
        )
    print_table(
        ["node", "address", "ready", "jobs", "sessions", "resources"],
        (
            [
                row["node_id"],
                row["address"],
                "yes" if row["ready"] else "no",
                "-" if row["jobs"] is None else row["jobs"],
                "-" if row["sessions"] is None else row["sessions"],
                resources_text(row["resources"]),
            ]
            for row in nodes
        ),
        flex="resources",
    )
