"""Wire models of the server itself: its health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    """``GET /health``: the server answers, and which version it is."""

    status: Literal["ok", "stopping"] = Field(
        description="'stopping' while the server shuts down: it takes no new jobs."
    )
    version: str = Field(examples=["0.1.0"])
    leader: bool = Field(
        default=True,
        description="Whether this server runs the scheduler: of several servers on one "
        "PostgreSQL exactly one does (the others take over if it dies); a lone server does.",
    )
