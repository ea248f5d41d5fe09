"""Paging of the list routes, bounded so that the stores can hold every value.

SQLite and PostgreSQL take a 64-bit signed ``OFFSET``; a larger one overflowed in the
store (a 500). Bounding it in the query's validation makes it a 400 like any bad value.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

__all__ = ["MAX_OFFSET", "Offset"]

#: The largest offset a listing takes: a 64-bit signed integer.
MAX_OFFSET = 2**63 - 1

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip.")]
