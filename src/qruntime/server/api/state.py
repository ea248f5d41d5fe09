"""What the app holds while it runs; built by `create_app` and its lifespan."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from qruntime.backends import Catalogue
from qruntime.encoding import DecodedCircuits
from qruntime.errors import QRuntimeError, ServiceUnavailableError
from qruntime.schemas.jobs import JobCreate
from qruntime.server.api.login_throttle import LoginThrottle
from qruntime.server.scheduler.runtime import JobRuntime
from qruntime.server.services import jobs as job_service
from qruntime.server.services.auth import TokenCache
from qruntime.server.services.checked_inputs import CheckedInputs
from qruntime.server.services.programs import BuiltinHeads
from qruntime.server.settings import Settings
from qruntime.server.store.database import Database
from qruntime.server.store.tables import Job, User

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass
class AppState:
    settings: Settings
    db: Database
    catalogue: Catalogue
    runtime: JobRuntime
    tokens: TokenCache = field(default_factory=TokenCache)
    builtins: BuiltinHeads = field(default_factory=BuiltinHeads)
    # Circuits sent again (a loop submits the same ansatz each time) are decoded once
    # by the input checks.
    circuits: DecodedCircuits = field(
        default_factory=lambda: DecodedCircuits(max_entries=128, max_instructions=100_000)
    )
    # Inputs of built-in programs that passed their checks, by user and content: a loop
    # that sends the same inputs again is not decoded and checked again.
    checked: CheckedInputs = field(default_factory=CheckedInputs)
    # The routes' store calls: anyio's thread hop (starlette's run_in_threadpool) spent as
    # much CPU on its limiter and task bookkeeping as the call itself.
    store_threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="qruntime-store"
        )
    )
    #: Failed logins per client address and token prefix, as the settings bound them.
    logins: LoginThrottle = field(init=False)

    def __post_init__(self) -> None:
        self.logins = LoginThrottle(
            failures=self.settings.login_failures, window=self.settings.login_window
        )

    async def in_thread(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``func(*args, **kwargs)`` on a store thread, awaited from the event loop."""
        call = functools.partial(func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.store_threads, call)

    async def queue_job(self, user: User, payload: JobCreate, *, size: int | None = None) -> Job:
        """Check a submission (on a store thread unless `job_service.remembered_job` can
        on the loop), then store it through the runtime's writer (`JobRuntime.store_job`):
        the job is durable before this returns. ``size``: the request body's length,
        when known; only a small body is looked at on the loop (its inputs are encoded
        again there to find them remembered).

        Refused while the server stops (`JobRuntime.drain`): it starts no job any more.
        """
        if self.runtime.draining:
            raise ServiceUnavailableError(
                "The server is shutting down and takes no new jobs; submit the job again "
                "once it has restarted."
            )
        # A loop's next job, whose inputs passed before, is checked here; others on a thread.
        # A server that does not lead counts the user's queued jobs where it stores the job.
        queued = self.runtime.queued_by(user.id)
        new: job_service.NewJob | job_service.InputDigest | None = None
        if size is not None and size <= job_service.REMEMBERED_INPUT_BYTES:
            new = job_service.remembered_job(
                user=user,
                payload=payload,
                catalogue=self.catalogue,
                settings=self.settings,
                queued_by_user=queued,
                builtins=self.builtins,
                checked=self.checked,
            )
        if not isinstance(new, job_service.NewJob):  # checked on a thread, digest or not
            new = await self.in_thread(self._check_job, user, payload, queued, new)
        stored = self.runtime.store_job(
            functools.partial(
                job_service.store_new_job,
                user=user,
                new=new,
                max_queued=self.settings.max_queued_jobs_per_user if queued is None else None,
            ),
            builtin=new.builtin,
            opens_session=new.session is not None,
        )
        # Once stored, the job is queued whether or not this request is still awaited.
        outcome = await asyncio.shield(stored)
        if isinstance(outcome, QRuntimeError):
            raise outcome
        return outcome

    def _check_job(
        self,
        user: User,
        payload: JobCreate,
        queued: int | None,
        digest: job_service.InputDigest | None = None,
    ) -> job_service.NewJob:
        with self.db.session() as db:
            return job_service.check_job(
                db,
                user=user,
                payload=payload,
                catalogue=self.catalogue,
                settings=self.settings,
                queued_by_user=queued,
                builtins=self.builtins,
                circuits=self.circuits,
                checked=self.checked,
                digest=digest,
            )

    def close(self) -> None:
        self.store_threads.shutdown(wait=False, cancel_futures=True)
