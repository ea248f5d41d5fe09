"""Loading programs: uploaded source and built-in modules."""

from __future__ import annotations

import pytest

from qruntime.worker.runner import _JobFailure, load_main


def test_uploaded_source_without_main_is_refused() -> None:
    with pytest.raises(_JobFailure, match="defines no main"):
        load_main({"source": "x = 1\n", "program_id": "p"})


def test_syntax_error_in_source_fails_with_the_offending_line() -> None:
    with pytest.raises(_JobFailure) as info:
        load_main({"source": "def main(:\n    pass\n", "program_id": "p"})
    assert "SyntaxError" in info.value.message
    assert "def main(:" in info.value.message


def test_builtin_name_resolves_inside_the_programs_package() -> None:
    main = load_main({"builtin": "hello_world"})
    assert main.__module__ == "qruntime.programs.hello_world"


def test_unknown_builtin_is_a_clear_failure() -> None:
    with pytest.raises(_JobFailure, match="cannot load built-in program 'no_such_program'"):
        load_main({"builtin": "no_such_program"})
