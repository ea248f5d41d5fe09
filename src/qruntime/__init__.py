"""qruntime: a self-hosted quantum runtime service for Qiskit users.

The client API::

    from qruntime import RuntimeService
    service = RuntimeService(url="http://127.0.0.1:8000", token="qrt_...")
    service.pprint_programs()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from qruntime._version import __version__
from qruntime.errors import (
    BackendNotFoundError,
    ConflictError,
    InputValueError,
    MethodNotAllowedError,
    NotAuthorizedError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QRuntimeError,
    QuotaExceededError,
    RateLimitedError,
    RuntimeDuplicateProgramError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
    RuntimeJobTimeoutError,
    RuntimeProgramNotFound,
    ServiceUnavailableError,
    SessionNotFoundError,
)

if TYPE_CHECKING:
    from qruntime.client._backend import BackendStatus, RemoteBackend
    from qruntime.client._decoders import ResultDecoder, RunnerResult
    from qruntime.client._job import RuntimeJob
    from qruntime.client._options import EstimatorOptions, Options, SamplerOptions
    from qruntime.client._primitives import Estimator, EstimatorV2, Sampler, SamplerV2
    from qruntime.client._program import ParameterNamespace, RuntimeProgram
    from qruntime.client._service import RuntimeService
    from qruntime.client._session import Batch, Session
    from qruntime.encoding import RuntimeDecoder, RuntimeEncoder

# The client API is imported when first used: it pulls in Qiskit (about half a second),
# and ``qruntime serve`` and the workers import this package too, the server to start
# its workers before anything else.
_LAZY = {
    "BackendStatus": "qruntime.client._backend",
    "RemoteBackend": "qruntime.client._backend",
    "ResultDecoder": "qruntime.client._decoders",
    "RunnerResult": "qruntime.client._decoders",
    "RuntimeJob": "qruntime.client._job",
    "EstimatorOptions": "qruntime.client._options",
    "Options": "qruntime.client._options",
    "SamplerOptions": "qruntime.client._options",
    "Estimator": "qruntime.client._primitives",
    "EstimatorV2": "qruntime.client._primitives",
    "Sampler": "qruntime.client._primitives",
    "SamplerV2": "qruntime.client._primitives",
    "ParameterNamespace": "qruntime.client._program",
    "RuntimeProgram": "qruntime.client._program",
    "RuntimeService": "qruntime.client._service",
    "Batch": "qruntime.client._session",
    "Session": "qruntime.client._session",
    "RuntimeDecoder": "qruntime.encoding",
    "RuntimeEncoder": "qruntime.encoding",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qruntime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BackendNotFoundError",
    "BackendStatus",
    "Batch",
    "ConflictError",
    "Estimator",
    "EstimatorOptions",
    "EstimatorV2",
    "InputValueError",
    "MethodNotAllowedError",
    "NotAuthorizedError",
    "NotFoundError",
    "Options",
    "ParameterNamespace",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QRuntimeError",
    "QuotaExceededError",
    "RateLimitedError",
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
    "ServiceUnavailableError",
    "Session",
    "SessionNotFoundError",
    "__version__",
]
