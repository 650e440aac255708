"""Injected time.  Decision code never reads the clock; the engine passes time in.

The exchange calendar (IST, trading days, sessions) is pure and lives in
``tmtool.domain.calendar``; this module only tells the time.

``Clock.time()`` is epoch seconds (float), ``Clock.now()`` an aware UTC datetime,
``Clock.monotonic()`` for timeouts.  ``ManualClock`` is for tests and replay.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import datetime, timezone
from typing import Protocol

class Clock(Protocol):
    def time(self) -> float: ...

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return _time.time()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return _time.monotonic()


class ManualClock:
    """A clock that moves only when told to.  Thread-safe.

    ``monotonic()`` follows ``time()``, so an engine's timers fire only as the clock
    is advanced (the deterministic simulation tests).  ``real_timers=True`` keeps the
    wall time manual (a fixed trading day and hour) while ``monotonic()`` is the
    machine's: for integration tests whose sockets and retries run in real time.
    """

    def __init__(self, start: float | datetime = 1_767_240_000.0, *, real_timers: bool = False) -> None:
        if isinstance(start, datetime):
            start = start.timestamp()
        self._t = float(start)
        self._lock = threading.Lock()
        self._real_timers = real_timers

    def time(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)

    def monotonic(self) -> float:
        if self._real_timers:
            return _time.monotonic()
        return self.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def set(self, when: float | datetime) -> None:
        if isinstance(when, datetime):
            when = when.timestamp()
        with self._lock:
            self._t = float(when)
