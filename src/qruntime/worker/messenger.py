"""The ``user_messenger`` a program's ``main`` receives."""

from __future__ import annotations

import json
import threading
from typing import Any

from qruntime.encoding import RuntimeEncoder
from qruntime.worker.protocol import FrameSocket

__all__ = ["UserMessenger"]


class UserMessenger:
    """Sends a program's interim results (and optionally its final one) to the server.

    ``publish(message)`` encodes ``message`` with the runtime JSON encoding and
    sends it at once as an interim result. ``publish(message, final=True)``
    makes it the job's final result instead: it is sent when ``main`` returns,
    and ``main``'s return value is then ignored.
    """

    def __init__(self, channel: FrameSocket, job_id: str) -> None:
        self._channel = channel
        self._job_id = job_id
        self._lock = threading.Lock()
        self._final: str | None = None

    @property
    def final_result(self) -> str | None:
        """The encoded final result published with ``final=True``, if any."""
        return self._final

    def publish(
        self,
        message: Any,
        encoder: type[json.JSONEncoder] | None = RuntimeEncoder,
        final: bool = False,
    ) -> None:
        text = json.dumps(message, cls=encoder or RuntimeEncoder)
        if final:
            with self._lock:
                self._final = text
            return
        self._channel.send({"kind": "interim", "job_id": self._job_id}, text.encode())
