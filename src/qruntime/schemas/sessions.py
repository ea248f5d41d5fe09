"""Wire models for sessions (the shapes of IBM's sessions API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    """``POST /sessions``."""

    model_config = ConfigDict(extra="ignore")

    mode: Literal["dedicated", "batch"] = "dedicated"
    backend: str = Field(min_length=1, max_length=64, examples=["aer_simulator"])
    max_ttl: int | None = Field(default=None, gt=0, description="max_time in seconds.")


class SessionUpdate(BaseModel):
    """``PATCH /sessions/{id}``: ``accepting_jobs: false`` closes the session."""

    model_config = ConfigDict(extra="forbid")

    accepting_jobs: bool
