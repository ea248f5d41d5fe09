"""The wire model of an error answer, as `qruntime.errors.QRuntimeError.to_dict` writes it.

It is here for the OpenAPI description (every 4xx and 5xx has this body); the server
builds error bodies from the error classes, and the client reads them in one place.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str
    code: str = Field(description="Stable and machine-readable, e.g. 'payload_too_large'.")
    status_code: int = Field(description="The HTTP status of the answer.")


class ErrorBody(BaseModel):
    """An error answer: IBM's ``errors`` list, and ``error``, which IBM's client reads."""

    errors: list[ErrorDetail] = Field(min_length=1)
    error: ErrorDetail
