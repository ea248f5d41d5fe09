"""The examples and the README's Python snippets, run as a user runs them, on a real server.

Each script in ``examples/`` runs in its own process with ``QRUNTIME_URL`` and
``QRUNTIME_TOKEN`` set, as a user runs it after ``make serve``. The README's ```python
blocks run in order in one process; the blocks of one ``##`` section share a namespace
(they build on each other), each section starts afresh; the shell has also run
``eval "$(qruntime env --ibm)"``, as the section on qiskit-ibm-runtime says. A block whose
first line is a comment starting with ``# fragment`` is not run (keep these few: a reader
cannot run it either).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"
FRAGMENT_MARKER = "# fragment"
# Hang guards only: every example finishes in seconds, the README in well under a minute.
EXAMPLE_TIMEOUT = 300
README_TIMEOUT = 600


@dataclass(frozen=True)
class Snippet:
    """One ```python block of the README: its ``##`` section and first line of code."""

    section: str
    line: int
    code: str

    @property
    def fragment(self) -> bool:
        first = self.code.lstrip().splitlines()[0] if self.code.strip() else ""
        return first.startswith(FRAGMENT_MARKER)


def readme_snippets(text: str) -> list[Snippet]:
    """The ```python blocks of ``text`` in order, each with its ``##`` section."""
    snippets: list[Snippet] = []
    section = "(introduction)"
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() == "```python":
            start = index + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            assert end < len(lines), f"README.md line {index + 1}: unclosed ```python block"
            # A block inside a list item is indented as its fence is.
            code = textwrap.dedent("\n".join(lines[start:end]) + "\n")
            snippets.append(Snippet(section, start + 1, code))
            index = end
        index += 1
    return snippets


def example_scripts() -> list[Path]:
    """The runnable examples: every ``examples/*.py`` script (runtime programs are not)."""
    return sorted(
        path for path in EXAMPLES.glob("*.py") if '__name__ == "__main__"' in path.read_text()
    )


def _user_environment(server, tmp_path: Path) -> dict[str, str]:
    """A user's shell after ``export QRUNTIME_URL=... QRUNTIME_TOKEN=...``, in a fresh home."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QRUNTIME_", "QISKIT_IBM_")) and key != "IAM_URL"
    }
    env.update(
        HOME=str(home),
        QRUNTIME_URL=server.url,
        QRUNTIME_TOKEN=server.admin_token,
        QRUNTIME_ACCOUNTS=str(home / "qruntime-accounts.json"),
        PYTHONUNBUFFERED="1",
    )
    return env


def _ibm_environment(env: dict[str, str]) -> dict[str, str]:
    """What ``eval "$(qruntime env --ibm)"`` exports in a shell with ``env``."""
    qruntime = Path(sys.executable).parent / "qruntime"
    result = subprocess.run(
        [str(qruntime), "env", "--ibm"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    exports = {}
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export", line
        name, _, value = words[1].partition("=")
        exports[name] = value
    return exports


def test_the_examples_folder_has_what_the_readme_promises() -> None:
    names = {path.name for path in example_scripts()}
    assert names >= {
        "upload_program.py",
        "upload_folder_program.py",
        "vqe_session.py",
        "qaoa_batch.py",
        "streaming.py",
    }
    metadata = json.loads((EXAMPLES / "ghz_program.json").read_text())
    assert {"name", "description", "max_execution_time", "spec"} <= set(metadata)
    folder = json.loads((EXAMPLES / "folder_program.json").read_text())
    assert (EXAMPLES / "folder_program" / folder["entry_point"]).is_file()
    assert folder["dependencies"]
    for path in example_scripts():
        assert path.name in README.read_text(), f"the README does not mention {path.name}"


# What each example must print: its behaviour, not its timing.
EXPECTED_OUTPUT = {
    "upload_program.py": [
        r"^status: DONE$",
        r"^counts: \{'0000': \d+, '1111': \d+\}$",
        r"^ghz_fraction: 1\.000$",
    ],
    "upload_folder_program.py": [
        r"^files: \['bv_circuits\.py', 'program\.py'\]$",
        r"^correct: True$",
    ],
    "vqe_session.py": [r"^session \w+: \d+ estimator jobs$"],
    "qaoa_batch.py": [
        r"^batch \w+: 25 sampler jobs submitted$",
        r"^best sampled cut: [01]{4} cuts 4 edges$",  # the samples hold a maximum cut
        r"^maximum cut: 4 edges$",
    ],
    "streaming.py": [
        r"^status: DONE$",
        r"^interim results kept on the server: 9$",
        r"^P\(1\) at pi: 1\.000$",
    ],
}


@pytest.mark.slow
@pytest.mark.timeout(EXAMPLE_TIMEOUT + 60)
@pytest.mark.parametrize("script", example_scripts(), ids=lambda path: path.name)
def test_example_runs_against_a_server(server, tmp_path: Path, script: Path) -> None:
    programs_before = {p.program_id for p in server.service().programs(limit=None)}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_user_environment(server, tmp_path),
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, f"examples/{script.name} failed:\n{output}"
    assert result.stderr == "", f"examples/{script.name} wrote to stderr:\n{output}"
    lines = result.stdout.splitlines()
    for pattern in EXPECTED_OUTPUT.get(script.name, []):
        assert any(re.search(pattern, line) for line in lines), (
            f"examples/{script.name} printed no line matching {pattern!r}:\n{output}"
        )
    if script.name == "vqe_session.py":
        found = {
            kind: float(match.group(1))
            for line in lines
            if (match := re.match(r"^(?:VQE|exact) energy: (\S+) Ha$", line))
            for kind in [line.split()[0]]
        }
        assert abs(found["VQE"] - found["exact"]) < 0.05, output
    if script.name == "streaming.py":
        steps = [
            int(m.group(1)) for line in lines if (m := re.match(r"^interim step (\d+):", line))
        ]
        assert steps == list(range(9)), output
        final = next(i for i, line in enumerate(lines) if line.startswith("final result of"))
        assert final > max(i for i, line in enumerate(lines) if line.startswith("interim step"))
    # Every example cleans up after itself: nothing it uploaded is left behind.
    programs_after = {p.program_id for p in server.service().programs(refresh=True, limit=None)}
    assert programs_after == programs_before, f"examples/{script.name} left programs behind"


_DRIVER = """\
import json, sys, traceback
from pathlib import Path

readme, snippets_file, results_file = sys.argv[1:4]
snippets = json.loads(Path(snippets_file).read_text())
results, namespaces, broken = [], {}, set()
for snippet in snippets:
    section = snippet["section"]
    if section in broken:
        results.append({**snippet, "outcome": "not run: an earlier snippet of its section failed"})
        continue
    namespace = namespaces.setdefault(section, {"__name__": "__readme__"})
    # Padding puts the code at its README line, so tracebacks name README.md lines.
    code = compile("\\n" * (snippet["line"] - 1) + snippet["code"], readme, "exec")
    print(f"--- README.md line {snippet['line']} ({section})", flush=True)
    try:
        exec(code, namespace)
    except BaseException:
        broken.add(section)
        results.append({**snippet, "outcome": "failed", "error": traceback.format_exc()})
    else:
        results.append({**snippet, "outcome": "ok"})
    Path(results_file).write_text(json.dumps(results))
"""


def test_readme_snippets_are_found_and_fragments_are_few() -> None:
    snippets = readme_snippets(README.read_text())
    assert len(snippets) >= 5  # the parser finds them
    fragments = [s for s in snippets if s.fragment]
    assert len(fragments) <= 2, f"too many README snippets marked {FRAGMENT_MARKER!r}"


@pytest.mark.slow
@pytest.mark.timeout(README_TIMEOUT + 60)
def test_every_readme_python_snippet_runs_as_written(server, tmp_path: Path) -> None:
    snippets = [s for s in readme_snippets(README.read_text()) if not s.fragment]
    work = tmp_path / "work"
    work.mkdir()
    # Snippets name files as seen from a checkout's root: examples/... .
    (work / "examples").symlink_to(EXAMPLES, target_is_directory=True)
    snippets_file, results_file, driver = (
        tmp_path / "snippets.json",
        tmp_path / "results.json",
        tmp_path / "driver.py",
    )
    snippets_file.write_text(json.dumps([asdict(s) for s in snippets]))
    driver.write_text(_DRIVER)
    env = _user_environment(server, tmp_path)
    env.update(_ibm_environment(env))  # eval "$(qruntime env --ibm)", as the README says
    result = subprocess.run(
        [sys.executable, str(driver), str(README), str(snippets_file), str(results_file)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=README_TIMEOUT,
        check=False,
    )
    output = f"stdout:\n{result.stdout[-6000:]}\nstderr:\n{result.stderr[-6000:]}"
    assert results_file.exists(), f"the README driver ran no snippet:\n{output}"
    results = json.loads(results_file.read_text())
    failed = [r for r in results if r["outcome"] != "ok"]
    report = "\n\n".join(
        f"README.md line {r['line']} (section {r['section']!r}): {r['outcome']}\n"
        + r.get("error", "")
        for r in failed
    )
    if failed:
        pytest.fail(f"{len(failed)} README snippet(s) do not run as written:\n{report}", False)
    assert len(results) == len(snippets), f"the driver stopped early:\n{output}"
    assert result.returncode == 0, output
