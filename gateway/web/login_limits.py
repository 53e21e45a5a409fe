"""Wrong passwords, counted per user ID and per client address in a sliding window: past
the limit, sign-in is refused without checking the password until the window has room.

Per user against guessing one account's password from many addresses; per address (at a
multiple of the per-user limit, since a ward PC is shared) against trying many accounts
from one. In memory: a restart forgets, as it forgets the sessions.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

ADDRESS_FACTOR = 4


class LoginLimits:
    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def blocked_for(self, user_id: str, address: str) -> tuple[str, float] | None:
        """('user' or 'address', seconds left) when sign-in is paused; None when it may go on."""
        now = self._clock()
        with self._lock:
            for kind, key, limit in self._keys(user_id, address):
                times = self._recent(kind, key, now)
                if len(times) >= limit:
                    return kind, times[0] + self.window_s - now
        return None

    def failed(self, user_id: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for kind, key, _ in self._keys(user_id, address):
                self._failures.setdefault((kind, key), deque()).append(now)

    def succeeded(self, user_id: str) -> None:
        """A right password clears that user's count (not the address's)."""
        with self._lock:
            self._failures.pop(("user", user_id.strip().lower()), None)

    def _keys(self, user_id: str, address: str) -> list[tuple[str, str, int]]:
        return [
            ("user", user_id.strip().lower(), self.max_failures),
            ("address", address, self.max_failures * ADDRESS_FACTOR),
        ]

    def _recent(self, kind: str, key: str, now: float) -> deque[float]:
        times = self._failures.get((kind, key), deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            self._failures.pop((kind, key), None)
        return times
