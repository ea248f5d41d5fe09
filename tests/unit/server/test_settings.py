"""Server settings from defaults, environment and the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from qruntime.errors import InputValueError
from qruntime.server.settings import Settings


def test_config_file_server_table_is_read(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text('[server]\ndb = "sqlite:////tmp/x.db"\nmax_program_bytes = 5000\n')
    settings = Settings.load(config_file=config)
    assert settings.db_url == "sqlite:////tmp/x.db"
    assert settings.max_program_bytes == 5000
    assert settings.config_file == config


def test_arguments_override_file_and_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QRUNTIME_DB", "sqlite:////tmp/env.db")
    assert Settings.load().db_url == "sqlite:////tmp/env.db"
    assert (
        Settings.load(db_url="sqlite:////tmp/arg.db", port=None).db_url == "sqlite:////tmp/arg.db"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nmax_program_byte = 5\n", "unknown key"),
        ('[server]\nport = "80"\n', "port must be of type int"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_fails_fast_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "q.toml"
    config.write_text(text)
    with pytest.raises(InputValueError, match=message):
        Settings.load(config_file=config)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputValueError, match="does not exist"):
        Settings.load(config_file=tmp_path / "nope.toml")


def test_drain_seconds_come_from_the_file_the_environment_and_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load().drain_seconds == 30
    config = tmp_path / "q.toml"
    config.write_text("[server]\ndrain_seconds = 5\n")
    assert Settings.load(config_file=config).drain_seconds == 5
    monkeypatch.setenv("QRUNTIME_DRAIN_SECONDS", "7")
    assert Settings.load().drain_seconds == 7
    assert Settings.load(config_file=config).drain_seconds == 5  # the file over the environment
    assert Settings.load(config_file=config, drain_seconds=0).drain_seconds == 0


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_bad_drain_seconds_variable_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRUNTIME_DRAIN_SECONDS", value)
    with pytest.raises(InputValueError, match="QRUNTIME_DRAIN_SECONDS"):
        Settings.load()
