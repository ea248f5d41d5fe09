"""`LoginThrottle`: failed logins per key in a sliding window, in bounded memory."""

from __future__ import annotations

import pytest

from qruntime.errors import RateLimitedError
from qruntime.server.api.login_throttle import LoginThrottle, login_keys


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **options: int) -> LoginThrottle:
    return LoginThrottle(**{"failures": 3, "window": 60, **options}, clock=clock)


def test_a_key_is_refused_once_it_has_failed_the_allowed_times() -> None:
    clock = Clock()
    logins = throttle(clock)
    for _ in range(3):
        logins.check(["a"])
        logins.failed(["a"])
        clock.now += 10
    with pytest.raises(RateLimitedError) as refused:
        logins.check(["a"])
    assert refused.value.status_code == 429
    assert refused.value.details["retry_after"] == 30  # the first failure is 30 s old
    logins.check(["b"])  # other keys are not concerned


def test_the_window_slides_a_key_is_let_in_as_its_oldest_failure_ages() -> None:
    clock = Clock()
    logins = throttle(clock)
    for _ in range(3):
        logins.failed(["a"])  # at 0, 19 and 38 s
        clock.now += 19
    with pytest.raises(RateLimitedError) as refused:
        logins.check(["a"])  # at 57 s
    assert refused.value.details["retry_after"] == 3
    clock.now += 3.5
    logins.check(["a"])  # the first failure is out of the window
    logins.failed(["a"])
    with pytest.raises(RateLimitedError) as refused:
        logins.check(["a"])
    assert refused.value.details["retry_after"] == 19  # until the one at 19 s is 60 s old


def test_any_locked_key_of_a_login_refuses_it() -> None:
    clock = Clock()
    logins = throttle(clock, failures=1)
    logins.failed(["token:qrt_abc", "address:10.0.0.1"])
    with pytest.raises(RateLimitedError):
        logins.check(["token:qrt_xyz", "address:10.0.0.1"])
    with pytest.raises(RateLimitedError):
        logins.check(["token:qrt_abc", "address:10.0.0.2"])
    logins.check(["token:qrt_xyz", "address:10.0.0.2"])


def test_memory_is_bounded_old_entries_go_first() -> None:
    clock = Clock()
    logins = throttle(clock, max_keys=100)
    for n in range(1000):
        logins.failed([f"k{n}"])
        clock.now += 0.01
    assert len(logins) == 100
    logins.failed(["k999"])
    logins.failed(["k999"])
    with pytest.raises(RateLimitedError):
        logins.check(["k999"])  # the most recent keys are the ones kept
    clock.now += 61
    logins.failed(["fresh"])
    assert len(logins) <= 100
    logins.check(["k999"])


def test_a_login_counts_against_its_address_and_its_token_prefix() -> None:
    keys = login_keys(api_token="qrt_0123456789abcdefghij", client="192.0.2.1")
    assert keys == ["token:qrt_01234567", "address:192.0.2.1"]
    assert login_keys(api_token="short", client=None) == ["token:short"]


def test_nonsense_settings_fail_fast() -> None:
    with pytest.raises(ValueError, match="login_failures"):
        LoginThrottle(failures=0, window=60)
