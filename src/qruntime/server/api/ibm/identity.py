"""IBM Cloud IAM's token exchange, answered with qruntime's own access tokens.

The client's IAM token manager posts a form (``grant_type``, ``apikey``) to
``{IAM_URL}/identity/token`` and reads ``exp`` and ``iat`` from the JWT it gets back.
The API key is checked exactly as ``POST /users/loginWithToken`` checks it, and
failures count against the same login throttle.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request

from qruntime.errors import InputValueError
from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.api.ibm.models import IamToken
from qruntime.server.api.login_throttle import throttled_login
from qruntime.server.api.openapi import errors

router = APIRouter()

_API_KEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: FastAPI's Form() would need python-multipart for one endpoint.
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body).items()}


#: The form `_form` reads, for the OpenAPI description.
_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["apikey"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": [_API_KEY_GRANT]},
                        "apikey": {"type": "string", "description": "Your qruntime API token."},
                    },
                }
            }
        },
    }
}


@router.post(
    "/identity/token",
    response_model=None,
    summary="Log in with an API key (IBM Cloud IAM)",
    responses={
        200: {"model": IamToken, "description": "An access token."},
        **errors(
            (401, "Unknown or revoked API token, or a disabled user."),
            (429, "Too many failed logins from this address or for this token (`Retry-After`)."),
        ),
    },
    openapi_extra=_TOKEN_FORM,
)
def token(
    form: Annotated[dict[str, str], Depends(_form)],
    request: Request,
    db: DbDep,
    state: StateDep,
) -> dict[str, Any]:
    """IBM Cloud IAM's token exchange, as ``qiskit-ibm-runtime`` does it: the form's
    ``apikey`` is your qruntime API token, the answer's ``access_token`` a qruntime access
    token (as from ``POST /users/loginWithToken``)."""
    grant = form.get("grant_type", _API_KEY_GRANT)
    if grant != _API_KEY_GRANT:
        raise InputValueError(f"Unsupported grant_type {grant!r}; use {_API_KEY_GRANT}.")
    ttl = state.settings.access_token_ttl
    access = throttled_login(
        db,
        throttle=state.logins,
        api_token=form.get("apikey", ""),
        client=request.client.host if request.client else None,
        ttl=ttl,
    )
    db.commit()  # the client uses the token at once
    return {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "expiration": int(access.expires_at.timestamp()),
        # No refresh tokens: the client asks again with the API key when this one ages.
        "scope": "ibm openid",
    }
