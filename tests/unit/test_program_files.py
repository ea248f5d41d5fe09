"""Folder programs' archives: what `read_archive` refuses, and what it keeps."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from qruntime.errors import InputValueError, PayloadTooLargeError
from qruntime.program_files import (
    archive_folder,
    extract,
    is_archive,
    module_name,
    pack,
    read_archive,
)

MAIN = b"def main(backend, user_messenger, **kwargs):\n    return 1\n"


def _zip(*members: tuple[str, bytes], mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def test_a_folder_archive_keeps_its_files_and_entry_point() -> None:
    raw = _zip(("program.py", MAIN), ("helpers.py", b"X = 1\n"), ("tools/fit.py", b""))
    assert is_archive(raw)
    files = read_archive(raw, entry_point=None, max_bytes=10_000)
    assert files.entry_point == "program.py"
    assert sorted(files.files) == ["helpers.py", "program.py", "tools/fit.py"]
    assert files.entry_source == MAIN.decode()
    # Re-packed the same whatever the order or times of the upload.
    assert pack(files) == pack(read_archive(pack(files), entry_point=None, max_bytes=10_000))


@pytest.mark.parametrize(
    "name",
    ["../evil.py", "tools/../../evil.py", "/etc/evil.py", "C:/evil.py", "a\\b.py"],
)
def test_paths_that_leave_the_folder_are_refused(name: str) -> None:
    raw = _zip(("program.py", MAIN), (name, b"x = 1\n"))
    with pytest.raises(InputValueError, match=r"absolute|leaves the folder|not a valid"):
        read_archive(raw, entry_point=None, max_bytes=10_000)


def test_links_and_special_files_are_refused() -> None:
    raw = _zip(("program.py", MAIN), ("link.py", b"/etc/passwd"), mode=stat.S_IFLNK | 0o777)
    with pytest.raises(InputValueError, match="link or a special file"):
        read_archive(raw, entry_point=None, max_bytes=10_000)


def test_content_is_counted_while_decompressing() -> None:
    bomb = _zip(("program.py", MAIN), ("zeros.bin", bytes(5_000_000)))
    assert len(bomb) < 20_000  # small on the wire
    with pytest.raises(PayloadTooLargeError, match="uncompressed"):
        read_archive(bomb, entry_point=None, max_bytes=1_000_000)


def test_the_entry_point_must_exist_and_be_importable() -> None:
    raw = _zip(("main.py", MAIN))
    with pytest.raises(InputValueError, match=r"no entry point .program\.py.*main\.py"):
        read_archive(raw, entry_point=None, max_bytes=10_000)
    assert read_archive(raw, entry_point="main.py", max_bytes=10_000).entry_point == "main.py"
    for bad in ("main.txt", "my-app/main.py", "../main.py"):
        with pytest.raises(InputValueError):
            read_archive(raw, entry_point=bad, max_bytes=10_000)
    assert module_name("app/run.py") == "app.run"


def test_not_a_zip_and_duplicates_are_refused() -> None:
    with pytest.raises(InputValueError, match="not a valid zip"):
        read_archive(b"PK\x03\x04garbage", entry_point=None, max_bytes=10_000)
    with pytest.warns(UserWarning, match="Duplicate name"):
        raw = _zip(("program.py", MAIN), ("program.py", MAIN))
    with pytest.raises(InputValueError, match="twice"):
        read_archive(raw, entry_point=None, max_bytes=10_000)


def test_archive_folder_leaves_out_caches_and_refuses_links(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_bytes(MAIN)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "program.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("secret")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("Y = 2\n")
    files = read_archive(archive_folder(tmp_path), entry_point=None, max_bytes=10_000)
    assert sorted(files.files) == ["pkg/util.py", "program.py"]

    out = tmp_path / "out"
    out.mkdir()
    extract(files, out)
    assert (out / "pkg" / "util.py").read_text() == "Y = 2\n"

    (tmp_path / "escape.py").symlink_to("/etc/hostname")
    with pytest.raises(InputValueError, match="is a link"):
        archive_folder(tmp_path)
