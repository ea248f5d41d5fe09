"""``qruntime run`` and ``qruntime jobs``: run programs, follow, read and manage jobs.

Following a job streams its interim results over the client's WebSocket as they are
published, with a spinner on stderr; the final result goes to stdout, so that
``qruntime run ... --wait > result.json`` keeps only the result.
"""

from __future__ import annotations

import contextlib
import json
import queue
import time
from pathlib import Path
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
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    error,
    fail,
    parse_time,
    print_json,
    print_more_hint,
    print_table,
    reports_errors,
    short_time,
)
from qruntime.errors import RuntimeInvalidStateError, RuntimeJobTimeoutError

if TYPE_CHECKING:
    from qruntime.client._job import RuntimeJob
    from qruntime.client._service import RuntimeService

__all__ = ["app", "parse_inputs", "run"]

app = typer.Typer(
    help="Your jobs: list, show, logs, result, wait, cancel, delete.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JobId = Annotated[str, typer.Argument(help="The job's id (see `qruntime jobs list`).")]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0, help="Give up waiting after this many seconds.", show_default=False
    ),
]


class _Tagged:
    """A result decoder that keeps the text as sent, tagged interim or final."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def decode(self, data: str) -> tuple[str, str]:
        return (self.kind, data)


class _Text:
    """A result decoder that keeps the text as sent."""

    @staticmethod
    def decode(data: str) -> str:
        return data


def _plain(text: str) -> Any:
    """The JSON value of a result's text (encoded values stay encoded), or the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _print_result(text: str, *, as_json: bool) -> None:
    """A final result on stdout: a string as it is, anything else as JSON."""
    value = _plain(text)
    if as_json or not isinstance(value, str):
        print_json(value)
    else:
        typer.echo(value)


def _one_line(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: max(width - 3, 1)] + "..."


def parse_inputs(pairs: list[str], inputs_file: Path | None) -> dict[str, Any]:
    """The inputs of ``--inputs FILE`` and ``--input key=value`` (the pairs win).

    A value is JSON where it parses as JSON (``3``, ``true``, ``[1, 2]``, ``{"a": 1}``),
    else the text as it is; ``key=@file.json`` reads the value from a JSON file.
    """
    inputs: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            loaded = json.loads(inputs_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(
                f"Cannot read the inputs file {inputs_file}: {exc}", code=EXIT_USAGE
            ) from None
        if not isinstance(loaded, dict):
            raise fail(f"The inputs file {inputs_file} must hold a JSON object.", code=EXIT_USAGE)
        inputs.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise fail(f"--input {pair!r}: write it as key=value.", code=EXIT_USAGE)
        if raw.startswith("@"):
            try:
                inputs[key] = json.loads(Path(raw[1:]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise fail(
                    f"--input {key}: cannot read {raw[1:]}: {exc}", code=EXIT_USAGE
                ) from None
            continue
        try:
            inputs[key] = json.loads(raw)
        except ValueError:
            inputs[key] = raw
    return inputs


Messages = queue.Queue[tuple[str, str]]


def _follow(
    service: RuntimeService,
    job: RuntimeJob,
    *,
    messages: Messages | None,
    timeout: float | None,
    as_json: bool,
) -> int:
    """Wait for ``job`` with a spinner, showing interim results; print the outcome.

    Returns the exit code: 0 for a completed job, 1 otherwise. ``messages`` receives the
    job's stream when the caller started it (``run --wait``); else it is streamed here.
    """
    inbox: Messages = queue.Queue() if messages is None else messages
    if messages is None:
        # A job already final has nothing left to stream (refused): its result is read below.
        with contextlib.suppress(RuntimeInvalidStateError):
            job.stream_results(
                lambda _job_id, message: inbox.put(message),
                decoder=(_Tagged("interim"), _Tagged("final")),
            )
    interim: list[Any] = []
    final: str | None = None
    err = console(stderr=True)
    deadline = None if timeout is None else time.monotonic() + timeout

    def drain(block: float) -> None:
        nonlocal final
        try:
            kind, text = inbox.get(timeout=block) if block else inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            if kind == "final":
                final = text
            else:
                interim.append(_plain(text))
                if not as_json:
                    line = _one_line(interim[-1], max(err.width - 14, 20))
                    err.print(f"interim {len(interim)}: {line}", markup=False, highlight=False)
            try:
                kind, text = inbox.get_nowait()
            except queue.Empty:
                return

    with err.status(f"Job {job.job_id()}: waiting", spinner="dots") as spinner:
        while True:
            drain(0)
            try:
                # A long poll: it returns as soon as the job ends, and then the stream
                # has delivered everything.
                job.wait_for_final_state(timeout=0.3)
                break
            except RuntimeJobTimeoutError:
                pass
            state = job.status().name.lower()
            spinner.update(f"Job {job.job_id()}: {state}")
            if deadline is not None and time.monotonic() > deadline:
                raise fail(
                    f"Job {job.job_id()} is still {state} after {timeout:g} s; "
                    f"follow it with: qruntime jobs wait {job.job_id()}"
                )
        drain(0)
    payload = get_json(service, f"/jobs/{job.job_id()}", exclude_params=True)
    completed = payload["status"] == "Completed"
    if completed and final is None:
        final = job.result(decoder=_Text)
    if as_json:
        print_json(
            {
                "id": job.job_id(),
                "status": payload["status"],
                "reason": payload["state"].get("reason"),
                "interim_results": interim,
                "result": None if final is None else _plain(final),
            }
        )
    elif completed and final is not None:
        err.print(f"Job {job.job_id()} completed.", markup=False)
        _print_result(final, as_json=False)
    else:
        error(job.error_message() or f"Job {job.job_id()} ended {payload['status']}.")
    return 0 if completed else EXIT_FAILED


@reports_errors
def run(
    program_id: Annotated[str, typer.Argument(help="The program's id, e.g. hello-world.")],
    backend: Annotated[str, typer.Option("--backend", "-b", help="The backend to run on.")],
    input_pairs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="An input as key=value (JSON, else text; key=@file.json reads a file). "
            "Repeat for more.",
            show_default=False,
        ),
    ] = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option("--inputs", help="A JSON file with all the inputs.", show_default=False),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the job to its end; print its result.")
    ] = False,
    timeout: TimeoutOption = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Run in this session.", show_default=False)
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag; repeat for more.", show_default=False)
    ] = None,
    max_execution_time: Annotated[
        int | None,
        typer.Option(
            "--max-execution-time",
            min=1,
            help="Stop the job after this many seconds.",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="The program's logging level, e.g. DEBUG.", show_default=False
        ),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", help="Inputs never returned; result readable once.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Run a program as a job: its id is the last line printed, or, with --wait, its
    interim results are shown as they come and its result is printed."""
    inputs = parse_inputs(input_pairs or [], inputs_file)
    options: dict[str, Any] = {"backend": backend}
    for key, value in (
        ("session_id", session),
        ("job_tags", tags),
        ("max_execution_time", max_execution_time),
        ("log_level", log_level),
        ("private", private or None),
    ):
        if value is not None:
            options[key] = value
    with open_service(url, token, account) as service:
        if not wait:
            job = service.run(program_id, inputs, options=options)
            if as_json:
                print_json({"id": job.job_id(), "backend": backend})
            else:
                typer.echo(f"Submitted job to {backend}. Its id:", err=True)
                typer.echo(job.job_id())
            return
        # The stream starts with the job, so a fast job's interim results are all seen.
        messages: Messages = queue.Queue()
        job = service.run(
            program_id,
            inputs,
            options=options,
            callback=lambda _job_id, message: messages.put(message),
            result_decoder=(_Tagged("interim"), _Tagged("final")),
        )
        if not as_json:
            console(stderr=True).print(f"Job {job.job_id()} submitted to {backend}.", markup=False)
        code = _follow(service, job, messages=messages, timeout=timeout, as_json=as_json)
    if code:
        raise typer.Exit(code=code)


@app.command("list")
@reports_errors
def list_jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 10,
    skip: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    pending: Annotated[
        bool | None,
        typer.Option(
            "--pending/--final",
            help="Only queued or running jobs, or only final ones.",
            show_default=False,
        ),
    ] = None,
    program: Annotated[
        str | None, typer.Option(help="Only this program's.", show_default=False)
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="Only on this backend.", show_default=False)
    ] = None,
    session: Annotated[
        str | None, typer.Option(help="Only in this session.", show_default=False)
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Only with this tag; repeat for more.", show_default=False),
    ] = None,
    created_after: Annotated[
        str | None, typer.Option(help="Only created at or after (ISO time).", show_default=False)
    ] = None,
    created_before: Annotated[
        str | None, typer.Option(help="Only created at or before (ISO time).", show_default=False)
    ] = None,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Oldest first.")] = False,
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
    """List your jobs, newest first (admins: another user's with --user, or everyone's
    with --all-users)."""
    after = parse_time(created_after, "--created-after")
    before = parse_time(created_before, "--created-before")
    with open_service(url, token, account) as service:
        page = get_json(
            service,
            "/jobs",
            limit=limit,
            offset=skip,
            pending=pending,
            program=program,
            backend=backend,
            session_id=session,
            tags=tags,
            created_after=after.isoformat() if after else None,
            created_before=before.isoformat() if before else None,
            sort="ASC" if oldest_first else "DESC",
            user=user,
            all_users=all_users or None,
        )
    if as_json:
        print_json(page["jobs"])
        return
    owners = user is not None or all_users
    print_table(
        [
            "id",
            *(["owner"] if owners else []),
            "program",
            "backend",
            "status",
            "created",
            "session",
            "tags",
        ],
        (
            [
                j["id"],
                *([j.get("owner") or ""] if owners else []),
                j["program"]["id"],
                j["backend"],
                j["status"],
                short_time(j["created"]),
                j.get("session_id") or "",
                ", ".join(j.get("tags") or []),
            ]
            for j in page["jobs"]
        ),
    )
    print_more_hint(shown=len(page["jobs"]), count=page["count"], skip=skip)


@app.command("show")
@reports_errors
def show(
    job_id: JobId,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Show a job: status and reason, program, backend, session, times and usage."""
    with open_service(url, token, account) as service:
        job = get_json(service, f"/jobs/{job_id}", exclude_params=True)
        metrics = get_json(service, f"/jobs/{job_id}/metrics")
    if as_json:
        print_json({**job, "metrics": metrics})
        return
    usage = (metrics.get("usage") or {}).get("seconds")
    rows = [
        ("id", job["id"]),
        ("status", job["status"]),
        ("reason", job["state"].get("reason") or ""),
        ("program", job["program"]["id"]),
        ("backend", job["backend"]),
        ("session", job.get("session_id") or ""),
        ("tags", ", ".join(job.get("tags") or [])),
        ("private", "yes" if job.get("private") else "no"),
        ("max execution time", f"{job['cost']} s"),
        ("created", short_time(job.get("created"))),
        ("running", short_time(job.get("running"))),
        ("finished", short_time(job.get("finished"))),
        ("usage", "" if usage is None else f"{usage:.3f} s"),
    ]
    print_table(["field", "value"], rows)


@app.command("logs")
@reports_errors
def logs(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Print what the job's program printed or logged (complete once the job is final)."""
    with open_service(url, token, account) as service:
        text = service.job(job_id).logs()
    typer.echo(text, nl=not text.endswith("\n") and bool(text))


@app.command("result")
@reports_errors
def result(
    job_id: JobId,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Print the job's final result (waiting for it to end): text as it is, else JSON."""
    with open_service(url, token, account) as service:
        job = service.job(job_id)
        with console(stderr=True).status(f"Job {job_id}: waiting for the result"):
            text = job.result(timeout=timeout, decoder=_Text)
    _print_result(text, as_json=as_json)


@app.command("wait")
@reports_errors
def wait(
    job_id: JobId,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Wait for the job to end, showing its interim results; exit 1 unless it completed."""
    with open_service(url, token, account) as service:
        code = _follow(
            service, service.job(job_id), messages=None, timeout=timeout, as_json=as_json
        )
    if code:
        raise typer.Exit(code=code)


@app.command("cancel")
@reports_errors
def cancel(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Cancel a job: a queued one never runs, a running one is stopped."""
    with open_service(url, token, account) as service:
        service.job(job_id).cancel()
    typer.echo(f"Cancelled job {job_id}.")


@app.command("delete")
@reports_errors
def delete(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Delete a final job with its results and logs; irreversible."""
    with open_service(url, token, account) as service:
        service.delete_job(job_id)
    typer.echo(f"Deleted job {job_id}.")
