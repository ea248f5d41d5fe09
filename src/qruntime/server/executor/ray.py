"""Run jobs on a Ray cluster: one node host per node, each driving qruntime's own workers.

The scheduler stays the only queue: it hands a job over only when one of its backend's
lanes is free. This executor picks a node that has what the backend's jobs need
(``ray_resources`` in the catalogue; a GPU backend needs a GPU), counting the jobs it
placed there itself, so Ray's own queue (which has no fairness) stays empty. A job
that no live node could ever run is refused at once with a reason; one that fits a
node that is busy waits here for the next job to end there.

Each node runs one `NodeHost` actor (pinned to the node), which launches the zygote as
a fresh process and runs jobs there, sandboxed as on one machine. A job goes there by
a call whose reply nobody waits for; every job's events come back on one stream per
host, read by a thread here for as long as the host lives. A dedicated session's jobs
all go to the node its first job ran on, where its worker keeps the session's caches: the
``running`` event names the node, the runtime records it in the store and passes it
back in `JobSpec.node`, so a new leader or a restarted server places the session there
too (afresh if that node is gone). A job whose node or actor dies ends with a reason
that says so. Ray is an optional extra, imported when this executor starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qruntime.errors import QRuntimeError
from qruntime.server.executor.base import ErrorReason, Executor, JobSpec, WorkerEvent

if TYPE_CHECKING:
    from qruntime.server.settings import Settings

__all__ = ["RayExecutor", "import_ray"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'qruntime[ray]'"
# The catalogue's names for Ray's built-in resources.
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
_TERMINAL = ("result", "error")


def import_ray() -> Any:
    """The ``ray`` module, or a `QRuntimeError` that says what to install."""
    try:
        import ray
    except ImportError:
        raise QRuntimeError(
            f"the ray executor needs Ray, which is not installed here: {INSTALL_HINT}"
        ) from None
    return ray


@dataclass(eq=False)
class _Node:
    node_id: str
    address: str
    totals: dict[str, float]
    handle: Any = None
    ready: bool = False
    alive: bool = True
    #: The jobs placed here and what each one holds of the node.
    running: dict[str, dict[str, float]] = field(default_factory=dict)

    def free(self, name: str) -> float:
        used = sum(request.get(name, 0.0) for request in self.running.values())
        return self.totals.get(name, 0.0) - used

    def fits(self, request: Mapping[str, float], *, now: bool) -> bool:
        """Whether this node has ``request`` (``now``: free at this moment; else in total)."""
        have = self.free if now else self.totals.get
        return all((have(name) or 0.0) >= amount - 1e-9 for name, amount in request.items())

    @property
    def label(self) -> str:
        return f"{self.node_id[:12]} at {self.address}"


@dataclass(eq=False)
class _Job:
    spec: JobSpec
    on_event: Callable[[WorkerEvent], None]
    request: dict[str, float]
    submitted: float = field(default_factory=time.time)
    called: float = 0.0  # when it was handed to a node's host
    node: _Node | None = None
    started: bool = False  # its ``running`` event was passed on
    done: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class RayExecutor(Executor):
    """Runs jobs on the nodes of a Ray cluster; see the module docstring.

    ``address``: the cluster's (``head:6379``), None for ``RAY_ADDRESS`` or a local one.
    ``host_options``: `LocalExecutor`'s keyword arguments for every node's host.
    ``resources``: what one job of each backend needs of a node, in Ray's names
    (``CPU``, ``GPU``, ``memory``, custom). ``refresh_seconds``: how often the nodes are
    listed, to find new ones and the dead. Usage::

        executor = RayExecutor(address="127.0.0.1:6379", resources={"gpu_sim": {"GPU": 1}})
        await executor.start()
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        host_options: Mapping[str, Any] | None = None,
        resources: Mapping[str, Mapping[str, float]] | None = None,
        refresh_seconds: float = 2.0,
        start_timeout: float = 180.0,
    ) -> None:
        self.address = address
        self.host_options = dict(host_options or {})
        self.resources = {name: dict(need) for name, need in (resources or {}).items()}
        self.refresh_seconds = refresh_seconds
        self.start_timeout = start_timeout
        self._ray: Any = None
        self._host_class: Any = None
        self._nodes: dict[str, _Node] = {}
        self._jobs: dict[str, _Job] = {}
        self._pending: list[_Job] = []
        self._pins: dict[str, str] = {}  # session id -> node id
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._changed: asyncio.Event | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RayExecutor:
        """The executor ``qruntime serve --executor ray`` runs, with the catalogue's needs."""
        from qruntime.backends.config_file import load_catalogue

        catalogue = load_catalogue(settings.config_file)
        resources = {name: backend_request(catalogue.get(name).spec) for name in catalogue.names()}
        options = {
            "catalogue_path": str(settings.config_file) if settings.config_file else None,
            "caches": settings.caches,
            "memory_limit_bytes": settings.worker_memory_bytes,
            "max_result_bytes": settings.max_result_bytes,
            "max_interim_bytes": settings.max_interim_bytes,
            "tmp_bytes": settings.sandbox_tmp_bytes,
            "decode_limits": {
                "max_decoded_bytes": settings.max_decoded_bytes,
                "max_circuit_qubits": settings.max_circuit_qubits,
            },
        }
        return cls(address=settings.ray_address, host_options=options, resources=resources)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        ray = self._ray = import_ray()
        from qruntime.server.executor.ray_node import NodeHost

        self._stopping = False
        self._changed = asyncio.Event()
        if not ray.is_initialized():
            # Workers' output stays in Ray's logs on each node (the dashboard shows it).
            await asyncio.to_thread(
                ray.init,
                address=self.address,
                namespace="qruntime",
                log_to_driver=False,
                configure_logging=False,
            )
        self._host_class = ray.remote(NodeHost)
        await self._refresh()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        deadline = time.monotonic() + self.start_timeout
        while not any(node.ready for node in self._nodes.values()):
            if time.monotonic() > deadline:
                await self.stop()
                raise QRuntimeError("no Ray node started qruntime's workers; see Ray's logs")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    async def stop(self) -> None:
        self._stopping = True
        for job in list(self._jobs.values()):
            self._finish(job, "cancelled", "the executor was stopped")
        self._pending.clear()
        if self._watcher is not None:
            self._watcher.cancel()
        for task in list(self._tasks):
            task.cancel()
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            if node.handle is not None and node.alive:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(node.handle.stop.remote(), 15.0)
                with contextlib.suppress(Exception):
                    self._ray.kill(node.handle)
        self._pins.clear()

    # ---- the executor interface ------------------------------------------------------

    def submit(self, spec: JobSpec, on_event: Callable[[WorkerEvent], None]) -> None:
        if spec.job_id in self._jobs:
            raise ValueError(f"job {spec.job_id} is already running")
        job = _Job(spec, on_event, self.resources.get(spec.backend, {}))
        self._jobs[spec.job_id] = job
        loop = asyncio.get_running_loop()
        if self._stopping or self._ray is None:
            loop.call_soon(self._finish, job, "crashed", "the executor is not running")
            return
        refusal = self._refusal(job)
        if refusal is not None:
            loop.call_soon(self._finish, job, "failed", refusal)
            return
        self._pending.append(job)
        self._dispatch()

    async def cancel(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return False
        if job.node is None:
            self._pending.remove(job)
            self._finish(job, "cancelled", "cancelled on request")
            return True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(job.node.handle.cancel.remote(job_id), 10.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.finished.wait(), 10.0)
        return True

    async def end_session(self, session_id: str) -> None:
        for job in [j for j in self._pending if j.spec.session_id == session_id]:
            self._pending.remove(job)
            self._finish(job, "cancelled", "the session ended")
        node = self._nodes.get(self._pins.pop(session_id, ""))
        if node is not None and node.alive and node.handle is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(node.handle.end_session.remote(session_id), 15.0)

    def nodes(self) -> list[dict[str, Any]]:
        """The live nodes of the cluster, each with a host of qruntime's workers (``ready``
        once it has started them); ``resources``: Ray's totals of the node, less its
        internal ``node:`` labels."""
        pinned = Counter(self._pins.values())
        return [
            {
                "node_id": n.node_id,
                "address": n.address,
                "ready": n.ready,
                "jobs": len(n.running),
                "sessions": pinned[n.node_id],
                "resources": {k: v for k, v in n.totals.items() if not k.startswith("node:")},
            }
            for n in self._nodes.values()
        ]

    # ---- placing jobs ----------------------------------------------------------------

    def _refusal(self, job: _Job) -> str | None:
        """Why no live node could ever run ``job``; None if one could."""
        alive = [node for node in self._nodes.values() if node.alive]
        if not alive:
            return "no node of the Ray cluster is alive to run it"
        if any(node.fits(job.request, now=False) for node in alive):
            return None
        need = ", ".join(f"{name}={amount:g}" for name, amount in sorted(job.request.items()))
        return (
            f"no node of the Ray cluster has what a job on backend {job.spec.backend!r} "
            f"needs ({need}); add a node with these resources (ray start --resources)"
        )

    def _place(self, job: _Job) -> _Node | None:
        if job.spec.session_id is not None and job.spec.node is not None:
            # The store's pin (perhaps an earlier leader's): until this executor pins anew.
            self._pins.setdefault(job.spec.session_id, job.spec.node)
        pinned = self._pins.get(job.spec.session_id or "")
        if pinned is not None:
            node = self._nodes.get(pinned)
            if node is not None and node.alive:
                return node if node.ready and node.fits(job.request, now=True) else None
            self._pins.pop(job.spec.session_id or "", None)  # its node is gone: pin afresh
        ready = [n for n in self._nodes.values() if n.ready and n.fits(job.request, now=True)]
        if not ready:
            return None
        node = min(ready, key=lambda n: len(n.running))
        if job.spec.session_id is not None:
            self._pins[job.spec.session_id] = node.node_id
        return node

    def _dispatch(self) -> None:
        for job in list(self._pending):
            if job.node is not None or job.done:  # placed by a call made from an event
                continue
            refusal = self._refusal(job)
            if refusal is not None:
                self._pending.remove(job)
                self._finish(job, "failed", refusal)
                continue
            node = self._place(job)
            if node is None:
                continue
            self._pending.remove(job)
            job.node = node
            node.running[job.spec.job_id] = job.request
            self._send(job, node)

    def _send(self, job: _Job, node: _Node) -> None:
        """Hand ``job`` to ``node``'s host; its events come back on the host's stream."""
        job.called = time.time()
        try:
            # Nobody waits for the reply (a thread hop and a wake-up of this loop per
            # job): the job's events are the answer, and a dead host ends its stream.
            node.handle.submit.remote(job.spec, job.called)
        except Exception as exc:
            node.running.pop(job.spec.job_id, None)
            message = f"could not hand the job to the Ray node {node.label}: {_first_line(exc)}"
            asyncio.get_running_loop().call_soon(self._finish, job, "crashed", message)
            return
        # Running from now on, as a local job is once a worker is handed it: the node has
        # room for it (placed by what it holds), and its host sends no ``running`` back,
        # which spares every job a stream item.
        self._deliver(job, WorkerEvent(job.spec.job_id, "running"))

    def _open_stream(self, node: _Node) -> None:
        """Start reading ``node``'s event stream, for as long as its host lives."""
        stream = node.handle.events.options(num_returns="streaming").remote()
        reader = threading.Thread(
            target=self._read_stream,
            args=(node, stream, asyncio.get_running_loop()),
            name=f"qruntime-ray-events-{node.node_id[:8]}",
            daemon=True,
        )
        reader.start()

    def _read_stream(self, node: _Node, stream: Any, loop: asyncio.AbstractEventLoop) -> None:
        """(Its own thread.) Pass each item of ``node``'s event stream on to the loop.

        A thread that blocks in Ray, not a task: awaiting a stream's item costs this
        loop two wake-ups from Ray's threads; this costs it one per item.
        """
        why = "its host's event stream ended"
        try:
            for ref in stream:
                batch = self._ray.get(ref)
                loop.call_soon_threadsafe(self._on_batch, node, batch, time.time())
        except Exception as exc:  # RayError: the actor or its node died
            why = _first_line(exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server stopped
            loop.call_soon_threadsafe(self._stream_ended, node, why)

    def _on_batch(self, node: _Node, batch: list[WorkerEvent], received: float) -> None:
        """Pass on events from ``node``'s stream, in order; place waiting jobs if one ended."""
        ended = False
        for event in batch:
            job = self._jobs.get(event.job_id)
            if job is None or job.node is not node:
                continue
            if event.kind in _TERMINAL:
                node.running.pop(job.spec.job_id, None)
                event = _with_timing(event, job, node, received)
                ended = True
            self._deliver(job, event)
        if ended and not self._stopping:
            self._dispatch()

    def _stream_ended(self, node: _Node, why: str) -> None:
        if self._stopping or self._nodes.get(node.node_id) is not node or not node.alive:
            return
        logger.warning("lost the Ray node %s: %s", node.label, why)
        self._node_lost(node, why)

    def _deliver(self, job: _Job, event: WorkerEvent) -> None:
        if job.done:
            return
        if event.kind in _TERMINAL:
            self._end(job)
        elif event.kind == "running":
            job.started = True
        if event.kind == "running" and job.node is not None:
            event = dataclasses.replace(event, node=job.node.node_id)  # recorded for sessions
        try:
            job.on_event(event)
        except Exception:  # a broken callback must not break the executor
            logger.exception("on_event raised for job %s (%s)", job.spec.job_id, event.kind)

    def _end(self, job: _Job) -> None:
        job.done = True
        self._jobs.pop(job.spec.job_id, None)
        job.finished.set()

    def _finish(self, job: _Job, reason: ErrorReason, message: str) -> None:
        """End ``job`` here (it got no terminal event from a node): ``running``, then the error."""
        if job.done:
            return
        self._end(job)
        if not job.started:
            job.on_event(WorkerEvent(job.spec.job_id, "running"))
        job.on_event(WorkerEvent(job.spec.job_id, "error", reason=reason, message=message))

    # ---- nodes -----------------------------------------------------------------------

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self._refresh()
            except Exception:  # the GCS may be briefly unreachable: try again next time
                logger.exception("could not list the Ray nodes")

    async def _refresh(self) -> None:
        """Follow the cluster: a host for every new live node, forget the dead ones."""
        listed = await asyncio.to_thread(self._ray.nodes)
        seen = set()
        joined = False
        for info in listed:
            node_id = str(info.get("NodeID", ""))
            if not info.get("Alive"):
                continue
            seen.add(node_id)
            if node_id not in self._nodes:
                resources = {str(k): float(v) for k, v in (info.get("Resources") or {}).items()}
                address = str(info.get("NodeManagerAddress", "?"))
                node = self._nodes[node_id] = _Node(node_id, address, resources)
                self._track(asyncio.get_running_loop().create_task(self._start_host(node)))
                joined = True
        for node in list(self._nodes.values()):
            if node.node_id not in seen and node.alive:
                self._node_lost(node)
        if joined:
            self._nodes_changed()
        self._dispatch()

    async def _start_host(self, node: _Node) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        node.handle = self._host_class.options(
            scheduling_strategy=strategy, num_cpus=0, max_restarts=0, max_concurrency=10_000
        ).remote(self.host_options)
        try:
            info = await node.handle.start.remote()
        except self._ray.exceptions.RayError as exc:
            logger.error("qruntime's workers did not start on %s: %s", node.label, exc)
            self._node_lost(node)
            return
        if node.alive:
            self._open_stream(node)
        node.ready = node.alive
        logger.info("Ray node %s runs qruntime's workers (%s)", node.label, info.get("host"))
        self._nodes_changed()
        if self._changed is not None:
            self._changed.set()
        self._dispatch()

    def _node_lost(self, node: _Node, why: str = "it left the Ray cluster") -> None:
        """A node (or its host) is gone: its jobs fail, others go elsewhere; a new host if
        it comes back."""
        if not node.alive:
            return
        node.alive = node.ready = False
        for job_id in list(node.running):
            job = self._jobs.get(job_id)
            del node.running[job_id]
            if job is not None:
                message = f"the Ray node running the job was lost ({node.label}): {why}"
                self._finish(job, "crashed", message)
        if self._nodes.get(node.node_id) is node:
            del self._nodes[node.node_id]  # listed alive again later: a fresh host
        with contextlib.suppress(Exception):
            self._ray.kill(node.handle)
        for session_id in [s for s, n in self._pins.items() if n == node.node_id]:
            del self._pins[session_id]
        if not self._stopping:
            self._nodes_changed()
            self._dispatch()  # what only that node could run is refused now


def backend_request(spec: Any) -> dict[str, float]:
    """What one job of the backend ``spec`` needs of a Ray node, in Ray's names.

    A GPU Aer backend needs a GPU unless its ``ray_resources`` say how many.
    """
    request = {_RAY_NAMES.get(name, name): amount for name, amount in spec.ray_resources}
    if getattr(spec, "aer_device", "CPU") == "GPU":
        request.setdefault("GPU", 1.0)
    return request


def _with_timing(event: WorkerEvent, job: _Job, node: _Node, received: float) -> WorkerEvent:
    """The terminal event, its metrics telling where the job's time went on Ray.

    ``dispatch``: waiting here for a node; ``actor_call``: the call reaching the node's
    host; ``back``: the event's way from the host to here; ``received``: when it arrived
    here (epoch seconds), so that what follows (the result's write) can be timed.
    """
    metrics = dict(event.metrics or {})
    ray_timing = dict(metrics.get("ray") or {})
    sent = ray_timing.pop("sent", None)
    if isinstance(sent, float):
        ray_timing["back"] = max(0.0, received - sent)
    ray_timing["received"] = received
    ray_timing["dispatch"] = max(0.0, job.called - job.submitted)
    ray_timing["total"] = max(0.0, time.time() - job.submitted)
    metrics["ray"] = {**ray_timing, "node": node.node_id}
    return dataclasses.replace(event, metrics=metrics)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
