"""What an admin does to users: disable, enable, delete, list and reset their tokens.

The same functions serve the API (``/users/...``, admins only) and the ``qruntime users``
and ``qruntime tokens`` commands working on the database itself.

- *Disabled* users cannot log in and their access tokens are refused at once (a server
  that checked one in the last 2 s may still accept it that long); their API tokens,
  programs, jobs and sessions are kept, queued jobs still run, and their public programs
  stay runnable. Enabling restores everything.
- *Deleting* a user deletes its API and access tokens, programs, jobs (results, logs,
  interim results) and sessions. It is refused while a job of the user, or a job of
  anyone running one of its programs, is queued or running.
- The last enabled admin can be neither disabled nor deleted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qruntime.errors import ConflictError, InputValueError, NotFoundError, PermissionDeniedError
from qruntime.server.services import auth
from qruntime.server.store import users as store
from qruntime.server.store.tables import User, utcnow

__all__ = [
    "delete_user",
    "find_user",
    "list_api_tokens",
    "listed_owner",
    "require_admin",
    "reset_token",
    "revoke_tokens",
    "scope",
    "set_disabled",
]


def scope(user: User) -> str | None:
    """The owner whose jobs and sessions ``user`` may reach: their own; anyone's (None)
    for an admin."""
    return None if user.is_admin else user.id


def listed_owner(
    db: Session, *, user: User, owner: str | None, all_users: bool, what: str
) -> str | None:
    """The owner id a listing of ``what`` (jobs, sessions) is for: the caller's own by
    default; an admin may ask for one user's (``owner``, a name) or everyone's (None)."""
    if owner is None and not all_users:
        return user.id
    if not user.is_admin:
        if owner == user.name and not all_users:
            return user.id
        raise PermissionDeniedError(f"Only admins may list other users' {what}.")
    if owner is None:
        return None
    found = store.get_user_by_name(db, name=owner)
    if found is None:
        raise InputValueError(f"No user named {owner!r}.")
    return found.id


def require_admin(user: User, action: str) -> None:
    if not user.is_admin:
        raise PermissionDeniedError(f"Only an admin may {action}.")


def find_user(db: Session, *, name: str) -> User:
    """The user named ``name``; `NotFoundError` if there is none (the system user is none)."""
    user = store.get_user_by_name(db, name=name)
    if user is None or name == auth.SYSTEM_USER:
        raise NotFoundError(f"No user named {name!r}.")
    return user


def _check_not_last_admin(db: Session, user: User, action: str) -> None:
    if not user.is_admin or user.disabled_at is not None:
        return
    admins = [u for u in store.list_users(db) if u.is_admin and u.disabled_at is None]
    if len(admins) <= 1:
        raise ConflictError(
            f"{user.name!r} is the last enabled admin: make another admin before you {action} it."
        )


def set_disabled(db: Session, *, name: str, disabled: bool) -> User:
    """Disable a user (no logins, its access tokens refused) or enable it again."""
    user = find_user(db, name=name)
    if disabled:
        _check_not_last_admin(db, user, "disable")
        if user.disabled_at is None:
            store.set_disabled(db, user_id=user.id, disabled_at=utcnow())
            store.revoke_access_tokens_of(db, user_id=user.id)
    elif user.disabled_at is not None:
        store.set_disabled(db, user_id=user.id, disabled_at=None)
    db.refresh(user)
    return user


def delete_user(db: Session, *, name: str) -> None:
    """Delete a user with its tokens, programs, jobs and sessions (see the module docstring)."""
    user = find_user(db, name=name)
    _check_not_last_admin(db, user, "delete")
    pending = store.pending_jobs_touching(db, user_id=user.id)
    if pending:
        raise ConflictError(
            f"{pending} job(s) of {name!r}, or running its programs, are queued or running: "
            f"cancel them or let them finish first (disable the user to stop new ones)."
        )
    store.delete_user(db, user_id=user.id)


def list_api_tokens(db: Session, *, name: str) -> list[dict[str, Any]]:
    """A user's API tokens by id, with when each was made, revoked and last used."""
    user = find_user(db, name=name)
    return [
        {"id": token.id, "created": token.created_at, "revoked": token.revoked_at, "last_login": at}
        for token, at in store.list_api_tokens(db, user_id=user.id)
    ]


def revoke_tokens(
    db: Session, *, name: str, token: str | None = None, token_id: str | None = None
) -> int:
    """Revoke a user's API tokens (one, by secret or id, or all) and their access tokens.

    Revoking nothing is an error: `NotFoundError` says that no live token matched.
    """
    user = find_user(db, name=name)
    token_hash = auth.hash_token(token) if token is not None else None
    count = store.revoke_api_tokens(db, user_id=user.id, token_hash=token_hash, token_id=token_id)
    if count == 0:
        which = "no live API token like that" if token or token_id else "no live API tokens"
        raise NotFoundError(f"{name!r} has {which}: nothing was revoked.")
    return count


def reset_token(db: Session, *, name: str) -> str:
    """Revoke all of a user's API tokens and give it a new one (returned in clear, once)."""
    user = find_user(db, name=name)
    store.revoke_api_tokens(db, user_id=user.id)
    return auth.issue_api_token(db, user=user)
