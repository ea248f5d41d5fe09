"""The jobs list (``/ui/jobs``) and a job's page (``/ui/jobs/{id}``), with its actions.

Both read through `services.jobs`, as the API's routes do: the same filters, the same
visibility (another user's job is not found), the same cancel and tags rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from qruntime.errors import InputValueError, QRuntimeError
from qruntime.schemas.jobs import JobOut
from qruntime.server.api.deps import DbDep, StateDep
from qruntime.server.services import jobs as job_service
from qruntime.server.ui import previews
from qruntime.server.ui.auth import UiCaller, UiFormDep
from qruntime.server.ui.render import render
from qruntime.server.ui.routing import page_router

router = page_router()

PAGE_SIZES = (10, 20, 50, 100)
MAX_TAGS = 64
MAX_TAG_CHARS = 100


def _text(value: str | None) -> str | None:
    """A form field: None when left empty."""
    value = (value or "").strip()
    return value or None


def _when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """A date (``2025-01-31``) or date and time from a filter field, in UTC."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputValueError(
            f"{name}: {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from None
    if len(text) == 10 and end_of_day:  # a date alone: the whole of that day
        parsed = datetime.combine(parsed.date(), time.max)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass
class JobQuery:
    """The list's filters, paging and order, as the filter form and the links carry them."""

    status: str | None = None  # "pending" or "ended", as the API's ``pending``
    program: str | None = None
    backend: str | None = None
    session: str | None = None
    tags: str | None = None  # comma-separated: jobs with all of them
    after: str | None = None
    before: str | None = None
    sort: str = "newest"
    limit: int = 20
    offset: int = 0
    owner: str | None = None  # admins: one user's jobs by name, or "*" for everyone's

    def tag_list(self) -> list[str] | None:
        tags = [tag.strip() for tag in (self.tags or "").split(",") if tag.strip()]
        return tags or None

    def service_arguments(self) -> dict[str, Any]:
        pending = {"pending": True, "ended": False}.get(self.status or "")
        return {
            "limit": self.limit,
            "offset": self.offset,
            "pending": pending,
            "program_id": self.program,
            "backend": self.backend,
            "session_id": self.session,
            "tags": self.tag_list(),
            "created_after": _when(self.after, "Created after"),
            "created_before": _when(self.before, "Created before", end_of_day=True),
            "descending": self.sort != "oldest",
            "owner": None if self.owner in (None, "*") else self.owner,
            "all_users": self.owner == "*",
        }

    def link(self, **changes: Any) -> str:
        """This list's URL with ``changes`` (the empty fields left out)."""
        values = {**self.__dict__, **changes}
        defaults = JobQuery().__dict__
        query = {k: v for k, v in values.items() if v not in (None, "") and v != defaults[k]}
        return "/ui/jobs" + ("?" + urlencode(query) if query else "")


@router.get("/ui/jobs")
def job_list(
    request: Request,
    db: DbDep,
    state: StateDep,
    user: UiCaller,
    status: str | None = None,
    program: str | None = None,
    backend: str | None = None,
    session: str | None = None,
    tags: str | None = None,
    after: str | None = None,
    before: str | None = None,
    sort: str = "newest",
    limit: int = 20,
    offset: int = 0,
    owner: str | None = None,
) -> Response:
    query = JobQuery(
        status=_text(status) if status in ("pending", "ended") else None,
        program=_text(program),
        backend=_text(backend),
        session=_text(session),
        tags=_text(tags),
        after=_text(after),
        before=_text(before),
        sort="oldest" if sort == "oldest" else "newest",
        limit=limit if limit in PAGE_SIZES else 20,
        offset=max(0, min(offset, 10_000_000)),
        owner=_text(owner) if user.is_admin else None,
    )
    error = None
    jobs: list[JobOut] = []
    count = 0
    try:
        jobs, count = job_service.list_jobs(db, user=user, **query.service_arguments())
    except QRuntimeError as problem:  # a bad filter: said above the form, which stays usable
        error = problem.message
    return render(
        request,
        "jobs.html",
        status_code=400 if error else 200,
        query=query,
        jobs=jobs,
        count=count,
        error=error,
        backends=[entry.name for entry in state.catalogue],
        page_sizes=PAGE_SIZES,
        show_owner=user.is_admin and query.owner is not None,
    )


def _job_page(
    request: Request,
    db: DbDep,
    user: UiCaller,
    job_id: str,
    *,
    tags_error: str | None = None,
    status_code: int = 200,
) -> Response:
    job = job_service.get_job(db, user=user, job_id=job_id, include_params=True)
    final = job.status.is_final
    result: previews.Preview | None = None
    if job.status.value == "Completed" and not job.private:
        try:
            result = previews.preview_result(job_service.job_result(db, user=user, job_id=job_id))
        except QRuntimeError as problem:
            result = previews.Preview(kind="none", text=problem.message)
    return render(
        request,
        "job.html",
        status_code=status_code,
        job=job,
        final=final,
        inputs=previews.inputs_summary(job.params),
        interim=[
            (seq, previews.interim_text(data))
            for seq, data in job_service.interim_results_since(db, user=user, job_id=job_id)
        ],
        logs=job_service.job_logs(db, user=user, job_id=job_id),
        metrics=previews.metrics_rows(job_service.job_metrics(db, user=user, job_id=job_id)),
        result=result,
        tags_error=tags_error,
    )


@router.get("/ui/jobs/{job_id}")
def job_page(job_id: str, request: Request, db: DbDep, user: UiCaller) -> Response:
    return _job_page(request, db, user, job_id)


@router.get("/ui/jobs/{job_id}/result")
def download_result(job_id: str, db: DbDep, user: UiCaller) -> Response:
    """The raw result, as ``GET /jobs/{id}/results`` sends it (a private one: once)."""
    text = job_service.job_result(db, user=user, job_id=job_id)
    return Response(
        text,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="job-{job_id}-result.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/ui/jobs/{job_id}/cancel")
def cancel(job_id: str, db: DbDep, state: StateDep, user: UiCaller, form: UiFormDep) -> Response:
    job_service.cancel_and_kill(db, user=user, job_id=job_id, runtime=state.runtime)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


def _tags(text: str) -> list[str]:
    tags = [tag.strip() for tag in text.replace("\n", ",").split(",") if tag.strip()]
    if len(tags) > MAX_TAGS:
        raise InputValueError(f"At most {MAX_TAGS} tags, please ({len(tags)} given).")
    long = [tag for tag in tags if len(tag) > MAX_TAG_CHARS]
    if long:
        raise InputValueError(f"A tag may have at most {MAX_TAG_CHARS} characters.")
    return list(dict.fromkeys(tags))  # in order, once each


@router.post("/ui/jobs/{job_id}/tags")
def update_tags(
    job_id: str, request: Request, db: DbDep, user: UiCaller, form: UiFormDep
) -> Response:
    try:
        tags = _tags(form.get("tags", ""))
    except InputValueError as problem:  # shown by the tags form; the page stays usable
        return _job_page(request, db, user, job_id, tags_error=problem.message, status_code=400)
    job_service.update_tags(db, user=user, job_id=job_id, tags=tags)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)
