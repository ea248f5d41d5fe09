"""Data access for users, API tokens, access tokens and server secrets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from qruntime.server.store.tables import (
    AccessToken,
    ApiToken,
    Job,
    Program,
    ServerSecret,
    User,
    utcnow,
)

__all__ = [
    "add_access_token",
    "add_api_token",
    "add_user",
    "count_users",
    "delete_user",
    "get_secret",
    "get_user",
    "get_user_by_name",
    "list_api_tokens",
    "list_users",
    "pending_jobs_touching",
    "revoke_access_token",
    "revoke_access_tokens_of",
    "revoke_api_tokens",
    "set_disabled",
    "set_secret",
    "user_for_access_token",
    "user_for_api_token",
    "user_names",
]


def count_users(db: Session) -> int:
    return len(db.scalars(select(User.id)).all())


def add_user(db: Session, *, user_id: str, name: str, is_admin: bool) -> User:
    user = User(id=user_id, name=name, is_admin=is_admin, created_at=utcnow())
    db.add(user)
    db.flush()
    return user


def get_user(db: Session, *, user_id: str) -> User | None:
    return db.get(User, user_id)


def user_names(db: Session, *, user_ids: Iterable[str]) -> dict[str, str]:
    """Id -> name of those of ``user_ids`` that exist, in one query."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    rows = db.execute(select(User.id, User.name).where(User.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


def get_user_by_name(db: Session, *, name: str) -> User | None:
    return db.scalar(select(User).where(User.name == name))


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.created_at, User.name)))


def add_api_token(db: Session, *, token_id: str, user_id: str, token_hash: str) -> ApiToken:
    token = ApiToken(id=token_id, user_id=user_id, token_hash=token_hash, created_at=utcnow())
    db.add(token)
    db.flush()
    return token


def user_for_api_token(db: Session, *, token_hash: str) -> tuple[User, ApiToken] | None:
    """The user of a live (not revoked) API token, in one query."""
    row = db.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == token_hash,
            ApiToken.revoked_at.is_(None),
            User.disabled_at.is_(None),
        )
    ).first()
    return (row[0], row[1]) if row else None


def revoke_api_tokens(
    db: Session, *, user_id: str, token_hash: str | None = None, token_id: str | None = None
) -> int:
    """Revoke a user's live API tokens (only the one of ``token_hash`` or ``token_id`` if
    given) and their access tokens.

    Returns how many API tokens were revoked.
    """
    conditions = [ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)]
    if token_hash is not None:
        conditions.append(ApiToken.token_hash == token_hash)
    if token_id is not None:
        conditions.append(ApiToken.id == token_id)
    ids = list(db.scalars(select(ApiToken.id).where(*conditions)))
    if not ids:
        return 0
    db.execute(update(ApiToken).where(ApiToken.id.in_(ids)).values(revoked_at=utcnow()))
    db.execute(update(AccessToken).where(AccessToken.api_token_id.in_(ids)).values(revoked=True))
    return len(ids)


def list_api_tokens(db: Session, *, user_id: str) -> list[tuple[ApiToken, datetime | None]]:
    """A user's API tokens, oldest first, each with when it was last used to log in."""
    last_login = (
        select(AccessToken.api_token_id, func.max(AccessToken.created_at).label("at"))
        .group_by(AccessToken.api_token_id)
        .subquery()
    )
    rows = db.execute(
        select(ApiToken, last_login.c.at)
        .outerjoin(last_login, last_login.c.api_token_id == ApiToken.id)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return [(row[0], row[1]) for row in rows]


def revoke_access_tokens_of(db: Session, *, user_id: str) -> None:
    """Revoke every access token of a user (its API tokens stay)."""
    db.execute(
        update(AccessToken)
        .where(AccessToken.user_id == user_id, AccessToken.revoked.is_(False))
        .values(revoked=True)
    )


def set_disabled(db: Session, *, user_id: str, disabled_at: datetime | None) -> None:
    db.execute(update(User).where(User.id == user_id).values(disabled_at=disabled_at))


def pending_jobs_touching(db: Session, *, user_id: str) -> int:
    """Queued or running jobs that are the user's, or run one of the user's programs."""
    programs = select(Program.id).where(Program.owner_id == user_id)
    query = (
        select(func.count())
        .select_from(Job)
        .where(
            Job.status.in_(("Queued", "Running")),
            or_(Job.owner_id == user_id, Job.program_id.in_(programs)),
        )
    )
    return int(db.scalar(query) or 0)


def delete_user(db: Session, *, user_id: str) -> None:
    """Delete a user and, by the tables' cascades, its tokens, programs, jobs and sessions."""
    db.execute(delete(User).where(User.id == user_id))


def add_access_token(
    db: Session, *, token_hash: str, user_id: str, api_token_id: str, expires_at: datetime
) -> None:
    db.add(
        AccessToken(
            token_hash=token_hash,
            user_id=user_id,
            api_token_id=api_token_id,
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )


def user_for_access_token(
    db: Session, *, token_hash: str, now: datetime
) -> tuple[User, datetime] | None:
    """The user of a live access token (not revoked, not expired) and its expiry, in one query."""
    row = db.execute(
        select(User, AccessToken.expires_at)
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(
            AccessToken.token_hash == token_hash,
            AccessToken.revoked.is_(False),
            AccessToken.expires_at > now,
            User.disabled_at.is_(None),
        )
    ).first()
    return (row[0], row[1]) if row else None


def revoke_access_token(db: Session, *, token_hash: str) -> bool:
    result = db.execute(
        update(AccessToken).where(AccessToken.token_hash == token_hash).values(revoked=True)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_secret(db: Session, *, name: str) -> str | None:
    secret = db.get(ServerSecret, name)
    return secret.value if secret else None


def set_secret(db: Session, *, name: str, value: str) -> None:
    db.add(ServerSecret(name=name, value=value))
    db.flush()
