"""The commands for daily work (status, backends, programs, run, jobs, sessions) against a
real server; their ``--json`` output parsed as a script would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qruntime import RuntimeService, Session, __version__
from qruntime.cli.main import app

FAILING = """
def main(backend, user_messenger, **kwargs):
    user_messenger.publish({"before": "the failure"})
    raise ValueError("this program always fails")
"""

STEPS = """
def main(backend, user_messenger, **kwargs):
    for step in range(kwargs.get("steps", 2)):
        user_messenger.publish({"step": step})
    print("stepped", kwargs.get("steps", 2), "times")
    return {"steps": kwargs.get("steps", 2), "label": kwargs.get("label")}
"""


@pytest.fixture
def cli(server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke ``qruntime`` in this process, connected to ``server`` as its admin."""
    monkeypatch.setenv("QRUNTIME_URL", server.url)
    monkeypatch.setenv("QRUNTIME_TOKEN", server.admin_token)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.stdout, result.stderr)
        return result

    return invoke


def as_json(result: Any) -> Any:
    return json.loads(result.stdout)


def write_program(tmp_path: Path, source: str, name: str) -> tuple[Path, Path]:
    program = tmp_path / f"{name}.py"
    program.write_text(source)
    metadata = tmp_path / f"{name}.json"
    metadata.write_text(
        json.dumps({"name": name, "description": f"the {name} program", "max_execution_time": 60})
    )
    return program, metadata


def test_status_and_backends_describe_the_server_and_its_queues(cli: Any) -> None:
    status = as_json(cli("status", "--json"))
    assert status["version"] == __version__
    assert (status["user"], status["is_admin"]) == ("admin", True)
    assert status["your_pending_jobs"] == 0
    by_name = {row["name"]: row for row in status["backends"]}
    assert by_name["fake_27q"]["num_qubits"] == 27
    assert by_name["fake_27q"]["simulator"] is False
    assert by_name["aer_simulator"]["operational"] is True

    backends = as_json(cli("backends", "--json"))
    assert [row["name"] for row in backends] == [row["name"] for row in status["backends"]]
    table = cli("backends").stdout
    assert "fake_27q" in table
    assert "device-like" in table


def test_version_is_printed(cli: Any) -> None:
    assert cli("--version").stdout.strip() == f"qruntime {__version__}"


def test_run_wait_shows_interim_results_and_prints_the_result(cli: Any) -> None:
    result = cli("run", "hello-world", "--backend", "aer_simulator", "-i", "iterations=3", "--wait")
    assert result.stdout.strip() == "All done!"
    interim = [line for line in result.stderr.splitlines() if line.startswith("interim ")]
    assert [line.split(":")[0] for line in interim] == ["interim 1", "interim 2", "interim 3"]
    assert '"iteration":2' in interim[2]

    report = as_json(
        cli("run", "hello-world", "-b", "aer_simulator", "-i", "iterations=2", "--wait", "--json")
    )
    assert report["status"] == "Completed"
    assert [item["iteration"] for item in report["interim_results"]] == [0, 1]
    assert report["result"] == "All done!"


def test_a_failed_job_exits_1_with_its_reason(cli: Any, tmp_path: Path) -> None:
    program, metadata = write_program(tmp_path, FAILING, "failing")
    program_id = cli("programs", "upload", str(program), "--metadata", str(metadata)).stdout
    program_id = program_id.strip().splitlines()[-1]
    report = as_json(cli("run", program_id, "-b", "aer_simulator", "--wait", "--json", code=1))
    assert report["status"] == "Failed"
    assert "this program always fails" in report["reason"]
    assert report["interim_results"] == [{"before": "the failure"}]
    assert report["result"] is None

    human = cli("run", program_id, "-b", "aer_simulator", "--wait", code=1)
    assert "this program always fails" in human.stderr
    assert human.stdout == ""


def test_a_program_from_upload_to_delete(cli: Any, tmp_path: Path) -> None:
    program, metadata = write_program(tmp_path, STEPS, "steps")
    program_id = as_json(
        cli("programs", "upload", str(program), "--metadata", str(metadata), "--json")
    )["id"]
    listed = {p["id"]: p for p in as_json(cli("programs", "list", "--json"))}
    assert listed[program_id]["name"] == "steps"
    assert listed[program_id]["is_public"] is False
    assert "hello-world" in listed

    cli("programs", "update", program_id, "--description", "counts its steps")
    cli("programs", "publish", program_id)
    shown = as_json(cli("programs", "show", program_id, "--json"))
    assert (shown["description"], shown["is_public"]) == ("counts its steps", True)
    assert cli("programs", "show", program_id, "--source").stdout == STEPS
    assert "counts its steps" in cli("programs", "show", program_id).stdout
    cli("programs", "unpublish", program_id)
    assert as_json(cli("programs", "show", program_id, "--json"))["is_public"] is False

    cli("programs", "update", program_id, code=2)  # nothing to update
    cli("programs", "delete", program_id)
    gone = cli("programs", "show", program_id, code=1)
    assert "not found" in gone.stderr.lower()


def test_upload_options_override_the_metadata_file(cli: Any, tmp_path: Path) -> None:
    program, metadata = write_program(tmp_path, STEPS, "steps")
    program_id = as_json(
        cli(
            "programs",
            "upload",
            str(program),
            "--metadata",
            str(metadata),
            "--name",
            "renamed",
            "--public",
            "--json",
        )
    )["id"]
    shown = as_json(cli("programs", "show", program_id, "--json"))
    assert (shown["name"], shown["is_public"], shown["cost"]) == ("renamed", True, 60)


def test_jobs_list_filters_show_logs_result_wait_and_delete(cli: Any, tmp_path: Path) -> None:
    program, metadata = write_program(tmp_path, STEPS, "steps")
    program_id = cli("programs", "upload", str(program), "--metadata", str(metadata)).stdout
    program_id = program_id.strip().splitlines()[-1]
    tagged = cli(
        "run", program_id, "-b", "aer_simulator", "-i", "steps=3", "-i", "label=hi", "--tag", "t1"
    ).stdout.strip()
    waited = as_json(cli("jobs", "wait", tagged, "--json"))
    assert waited["status"] == "Completed"
    assert waited["result"] == {"steps": 3, "label": "hi"}
    other = as_json(cli("run", "hello-world", "-b", "aer_simulator", "--json"))["id"]
    cli("jobs", "wait", other)

    everything = as_json(cli("jobs", "list", "--json"))
    assert [job["id"] for job in everything] == [other, tagged]  # newest first
    assert [j["id"] for j in as_json(cli("jobs", "list", "--program", program_id, "--json"))] == [
        tagged
    ]
    assert [j["id"] for j in as_json(cli("jobs", "list", "--tag", "t1", "--json"))] == [tagged]
    assert as_json(cli("jobs", "list", "--pending", "--json")) == []
    oldest = as_json(cli("jobs", "list", "--final", "--oldest-first", "--limit", "1", "--json"))
    assert [job["id"] for job in oldest] == [tagged]
    cli("jobs", "list", "--created-after", "yesterday", code=2)

    shown = as_json(cli("jobs", "show", tagged, "--json"))
    assert (shown["status"], shown["program"]["id"], shown["tags"]) == (
        "Completed",
        program_id,
        ["t1"],
    )
    assert shown["metrics"]["usage"]["seconds"] >= 0
    assert "Completed" in cli("jobs", "show", tagged).stdout
    assert "stepped 3 times" in cli("jobs", "logs", tagged).stdout
    assert as_json(cli("jobs", "result", tagged, "--json")) == {"steps": 3, "label": "hi"}

    refused = cli("jobs", "cancel", tagged, code=1)
    assert "Error:" in refused.stderr
    cli("jobs", "delete", tagged)
    assert "not found" in cli("jobs", "show", tagged, code=1).stderr.lower()


def test_run_reads_inputs_from_a_file_and_from_key_at_file(cli: Any, tmp_path: Path) -> None:
    program, metadata = write_program(tmp_path, STEPS, "steps")
    program_id = cli("programs", "upload", str(program), "--metadata", str(metadata)).stdout
    program_id = program_id.strip().splitlines()[-1]
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"steps": 1, "label": "from the file"}))
    label = tmp_path / "label.json"
    label.write_text(json.dumps(["a", "list"]))
    report = as_json(
        cli(
            "run",
            program_id,
            "-b",
            "aer_simulator",
            "--inputs",
            str(inputs),
            "-i",
            f"label=@{label}",
            "--wait",
            "--json",
        )
    )
    assert report["result"] == {"steps": 1, "label": ["a", "list"]}
    cli("run", program_id, "-b", "aer_simulator", "-i", "no-equals-sign", code=2)


def test_sessions_list_show_close_and_cancel(cli: Any, server: Any) -> None:
    service = server.service()
    session = Session(service=service, backend="aer_simulator")
    session.run("hello-world", inputs={"iterations": 1}).result(timeout=60)
    other = Session(service=service, backend="fake_5q")
    other.run("hello-world", inputs={"iterations": 1}).result(timeout=60)

    listed = as_json(cli("sessions", "list", "--json"))
    assert [s["id"] for s in listed] == [other.session_id, session.session_id]
    only = as_json(cli("sessions", "list", "--backend", "fake_5q", "--json"))
    assert [s["id"] for s in only] == [other.session_id]
    shown = as_json(cli("sessions", "show", session.session_id, "--json"))
    assert (shown["mode"], shown["jobs"]["total"]) == ("dedicated", 1)

    cli("sessions", "close", session.session_id)
    assert as_json(cli("sessions", "show", session.session_id, "--json"))["accepting_jobs"] is False
    cli("sessions", "cancel", other.session_id)
    closed = as_json(cli("sessions", "list", "--state", "closed", "--json"))
    assert other.session_id in [s["id"] for s in closed]
    assert "fake_5q" in cli("sessions", "list").stdout
    assert "not found" in cli("sessions", "show", "nope", code=1).stderr.lower()


def test_the_saved_account_is_used_when_nothing_else_is_given(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    RuntimeService.save_account(server.url, server.admin_token)
    result = CliRunner().invoke(app, ["status", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["url"] == server.url


def test_connection_problems_are_one_line_errors(server: Any) -> None:
    runner = CliRunner()
    nothing = runner.invoke(app, ["jobs", "list"])
    assert nothing.exit_code == 1
    assert "QRUNTIME_URL" in nothing.stderr
    assert "Traceback" not in nothing.output

    bad = runner.invoke(app, ["status", "--url", server.url, "--token", "qrt_not_a_real_token"])
    assert bad.exit_code == 1
    assert "Invalid API token" in bad.stderr

    closed_port = runner.invoke(app, ["status", "--url", "http://127.0.0.1:9", "--token", "x" * 20])
    assert closed_port.exit_code == 1
    assert "Cannot reach the qruntime server" in closed_port.stderr


def test_env_prints_exports_for_qruntime_and_for_the_ibm_client(cli: Any, server: Any) -> None:
    plain = cli("env").stdout
    assert plain == (
        f"export QRUNTIME_URL={server.url}\nexport QRUNTIME_TOKEN={server.admin_token}\n"
    )
    ibm = cli("env", "--ibm").stdout
    assert f"export QISKIT_IBM_TOKEN={server.admin_token}\n" in ibm
    assert f"export QISKIT_IBM_URL={server.url}/experimental/api\n" in ibm


def test_cluster_shows_a_lone_server_leading_its_local_node(cli: Any, server: Any) -> None:
    with server.service() as service:  # a job first: the node has run one, so it is ready
        job = service.run(
            "hello-world", inputs={"iterations": 1}, options={"backend": "aer_simulator"}
        )
        job.result(timeout=120)
    view = as_json(cli("cluster", "--json"))
    assert (view["store"], view["executor"], view["ray_address"]) == ("sqlite", "local", None)
    (only,) = view["servers"]
    assert only["server"] == view["server"] == view["leader"]["server"]
    assert only["listen"] == server.url.removeprefix("http://")
    assert (only["leader"], only["this"], view["leader"]["alive"]) == (True, True, True)
    assert view["leader"]["epoch"] is None
    (node,) = view["nodes"]
    assert (node["node_id"], node["ready"], node["jobs"]) == ("local", True, 0)
    assert node["resources"]["CPU"] >= 1
    assert (view["queued_jobs"], view["running_jobs"]) == (0, 0)

    table = cli("cluster").stdout
    assert "sqlite" in table
    assert "local executor" in table
    assert f"{view['server']} (this)" in table
    assert "leader" in table


def test_cluster_is_for_admins_only(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRUNTIME_URL", server.url)
    monkeypatch.setenv("QRUNTIME_TOKEN", server.add_user("bob"))
    result = CliRunner().invoke(app, ["cluster"])
    assert result.exit_code != 0
    assert "Only an admin may see the cluster." in result.stderr
