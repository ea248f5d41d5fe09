"""Errors shared by the qruntime client and server.

Every error qruntime raises derives from one root, so ``except QRuntimeError``
catches them all. Domain errors carry the HTTP status the server answers with
and a stable machine-readable ``code``; the server turns them into JSON in one
place and the client turns that JSON back into the same class in one place.

The tree::

    QRuntimeError
    ├── InputValueError                400  bad input: a parameter, a payload, a spec
    │   ├── PayloadTooLargeError       413  a program or job inputs over the size limit
    │   └── QuotaExceededError         429  too many queued jobs for one user
    ├── NotAuthorizedError             401  no token, a bad token, an expired token
    ├── PermissionDeniedError          403  logged in, but not allowed to do this
    ├── MethodNotAllowedError          405  the path exists, the HTTP method does not
    ├── RateLimitedError               429  too many failed logins: wait ``retry_after`` s
    ├── ServiceUnavailableError        503  the server is shutting down: no new jobs
    ├── NotFoundError                  404  never a hint that another user's thing exists
    │   ├── RuntimeProgramNotFound
    │   ├── RuntimeJobNotFound
    │   ├── BackendNotFoundError
    │   └── SessionNotFoundError
    ├── ConflictError                  409
    │   ├── RuntimeDuplicateProgramError
    │   └── RuntimeInvalidStateError   the job or session is in the wrong state
    ├── RuntimeJobFailureError         the job ended Failed (client side)
    │   └── RuntimeJobMaxTimeoutError  the job ran over max_execution_time
    └── RuntimeJobTimeoutError         waiting for the job took longer than asked
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BackendNotFoundError",
    "ConflictError",
    "InputValueError",
    "MethodNotAllowedError",
    "NotAuthorizedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QRuntimeError",
    "QuotaExceededError",
    "RateLimitedError",
    "RuntimeDuplicateProgramError",
    "RuntimeInvalidStateError",
    "RuntimeJobFailureError",
    "RuntimeJobMaxTimeoutError",
    "RuntimeJobNotFound",
    "RuntimeJobTimeoutError",
    "RuntimeProgramNotFound",
    "ServiceUnavailableError",
    "SessionNotFoundError",
    "error_class_for",
]


class QRuntimeError(Exception):
    """Raised for any qruntime failure; the root of every other error here."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body the server sends (IBM's ``errors`` list plus ``error``)."""
        body = {"message": self.message, "code": self.code, "status_code": self.status_code}
        return {"errors": [body], "error": body}


class InputValueError(QRuntimeError):
    """Raised when an input value is invalid: a parameter, a spec, an encoded payload."""

    status_code = 400
    code = "invalid_input"


class PayloadTooLargeError(InputValueError):
    """Raised when a program's source or a job's inputs are over the size limit."""

    status_code = 413
    code = "payload_too_large"


class QuotaExceededError(InputValueError):
    """Raised when a user already has as many queued jobs as the server allows."""

    status_code = 429
    code = "quota_exceeded"


class NotAuthorizedError(QRuntimeError):
    """Raised when a request has no valid token: missing, unknown, revoked or expired."""

    status_code = 401
    code = "not_authorized"


class PermissionDeniedError(QRuntimeError):
    """Raised when an authenticated user may not perform an action (e.g. admin only)."""

    status_code = 403
    code = "permission_denied"


class MethodNotAllowedError(QRuntimeError):
    """Raised when a path exists but does not answer the request's HTTP method."""

    status_code = 405
    code = "method_not_allowed"


class RateLimitedError(QRuntimeError):
    """Raised when a client failed to log in too often; the answer's ``Retry-After`` says when.

    The server raises it with ``retry_after`` (seconds) in ``details``. Not an
    `InputValueError`: the request may be right, its sender is made to wait.
    """

    status_code = 429
    code = "rate_limited"


class ServiceUnavailableError(QRuntimeError):
    """Raised when the server is shutting down and takes no new jobs; submit after its restart."""

    status_code = 503
    code = "service_unavailable"


class NotFoundError(QRuntimeError):
    """Raised when something does not exist or is not visible to the caller."""

    status_code = 404
    code = "not_found"


class RuntimeProgramNotFound(NotFoundError):
    """Raised when a program does not exist or is not visible to the caller."""

    code = "program_not_found"


class RuntimeJobNotFound(NotFoundError):
    """Raised when a job does not exist or belongs to another user."""

    code = "job_not_found"


class BackendNotFoundError(NotFoundError):
    """Raised when no backend of that name is in the server's catalogue."""

    code = "backend_not_found"


class SessionNotFoundError(NotFoundError):
    """Raised when a session does not exist or belongs to another user."""

    code = "session_not_found"


class ConflictError(QRuntimeError):
    """Raised when a request conflicts with the current state of the server."""

    status_code = 409
    code = "conflict"


class RuntimeDuplicateProgramError(ConflictError):
    """Raised when the caller already owns a program of that name."""

    code = "duplicate_program"


class RuntimeInvalidStateError(ConflictError):
    """Raised when a job or session is in a state that does not allow the operation."""

    code = "invalid_state"


class RuntimeJobFailureError(QRuntimeError):
    """Raised when asking for the result of a job that failed."""

    code = "job_failed"


class RuntimeJobMaxTimeoutError(RuntimeJobFailureError):
    """Raised when a job was stopped because it ran over its max_execution_time."""

    code = "job_max_timeout"


class RuntimeJobTimeoutError(QRuntimeError):
    """Raised when waiting for a job took longer than the timeout given."""

    code = "job_wait_timeout"


def _all_subclasses(cls: type[QRuntimeError]) -> list[type[QRuntimeError]]:
    found: list[type[QRuntimeError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_BY_STATUS: dict[int, type[QRuntimeError]] = {
    400: InputValueError,
    401: NotAuthorizedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InputValueError,
    429: QuotaExceededError,
    503: ServiceUnavailableError,
}


def error_class_for(code: str | None, status_code: int) -> type[QRuntimeError]:
    """The error class for a wire ``code``, falling back on the HTTP status."""
    if code:
        candidates: list[type[QRuntimeError]] = [QRuntimeError, *_all_subclasses(QRuntimeError)]
        for cls in candidates:
            if cls.code == code:
                return cls
    return _BY_STATUS.get(status_code, QRuntimeError)
