"""The engine's timers: callbacks due at a time on the injected clock's monotonic scale.

Every component schedules its broker polls, retries, probes and periodic work
here; the loop (``loop``) runs what is due between inbox batches, on the engine
thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from typing import Any, Callable

from tmtool.clock import Clock

log = logging.getLogger(__name__)


class Timers:
    """A heap of ``(due, seq, fn, args)``; ``seq`` keeps timers due at once in schedule order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (self._clock.monotonic() + delay, next(self._seq), fn, args))

    def next_due(self) -> float | None:
        """When the earliest timer falls due; None if none."""
        return self._heap[0][0] if self._heap else None

    def run_due(self) -> None:
        now = self._clock.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, fn, args = heapq.heappop(heap)
            try:
                fn(*args)
            except Exception:
                log.exception("engine timer %s failed", getattr(fn, "__name__", fn))
