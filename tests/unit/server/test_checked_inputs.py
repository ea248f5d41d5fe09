"""`CheckedInputs`: digests of inputs that passed, per user, program and backend."""

from __future__ import annotations

import pytest

from qruntime.server.services.checked_inputs import CheckedInputs


def _key(
    user: str = "u1", program: str = "sampler", backend: str = "aer", text: str = "{}"
) -> bytes:
    return CheckedInputs.key(user_id=user, program_id=program, backend=backend, text=text)


def test_a_digest_is_held_once_added() -> None:
    checked = CheckedInputs()
    assert not checked.holds(_key())
    checked.add(_key())
    assert checked.holds(_key())
    assert len(checked) == 1


def test_each_part_of_the_key_tells_inputs_apart() -> None:
    checked = CheckedInputs()
    checked.add(_key())
    for other in (_key(user="u2"), _key(program="estimator"), _key(backend="b"), _key(text="[]")):
        assert not checked.holds(other)


def test_parts_cannot_be_shifted_into_each_other() -> None:
    assert _key(user="ab", program="c") != _key(user="a", program="bc")
    assert _key(backend="b", text="{}") != _key(backend="b{", text="}")


def test_the_least_recently_used_digest_is_forgotten_first() -> None:
    checked = CheckedInputs(max_entries=2)
    first, second, third = _key(text="1"), _key(text="2"), _key(text="3")
    checked.add(first)
    checked.add(second)
    assert checked.holds(first)  # used: now the second is the oldest
    checked.add(third)
    assert checked.holds(first)
    assert not checked.holds(second)
    assert checked.holds(third)
    assert len(checked) == 2


def test_a_cache_of_no_entries_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        CheckedInputs(max_entries=0)
