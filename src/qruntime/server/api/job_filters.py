"""The query parameters of ``GET /jobs``, shared by qruntime's API and the IBM-compatible one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query

from qruntime.server.api.paging import Offset


@dataclass
class JobFilters:
    """Paging, filters and order of a job listing."""

    limit: Annotated[int, Query(ge=1, le=1000)] = 10
    offset: Offset = 0
    pending: bool | None = None
    program: str | None = None
    backend: str | None = None
    session_id: str | None = None
    tags: Annotated[list[str] | None, Query()] = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    sort: Annotated[str, Query(pattern="^(ASC|DESC|asc|desc)$")] = "DESC"
    user: Annotated[
        str | None,
        Query(max_length=64, description="Admins: list this user's jobs (by name)."),
    ] = None
    all_users: Annotated[bool, Query(description="Admins: list every user's jobs.")] = False

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of `services.jobs.list_jobs`."""
        return {
            "limit": self.limit,
            "offset": self.offset,
            "pending": self.pending,
            "program_id": self.program,
            "backend": self.backend,
            "session_id": self.session_id,
            "tags": self.tags,
            "created_after": self.created_after,
            "created_before": self.created_before,
            "descending": self.sort.upper() == "DESC",
            "owner": self.user,
            "all_users": self.all_users,
        }


JobFiltersDep = Annotated[JobFilters, Depends()]
