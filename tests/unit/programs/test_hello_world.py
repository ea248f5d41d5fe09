"""The hello-world program on real Aer backends, and its spec."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from qiskit_aer import AerSimulator

from qruntime.errors import InputValueError
from qruntime.programs import hello_world


def test_each_iteration_publishes_its_counts_then_a_final_message(
    ideal_backend: AerSimulator, messenger: Any
) -> None:
    final = hello_world.main(ideal_backend, messenger, iterations=3)
    assert final == "All done!"
    assert [m["iteration"] for m in messenger.messages] == [0, 1, 2]
    for message in messenger.messages:
        assert sum(message["counts"].values()) == 1024
        assert set(message["counts"]) <= {"00", "11"}  # an entangled pair, ideally
    # Seeded angles differ between iterations, so the distributions do too.
    assert messenger.messages[0]["counts"] != messenger.messages[1]["counts"]


def test_one_iteration_is_the_default(device_noisy_backend: AerSimulator, messenger: Any) -> None:
    hello_world.main(device_noisy_backend, messenger)
    assert len(messenger.messages) == 1


def test_zero_iterations_publish_nothing(ideal_backend: AerSimulator, messenger: Any) -> None:
    assert hello_world.main(ideal_backend, messenger, iterations=0) == "All done!"
    assert messenger.messages == []


@pytest.mark.parametrize("iterations", [-1, 1.5, "2", True])
def test_iterations_that_are_not_a_count_are_refused(
    ideal_backend: AerSimulator, messenger: Any, iterations: object
) -> None:
    with pytest.raises(InputValueError, match="iterations must be an integer >= 0"):
        hello_world.main(ideal_backend, messenger, iterations=iterations)  # type: ignore[arg-type]


def test_unknown_parameters_are_refused(ideal_backend: AerSimulator, messenger: Any) -> None:
    with pytest.raises(InputValueError, match=r"unknown parameter.*loops"):
        hello_world.main(ideal_backend, messenger, loops=2)


def test_interim_results_and_return_value_match_the_spec(
    ideal_backend: AerSimulator, messenger: Any
) -> None:
    spec = hello_world.METADATA["spec"]
    final = hello_world.main(ideal_backend, messenger, iterations=2)
    for message in messenger.messages:
        jsonschema.validate(message, spec["interim_results"])
    jsonschema.validate(final, spec["return_values"])


def test_parameters_spec_accepts_iterations_and_refuses_negative_ones() -> None:
    schema = hello_world.METADATA["spec"]["parameters"]
    jsonschema.validate({"iterations": 4}, schema)
    jsonschema.validate({}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"iterations": -1}, schema)
