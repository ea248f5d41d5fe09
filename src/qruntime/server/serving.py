"""Serving under uvicorn until SIGTERM or SIGINT, with the running jobs drained first.

uvicorn stops on the first SIGTERM or SIGINT: it closes its sockets, waits for the open
connections, then ends the application's lifespan. `DrainingServer` puts a drain
before that: the job runtime starts no more jobs and refuses new ones (503), while the
API keeps answering, so a client waiting for a result gets it; once the running jobs
have ended, or after ``drain_seconds``, uvicorn stops as usual, and the end of the
lifespan queues again the jobs still running (`JobRuntime.stop`).

The worker processes take no part in this: they ignore the signals a terminal, a
container runtime or a service manager sends to the server's process group (see
`qruntime.worker.zygote`), and end when the server tells them to or is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from qruntime.server.http_protocol import HttpProtocol

__all__ = ["DrainingServer", "serve"]

#: Seconds uvicorn waits, once the jobs are drained, for the requests still open before it
#: cuts them: long polls for jobs that now wait for the restart would hold it for minutes.
REQUEST_GRACE_SECONDS = 5


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which drains ``app``'s job runtime before it stops.

    A second SIGINT (Ctrl-C again) ends the wait at once, as it does uvicorn's own wait
    for open connections; the jobs still running are then queued again all the same.

    Usage::

        config = uvicorn.Config(app, host="127.0.0.1", port=8000)
        DrainingServer(config, app=app, drain_seconds=30).run()
    """

    def __init__(self, config: uvicorn.Config, *, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.qruntime_app = app
        self.drain_seconds = drain_seconds

    async def main_loop(self) -> None:
        await super().main_loop()  # until a signal (or a test) sets should_exit
        state = getattr(self.qruntime_app.state, "qruntime", None)
        if state is None or self.force_exit:
            return
        drain = asyncio.create_task(state.runtime.drain(self.drain_seconds))
        ticks = 0
        while not drain.done() and not self.force_exit:
            await asyncio.wait({drain}, timeout=0.1)
            ticks += 1
            await self.on_tick(ticks)  # what uvicorn does each tick: the Date header
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain


def serve(app: FastAPI, *, host: str, port: int, drain_seconds: float, log_level: str) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, as `uvicorn.run` does, draining jobs first."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=REQUEST_GRACE_SECONDS,
        http=HttpProtocol,
    )
    server = DrainingServer(config, app=app, drain_seconds=drain_seconds)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises the SIGINT it caught again
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
