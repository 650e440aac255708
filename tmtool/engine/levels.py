"""A book's trades indexed by the prices that change them, so a tick touches only those.

Each trade of a book has a quiet band of its own (``domain.bands.trade_quiet_band``):
the open interval of prices that change nothing of it (its watermarks, short of its
stop, target and open partial targets) and a near band (``trade_near_band``).  The
book's bands are their intersections.  ``LevelIndex`` keeps the lower ends in a
max-heap and the upper ends in a min-heap, so

* the book's bands are the heaps' tops, and
* ``crossed(price)`` pops exactly the trades whose quiet band the price is not
  strictly inside of: O(log n) per trade found, nothing for the others.

A trade whose levels change is re-entered with ``update``; its older entries are
left in the heaps and skipped when they come to the top (each entry carries the
number of the trade's entry it belongs to), and the heaps are rebuilt when the
stale entries outnumber the live ones.  Paused trades are indexed at their stop
(so crossing it leaves the book's band) and, besides, handed out on every
evaluation of the book (their stop warnings and last price), as they always were.
Only the engine thread uses an index.
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappush

from tmtool.domain.bands import trade_near_band, trade_quiet_band
from tmtool.domain.models import Trade, TradeStatus

_INF = math.inf
_ACTIVE = TradeStatus.ACTIVE
_COMPACT_SLACK = 32  # stale entries tolerated beyond the live ones before the heaps are rebuilt


class LevelIndex:
    """The heaps of one book (see the module docstring)."""

    __slots__ = ("_lo", "_hi", "_near_lo", "_near_hi", "_entry", "_order", "_next", "paused")

    def __init__(self) -> None:
        # heap items: (key, entry number, trade); the entry number is unique, so trades are never compared
        self._lo: list[tuple[float, int, Trade]] = []  # max-heap of the lower ends (keys negated)
        self._hi: list[tuple[float, int, Trade]] = []  # min-heap of the upper ends
        self._near_lo: list[tuple[float, int, Trade]] = []  # max-heap (negated)
        self._near_hi: list[tuple[float, int, Trade]] = []
        self._entry: dict[int, int] = {}  # trade id -> its live entry number
        self._order: dict[int, int] = {}  # trade id -> its position in the book (evaluation order)
        self._next = 0
        self.paused: list[Trade] = []  # ACTIVE paused trades, in book order

    def rebuild(self, trades: list[Trade]) -> None:
        """Index ``trades`` (the book's, in its order) afresh."""
        self._lo, self._hi, self._near_lo, self._near_hi = [], [], [], []
        self._entry = {}
        self._order = {trade.id: position for position, trade in enumerate(trades)}
        self.paused = [t for t in trades if t.status is _ACTIVE and t.paused]
        for trade in trades:
            self._push(trade)
        for heap in (self._lo, self._hi, self._near_lo, self._near_hi):
            heapify(heap)

    def update(self, trade: Trade) -> None:
        """Re-enter ``trade`` after its levels, watermarks or status changed (a trade not in the
        book is ignored).  A trade that became or stopped being paused needs ``rebuild``."""
        if trade.id not in self._order:
            return
        self._entry.pop(trade.id, None)
        if trade.status is not _ACTIVE:
            return
        number = self._next
        self._next = number + 1
        lo, hi = trade_quiet_band(trade)
        if lo == -_INF and hi == _INF:
            return
        near_lo, near_hi = trade_near_band(trade)
        self._entry[trade.id] = number
        heappush(self._lo, (-lo, number, trade))
        heappush(self._hi, (hi, number, trade))
        heappush(self._near_lo, (-near_lo, number, trade))
        heappush(self._near_hi, (near_hi, number, trade))
        if len(self._lo) > 2 * len(self._entry) + _COMPACT_SLACK:
            self._compact()

    def _push(self, trade: Trade) -> None:
        """Append ``trade``'s entries without keeping the heap order (``rebuild`` heapifies)."""
        lo, hi = trade_quiet_band(trade)
        if lo == -_INF and hi == _INF:
            return
        near_lo, near_hi = trade_near_band(trade)
        number = self._next
        self._next = number + 1
        self._entry[trade.id] = number
        self._lo.append((-lo, number, trade))
        self._hi.append((hi, number, trade))
        self._near_lo.append((-near_lo, number, trade))
        self._near_hi.append((near_hi, number, trade))

    def _compact(self) -> None:
        entry = self._entry
        for name in ("_lo", "_hi", "_near_lo", "_near_hi"):
            heap = [item for item in getattr(self, name) if entry.get(item[2].id) == item[1]]
            heapify(heap)
            setattr(self, name, heap)

    def crossed(self, price: float) -> list[Trade]:
        """Take out the indexed trades whose quiet band ``price`` is not strictly inside, and the
        paused trades, in book order.  The caller evaluates them and must ``update`` each one
        afterwards (or ``rebuild``)."""
        entry = self._entry
        found: dict[int, Trade] = {trade.id: trade for trade in self.paused}
        lo, hi = self._lo, self._hi
        while lo and -lo[0][0] >= price:
            _, number, trade = heappop(lo)
            if entry.get(trade.id) == number:
                found[trade.id] = trade
        while hi and hi[0][0] <= price:
            _, number, trade = heappop(hi)
            if entry.get(trade.id) == number:
                found[trade.id] = trade
        for trade_id in found:
            entry.pop(trade_id, None)  # its remaining entries are stale until ``update``
        if len(found) < 2:
            return list(found.values())
        order = self._order
        return sorted(found.values(), key=lambda t: order[t.id])

    def bands(self) -> tuple[float, float, float, float]:
        """``(lo, hi, near_lo, near_hi)``: the book's quiet band and near band from the live entries."""
        return -self._top(self._lo), self._top(self._hi), -self._top(self._near_lo), self._top(self._near_hi)

    def _top(self, heap: list[tuple[float, int, Trade]]) -> float:
        """The key of the heap's first live entry (stale ones above it are dropped); inf when none."""
        entry = self._entry
        while heap:
            key, number, trade = heap[0]
            if entry.get(trade.id) == number:
                return key
            heappop(heap)
        return _INF
