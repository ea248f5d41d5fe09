"""``qruntime programs``: list, show, upload, update, delete, publish and unpublish programs."""

from __future__ import annotations

import json
from pathlib import Path
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
    EXIT_USAGE,
    console,
    fail,
    print_json,
    print_more_hint,
    print_table,
    reports_errors,
)

__all__ = ["app"]

app = typer.Typer(
    help="Runtime programs: list, show, upload, update, delete, publish, unpublish, environment.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ProgramId = Annotated[str, typer.Argument(help="The program's id (see `qruntime programs list`).")]
NameOption = Annotated[str | None, typer.Option(help="The program's name.", show_default=False)]
DescriptionOption = Annotated[
    str | None, typer.Option(help="What the program does.", show_default=False)
]
MaxTimeOption = Annotated[
    int | None,
    typer.Option(
        "--max-execution-time", min=1, help="Seconds a job of it may run.", show_default=False
    ),
]


@app.command("list")
@reports_errors
def list_programs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    skip: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """List the programs you can see: yours, and the public ones."""
    with open_service(url, token, account) as service:
        page = get_json(service, "/programs", limit=limit, offset=skip)
    programs = [{k: v for k, v in p.items() if k != "data"} for p in page["programs"]]
    if as_json:
        print_json(programs)
        return
    print_table(
        ["id", "name", "owner", "public", "max time", "description"],
        (
            [
                p["id"],
                p["name"],
                p["owner"],
                "yes" if p["is_public"] else "",
                f"{p['cost']} s",
                p["description"],
            ]
            for p in programs
        ),
        flex="description",
    )
    print_more_hint(shown=len(programs), count=page["count"], skip=skip)


@app.command("show")
@reports_errors
def show(
    program_id: ProgramId,
    source: Annotated[
        bool, typer.Option("--source", help="Print its source (the owner's only).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Show a program: its metadata, parameters, interim results and return values."""
    with open_service(url, token, account) as service:
        if as_json:
            print_json(get_json(service, f"/programs/{program_id}"))
            return
        program = service.program(program_id)
        if source:
            typer.echo(program.data, nl=False)
            return
        typer.echo(str(program))


@app.command("environment")
@reports_errors
def environment(
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """What uploaded programs can import: the server's Python and its installed packages
    (a program's declared dependencies must be among them)."""
    with open_service(url, token, account) as service:
        listing = service.program_environment()
    if as_json:
        print_json(listing)
        return
    console(stderr=True).print(f"Python {listing['python']}")
    print_table(["package", "version"], ([p["name"], p["version"]] for p in listing["packages"]))


def _metadata(
    metadata: Path | None,
    overrides: dict[str, Any],
) -> dict[str, Any] | str | None:
    """The metadata to send: the file's path as it is, or its JSON with ``overrides``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if not given:
        return None if metadata is None else str(metadata)
    merged: dict[str, Any] = {}
    if metadata is not None:
        try:
            loaded = json.loads(metadata.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(
                f"Cannot read the metadata file {metadata}: {exc}", code=EXIT_USAGE
            ) from None
        if not isinstance(loaded, dict):
            raise fail(f"The metadata file {metadata} must hold a JSON object.", code=EXIT_USAGE)
        merged.update(loaded)
    merged.update(given)
    return merged


@app.command("upload")
@reports_errors
def upload(
    path: Annotated[Path, typer.Argument(help="The program: a Python file with main().")],
    metadata: Annotated[
        Path | None,
        typer.Option(
            "--metadata",
            help="A JSON file: name, description, max_execution_time, spec, is_public.",
            show_default=False,
        ),
    ] = None,
    name: NameOption = None,
    description: DescriptionOption = None,
    max_execution_time: MaxTimeOption = None,
    public: Annotated[
        bool | None,
        typer.Option("--public/--private", help="Who may see and run it.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Upload a program; its id is the last line printed. Options override the metadata file."""
    meta = _metadata(
        metadata,
        {
            "name": name,
            "description": description,
            "max_execution_time": max_execution_time,
            "is_public": public,
        },
    )
    with open_service(url, token, account) as service:
        program_id = service.upload_program(data=str(path), metadata=meta)
    if as_json:
        print_json({"id": program_id})
    else:
        typer.echo(f"Uploaded program {program_id!r}. Its id:", err=True)
        typer.echo(program_id)


@app.command("update")
@reports_errors
def update(
    program_id: ProgramId,
    data: Annotated[
        Path | None, typer.Option("--data", help="New source: a Python file.", show_default=False)
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option("--metadata", help="A JSON file of metadata to change.", show_default=False),
    ] = None,
    name: NameOption = None,
    description: DescriptionOption = None,
    max_execution_time: MaxTimeOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Change a program's source and/or metadata (yours, or any as an admin)."""
    if not any([data, metadata, name, description, max_execution_time]):
        raise fail(
            "Nothing to update: give --data, --metadata, --name, --description or "
            "--max-execution-time.",
            code=EXIT_USAGE,
        )
    with open_service(url, token, account) as service:
        service.update_program(
            program_id,
            data=None if data is None else str(data),
            metadata=None if metadata is None else str(metadata),
            name=name,
            description=description,
            max_execution_time=max_execution_time,
        )
    typer.echo(f"Updated program {program_id!r}.")


@app.command("delete")
@reports_errors
def delete(
    program_id: ProgramId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Delete a program (yours, or any as an admin)."""
    with open_service(url, token, account) as service:
        service.delete_program(program_id)
    typer.echo(f"Deleted program {program_id!r}.")


def _visibility(
    program_id: str, public: bool, url: str | None, token: str | None, account: str | None
) -> None:
    with open_service(url, token, account) as service:
        service.set_program_visibility(program_id, public=public)
    typer.echo(f"Program {program_id!r} is now {'public' if public else 'private'}.")


@app.command("publish")
@reports_errors
def publish(
    program_id: ProgramId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Make a program public: everyone can see and run it."""
    _visibility(program_id, True, url, token, account)


@app.command("unpublish")
@reports_errors
def unpublish(
    program_id: ProgramId,
    url: UrlOption = None,
    token: TokenOption = None,
    account: AccountOption = None,
) -> None:
    """Make a program private: only you (and admins) can see and run it."""
    _visibility(program_id, False, url, token, account)
