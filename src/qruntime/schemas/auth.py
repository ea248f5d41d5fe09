"""Wire models for logging in and for users."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class LoginRequest(BaseModel):
    """``POST /users/loginWithToken``: exchange an API token for an access token."""

    model_config = ConfigDict(extra="forbid")

    apiToken: str = Field(min_length=1, max_length=512)


class LoginResponse(BaseModel):
    id: str = Field(description="The access token.")
    ttl: int = Field(description="Seconds until the access token expires.")
    created: datetime
    userId: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    is_admin: bool = False


class UserOut(BaseModel):
    id: str
    name: str
    is_admin: bool
    created: datetime
    token: str | None = Field(default=None, description="The new API token (only on creation).")
