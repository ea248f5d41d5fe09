"""Signing in to the dashboard: the session cookie, who the caller is, and CSRF checks.

Signing in exchanges an API token for an access token exactly as the client does
(`services.auth.login`, through the API's login throttle); the access token is the
session secret, kept in an HttpOnly, SameSite=Strict cookie (Secure over https). The
server stores it hashed and can revoke it: signing out does (`services.auth.logout`).
The caller is then the same `User` the API's dependencies produce, so every page sees
exactly what the API shows that user.

Every POST carries a CSRF token (a hidden ``csrf_token`` field that `render` puts in
each template's context): a keyed hash of the session secret, which another site cannot
read. It is also refused when its ``Origin`` (or, without one, ``Referer``) names another
site. The sign-in form has no session yet: it is checked by origin alone (and the
cookie's SameSite=Strict keeps a cross-site page from riding an existing one).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Depends, Request

from qruntime.errors import InputValueError, NotAuthorizedError, PermissionDeniedError
from qruntime.server.api.deps import StateDep, resolve_user
from qruntime.server.store.tables import User

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CsrfRefused",
    "SignInRequired",
    "UiCaller",
    "UiForm",
    "UiFormDep",
    "csrf_protected",
    "csrf_token_for",
    "optional_caller",
    "same_site",
    "session_cookie",
    "ui_caller",
]

#: The cookie that holds the session secret (an access token).
COOKIE = "qruntime_session"
#: The form field that carries the CSRF token.
CSRF_FIELD = "csrf_token"
#: The most bytes a dashboard form may send (forms here carry tags, names, a token).
_MAX_FORM_BYTES = 64 * 1024


class SignInRequired(NotAuthorizedError):
    """Raised when a page needs a signed-in caller and there is none (or it expired)."""

    def __init__(self, message: str, *, next_url: str) -> None:
        super().__init__(message)
        self.next_url = next_url


class CsrfRefused(PermissionDeniedError):
    """Raised when a POST lacks its CSRF token, carries a wrong one, or comes from another site."""


def csrf_token_for(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so nothing more is stored."""
    return hmac.new(session_secret.encode(), b"qruntime-ui-csrf", hashlib.sha256).hexdigest()


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def _here(request: Request) -> str:
    """Where to come back to after signing in: this page's path and query (same site only)."""
    url = request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return url


def signin_url(next_url: str | None = None, *, expired: bool = False) -> str:
    """The sign-in page's URL, coming back to ``next_url`` afterwards."""
    query = []
    if next_url:
        query.append("next=" + quote(next_url, safe="/"))
    if expired:
        query.append("expired=1")
    return "/ui/signin" + ("?" + "&".join(query) if query else "")


async def ui_caller(request: Request, state: StateDep) -> User:
    """The signed-in caller of a dashboard page; `SignInRequired` (a redirect to the
    sign-in page, which says why) when there is none or its sign-in has ended."""
    secret = session_cookie(request)
    if secret is None:
        raise SignInRequired("Sign in to see this page.", next_url=_here(request))
    try:
        user = await resolve_user(state, secret)
    except NotAuthorizedError:
        raise SignInRequired(
            "Your sign-in has expired or was ended: sign in again.", next_url=_here(request)
        ) from None
    request.state.ui_user = user
    request.state.ui_csrf = csrf_token_for(secret)
    return user


async def optional_caller(request: Request, state: StateDep) -> User | None:
    """The signed-in caller when there is one (pages anyone may see show the menu then)."""
    try:
        return await ui_caller(request, state)
    except SignInRequired:
        return None


#: The signed-in caller: the `User` the services take, as the API's ``UserDep`` gives it.
UiCaller = Annotated[User, Depends(ui_caller)]


def same_site(request: Request) -> bool:
    """Whether the request's ``Origin`` (or ``Referer``) is this server, or absent."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:  # neither sent (an old browser, a script): the CSRF token decides
        return True
    if source == "null":  # a sandboxed frame, or a redirect from another site
        return False
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return parts.scheme == request.url.scheme and parts.netloc == host


class UiForm(Mapping[str, str]):
    """A submitted form: the last value of each field, or all of them with `getlist`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self._last = dict(pairs)

    def __getitem__(self, key: str) -> str:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[str]:
        return [value for name, value in self._pairs if name == key]


async def read_form(request: Request) -> UiForm:
    """The request's urlencoded form (the dashboard's forms send no files)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise InputValueError("Send the form as application/x-www-form-urlencoded.")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise InputValueError(f"The form is larger than {_MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        raise InputValueError("The form could not be read.") from None
    return UiForm(pairs)


async def csrf_protected(request: Request, user: UiCaller) -> UiForm:
    """The form of a POST by the signed-in caller, once its origin and CSRF token check out.

    Use it on every dashboard POST; it raises `CsrfRefused` (a 403 page) otherwise.
    """
    if not same_site(request):
        raise CsrfRefused("Refused: this form was sent from another site.")
    form = await read_form(request)
    expected: str = request.state.ui_csrf
    if not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), expected.encode()):
        raise CsrfRefused(
            "Refused: the form's security token is missing or out of date. "
            "Go back, reload the page and try again."
        )
    return form


#: A POST's form, checked by `csrf_protected`.
UiFormDep = Annotated[UiForm, Depends(csrf_protected)]
