"""Failed console sign-ins slow down guessing: after too many failures for one access key id
from one address, or from one address in all, within a window, further attempts from there are
refused (429) until the window passes. Counting a key per address means nobody elsewhere can
lock its owner out by failing on purpose.

Counted per worker process, in memory: a guesser spread over every worker gets at most the
limit times the workers, which is still a few dozen tries in five minutes against secrets of
40 random characters. A success clears its key's count at that address. The tables are
bounded, so a flood of made-up key ids cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

WINDOW_SECONDS = 300.0
MAX_PER_KEY = 10
MAX_PER_ADDRESS = 30
MAX_TRACKED = 10_000


class _Failures:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, name: str, now: float) -> deque[float] | None:
        times = self._seen.get(name)
        if times is None:
            return None
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self._seen[name]
            return None
        return times

    def wait(self, name: str, now: float) -> float:
        """Seconds until `name` may try again (0: now)."""
        times = self._recent(name, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return times[0] + WINDOW_SECONDS - now

    def add(self, name: str, now: float) -> None:
        times = self._recent(name, now)
        if times is None:
            times = self._seen[name] = deque(maxlen=self.limit)
            while len(self._seen) > MAX_TRACKED:
                self._seen.popitem(last=False)
        times.append(now)
        self._seen.move_to_end(name)

    def clear(self, name: str) -> None:
        self._seen.pop(name, None)


class SignInThrottle:
    def __init__(
        self, per_key: int = MAX_PER_KEY, per_address: int = MAX_PER_ADDRESS, clock=time.monotonic
    ) -> None:
        self._keys = _Failures(per_key)
        self._addresses = _Failures(per_address)
        self._clock = clock

    def retry_after(self, key_id: str, address: str) -> int:
        """Whole seconds to wait before this attempt may be checked (0: check it now)."""
        now = self._clock()
        pair = f"{key_id}\0{address}"
        wait = max(self._keys.wait(pair, now), self._addresses.wait(address, now))
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, key_id: str, address: str) -> None:
        now = self._clock()
        self._keys.add(f"{key_id}\0{address}", now)
        self._addresses.add(address, now)

    def succeeded(self, key_id: str, address: str) -> None:
        self._keys.clear(f"{key_id}\0{address}")
