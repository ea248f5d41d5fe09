"""Typed FastAPI dependencies: the request's database session and its user.

The dependencies that only read the request are ``async``: FastAPI runs a plain ``def``
dependency on the thread pool, a hop per dependency per request. The user comes from
the token cache on the event loop; only a cache miss goes to the database (on a thread).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qruntime.server.api.openapi import BEARER_DESCRIPTION
from qruntime.server.api.state import AppState
from qruntime.server.services import auth
from qruntime.server.store.tables import User


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.qruntime
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def body_size(request: Request) -> int | None:
    """The request body's declared length (`BodyLimit` has held it to the route's limit);
    None for a body sent in chunks."""
    length = request.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def get_db(state: StateDep) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


# scope="function": commit before the response leaves, so a client that got an answer
# reads what it wrote, and a failed commit is an error answer, not a silent loss.
DbDep = Annotated[Session, Depends(get_db, scope="function")]


def access_token(connection: HTTPConnection) -> str | None:
    """The access token of a request: ``Authorization: Bearer`` or the legacy ``X-Access-Token``."""
    headers = connection.headers
    return token_of(headers.get("authorization"), headers.get("x-access-token"))


def token_of(authorization: str | None, x_access_token: str | None) -> str | None:
    """The access token given these two headers' values (`access_token` of a request)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("bearer", "apikey") and value.strip():
            return value.strip()
    return x_access_token


class AccessTokenScheme(SecurityBase):
    """The request's access token (`access_token`), as a dependency that OpenAPI shows.

    It is FastAPI's security scheme for HTTP bearer tokens (an "Authorize" button in
    ``/docs``), with the login flow as its description; it reads the token as every
    other part of the server does, so the legacy ``X-Access-Token`` header still works.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(bearerFormat="access token", description=BEARER_DESCRIPTION)
        self.scheme_name = "AccessToken"

    async def __call__(self, request: Request) -> str | None:
        return access_token(request)


#: The security scheme of every route that needs an access token.
request_token = AccessTokenScheme()

TokenDep = Annotated[str | None, Depends(request_token)]


def authenticate(state: AppState, token: str | None) -> User:
    """The user of ``token`` (from the cache, or the database): call on a thread."""
    with state.db.session() as db:
        return auth.authenticate_cached(db, access_token=token, cache=state.tokens)


async def resolve_user(state: AppState, token: str | None) -> User:
    """The user of ``token``: on the loop when the cache knows it, else on a thread."""
    if token:
        user = state.tokens.get(token)
        if user is not None:
            return user
    return await state.in_thread(authenticate, state, token)


async def current_user(token: TokenDep, state: StateDep) -> User:
    return await resolve_user(state, token)


UserDep = Annotated[User, Depends(current_user)]
