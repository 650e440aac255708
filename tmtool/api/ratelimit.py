"""A per-client sliding-window rate limiter (thread-safe, injected clock)."""

from __future__ import annotations

import math
import threading
from collections import deque

from tmtool.clock import Clock

WINDOW_SECONDS = 60.0


class RateLimiter:
    """At most ``requests_per_minute`` requests per client in any 60 s window."""

    def __init__(self, requests_per_minute: int, clock: Clock, max_clients: int = 10_000) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self._limit = requests_per_minute
        self._clock = clock
        self._max_clients = max_clients
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float | None:
        """Count one request; None when allowed, else the seconds until one would be."""
        now = self._clock.monotonic()
        with self._lock:
            hits = self._hits.get(client)
            if hits is None:
                if len(self._hits) >= self._max_clients:
                    self._forget_idle(now)
                hits = self._hits[client] = deque()
            while hits and hits[0] <= now - WINDOW_SECONDS:
                hits.popleft()
            if len(hits) >= self._limit:
                return max(0.0, hits[0] + WINDOW_SECONDS - now)
            hits.append(now)
            return None

    def _forget_idle(self, now: float) -> None:
        for client in [c for c, hits in self._hits.items() if not hits or hits[-1] <= now - WINDOW_SECONDS]:
            del self._hits[client]


def retry_after_header(seconds: float) -> str:
    """Whole seconds for a Retry-After header (at least 1)."""
    return str(max(1, math.ceil(seconds)))
