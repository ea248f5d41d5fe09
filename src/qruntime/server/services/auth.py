"""Users and tokens: creating users, exchanging API tokens for access tokens, checking them.

API tokens are long-lived secrets a user keeps; the server stores only their
SHA-256 hash. A client exchanges one for a short-lived access token (also stored
hashed) and sends that with each request; ``logout`` revokes it.
Access tokens are JWTs (HS256, ``sub``/``iat``/``exp``/``jti``) so that clients
which read the expiry from the token, such as IBM's, can use them; the database
row is still the authority, so a revoked token is refused at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from qruntime.errors import ConflictError, InputValueError, NotAuthorizedError
from qruntime.server.store import users as store
from qruntime.server.store.tables import User, utcnow

__all__ = [
    "MIN_API_TOKEN_CHARS",
    "SYSTEM_USER",
    "AccessGrant",
    "TokenCache",
    "authenticate",
    "authenticate_cached",
    "bootstrap",
    "create_user",
    "hash_token",
    "issue_api_token",
    "login",
    "logout",
    "token_prefix",
]

#: The user that owns the built-in programs; it has no tokens and cannot log in.
SYSTEM_USER = "system"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_SIGNING_KEY = "access_token_signing_key"


def hash_token(token: str) -> str:
    """The stored form of a token. Tokens are random and long, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


#: How many of an API token's first characters name it: ``qrt_`` and 8 random characters
#: (48 bits) of a token this server made, enough to tell tokens apart and far too few to use.
TOKEN_PREFIX_CHARS = 12


#: The shortest API token accepted (``QRUNTIME_ADMIN_TOKEN`` included).
MIN_API_TOKEN_CHARS = 16


def token_prefix(token: str) -> str:
    """The first characters of an API token, which the login throttle counts failures by."""
    return token[:TOKEN_PREFIX_CHARS]


def _new_id() -> str:
    return secrets.token_hex(16)


def issue_api_token(db: Session, *, user: User, token: str | None = None) -> str:
    """Give ``user`` a new API token (or register ``token``) and return it in clear, once."""
    token = token or "qrt_" + secrets.token_urlsafe(32)
    if len(token) < MIN_API_TOKEN_CHARS:
        raise InputValueError(
            f"An API token must be at least {MIN_API_TOKEN_CHARS} characters long."
        )
    if store.user_for_api_token(db, token_hash=hash_token(token)) is not None:
        raise ConflictError("That API token is already in use.")
    store.add_api_token(db, token_id=_new_id(), user_id=user.id, token_hash=hash_token(token))
    return token


def create_user(
    db: Session, *, name: str, is_admin: bool = False, token: str | None = None
) -> tuple[User, str]:
    """Create a user with one API token; return both (the token in clear, once)."""
    if not _NAME.match(name):
        raise InputValueError(
            f"Invalid user name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit."
        )
    if name == SYSTEM_USER or store.get_user_by_name(db, name=name) is not None:
        raise ConflictError(f"A user named {name!r} already exists.")
    user = store.add_user(db, user_id=_new_id(), name=name, is_admin=is_admin)
    return user, issue_api_token(db, user=user, token=token)


def bootstrap(db: Session, *, admin_token: str | None) -> str | None:
    """Prepare an empty database: the system user, the signing key and the ``admin`` user.

    Returns the admin's API token when it was created now (to be printed once), else None.
    """
    if store.get_secret(db, name=_SIGNING_KEY) is None:
        store.set_secret(db, name=_SIGNING_KEY, value=secrets.token_hex(32))
    if store.get_user_by_name(db, name=SYSTEM_USER) is None:
        store.add_user(db, user_id=SYSTEM_USER, name=SYSTEM_USER, is_admin=False)
    if store.count_users(db) > 1:
        return None
    _, token = create_user(db, name="admin", is_admin=True, token=admin_token)
    return token


@dataclass(frozen=True)
class AccessGrant:
    token: str
    user: User
    created_at: datetime
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, object], key: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def login(db: Session, *, api_token: str, ttl: int) -> AccessGrant:
    """Exchange an API token for a new access token that lives ``ttl`` seconds."""
    found = store.user_for_api_token(db, token_hash=hash_token(api_token)) if api_token else None
    if found is None:
        raise NotAuthorizedError("Invalid API token (unknown, revoked, or its user is disabled).")
    user, api = found
    key = store.get_secret(db, name=_SIGNING_KEY)
    if key is None:  # only a database that bootstrap() never saw
        raise NotAuthorizedError("The server has no signing key; restart it to initialise.")
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    claims: dict[str, object] = {
        "sub": user.id,
        "name": user.name,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_hex(16),
    }
    token = _jwt(claims, key)
    store.add_access_token(
        db, token_hash=hash_token(token), user_id=user.id, api_token_id=api.id, expires_at=expires
    )
    return AccessGrant(token=token, user=user, created_at=now, expires_at=expires)


def authenticate(db: Session, *, access_token: str | None) -> User:
    """The user an access token belongs to; `NotAuthorizedError` if it is missing or dead."""
    return _authenticate(db, access_token=access_token)[0]


def _authenticate(db: Session, *, access_token: str | None) -> tuple[User, datetime]:
    if not access_token:
        raise NotAuthorizedError(
            "Missing access token: log in with your API token (POST /users/loginWithToken)."
        )
    token_hash = hash_token(access_token)
    found = store.user_for_access_token(db, token_hash=token_hash, now=utcnow())
    if found is None:
        if store.user_for_api_token(db, token_hash=token_hash) is not None:
            raise NotAuthorizedError(
                "That is an API token, not an access token: exchange it for one with "
                'POST /users/loginWithToken {"apiToken": "..."} and send the "id" it returns '
                "as the Bearer token (RuntimeService and qiskit-ibm-runtime do this for you)."
            )
        raise NotAuthorizedError(
            "Invalid, expired or revoked access token: log in again with your API token "
            "(POST /users/loginWithToken)."
        )
    return found


def logout(db: Session, *, access_token: str, cache: TokenCache | None = None) -> None:
    """Revoke an access token: later requests with it get 401."""
    store.revoke_access_token(db, token_hash=hash_token(access_token))
    if cache is not None:
        cache.drop(access_token)


class TokenCache:
    """Recently checked access tokens, so that a busy client costs no query per request.

    An entry lives ``ttl`` seconds at most (and never past the token's expiry).
    ``logout`` drops the entry in this process at once; a revocation made elsewhere
    (another server process, ``qruntime tokens revoke``) takes effect within ``ttl``.
    """

    def __init__(self, *, ttl: float = 2.0, size: int = 4096) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> User | None:
        with self._lock:
            entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, user: User, *, expires_at: datetime) -> None:
        remaining = (expires_at - utcnow()).total_seconds()
        until = time.monotonic() + min(self._ttl, max(remaining, 0.0))
        with self._lock:
            if len(self._entries) >= self._size:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self._size:
                    self._entries.clear()
            # A transient copy: the original belongs to a session that will expire it.
            snapshot = User(
                id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at
            )
            self._entries[token] = (until, snapshot)

    def drop(self, token: str) -> None:
        with self._lock:
            self._entries.pop(token, None)

    def drop_user(self, name: str) -> None:
        """Forget every token of the user ``name`` (disabled, deleted or revoked here)."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1].name != name}


def authenticate_cached(db: Session, *, access_token: str | None, cache: TokenCache) -> User:
    """`authenticate`, answered from ``cache`` when the token was checked moments ago."""
    if access_token:
        user = cache.get(access_token)
        if user is not None:
            return user
    user, expires_at = _authenticate(db, access_token=access_token)
    assert access_token is not None
    cache.put(access_token, user, expires_at=expires_at)
    return user
