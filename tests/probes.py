"""What several tests measure or listen with: this process's memory, and a connection counter."""

from __future__ import annotations

import socket
import threading


def status_kib(field: str) -> int:
    """A field of ``/proc/self/status`` in KiB (``VmRSS``, ``VmHWM``, ...)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class Listener:
    """A TCP server on 127.0.0.1 that counts connections and closes each at once.

    What a test points a URL at to see that nothing was fetched from it.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/s.json"
        self.connections = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


def installed_under_tmp() -> set[str]:
    """The entries of the host's /tmp that hold this Python environment or qruntime.

    A checkout under /tmp (a CI clone, say) is shown read-only in every sandboxed job's
    private /tmp, at its own path: a job finds these there, and nothing else.
    """
    import os
    import sys

    import qruntime

    places = (sys.prefix, sys.base_prefix, os.path.dirname(qruntime.__file__))
    return {
        os.path.realpath(p).split("/")[2] for p in places if os.path.realpath(p).startswith("/tmp/")
    }
