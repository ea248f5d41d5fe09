"""`RuntimeJob`: follow a job on the server, stream its interim results, get its result."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from qiskit.providers import BackendV2, JobStatus

from qruntime.client._decoders import ResultDecoder, decode_params
from qruntime.errors import (
    QRuntimeError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobTimeoutError,
)

if TYPE_CHECKING:
    from qruntime.client._http import ApiClient

__all__ = ["JobService", "RuntimeJob", "job_status"]

logger = logging.getLogger("qruntime.client")

Decoder = type[ResultDecoder] | Any
DecoderArg = Decoder | tuple[Decoder, Decoder] | None
Callback = Callable[[str, Any], None]

_RAN_TOO_LONG = "RAN TOO LONG"
_STATUS = {
    "Queued": JobStatus.QUEUED,
    "Running": JobStatus.RUNNING,
    "Completed": JobStatus.DONE,
    "Failed": JobStatus.ERROR,
    "Cancelled": JobStatus.CANCELLED,
}
_FINAL = {"Completed", "Failed", "Cancelled"}


def job_status(status: str, reason: str | None) -> JobStatus:
    """The Qiskit status for a wire status: a job that ran too long is an ERROR."""
    if status == "Cancelled" and reason == _RAN_TOO_LONG:
        return JobStatus.ERROR
    return _STATUS[status]


class JobService(Protocol):
    """What a job needs of the service that ran it; `RuntimeService` is one.

    A protocol, so that this module does not import the service's (which imports it).
    """

    @property
    def _api(self) -> ApiClient: ...

    def backend(self, name: str) -> BackendV2: ...


def _decoders(decoder: DecoderArg) -> tuple[Decoder, Decoder]:
    if decoder is None:
        return ResultDecoder, ResultDecoder
    if isinstance(decoder, tuple):
        return decoder[0], decoder[1]
    return decoder, decoder


class RuntimeJob:
    """A job of a runtime program, as ``service.run`` returns it::

    job = service.run("hello-world", inputs={"iterations": 3},
                      options={"backend": "aer_simulator"}, callback=print)
    job.result(); job.logs(); job.metrics()
    """

    def __init__(
        self,
        *,
        service: JobService,
        job_id: str,
        program_id: str,
        backend_name: str,
        inputs: dict[str, Any] | None = None,
        creation_date: datetime | None = None,
        tags: list[str] | None = None,
        session_id: str | None = None,
        result_decoder: DecoderArg = None,
        state: dict[str, Any] | None = None,
        private: bool = False,
    ) -> None:
        self._service = service
        self._api = service._api
        self._job_id = job_id
        self._program_id = program_id
        self._backend_name = backend_name
        self._inputs = inputs
        self._creation_date = creation_date
        self._tags = list(tags or [])
        self._session_id = session_id
        self._private = private
        self._interim_decoder, self._final_decoder = _decoders(result_decoder)
        self._state: dict[str, Any] = state or {"status": "Queued", "reason": None}
        self._max_execution_time: int | None = None
        self._result: Any = None
        self._has_result = False
        # A private job's result can be read from the server once: its text is kept
        # here for `result` and the callback stream alike, which take turns by the lock.
        self._result_lock = threading.Lock()
        self._result_text: str | None = None
        self._stream_thread: threading.Thread | None = None
        self._stream_stop = threading.Event()
        self._ws: Any = None

    # -- identity -------------------------------------------------------------------------

    def job_id(self) -> str:
        return self._job_id

    @property
    def program_id(self) -> str:
        return self._program_id

    def backend(self) -> BackendV2:
        """The backend the job runs on, as a Qiskit ``BackendV2``."""
        return self._service.backend(self._backend_name)

    @property
    def backend_name(self) -> str:
        return self._backend_name

    @property
    def inputs(self) -> dict[str, Any]:
        """The job's inputs, decoded (fetched from the server when not known here)."""
        if self._inputs is None:
            payload = self._api.get_json(f"/jobs/{self._job_id}")
            self._inputs = decode_params(payload.get("params") or {})
        return self._inputs

    @property
    def creation_date(self) -> datetime | None:
        """When the server accepted the job (read from the server once if not known here)."""
        if self._creation_date is None:
            self._refresh()
        return self._creation_date

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def tags(self) -> list[str]:
        return list(self._tags)

    @property
    def private(self) -> bool:
        """Whether the job is private: the server never returns its inputs, and its
        result can be read once (`result` keeps it here), then is deleted there."""
        return self._private

    # -- state ----------------------------------------------------------------------------

    def _update(self, payload: dict[str, Any]) -> None:
        state = payload.get("state") or {"status": payload.get("status")}
        self._state = {"status": state["status"], "reason": state.get("reason")}
        self._tags = list(payload.get("tags", self._tags))
        self._private = bool(payload.get("private", self._private))
        if self._creation_date is None and payload.get("created"):
            self._creation_date = datetime.fromisoformat(payload["created"])
        if isinstance(payload.get("cost"), int):
            self._max_execution_time = payload["cost"]

    def _refresh(self) -> None:
        self._update(self._api.get_json(f"/jobs/{self._job_id}", params={"exclude_params": True}))

    def _final(self) -> bool:
        return self._state["status"] in _FINAL

    def status(self) -> JobStatus:
        """The job's status now, as a ``qiskit.providers.JobStatus``."""
        if not self._final():
            self._refresh()
        return job_status(self._state["status"], self._state["reason"])

    def error_message(self) -> str | None:
        """Why the job failed or was cancelled; None if it did not.

        As the seed client words it: ``"Job {id} has failed:\n{traceback}"``, and for a
        job stopped at its max_execution_time ``"Job {id} ran longer than maximum
        execution time. Job was cancelled:\n{details}"``.
        """
        if not self._final():
            self._refresh()
        status, reason = self._state["status"], self._state["reason"]
        if status == "Failed":
            return f"Job {self._job_id} has failed:\n{reason or 'no details'}"
        if status == "Cancelled" and reason == _RAN_TOO_LONG:
            if self._max_execution_time is None:
                self._refresh()
            limit = self._max_execution_time
            details = f"it ran over its max_execution_time of {limit} s ({_RAN_TOO_LONG})"
            return (
                f"Job {self._job_id} ran longer than maximum execution time. "
                f"Job was cancelled:\n{details}"
            )
        if status == "Cancelled":
            return str(reason or status)
        return None

    def wait_for_final_state(self, timeout: float | None = None) -> None:
        """Block until the job is final; `RuntimeJobTimeoutError` after ``timeout`` seconds.

        The server answers as soon as the job ends (a long poll), so no time is lost
        between the end and the return.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._final():
            wait = 60.0
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise RuntimeJobTimeoutError(
                        f"Timed out after {timeout} s waiting for job {self._job_id}."
                    )
            payload = self._api.request(
                "GET",
                f"/jobs/{self._job_id}/wait",
                params={"timeout": round(wait, 3)},
                timeout=wait + 30,
            ).json()
            self._update(payload)
        self._finish_streaming(deadline)

    def result(self, timeout: float | None = None, decoder: DecoderArg = None) -> Any:
        """The final result, decoded; waits for the job to end.

        Raises `RuntimeJobFailureError` (with the program's error) for a failed job,
        `RuntimeJobMaxTimeoutError` for one that ran over its max_execution_time and
        `RuntimeInvalidStateError` for a cancelled one.
        """
        final_decoder = _decoders(decoder)[1] if decoder is not None else self._final_decoder
        if self._has_result and decoder is None:
            return self._result
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._result_lock:  # released before the stream is awaited
                text = self._result_text
                if text is None:
                    text = self._poll_result_text(timeout, deadline)
                    if self._private:
                        self._result_text = text
        except RuntimeInvalidStateError:
            self._refresh()  # it ended without a result: say why
            self._finish_streaming(deadline)
            self._raise_for_final_state()
            raise
        self._state = {"status": "Completed", "reason": None}
        self._finish_streaming(deadline)
        result = final_decoder.decode(text)
        if decoder is None:
            self._result, self._has_result = result, True
        return result

    def _poll_result_text(self, timeout: float | None, deadline: float | None) -> str:
        """The result text, awaited with long polls until ``deadline``."""
        while True:
            wait = 60.0 if deadline is None else min(60.0, deadline - time.monotonic())
            if wait <= 0:
                raise RuntimeJobTimeoutError(
                    f"Timed out after {timeout} s waiting for job {self._job_id}."
                )
            # One long poll that returns the result itself as soon as the job ends.
            response = self._api.request(
                "GET",
                f"/jobs/{self._job_id}/results",
                params={"wait": round(wait, 3)},
                timeout=wait + 30,
            )
            if response.status_code == 202:
                self._update(response.json())
                continue
            return response.text

    def _final_result_text(self) -> str:
        """The result text of a completed job, for the callback stream."""
        with self._result_lock:
            text = self._result_text
            if text is None:
                text = self._api.request("GET", f"/jobs/{self._job_id}/results").text
                if self._private:
                    self._result_text = text
            return text

    def _finish_streaming(self, deadline: float | None) -> None:
        """Let a callback stream of this (now final) job deliver what it has left.

        As qiskit-ibm-runtime: once ``result()`` or ``wait_for_final_state()`` returns,
        the callback has seen every interim result and the final one. Not from the
        stream's own thread (a callback may ask for the result), and not past ``deadline``.
        """
        thread = self._stream_thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _raise_for_final_state(self) -> None:
        status, reason = self._state["status"], self._state["reason"]
        if status == "Failed":
            raise RuntimeJobFailureError(f"Job {self._job_id} failed: {reason}")
        if status == "Cancelled" and reason == _RAN_TOO_LONG:
            raise RuntimeJobMaxTimeoutError(
                f"Job {self._job_id} ran over its max_execution_time and was stopped."
            )
        if status == "Cancelled":
            raise RuntimeInvalidStateError(f"Job {self._job_id} was cancelled: no result.")

    def cancel(self) -> None:
        """Cancel the job: a queued one never runs, a running one is killed."""
        self._api.request("POST", f"/jobs/{self._job_id}/cancel")
        self.cancel_result_streaming()
        self._refresh()

    def logs(self) -> str:
        """What the program printed or logged so far; complete once the job is final.

        As the seed client, a job that is not final yet gets a logged warning.
        """
        if not self._final():
            self._refresh()
            if not self._final():
                logger.warning(
                    "Job %s is %s: its logs are complete only once it is final.",
                    self._job_id,
                    self._state["status"],
                )
        return self._api.request("GET", f"/jobs/{self._job_id}/logs").text

    def interim_results(self, decoder: DecoderArg = None) -> list[Any]:
        """Every interim result the program published so far, in order."""
        interim = _decoders(decoder)[0] if decoder is not None else self._interim_decoder
        data = self._api.get_json(f"/jobs/{self._job_id}/interim_results")
        return [interim.decode(text) for text in data["interim_results"]]

    def metrics(self) -> dict[str, Any]:
        """Timestamps (created, running, finished) and the time the job used."""
        metrics: dict[str, Any] = self._api.get_json(f"/jobs/{self._job_id}/metrics")
        return metrics

    def usage(self, partial: bool = False) -> float:
        """Seconds the job has used its backend, as in qiskit-ibm-runtime.

        0 until the job is final; with ``partial``, a running job's seconds so far.
        """
        self.status()  # the state first: a job that ends now has its seconds in the metrics
        metrics = self.metrics()
        if self._final():
            return float((metrics.get("usage") or {}).get("seconds") or 0.0)
        running = (metrics.get("timestamps") or {}).get("running")
        if not partial or not running:
            return 0.0
        started = datetime.fromisoformat(running)
        return max((datetime.now(started.tzinfo) - started).total_seconds(), 0.0)

    def update_tags(self, new_tags: list[str] | None = None) -> list[str]:
        """Replace the job's tags; returns them."""
        tags = list(new_tags or [])
        if not all(isinstance(tag, str) for tag in tags):
            raise QRuntimeError("Tags must be strings.")
        self._api.request("PUT", f"/jobs/{self._job_id}/tags", json={"tags": tags})
        self._tags = tags
        return self.tags

    # -- streaming ------------------------------------------------------------------------

    def stream_results(self, callback: Callback, decoder: DecoderArg = None) -> None:
        """Call ``callback(job_id, result)`` for each interim result, then the final one.

        Runs in a background thread over a WebSocket; refused if the job is already
        streaming or final.
        """
        if self._stream_thread is not None and self._stream_thread.is_alive():
            raise RuntimeInvalidStateError(f"Job {self._job_id} is already streaming results.")
        if self.status() in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED):
            raise RuntimeInvalidStateError(f"Job {self._job_id} has already ended.")
        self._start_streaming(callback, decoder)

    def _start_streaming(self, callback: Callback, decoder: DecoderArg = None) -> None:
        """Stream from the first interim result on, even if the job has ended already
        (``run(callback=...)``: a fast job may end before the stream opens)."""
        if decoder is not None:
            interim, final = _decoders(decoder)
        else:
            interim, final = self._interim_decoder, self._final_decoder
        self._stream_stop.clear()
        self._stream_thread = threading.Thread(
            target=self._stream,
            args=(callback, interim, final),
            daemon=True,
            name=f"qruntime-stream-{self._job_id}",
        )
        self._stream_thread.start()

    def cancel_result_streaming(self) -> None:
        """Stop streaming results (the job goes on)."""
        self._stream_stop.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):  # already closed by the server
                ws.close()

    def _stream(self, callback: Callback, interim: Decoder, final: Decoder) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        after = -1
        url = self._api.url.replace("http", "ws", 1) + f"/stream/jobs/{self._job_id}"
        failures: list[str] = []  # what the callback raised, reported once per job
        while not self._stream_stop.is_set():
            try:
                headers = {"Authorization": f"Bearer {self._api.access_token}"}
                with connect(f"{url}?after={after}", additional_headers=headers) as ws:
                    self._ws = ws
                    for raw in ws:
                        message = json.loads(raw)
                        if message["type"] == "interim":
                            after = message["seq"]
                            _call(callback, self._job_id, interim, message["data"], failures)
                        elif message["type"] == "state" and message.get("final"):
                            self._state = {
                                "status": message["status"],
                                "reason": message.get("reason"),
                            }
                            if message["status"] == "Completed" and not self._stream_stop.is_set():
                                try:
                                    text = self._final_result_text()
                                except RuntimeInvalidStateError as exc:  # read elsewhere
                                    logger.warning(
                                        "job %s: no final result for the callback: %s",
                                        self._job_id,
                                        exc,
                                    )
                                    return
                                _call(callback, self._job_id, final, text, failures)
                            return
                        elif message["type"] == "error":
                            logger.error(
                                "streaming job %s: %s", self._job_id, message.get("message")
                            )
                            return
            except (ConnectionClosed, OSError) as exc:
                if self._stream_stop.is_set():
                    return
                logger.warning("stream of job %s interrupted (%s); reconnecting", self._job_id, exc)
                time.sleep(0.2)
            finally:
                self._ws = None

    def __repr__(self) -> str:
        # What is known here, without asking the server: the status as last seen.
        status = job_status(self._state["status"], self._state["reason"]).name
        created = f" created={self._creation_date.isoformat()!r}" if self._creation_date else ""
        return (
            f"<RuntimeJob id={self._job_id!r} program={self._program_id!r} "
            f"backend={self._backend_name!r} status={status!r}{created}>"
        )


def _call(
    callback: Callback, job_id: str, decoder: Decoder, data: str, failures: list[str]
) -> None:
    """Call ``callback``; what it raises is the user's: logged once per job, streaming goes on.

    As the seed API, the callback hears interim results and then the final result; one
    written for interim messages only may fail on the final one, which is not an error
    of the job: a warning with the job id, not a traceback per message.
    """
    try:
        callback(job_id, decoder.decode(data))
    except Exception as exc:
        if not failures:
            logger.warning(
                "The callback of job %s raised %s: %s (further errors of it are not logged)",
                job_id,
                type(exc).__name__,
                exc,
            )
        failures.append(type(exc).__name__)
