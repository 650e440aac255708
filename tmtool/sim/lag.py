"""Versions of the broker's books over time, so a lagging book can be served as it was.

The order-book and position-book lag faults show what the broker's books held
``lag`` seconds ago.  :class:`History` keeps timestamped versions of keyed
values (an order, a position, the trade count) and answers "what was this key's
value at time t"; it knows nothing of orders or positions, so the book module
can use it without an import cycle.  Times are the simulator clock's
``monotonic()``.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable

#: The longest lag the faults accept; versions older than this are pruned.
MAX_LAG_SECONDS = 300.0

_BASELINE = float("-inf")


class History:
    """Timestamped versions per key.  Not thread-safe: the book uses it under the simulator's lock."""

    def __init__(self, keep_seconds: float = MAX_LAG_SECONDS) -> None:
        self._keep = keep_seconds
        self._versions: dict[Hashable, list[tuple[float, Any]]] = {}

    def start(self, current: Iterable[tuple[Hashable, Any]]) -> None:
        """Begin recording; ``current`` values have always been visible (they predate the lag)."""
        self._versions = {key: [(_BASELINE, value)] for key, value in current}

    def stop(self) -> None:
        self._versions = {}

    def record(self, key: Hashable, value: Any, at: float) -> None:
        """``key`` took ``value`` at ``at``; versions that can no longer be asked for are dropped."""
        versions = self._versions.setdefault(key, [])
        versions.append((at, value))
        horizon = at - self._keep
        while len(versions) > 1 and versions[1][0] <= horizon:
            versions.pop(0)

    def as_of(self, key: Hashable, at: float) -> Any | None:
        """The value ``key`` had at time ``at``; None when it did not exist yet."""
        for recorded_at, value in reversed(self._versions.get(key, ())):
            if recorded_at <= at:
                return value
        return None
