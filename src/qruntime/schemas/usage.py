"""Wire model of a user's usage (``GET /usage``, ``service.usage()``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Usage(BaseModel):
    """Seconds a user's jobs have run; qruntime sets no usage limit (fair share orders
    users instead), so the limit is ``null`` and never reached."""

    model_config = ConfigDict(extra="allow")

    user: str
    usage_consumed_seconds: float
    usage_limit_seconds: float | None = None
    usage_limit_reached: bool = False
    period: Period | None = None


class Period(BaseModel):
    """The period a usage counts: jobs that ended in [start, end); null ends are open."""

    start: str | None = None
    end: str | None = None


class UserUsage(BaseModel):
    user: str
    usage_consumed_seconds: float
    jobs: int


class AllUsage(BaseModel):
    """``GET /usage?all_users=true`` (admins): one row per user with jobs in the period,
    most seconds first."""

    users: list[UserUsage]
    period: Period


Usage.model_rebuild()
