"""Administration, ``/ui/admin`` (admins only; anyone else gets the not-found page): users
(create, disable, enable, delete), each user's API tokens (create, with the secret shown
once; revoke), usage over a chosen period and queued jobs; and ``/ui/admin/cluster``, the
servers on the database, the leader and the nodes jobs run on. The same service
functions as the API's ``/users`` and ``/cluster`` routes and the ``qruntime users``,
``tokens`` and ``cluster`` commands."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from qruntime.errors import NotFoundError, QRuntimeError
from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.api.routes.cluster import cluster_view
from qruntime.server.services import auth, queues
from qruntime.server.services import jobs as job_service
from qruntime.server.services import users as user_service
from qruntime.server.store import users as user_store
from qruntime.server.store.tables import User, utcnow
from qruntime.server.ui.auth import UiCaller, UiFormDep
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()

#: Usage periods offered: value -> (label, length; None for all time).
PERIODS: dict[str, tuple[str, timedelta | None]] = {
    "day": ("last 24 hours", timedelta(days=1)),
    "week": ("last 7 days", timedelta(days=7)),
    "month": ("last 30 days", timedelta(days=30)),
    "all": ("all time", None),
}
#: The most of a user's queued jobs its page lists.
QUEUED_SHOWN = 50


def _admin_only(user: User) -> None:
    """Others get the not-found page: the admin pages do not exist for them."""
    if not user.is_admin:
        raise NotFoundError("There is nothing here, or it is not yours to see.")


def _since(period: str) -> tuple[str, datetime | None]:
    key = period if period in PERIODS else "week"
    length = PERIODS[key][1]
    return key, (utcnow() - length if length is not None else None)


def _users_page(
    request: Request,
    db: Session,
    user: User,
    *,
    period: str,
    status_code: int = 200,
    **extra: Any,
) -> Response:
    key, start = _since(period)
    usage = job_service.usage_report(db, user=user, all_users=True, start=start)["users"]
    waiting = {row.user: row for row in queues.queues_by_user(db, user=user)}
    users = [u for u in user_store.list_users(db) if u.name != auth.SYSTEM_USER]
    return render(
        request,
        "admin.html",
        status_code=status_code,
        users=users,
        usage={row["user"]: row for row in usage},
        waiting=waiting,
        period=key,
        periods=PERIODS,
        **extra,
    )


@router.get("/ui/admin")
def admin(request: Request, db: DbDep, user: UiCaller, period: str = "week") -> Response:
    _admin_only(user)
    return _users_page(request, db, user, period=period)


@router.get("/ui/admin/cluster")
async def cluster(request: Request, state: StateDep, user: UiCaller) -> Response:
    _admin_only(user)
    return render(request, "admin_cluster.html", view=await cluster_view(state))


@router.post("/ui/admin/users")
def create_user(request: Request, db: DbDep, user: UiCaller, form: UiFormDep) -> Response:
    _admin_only(user)
    name = form.get("name", "").strip()
    try:
        created, token = auth.create_user(db, name=name, is_admin=form.get("is_admin") == "1")
        db.commit()  # before the secret is shown: a token on the page exists
    except QRuntimeError as error:
        db.rollback()
        return _users_page(
            request,
            db,
            user,
            period="week",
            status_code=error.status_code,
            error=error.message,
            name=name,
        )
    return _users_page(request, db, user, period="week", new_user=created.name, new_token=token)


def _user_page(
    request: Request, db: Session, user: User, *, name: str, period: str, **extra: Any
) -> Response:
    target = user_service.find_user(db, name=name)  # NotFoundError: the 404 page
    key, start = _since(period)
    usage = job_service.usage_report(db, user=user, owner=name, start=start)
    queued, queued_count = job_service.list_jobs(
        db,
        user=user,
        limit=QUEUED_SHOWN,
        pending=True,
        descending=False,
        owner=name,
    )
    return render(
        request,
        "admin_user.html",
        target=target,
        tokens=user_service.list_api_tokens(db, name=name),
        usage=usage,
        period=key,
        periods=PERIODS,
        queued=queued,
        queued_count=queued_count,
        **extra,
    )


@router.get("/ui/admin/users/{name}")
def user_detail(
    name: str, request: Request, db: DbDep, user: UiCaller, period: str = "week"
) -> Response:
    _admin_only(user)
    return _user_page(request, db, user, name=name, period=period)


@router.post("/ui/admin/users/{name}/tokens")
def create_token(
    name: str, request: Request, db: DbDep, user: UiCaller, form: UiFormDep
) -> Response:
    """``POST /users/{name}/tokens``: one more API token, shown on this answer only."""
    _admin_only(user)
    target = user_service.find_user(db, name=name)
    token = auth.issue_api_token(db, user=target)
    db.commit()
    return _user_page(request, db, user, name=name, period="week", new_token=token)


@router.post("/ui/admin/users/{name}/tokens/{token_id}/revoke")
def revoke_token(
    name: str, token_id: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep
) -> Response:
    _admin_only(user)
    user_service.revoke_tokens(db, name=name, token_id=token_id)
    state.tokens.drop_user(name)  # its access tokens stop working now, not at expiry
    return RedirectResponse(f"/ui/admin/users/{name}?revoked={token_id}", status_code=303)


@router.post("/ui/admin/users/{name}/disable")
def disable(name: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep) -> Response:
    _admin_only(user)
    user_service.set_disabled(db, name=name, disabled=True)
    state.tokens.drop_user(name)
    return RedirectResponse(f"/ui/admin/users/{name}", status_code=303)


@router.post("/ui/admin/users/{name}/enable")
def enable(name: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep) -> Response:
    _admin_only(user)
    user_service.set_disabled(db, name=name, disabled=False)
    state.tokens.drop_user(name)
    return RedirectResponse(f"/ui/admin/users/{name}", status_code=303)


@router.post("/ui/admin/users/{name}/delete")
def delete(name: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep) -> Response:
    """Refused (409 page, saying why) while the user has queued or running jobs."""
    _admin_only(user)
    user_service.delete_user(db, name=name)
    state.tokens.drop_user(name)
    return RedirectResponse(f"/ui/admin?deleted={name}", status_code=303)
