"""How RuntimeService finds its server: arguments, environment, saved accounts."""

from __future__ import annotations

import os

import pytest

import qruntime
from qruntime import InputValueError, RuntimeService


def test_explicit_arguments_win() -> None:
    service = RuntimeService(url="http://example.invalid:1/", token="qrt_x" * 4)
    assert service.url == "http://example.invalid:1"
    service.close()


def test_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRUNTIME_URL", "http://env.invalid:2")
    monkeypatch.setenv("QRUNTIME_TOKEN", "qrt_env_token_value")
    with RuntimeService() as service:
        assert service.url == "http://env.invalid:2"


def test_saved_account_round_trip_with_private_file() -> None:
    RuntimeService.save_account("http://saved.invalid:3", "qrt_saved_token_value")
    with RuntimeService() as service:
        assert service.url == "http://saved.invalid:3"
    path = os.environ["QRUNTIME_ACCOUNTS"]
    assert (os.stat(path).st_mode & 0o777) == 0o600
    with pytest.raises(InputValueError, match="overwrite=True"):
        RuntimeService.save_account("http://other.invalid", "qrt_other_token_value")
    RuntimeService.save_account("http://lab.invalid:4", "qrt_lab_token_value", name="lab")
    with RuntimeService(name="lab") as service:
        assert service.url == "http://lab.invalid:4"
    assert set(RuntimeService.saved_accounts()) == {"default", "lab"}
    assert RuntimeService.delete_account("lab")
    assert not RuntimeService.delete_account("lab")


def test_no_server_configured_says_how_to_configure_one() -> None:
    with pytest.raises(InputValueError, match="QRUNTIME_URL"):
        RuntimeService()


def test_unreachable_server_is_a_clear_error() -> None:
    service = RuntimeService(url="http://127.0.0.1:9", token="qrt_unreachable_token")
    with service, pytest.raises(qruntime.QRuntimeError, match="Cannot reach"):
        service.programs()


def test_public_api_all_is_complete_and_importable() -> None:
    public = {
        name
        for name in dir(qruntime)
        if not name.startswith("_") and name[0].isupper() and name not in {"TYPE_CHECKING"}
    }
    assert public <= set(qruntime.__all__), public - set(qruntime.__all__)
    for name in qruntime.__all__:
        assert hasattr(qruntime, name), name


def test_every_error_derives_from_the_root_and_has_a_unique_code() -> None:
    from qruntime import errors

    classes = [getattr(errors, n) for n in errors.__all__ if n[0].isupper()]
    assert all(issubclass(c, errors.QRuntimeError) for c in classes)
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert errors.error_class_for(cls.code, 599) is cls
