"""Programs bigger than one file: a folder, sent and stored as a zip archive.

A folder program is a set of files with one entry module (``entry_point``, default
``program.py``) that defines ``main``. The client zips the folder; the server checks the
archive with `read_archive` before it stores it, re-packed by `pack` (sorted, fixed
times, plain files only); the worker, inside the sandbox, checks it again and writes it
to a folder of its private ``/tmp`` (`extract`), from which the entry module is imported.

The archive is untrusted input. `read_archive` refuses, with a message naming the
member: paths that leave the folder (absolute, ``..``, a drive or backslash), links and
other special files, duplicate names, more than `MAX_FILES` files, and more than
``max_bytes`` of content in all, counted while decompressing (never trusting the sizes
the archive declares); and an entry point that is missing, not a ``.py`` module, or not
importable by its path.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qruntime.errors import InputValueError, PayloadTooLargeError

__all__ = [
    "DEFAULT_ENTRY_POINT",
    "MAX_FILES",
    "ProgramFiles",
    "archive_folder",
    "extract",
    "is_archive",
    "module_name",
    "pack",
    "read_archive",
]

DEFAULT_ENTRY_POINT = "program.py"
MAX_FILES = 1000
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ProgramFiles:
    """A checked folder program: its files (path -> content) and its entry module."""

    files: dict[str, bytes]
    entry_point: str

    @property
    def entry_source(self) -> str:
        return self.files[self.entry_point].decode("utf-8")

    @property
    def size(self) -> int:
        return sum(len(content) for content in self.files.values())


def is_archive(raw: bytes) -> bool:
    """Whether ``raw`` is a zip archive (rather than a program's source text)."""
    return raw.startswith(_ZIP_MAGIC) or raw.startswith(_EMPTY_ZIP_MAGIC)


def module_name(entry_point: str) -> str:
    """The import name of an entry point: ``program.py`` -> ``program``, ``app/run.py`` ->
    ``app.run``; `InputValueError` when the path is not an importable module."""
    path = _member_path(entry_point, what="entry_point")
    if path.suffix != ".py":
        raise InputValueError(f"entry_point {entry_point!r} must name a .py module.")
    parts = [*path.parent.parts, path.stem]
    if not all(part.isidentifier() for part in parts):
        raise InputValueError(
            f"entry_point {entry_point!r} is not importable: each folder and the module name "
            "must be a Python identifier."
        )
    return ".".join(parts)


def _member_path(name: str, *, what: str) -> PurePosixPath:
    """A member's path, refused when it could leave the program's folder."""
    if not name or "\x00" in name or "\\" in name:
        raise InputValueError(f"{what} {name!r} is not a valid relative path.")
    path = PurePosixPath(name)
    if path.is_absolute() or ":" in path.parts[0]:
        raise InputValueError(f"{what} {name!r} is absolute: paths must be inside the folder.")
    if any(part in ("..", ".") for part in path.parts):
        raise InputValueError(f"{what} {name!r} leaves the folder ('..' or '.' in the path).")
    return path


def read_archive(raw: bytes, *, entry_point: str | None, max_bytes: int) -> ProgramFiles:
    """Check a zip archive of a folder program and return its files; see the module doc."""
    entry = entry_point or DEFAULT_ENTRY_POINT
    module_name(entry)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InputValueError(f"The program archive is not a valid zip file: {exc}.") from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise PayloadTooLargeError(
                f"The program archive has {len(members)} entries, over the limit of {MAX_FILES}."
            )
        for info in members:
            if info.is_dir():
                _member_path(info.filename.rstrip("/"), what="Folder")
                continue
            path = str(_member_path(info.filename, what="File"))
            # The file type, where the archive records one (zips made on Windows do not).
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise InputValueError(
                    f"File {info.filename!r} of the program archive is a link or a special "
                    "file; only plain files are allowed."
                )
            if path in files:
                raise InputValueError(f"File {path!r} appears twice in the program archive.")
            if info.flag_bits & 0x1:
                raise InputValueError(f"File {path!r} of the program archive is encrypted.")
            content = bytearray()
            try:
                with archive.open(info) as member:
                    while chunk := member.read(_CHUNK):
                        content += chunk
                        if total + len(content) > max_bytes:
                            raise PayloadTooLargeError(
                                f"The program's files are over the limit of {max_bytes} bytes "
                                f"(uncompressed), reached in {path!r}."
                            )
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError) as exc:
                raise InputValueError(
                    f"File {path!r} of the program archive cannot be read: {exc}."
                ) from None
            total += len(content)
            files[path] = bytes(content)
    _check_layout(files, entry)
    return ProgramFiles(files=files, entry_point=entry)


def _check_layout(files: dict[str, bytes], entry: str) -> None:
    # A file and a folder of the same name cannot both be written.
    folders = {str(parent) for name in files for parent in PurePosixPath(name).parents}
    clash = sorted(folders & set(files))
    if clash:
        raise InputValueError(f"{clash[0]!r} is both a file and a folder in the program archive.")
    if entry not in files:
        shown = ", ".join(sorted(files)[:10]) or "none"
        raise InputValueError(
            f"The program archive has no entry point {entry!r} (its files: {shown}); "
            'name the module that defines main() in the metadata as "entry_point".'
        )
    for name, content in files.items():
        if name.endswith(".py"):
            try:
                content.decode("utf-8")
            except UnicodeDecodeError:
                raise InputValueError(f"Module {name!r} is not UTF-8 text.") from None


def pack(program: ProgramFiles) -> bytes:
    """The archive as stored: sorted plain files, fixed times, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(program.files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, program.files[name])
    return buffer.getvalue()


def extract(program: ProgramFiles, folder: Path) -> None:
    """Write the program's files under ``folder`` (which must exist and be empty)."""
    root = folder.resolve()
    for name, content in program.files.items():
        target = (root / name).resolve()
        if root not in target.parents:  # read_archive refused such names already
            raise InputValueError(f"File {name!r} would be written outside the program folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as handle:
            handle.write(content)


def archive_folder(folder: Path, *, max_bytes: int | None = None) -> bytes:
    """Zip a program's folder as the client sends it.

    Left out: ``__pycache__`` folders, ``*.pyc`` files, and files and folders whose
    names start with ``.`` (``.git``, ``.venv``, editor files). A link is refused (its
    target could be anything on this machine), as is a folder over ``max_bytes``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputValueError(f"{folder} is not a folder.")
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.is_symlink():
            raise InputValueError(
                f"{path} is a link: a program folder may hold plain files and folders only."
            )
        if path.is_dir() or path.suffix == ".pyc":
            continue
        if not path.is_file():
            raise InputValueError(f"{path} is not a plain file.")
        content = path.read_bytes()
        total += len(content)
        if max_bytes is not None and total > max_bytes:
            raise PayloadTooLargeError(f"The folder {folder} holds over {max_bytes} bytes.")
        files[relative.as_posix()] = content
    if not files:
        raise InputValueError(f"The folder {folder} holds no files.")
    return pack(ProgramFiles(files=files, entry_point=DEFAULT_ENTRY_POINT))
