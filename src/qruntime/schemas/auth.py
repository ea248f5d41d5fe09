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
    disabled: bool = Field(default=False, description="A disabled user cannot log in.")
    token: str | None = Field(default=None, description="The new API token (only on creation).")


class UserUpdate(BaseModel):
    """``PATCH /users/{name}`` (admin): disable or enable a user."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool


class ApiTokenOut(BaseModel):
    """One of a user's API tokens, by id: the secret is never stored, so never shown."""

    id: str
    created: datetime
    revoked: datetime | None = None
    last_login: datetime | None = Field(
        default=None, description="When it was last exchanged for an access token."
    )


class ApiTokenCreated(BaseModel):
    user: str
    token: str = Field(description="The new API token, shown this once.")


class TokenRevoke(BaseModel):
    """``POST /users/{name}/tokens/revoke``: one token (by its secret or its id), or all."""

    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, max_length=512)
    id: str | None = Field(default=None, max_length=64)


class TokensRevoked(BaseModel):
    revoked: int
