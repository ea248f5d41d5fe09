"""Decoders that turn a job's result text (or an interim result) into Python objects.

A decoder is a class with a ``decode(data)`` classmethod; ``RuntimeJob.result``
and ``stream_results`` take one (or a pair: interim, final). Usage::

    result = job.result(decoder=RunnerResult)   # a qiskit Result
    quasi = result.get_quasiprobabilities(0)     # with measurement_error_mitigation
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from qiskit.result import QuasiDistribution, Result

from qruntime.encoding import RuntimeDecoder
from qruntime.errors import InputValueError, QRuntimeError

__all__ = ["ResultDecoder", "RunnerResult", "decode_params"]


def decode_params(params: Any) -> dict[str, Any]:
    """A job's inputs as the server returns them (``params``, JSON), decoded."""
    decoded: dict[str, Any] = json.loads(json.dumps(params), cls=RuntimeDecoder)
    return decoded


class ResultDecoder:
    """The default decoder: runtime JSON, or the text itself when it is not JSON."""

    @classmethod
    def decode(cls, data: str) -> Any:
        """Decode ``data`` with the runtime decoder; text that is not JSON is returned as is."""
        try:
            return json.loads(data, cls=RuntimeDecoder)
        except json.JSONDecodeError:
            return data


class RunnerResult(Result, ResultDecoder):  # type: ignore[misc]  # qiskit is untyped
    """The result of ``circuit-runner``: a ``qiskit.result.Result`` with quasi-probabilities.

    Usage::

        result = job.result(decoder=RunnerResult)
        result.get_counts()
        result.get_quasiprobabilities()  # only if the job mitigated readout
    """

    @classmethod
    def decode(cls, data: str | Mapping[str, Any] | Result) -> RunnerResult:
        """Build a ``RunnerResult`` from ``Result.to_dict()``, as JSON text or already parsed."""
        decoded: Any = ResultDecoder.decode(data) if isinstance(data, str) else data
        if isinstance(decoded, Result):
            decoded = decoded.to_dict()
        if not isinstance(decoded, Mapping) or "results" not in decoded:
            raise InputValueError("not a circuit-runner result: expected Result.to_dict() JSON")
        runner_result: RunnerResult = cls.from_dict(dict(decoded))
        return runner_result

    def get_quasiprobabilities(
        self, experiment: Any = None
    ) -> QuasiDistribution | list[QuasiDistribution]:
        """The readout-mitigated quasi-probabilities of one experiment (or of all, as a list).

        ``experiment`` is an index, a name or a circuit, as for ``get_counts``. Keys
        are bit strings as wide as the circuit's classical bits. Raises
        ``QRuntimeError`` when the job ran without ``measurement_error_mitigation``.
        """
        if experiment is not None:
            return self._quasiprobabilities(experiment)
        distributions = [self._quasiprobabilities(i) for i in range(len(self.results))]
        # Like get_counts: one experiment gives one distribution, several a list.
        return distributions[0] if len(distributions) == 1 else distributions

    def _quasiprobabilities(self, experiment: Any) -> QuasiDistribution:
        data = self.data(experiment)
        quasi = data.get("quasiprobabilities")
        if quasi is None:
            raise QRuntimeError(
                f"experiment {experiment!r} has no quasi-probabilities: run circuit-runner "
                "with measurement_error_mitigation=True"
            )
        experiment_result = self._experiment_result(experiment)
        header = _as_dict(getattr(experiment_result, "header", None))
        outcomes = {int(key, 16): float(value) for key, value in quasi.items()}
        width = _clbit_width(header)
        if width is None:
            width = max([1, *(outcome.bit_length() for outcome in outcomes)])
        shots = getattr(experiment_result, "shots", None)
        return QuasiDistribution(
            {format(outcome, f"0{width}b"): value for outcome, value in outcomes.items()},
            shots=shots if isinstance(shots, int) else None,
        )

    def final_measurement_mapping(self, experiment: Any = 0) -> dict[int, int]:
        """Physical qubit -> classical bit of an experiment's final measurements."""
        header = _as_dict(getattr(self._experiment_result(experiment), "header", None))
        mapping = header.get("final_measurement_mapping")
        if mapping is None:
            raise QRuntimeError(
                f"experiment {experiment!r} has no final_measurement_mapping: run "
                "circuit-runner with measurement_error_mitigation=True"
            )
        # JSON turned the physical qubits (int keys) into text.
        return {int(qubit): int(clbit) for qubit, clbit in mapping.items()}

    def _experiment_result(self, experiment: Any) -> Any:
        """One entry of ``results``, by index, name or circuit (``data()`` checked it exists)."""
        if isinstance(experiment, int):
            return self.results[experiment]
        name = experiment if isinstance(experiment, str) else getattr(experiment, "name", None)
        for result in self.results:
            if _as_dict(getattr(result, "header", None)).get("name") == name:
                return result
        raise QRuntimeError(f"no experiment {experiment!r} in this result")


def _as_dict(header: Any) -> dict[str, Any]:
    if header is None:
        return {}
    if isinstance(header, Mapping):
        return dict(header)
    to_dict = getattr(header, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}


def _clbit_width(header: Mapping[str, Any]) -> int | None:
    """How many classical bits the experiment has: its registers, else its memory slots."""
    creg_sizes = header.get("creg_sizes")
    if creg_sizes:
        return sum(int(size) for _, size in creg_sizes)
    memory_slots = header.get("memory_slots")
    if isinstance(memory_slots, int):
        return memory_slots
    mapping = header.get("final_measurement_mapping")
    if mapping:
        return max(int(clbit) for clbit in mapping.values()) + 1
    return None
