"""The deployment recipes (Dockerfile, Compose file, systemd unit) against the README and the CLI.

Container images cannot be pulled on the machines these tests run on, so the image is
never built here. What is checked instead: the Dockerfile installs with the README's
install commands; every command line, variable and configuration file in the recipes is
one that ``qruntime serve`` accepts and the README documents; ``systemd-analyze verify``
accepts the unit; and ``qruntime serve`` started as the unit and the Compose file start
it serves jobs (the Compose settings on PostgreSQL), trusting ``X-Forwarded-For`` from
the configured proxy alone, as the README's "TLS behind a reverse proxy" says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from bench.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
UNIT = ROOT / "deploy" / "qruntime.service"
CONFIG = ROOT / "deploy" / "qruntime.toml"
QRUNTIME = Path(sys.executable).parent / "qruntime"  # this checkout's console script
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
INSTALL = re.compile(r"pip install|-m venv|apt-get install")


# -- reading the README and the recipes ---------------------------------------------------


def readme_section(title: str) -> str:
    """The text of the README's section ``title`` (a ``##`` or ``###`` heading)."""
    text = README.read_text()
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert match, f"the README has no section {title!r}"
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, match.end())
    return text[match.end() : end.start() if end else len(text)]


def bash_commands(markdown: str) -> list[str]:
    """The commands of the ```bash blocks in ``markdown``, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def systemd_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values]}}`` of a unit file (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_environment(unit: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    env = {}
    for line in unit["Service"].get("Environment", []):
        for item in shlex.split(line):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def compose_substitute(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if op == ":-":
            return arg or ""
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def compose_service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services[name]


def compose_environment(variables: dict[str, str]) -> dict[str, str]:
    environment = compose_service("qruntime")["environment"]
    return {key: compose_substitute(str(value), variables) for key, value in environment.items()}


def drain_seconds() -> int:
    seconds: int = tomllib.loads(CONFIG.read_text())["server"]["drain_seconds"]
    return seconds


def serve_command() -> Any:
    """The click command behind ``qruntime serve``."""
    import typer.main

    from qruntime.cli.main import app

    return typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]


def check_serve_argv(argv: list[str]) -> dict[str, Any]:
    """Fail unless ``argv`` is ``qruntime serve ...`` with options serve accepts and the
    README's "Serving" documents; return the parsed options."""
    assert Path(argv[0]).name == "qruntime", argv
    assert argv[1] == "serve", argv
    context = serve_command().make_context("serve", list(argv[2:]))  # raises on bad options
    serving = readme_section("Serving")
    for option in (arg for arg in argv[2:] if arg.startswith("--")):
        assert f"[{option} " in serving or f"`{option}" in serving, (
            f"{option} is not documented in the README's Serving section"
        )
    params: dict[str, Any] = context.params
    return params


def check_settings_variables(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every variable is documented, and each QRUNTIME_* one changes the server's settings."""
    from qruntime.server.settings import Settings

    readme = README.read_text()
    for name, value in env.items():
        assert f"`{name}`" in readme or f"`{name}=" in readme, f"{name} is not in the README"
        if not name.startswith("QRUNTIME_"):
            assert name == "FORWARDED_ALLOW_IPS", f"{name}: not a variable qruntime reads"
            continue
        if name == "QRUNTIME_CONFIG":
            value = str(CONFIG)  # the recipes mount or install deploy/qruntime.toml there
        value = value or "qrt_" + "a" * 24  # an empty default (the admin token) means unset
        for other in env:
            monkeypatch.delenv(other, raising=False)
        before = Settings.load()
        monkeypatch.setenv(name, value)
        assert Settings.load() != before, f"{name}={value!r} changes nothing in Settings"
        monkeypatch.delenv(name)


# -- static checks ------------------------------------------------------------------------


def test_the_config_file_of_the_recipes_is_one_serve_accepts() -> None:
    from qruntime.backends.config_file import read_specs
    from qruntime.server.settings import Settings

    settings = Settings.load(config_file=CONFIG)  # refuses unknown [server] keys
    assert settings.config_file == CONFIG
    read_specs(CONFIG)  # the backend tables, as `serve` checks them before it starts
    documented = "\n".join(
        re.findall(r"^```toml\n(.*?)^```", readme_section("Serving"), re.MULTILINE | re.DOTALL)
    )
    for key in tomllib.loads(CONFIG.read_text())["server"]:
        assert re.search(rf"^{key} = ", documented, re.MULTILINE), (
            f"[server] {key} is not in the README's Serving configuration example"
        )


def test_the_dockerfile_installs_with_the_readmes_install_commands() -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    run_commands = [
        command.strip()
        for keyword, arguments in instructions
        if keyword == "RUN"
        for command in arguments.split("&&")
    ]
    docker_installs = [command for command in run_commands if INSTALL.search(command)]
    readme_installs = [
        command
        for command in bash_commands(readme_section("Installing a server"))
        if INSTALL.search(command)
    ]
    assert readme_installs, "the README shows no install commands"
    assert sorted(docker_installs) == sorted(readme_installs)
    # Multi-stage: the runtime stage takes the environment the install commands made.
    stages = [arguments for keyword, arguments in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    assert any(
        keyword == "COPY" and arguments == "--from=build /opt/qruntime /opt/qruntime"
        for keyword, arguments in instructions
    )


def test_the_dockerfile_serves_with_documented_options_and_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    cmd = json.loads(next(arguments for keyword, arguments in instructions if keyword == "CMD"))
    assert check_serve_argv(cmd)["port"] == 8000
    expose = [arguments for keyword, arguments in instructions if keyword == "EXPOSE"]
    assert expose == ["8000"]
    env_lines = [arguments for keyword, arguments in instructions if keyword == "ENV"]
    env = dict(item.split("=", 1) for line in env_lines for item in shlex.split(line))
    assert env["PATH"].startswith("/opt/qruntime/bin:")  # where `qruntime` of CMD is
    check_settings_variables(
        {name: value for name, value in env.items() if name.startswith("QRUNTIME_")}, monkeypatch
    )


def test_the_docker_build_context_holds_what_the_build_stage_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copied = [
        source
        for keyword, arguments in dockerfile_instructions(DOCKERFILE.read_text())
        if keyword == "COPY" and not arguments.startswith("--from")
        for source in arguments.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert source.rstrip("/") in allowed, f"{source} is left out of the build context"
        assert (ROOT / source).exists()


def test_the_compose_file_runs_serve_with_documented_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy.engine import make_url

    service = compose_service("qruntime")
    postgres = compose_service("postgres")
    build = service["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    options = check_serve_argv(service["command"])
    assert service["ports"] == [f"127.0.0.1:{options['port']}:{options['port']}"]

    env = compose_environment({"POSTGRES_PASSWORD": "secret"})
    check_settings_variables(env, monkeypatch)
    url = make_url(env["QRUNTIME_DB"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres"
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.database == postgres["environment"]["POSTGRES_DB"]
    assert url.password == "secret"
    # The config file is deploy/qruntime.toml, mounted where QRUNTIME_CONFIG looks.
    mounts = {
        target: source
        for source, target, *_ in (volume.split(":") for volume in service["volumes"])
    }
    assert (COMPOSE.parent / mounts[env["QRUNTIME_CONFIG"]]).resolve() == CONFIG
    # The proxy on the host comes in through the network's gateway: trust it alone.
    gateway = yaml.safe_load(COMPOSE.read_text())["networks"]["default"]["ipam"]["config"][0]
    assert env["FORWARDED_ALLOW_IPS"] == gateway["gateway"]
    # The sandbox's needs (README, "Deployment"), and room to drain on `compose down`.
    assert "SYS_ADMIN" in service["cap_add"]
    assert {"seccomp=unconfined", "apparmor=unconfined"} <= set(service["security_opt"])
    assert int(service["stop_grace_period"].rstrip("s")) > drain_seconds()
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_systemd_unit_runs_serve_with_documented_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unit = systemd_unit(UNIT.read_text())
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0] == "/opt/qruntime/bin/qruntime"  # the README's install location
    check_serve_argv(argv)
    env = unit_environment(unit)
    check_settings_variables(env, monkeypatch)
    assert env["QRUNTIME_CONFIG"] == "/etc/qruntime/qruntime.toml"
    systemd_section = readme_section("systemd")
    assert "install -m 0644 deploy/qruntime.toml /etc/qruntime/qruntime.toml" in (
        bash_commands(systemd_section)
    )
    assert "User" not in service  # root: the sandbox gives each job its own uid
    assert int(service["TimeoutStopSec"][0]) > drain_seconds()
    for forbidden in ("RestrictNamespaces", "PrivateUsers", "SystemCallFilter"):
        assert forbidden not in service, f"{forbidden}= would break the job sandbox"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if IN_CI:
            pytest.fail("systemd-analyze is required in CI")
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at this checkout's.
    unit = tmp_path / "qruntime.service"
    unit.write_text(UNIT.read_text().replace("/opt/qruntime/bin/qruntime", str(QRUNTIME)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys only warn


# -- the recipes' settings, served ----------------------------------------------------------


@contextmanager
def running_serve(
    argv: list[str], env: dict[str, str], log: Path, *, prefix: list[str] | None = None
) -> Iterator[str]:
    """``qruntime serve`` from a recipe's command line (its program replaced by this
    checkout's, host and port by a local free port), until the block ends."""
    port = free_port()
    args = list(argv[2:])
    for option, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        args[args.index(option) + 1] = value
    base = {k: v for k, v in os.environ.items() if not k.startswith("QRUNTIME_")}
    with log.open("w") as out:
        process = subprocess.Popen(
            [*(prefix or []), str(QRUNTIME), "serve", *args],
            env={**base, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a hang guard: it starts in seconds
        while True:
            assert process.poll() is None, f"serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve never answered:\n{log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def failed_login(url: str, forwarded_for: str, attempt: int) -> int:
    """Status of a login with a wrong token (a new token prefix each time)."""
    token = f"qrt_{attempt:08d}_wrong_token_value"
    response = httpx.post(
        f"{url}/users/loginWithToken",
        json={"apiToken": token},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=30,
    )
    return response.status_code


def exhaust_logins(url: str, forwarded_for: str) -> None:
    failures = tomllib.loads(CONFIG.read_text())["server"]["login_failures"]
    for attempt in range(failures):
        assert failed_login(url, forwarded_for, attempt) == 401


def run_hello_world(url: str, token: str) -> Any:
    from qruntime import RuntimeService

    with RuntimeService(url=url, token=token) as service:
        job = service.run("hello-world", {"iterations": 1}, options={"backend": "aer_simulator"})
        return job.result(timeout=120)


ADMIN_TOKEN = "qrt_deploy_admin_token_0123456789"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_serve_as_the_systemd_unit_starts_it_trusts_the_local_proxy(tmp_path: Path) -> None:
    unit = systemd_unit(UNIT.read_text())
    env = unit_environment(unit)
    env["QRUNTIME_CONFIG"] = str(CONFIG)  # installed at /etc/qruntime/qruntime.toml
    env["QRUNTIME_DB"] = f"sqlite:///{tmp_path / 'qruntime.db'}"  # /var/lib/qruntime
    env["QRUNTIME_ADMIN_TOKEN"] = ADMIN_TOKEN
    argv = shlex.split(unit["Service"]["ExecStart"][0])
    with running_serve(argv, env, tmp_path / "serve.log") as url:
        # The proxy on this machine (trusted by default) appends the client's address.
        exhaust_logins(url, "203.0.113.7")
        assert failed_login(url, "203.0.113.7", 1000) == 429
        assert failed_login(url, "203.0.113.8", 1001) == 401  # another client
        # A client cannot pick its address: the proxy appends the real one.
        assert failed_login(url, "203.0.113.9, 203.0.113.7", 1002) == 429
        assert run_hello_world(url, ADMIN_TOKEN) == "All done!"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_serve_as_the_compose_file_starts_it_works_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    env = compose_environment({"POSTGRES_PASSWORD": "unused"})  # no QRUNTIME_ADMIN_TOKEN
    assert env["QRUNTIME_ADMIN_TOKEN"] == ""
    env["QRUNTIME_DB"] = postgres_url  # the `postgres` service, here a local server
    env["QRUNTIME_CONFIG"] = str(CONFIG)  # the mounted deploy/qruntime.toml
    env["PYTHONUNBUFFERED"] = "1"  # as the image sets it
    log = tmp_path / "serve.log"
    with running_serve(compose_service("qruntime")["command"], env, log) as url:
        # `docker compose logs qruntime` shows the admin token of the first start.
        tokens = re.findall(r"^(qrt_[\w-]{20,})$", log.read_text(), re.MULTILINE)
        assert len(tokens) == 1, log.read_text()
        assert run_hello_world(url, tokens[0]) == "All done!"
        # Requests from here do not come from the gateway proxy: X-Forwarded-For is
        # ignored, and every "client" shares this machine's address.
        exhaust_logins(url, "203.0.113.7")
        assert failed_login(url, "203.0.113.8", 1000) == 429


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_without_cap_sys_admin_every_job_fails_naming_the_sandbox(tmp_path: Path) -> None:
    """What the README says of a container started without the Docker options."""
    from qruntime import RuntimeJobFailureError

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if IN_CI:
            pytest.fail("CI runs as root with setpriv (util-linux)")
        pytest.skip("needs root and setpriv to drop CAP_SYS_ADMIN")
    env = {
        "QRUNTIME_DB": f"sqlite:///{tmp_path / 'qruntime.db'}",
        "QRUNTIME_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    drop = [setpriv, "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin"]
    argv = ["qruntime", "serve", "--host", "127.0.0.1", "--port", "0"]
    refused = pytest.raises(RuntimeJobFailureError, match="the sandbox cannot be set up here")
    with running_serve(argv, env, tmp_path / "serve.log", prefix=drop) as url, refused:
        run_hello_world(url, ADMIN_TOKEN)
