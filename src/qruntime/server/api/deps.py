"""Typed FastAPI dependencies: the request's database session and its user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from qruntime.server.api.state import AppState
from qruntime.server.services import auth
from qruntime.server.store.tables import User


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.qruntime
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_db(state: StateDep) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


# scope="function": commit before the response leaves, so a client that got an answer
# reads what it wrote, and a failed commit is an error answer, not a silent loss.
DbDep = Annotated[Session, Depends(get_db, scope="function")]


def access_token(request: Request) -> str | None:
    """The access token of a request: ``Authorization: Bearer`` or the legacy ``X-Access-Token``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "apikey") and value.strip():
            return value.strip()
    return request.headers.get("x-access-token")


TokenDep = Annotated[str | None, Depends(access_token)]


def current_user(db: DbDep, token: TokenDep, state: StateDep) -> User:
    return auth.authenticate_cached(db, access_token=token, cache=state.tokens)


UserDep = Annotated[User, Depends(current_user)]
