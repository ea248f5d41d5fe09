"""Failed logins counted per client address and per API token prefix; over the limit, 429.

Both login routes (``POST /users/loginWithToken`` and the IBM-shaped token exchange)
go through `throttled_login`. Only failures count, so a burst of good logins is never
refused; a client that keeps guessing is refused, by its address, and so is anyone
guessing at one token, by the token's prefix (`qruntime.server.services.auth.token_prefix`),
whatever address they come from. A refused login is not checked at all: a 429 says
nothing about the token.

The counts are kept in memory, per server process: each process of a server started
with several workers counts on its own, and a restart forgets them. Behind a reverse
proxy, the client address is the proxy's unless uvicorn is told to trust its
``X-Forwarded-For`` (``--proxy-headers``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from qruntime.errors import NotAuthorizedError, RateLimitedError
from qruntime.server.services import auth
from qruntime.server.services.auth import AccessGrant

__all__ = ["LoginThrottle", "login_keys", "throttled_login"]


class LoginThrottle:
    """Failed logins per key in a sliding window; a key with too many is refused.

    A key with ``failures`` failed logins in the last ``window`` seconds is refused until
    the oldest of them is ``window`` seconds old. At most ``max_keys`` keys are kept: an
    entry goes once its newest failure is older than the window, or, when a flood of new
    keys fills the table, the entry that failed least recently goes first.

    `check` and `failed` are separate steps around the login, so logins that fail at the
    same moment may pass the limit by as many as are in flight at once.

    Usage::

        throttle = LoginThrottle(failures=20, window=60)
        throttle.check(keys)  # raises RateLimitedError, with details["retry_after"]
        ...                   # the login fails:
        throttle.failed(keys)
    """

    def __init__(
        self,
        *,
        failures: int,
        window: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or window <= 0:
            raise ValueError("login_failures must be at least 1 and login_window positive.")
        self.failures = failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # Each key's latest `failures` failure times; least recently failed key first.
        self._entries: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, keys: Sequence[str]) -> None:
        """Raise `RateLimitedError` when any of ``keys`` has failed too often lately."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._entries.get(key)
                if times is not None and len(times) >= self.failures:
                    wait = max(wait, times[0] + self.window - now)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"Too many failed logins; try again in {seconds} seconds.", retry_after=seconds
            )

    def failed(self, keys: Sequence[str]) -> None:
        """Count one failed login against each of ``keys``."""
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._entries.get(key)
                if times is None:
                    self._make_room(now)
                    times = self._entries[key] = deque(maxlen=self.failures)
                else:
                    self._entries.move_to_end(key)
                times.append(now)

    def _make_room(self, now: float) -> None:
        horizon = now - self.window
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest[-1] > horizon and len(entries) < self.max_keys:
                return
            entries.popitem(last=False)


def login_keys(*, api_token: str, client: str | None) -> list[str]:
    """The keys a login counts against: its client's address and its token's prefix."""
    keys = [f"token:{auth.token_prefix(api_token)}"]
    if client:
        keys.append(f"address:{client}")
    return keys


def throttled_login(
    db: Session, *, throttle: LoginThrottle, api_token: str, client: str | None, ttl: int
) -> AccessGrant:
    """`auth.login`, refused (429) for a client or token with too many recent failures."""
    keys = login_keys(api_token=api_token, client=client)
    throttle.check(keys)
    try:
        return auth.login(db, api_token=api_token, ttl=ttl)
    except NotAuthorizedError:
        throttle.failed(keys)
        raise
