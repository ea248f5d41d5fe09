"""Logging in and out, and users."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from qruntime.errors import NotAuthorizedError, PermissionDeniedError
from qruntime.schemas import LoginRequest, LoginResponse, UserCreate, UserOut
from qruntime.schemas.auth import (
    ApiTokenCreated,
    ApiTokenOut,
    TokenRevoke,
    TokensRevoked,
    UserUpdate,
)
from qruntime.server.api.deps import DbDep, StateDep, TokenDep, UserDep
from qruntime.server.api.login_throttle import throttled_login
from qruntime.server.api.openapi import errors
from qruntime.server.services import auth
from qruntime.server.services import users as user_service
from qruntime.server.store import users as user_store
from qruntime.server.store.tables import User

router = APIRouter(tags=["users"])

_ADMIN_ONLY = (403, "Only an admin may do this.")
_NO_USER = (404, "No user of that name.")


@router.post(
    "/users/loginWithToken",
    response_model=LoginResponse,
    summary="Log in with an API token",
    responses=errors(
        (401, "Unknown or revoked API token, or a disabled user."),
        (429, "Too many failed logins from this address or for this token (`Retry-After`)."),
    ),
)
def login(body: LoginRequest, request: Request, db: DbDep, state: StateDep) -> LoginResponse:
    """Exchange your API token for an access token, the answer's ``id``: send it as
    ``Authorization: Bearer <id>`` with every other request (the **Authorize** button of
    this page). It expires after ``ttl`` seconds; log in again then."""
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


@router.post("/logout", status_code=204, summary="Log out")
def logout(db: DbDep, token: TokenDep, user: UserDep, state: StateDep) -> Response:
    """Revoke the access token of this request; the API token stays valid."""
    if token is None:  # unreachable: UserDep already refused it
        raise NotAuthorizedError("Missing access token.")
    auth.logout(db, access_token=token, cache=state.tokens)
    return Response(status_code=204)


def _user_out(user: User, token: str | None = None) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        created=user.created_at,
        disabled=user.disabled_at is not None,
        token=token,
    )


@router.get("/users/me", response_model=UserOut, summary="Who you are")
def me(user: UserDep) -> UserOut:
    """The user of the access token: name, id, whether an admin."""
    return _user_out(user)


@router.get(
    "/users", response_model=list[UserOut], summary="List users", responses=errors(_ADMIN_ONLY)
)
def list_users(db: DbDep, user: UserDep) -> list[UserOut]:
    """Every user, disabled ones too (admins only)."""
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin may list users.")
    return [_user_out(u) for u in user_store.list_users(db) if u.name != auth.SYSTEM_USER]


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    summary="Create a user",
    responses=errors(_ADMIN_ONLY, (409, "A user of that name exists.")),
)
def create_user(body: UserCreate, db: DbDep, user: UserDep) -> UserOut:
    """Create a user (admins only); the answer's ``token`` is its API token, shown this
    once."""
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin may create users.")
    new_user, token = auth.create_user(db, name=body.name, is_admin=body.is_admin)
    return _user_out(new_user, token)


@router.patch(
    "/users/{name}",
    response_model=UserOut,
    summary="Disable or enable a user",
    responses=errors(_ADMIN_ONLY, _NO_USER, (409, "The last admin cannot be disabled.")),
)
def update_user(name: str, body: UserUpdate, db: DbDep, user: UserDep, state: StateDep) -> UserOut:
    """Disable a user (no logins; its API tokens, programs and jobs are kept) or enable it."""
    user_service.require_admin(user, "disable or enable users")
    updated = user_service.set_disabled(db, name=name, disabled=body.disabled)
    state.tokens.drop_user(name)
    return _user_out(updated)


@router.delete(
    "/users/{name}",
    status_code=204,
    summary="Delete a user",
    responses=errors(
        _ADMIN_ONLY, _NO_USER, (409, "The user has queued or running jobs, or is the last admin.")
    ),
)
def delete_user(name: str, db: DbDep, user: UserDep, state: StateDep) -> Response:
    """Delete a user with its tokens, programs, jobs and sessions (refused while any of
    them is queued or running)."""
    user_service.require_admin(user, "delete users")
    user_service.delete_user(db, name=name)
    state.tokens.drop_user(name)
    return Response(status_code=204)


@router.get(
    "/users/{name}/tokens",
    response_model=list[ApiTokenOut],
    summary="List a user's API tokens",
    responses=errors(_ADMIN_ONLY, _NO_USER),
)
def list_tokens(name: str, db: DbDep, user: UserDep) -> list[ApiTokenOut]:
    """A user's API tokens, by id (the secrets are not stored)."""
    user_service.require_admin(user, "list tokens")
    return [ApiTokenOut(**token) for token in user_service.list_api_tokens(db, name=name)]


@router.post(
    "/users/{name}/tokens",
    response_model=ApiTokenCreated,
    status_code=201,
    summary="Create an API token",
    responses=errors(_ADMIN_ONLY, _NO_USER),
)
def create_token(name: str, db: DbDep, user: UserDep) -> ApiTokenCreated:
    """Give a user one more API token, shown this once."""
    user_service.require_admin(user, "create tokens")
    target = user_service.find_user(db, name=name)
    return ApiTokenCreated(user=name, token=auth.issue_api_token(db, user=target))


@router.post(
    "/users/{name}/tokens/revoke",
    response_model=TokensRevoked,
    summary="Revoke API tokens",
    responses=errors(_ADMIN_ONLY, (404, "No such user, or no token of theirs matched.")),
)
def revoke_tokens(
    name: str, body: TokenRevoke, db: DbDep, user: UserDep, state: StateDep
) -> TokensRevoked:
    """Revoke one API token (by secret or id) or all of them, with their access tokens;
    404 if nothing matched."""
    user_service.require_admin(user, "revoke tokens")
    count = user_service.revoke_tokens(db, name=name, token=body.token, token_id=body.id)
    state.tokens.drop_user(name)
    return TokensRevoked(revoked=count)


@router.post(
    "/users/{name}/reset-token",
    response_model=ApiTokenCreated,
    summary="Replace a user's API tokens",
    responses=errors(_ADMIN_ONLY, _NO_USER),
)
def reset_token(name: str, db: DbDep, user: UserDep, state: StateDep) -> ApiTokenCreated:
    """Revoke all of a user's API tokens and give it a new one, shown this once."""
    user_service.require_admin(user, "reset tokens")
    token = user_service.reset_token(db, name=name)
    state.tokens.drop_user(name)
    return ApiTokenCreated(user=name, token=token)
