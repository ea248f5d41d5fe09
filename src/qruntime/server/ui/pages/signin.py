"""Signing in and out: ``/ui/signin`` (a form for an API token) and ``/ui/signout``."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from qruntime.errors import NotAuthorizedError, RateLimitedError
from qruntime.server.api.deps import StateDep, resolve_user
from qruntime.server.api.login_throttle import throttled_login
from qruntime.server.api.state import AppState
from qruntime.server.services import auth as auth_service
from qruntime.server.services.auth import AccessGrant
from qruntime.server.ui.auth import (
    COOKIE,
    CsrfRefused,
    UiFormDep,
    read_form,
    same_site,
    session_cookie,
)
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of the dashboard, never another site."""
    if not value or not value.startswith("/ui") or value.startswith("//") or "\\" in value:
        return "/ui/"
    return value


def _signin_page(
    request: Request,
    *,
    next_url: str,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "signin.html",
        status_code=status_code,
        next_url=next_url,
        notice=notice,
        error=error,
        nav="signin",
    )


@router.get("/ui/signin")
async def signin_form(
    request: Request,
    state: StateDep,
    next: str | None = None,
    expired: bool = False,
    out: bool = False,
) -> Response:
    next_url = safe_next(next)
    secret = session_cookie(request)
    if secret is not None:
        try:
            await resolve_user(state, secret)
            return RedirectResponse(next_url, status_code=303)  # signed in already
        except NotAuthorizedError:
            expired = True
    notice = None
    if out:
        notice = "You have signed out."
    elif expired:
        notice = "Your sign-in has expired or was ended: sign in again."
    return _signin_page(request, next_url=next_url, notice=notice)


def _login(state: AppState, token: str, client: str | None) -> AccessGrant:
    with state.db.session() as db:
        grant = throttled_login(
            db,
            throttle=state.logins,
            api_token=token,
            client=client,
            ttl=state.settings.access_token_ttl,
        )
        return grant


@router.post("/ui/signin")
async def signin(request: Request, state: StateDep) -> Response:
    if not same_site(request):
        raise CsrfRefused("Refused: this sign-in was sent from another site.")
    form = await read_form(request)
    next_url = safe_next(form.get("next"))
    token = form.get("token", "").strip()
    if not token:
        return _signin_page(
            request, next_url=next_url, error="Enter your API token.", status_code=400
        )
    client = request.client.host if request.client else None
    try:
        grant = await state.in_thread(_login, state, token, client)
    except RateLimitedError as error:
        return _signin_page(request, next_url=next_url, error=error.message, status_code=429)
    except NotAuthorizedError:
        return _signin_page(
            request,
            next_url=next_url,
            error="That API token is not valid (unknown, revoked, or its user is disabled).",
            status_code=401,
        )
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        grant.token,
        max_age=state.settings.access_token_ttl,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def _logout(state: AppState, secret: str) -> None:
    with state.db.session() as db:
        auth_service.logout(db, access_token=secret, cache=state.tokens)


@router.post("/ui/signout")
async def signout(request: Request, state: StateDep, form: UiFormDep) -> Response:
    secret = session_cookie(request)
    if secret is not None:
        await state.in_thread(_logout, state, secret)  # revoked server-side, not just forgotten
    response = RedirectResponse("/ui/signin?out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
