"""Failed sign-in limits, per user id and per client address.

After ``max_failures`` failed sign-ins for one key within ``window`` seconds, further
attempts for that key are refused, even with the right password, until the oldest failure
leaves the window. A success clears the user's failures (not the address's: one address
guessing many users stays limited).

Contracts: keys are user ids that exist in the configuration (an unknown typed id is
counted under one shared key, so a password typed into the user field is never kept) and
client addresses. Memory is bounded by ``capacity`` keys.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

UNKNOWN_USER = "<unknown-user>"


class FailureLimiter:
    def __init__(
        self,
        *,
        max_failures: int,
        window: float,
        capacity: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window
        self._capacity = capacity
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        horizon = self._clock() - self._window
        while q and q[0] <= horizon:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def blocked(self, key: str) -> bool:
        return len(self._recent(key)) >= self._max

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when not blocked)."""
        q = self._recent(key)
        if len(q) < self._max:
            return 0.0
        return max(0.0, q[-self._max] + self._window - self._clock())

    def failed(self, key: str) -> int:
        """Record a failure; how many are now in the window."""
        q = self._failures.setdefault(key, deque())
        q.append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)
        return len(self._recent(key))

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)
