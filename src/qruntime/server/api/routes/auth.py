"""Logging in and out, and users."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from qruntime.errors import NotAuthorizedError, PermissionDeniedError
from qruntime.schemas import LoginRequest, LoginResponse, UserCreate, UserOut
from qruntime.server.api.deps import DbDep, StateDep, TokenDep, UserDep
from qruntime.server.api.login_throttle import throttled_login
from qruntime.server.services import auth
from qruntime.server.store import users as user_store
from qruntime.server.store.tables import User

router = APIRouter(tags=["users"])


@router.post("/users/loginWithToken", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, db: DbDep, state: StateDep) -> LoginResponse:
    grant = throttled_login(
        db,
        throttle=state.logins,
        api_token=body.apiToken,
        client=request.client.host if request.client else None,
        ttl=state.settings.access_token_ttl,
    )
    return LoginResponse(
        id=grant.token,
        ttl=state.settings.access_token_ttl,
        created=grant.created_at,
        userId=grant.user.id,
    )


@router.post("/logout", status_code=204)
def logout(db: DbDep, token: TokenDep, user: UserDep, state: StateDep) -> Response:
    if token is None:  # unreachable: UserDep already refused it
        raise NotAuthorizedError("Missing access token.")
    auth.logout(db, access_token=token, cache=state.tokens)
    return Response(status_code=204)


def _user_out(user: User, token: str | None = None) -> UserOut:
    return UserOut(
        id=user.id, name=user.name, is_admin=user.is_admin, created=user.created_at, token=token
    )


@router.get("/users/me", response_model=UserOut)
def me(user: UserDep) -> UserOut:
    return _user_out(user)


@router.get("/users", response_model=list[UserOut])
def list_users(db: DbDep, user: UserDep) -> list[UserOut]:
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin may list users.")
    return [_user_out(u) for u in user_store.list_users(db) if u.name != auth.SYSTEM_USER]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, db: DbDep, user: UserDep) -> UserOut:
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin may create users.")
    new_user, token = auth.create_user(db, name=body.name, is_admin=body.is_admin)
    return _user_out(new_user, token)
