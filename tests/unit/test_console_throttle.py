"""The console's sign-in throttle, on a fake clock."""

from __future__ import annotations

from cargobay.console.throttle import MAX_TRACKED, WINDOW_SECONDS, SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_refused_after_its_failures_from_one_address_until_the_window_passes() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_key=3, per_address=100, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("AKIA1", "10.0.0.1") == 0
        throttle.failed("AKIA1", "10.0.0.1")
        clock.now += 1
    wait = throttle.retry_after("AKIA1", "10.0.0.1")
    assert 0 < wait <= WINDOW_SECONDS
    # Another address, or another key, is not held back by it.
    assert throttle.retry_after("AKIA1", "10.0.0.2") == 0
    assert throttle.retry_after("AKIA2", "10.0.0.1") == 0
    clock.now += WINDOW_SECONDS
    assert throttle.retry_after("AKIA1", "10.0.0.1") == 0


def test_an_address_is_refused_after_failures_on_many_keys() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_key=100, per_address=5, clock=clock)
    for i in range(5):
        throttle.failed(f"AKIA{i}", "10.0.0.9")
    assert throttle.retry_after("AKIANEW", "10.0.0.9") > 0
    assert throttle.retry_after("AKIANEW", "10.0.0.8") == 0


def test_a_success_clears_the_count_and_memory_stays_bounded() -> None:
    clock = Clock()
    throttle = SignInThrottle(per_key=2, per_address=10**9, clock=clock)
    throttle.failed("AKIA1", "10.0.0.1")
    throttle.succeeded("AKIA1", "10.0.0.1")
    throttle.failed("AKIA1", "10.0.0.1")
    assert throttle.retry_after("AKIA1", "10.0.0.1") == 0
    for i in range(MAX_TRACKED + 50):
        throttle.failed(f"made-up-{i}", "10.0.0.1")
    assert len(throttle._keys._seen) <= MAX_TRACKED
