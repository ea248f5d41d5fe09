"""qruntime: a self-hosted quantum runtime service for Qiskit users.

The client API::

    from qruntime import RuntimeService
    service = RuntimeService(url="http://127.0.0.1:8000", token="qrt_...")
    service.pprint_programs()
"""

from __future__ import annotations

from qruntime._version import __version__
from qruntime.client._backend import RemoteBackend
from qruntime.client._decoders import ResultDecoder, RunnerResult
from qruntime.client._job import RuntimeJob
from qruntime.client._options import EstimatorOptions, Options, SamplerOptions
from qruntime.client._primitives import Estimator, EstimatorV2, Sampler, SamplerV2
from qruntime.client._program import ParameterNamespace, RuntimeProgram
from qruntime.client._service import RuntimeService
from qruntime.client._session import Batch, Session
from qruntime.encoding import RuntimeDecoder, RuntimeEncoder
from qruntime.errors import (
    BackendNotFoundError,
    ConflictError,
    InputValueError,
    NotAuthorizedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QRuntimeError,
    QuotaExceededError,
    RuntimeDuplicateProgramError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
    RuntimeJobTimeoutError,
    RuntimeProgramNotFound,
    SessionNotFoundError,
)

__all__ = [
    "BackendNotFoundError",
    "Batch",
    "ConflictError",
    "Estimator",
    "EstimatorOptions",
    "EstimatorV2",
    "InputValueError",
    "NotAuthorizedError",
    "NotFoundError",
    "Options",
    "ParameterNamespace",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QRuntimeError",
    "QuotaExceededError",
    "RemoteBackend",
    "ResultDecoder",
    "RunnerResult",
    "RuntimeDecoder",
    "RuntimeDuplicateProgramError",
    "RuntimeEncoder",
    "RuntimeInvalidStateError",
    "RuntimeJob",
    "RuntimeJobFailureError",
    "RuntimeJobMaxTimeoutError",
    "RuntimeJobNotFound",
    "RuntimeJobTimeoutError",
    "RuntimeProgram",
    "RuntimeProgramNotFound",
    "RuntimeService",
    "Sampler",
    "SamplerOptions",
    "SamplerV2",
    "Session",
    "SessionNotFoundError",
    "__version__",
]
