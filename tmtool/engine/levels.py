"""A book's trades indexed by the prices that change them, so a tick touches only those.

Each trade of a book has a quiet band of its own (``domain.bands.trade_bands``):
the open interval of prices that change nothing of it (its watermarks, short of its
stop, target and open partial targets), and a near band.  The
book's bands are their intersections.  ``LevelIndex`` puts the trades that share
both bands in one bucket (trades opened alike move alike: they share watermarks
and trailing stops) and keeps the buckets' lower ends in max-heaps and their
upper ends in min-heaps, so

* the book's bands are the heaps' tops, and
* ``crossed(price)`` pops exactly the trades whose quiet band the price is not
  strictly inside of: O(log b) per bucket found (b buckets), nothing for the others.

A trade whose levels change is re-entered with ``update`` (into the bucket of its
new bands); an emptied or taken bucket's entries are left in the heaps and
skipped when they come to the top, and the heaps are rebuilt when such stale
entries outnumber the live ones.  Paused trades are indexed at their stop
(so crossing it leaves the book's band) and, besides, handed out on every
evaluation of the book (their stop warnings and last price), as they always were.
Only the engine thread uses an index.
"""

from __future__ import annotations

import math
from heapq import heapify, heappop, heappush

from tmtool.domain.bands import trade_bands
from tmtool.domain.models import Trade, TradeStatus

_INF = math.inf
_ACTIVE = TradeStatus.ACTIVE
_COMPACT_SLACK = 32  # stale entries tolerated beyond the live ones before the heaps are rebuilt


class _Bucket:
    """The trades of a book that share one quiet band and one near band: one entry in each heap."""

    __slots__ = ("band", "members")

    def __init__(self, band: tuple[float, float, float, float]) -> None:
        self.band = band  # (lo, hi, near_lo, near_hi)
        self.members: dict[int, Trade] = {}


_Entry = tuple[float, int, _Bucket]  # (key, tie-breaker, bucket): buckets are never compared


class LevelIndex:
    """The heaps of one book (see the module docstring)."""

    __slots__ = ("_lo", "_hi", "_near_lo", "_near_hi", "_buckets", "_bucket_of", "_order", "_next", "paused")

    def __init__(self) -> None:
        self._lo: list[_Entry] = []  # max-heap of the lower ends (keys negated)
        self._hi: list[_Entry] = []  # min-heap of the upper ends
        self._near_lo: list[_Entry] = []  # max-heap (negated)
        self._near_hi: list[_Entry] = []
        self._buckets: dict[tuple[float, float, float, float], _Bucket] = {}  # the live bucket of each band
        self._bucket_of: dict[int, _Bucket] = {}  # trade id -> its live bucket
        self._order: dict[int, int] = {}  # trade id -> its position in the book (evaluation order)
        self._next = 0
        self.paused: list[Trade] = []  # ACTIVE paused trades, in book order

    def rebuild(self, trades: list[Trade]) -> None:
        """Index ``trades`` (the book's, in its order) afresh."""
        self._lo, self._hi, self._near_lo, self._near_hi = [], [], [], []
        self._buckets = {}
        self._bucket_of = {}
        self._order = {trade.id: position for position, trade in enumerate(trades)}
        self.paused = [t for t in trades if t.status is _ACTIVE and t.paused]
        for trade in trades:
            if trade.status is _ACTIVE:
                self._place(trade, False)
        for heap in (self._lo, self._hi, self._near_lo, self._near_hi):
            heapify(heap)

    def update(self, trade: Trade) -> None:
        """Re-enter ``trade`` after its levels, watermarks or status changed (a trade not in the
        book is ignored).  A trade that became or stopped being paused needs ``rebuild``."""
        if trade.id not in self._order:
            return
        old = self._bucket_of.pop(trade.id, None)
        if old is not None:
            del old.members[trade.id]
            if not old.members and self._buckets.get(old.band) is old:
                del self._buckets[old.band]
        if trade.status is _ACTIVE:
            self._place(trade, True)
            if len(self._lo) > 2 * len(self._buckets) + _COMPACT_SLACK:
                self._compact()

    def update_alike(self, trades: list[Trade]) -> None:
        """``update`` for trades that share every field ``trade_bands`` reads (for an ACTIVE,
        unpaused trade: ``rules.EVALUATION_FIELDS`` holds them all): one band, one bucket look-up.
        A trade among them that is no longer ACTIVE and unpaused is re-entered on its own."""
        bucket_of = self._bucket_of
        for trade in trades:  # out of their old buckets first (``crossed`` took most of them out already)
            old = bucket_of.pop(trade.id, None)
            if old is not None:
                del old.members[trade.id]
                if not old.members and self._buckets.get(old.band) is old:
                    del self._buckets[old.band]
        members: dict[int, Trade] | None = None
        bucket: _Bucket | None = None
        order = self._order
        for trade in trades:
            if trade.id not in order:
                continue
            if trade.status is not _ACTIVE or trade.paused:
                self.update(trade)
                continue
            if members is None:
                self._place(trade, True)
                bucket = bucket_of.get(trade.id)
                if bucket is None:  # a band that bounds nothing: none of them is indexed
                    return
                members = bucket.members
                continue
            members[trade.id] = trade
            bucket_of[trade.id] = bucket
        if len(self._lo) > 2 * len(self._buckets) + _COMPACT_SLACK:
            self._compact()

    def _place(self, trade: Trade, keep_order: bool) -> None:
        """Put ``trade`` in the bucket of its bands (a new bucket gets its heap entries: pushed, or
        appended for ``rebuild`` to heapify)."""
        band = trade_bands(trade)
        lo, hi, near_lo, near_hi = band
        if lo == -_INF and hi == _INF:
            return
        bucket = self._buckets.get(band)
        if bucket is None:
            bucket = self._buckets[band] = _Bucket(band)
            number = self._next
            self._next = number + 1
            add = heappush if keep_order else list.append
            add(self._lo, (-lo, number, bucket))
            add(self._hi, (hi, number, bucket))
            add(self._near_lo, (-near_lo, number, bucket))
            add(self._near_hi, (near_hi, number, bucket))
        bucket.members[trade.id] = trade
        self._bucket_of[trade.id] = bucket

    def _compact(self) -> None:
        buckets = self._buckets
        for name in ("_lo", "_hi", "_near_lo", "_near_hi"):
            heap = [item for item in getattr(self, name) if buckets.get(item[2].band) is item[2]]
            heapify(heap)
            setattr(self, name, heap)

    def crossed(self, price: float) -> list[Trade]:
        """Take out the indexed trades whose quiet band ``price`` is not strictly inside, and the
        paused trades, in book order.  The caller evaluates them and must ``update`` each one
        afterwards (or ``rebuild``)."""
        buckets, bucket_of = self._buckets, self._bucket_of
        found: dict[int, Trade] = {trade.id: trade for trade in self.paused}
        taken: list[_Bucket] = []
        lo, hi = self._lo, self._hi
        while lo and -lo[0][0] >= price:
            bucket = heappop(lo)[2]
            if buckets.get(bucket.band) is bucket:
                del buckets[bucket.band]
                taken.append(bucket)
        while hi and hi[0][0] <= price:
            bucket = heappop(hi)[2]
            if buckets.get(bucket.band) is bucket:
                del buckets[bucket.band]
                taken.append(bucket)
        for bucket in taken:
            found.update(bucket.members)
            for trade_id in bucket.members:
                del bucket_of[trade_id]
        for trade in self.paused:  # out of its bucket until ``update``, like the others
            bucket = bucket_of.pop(trade.id, None)
            if bucket is not None:
                del bucket.members[trade.id]
                if not bucket.members and buckets.get(bucket.band) is bucket:
                    del buckets[bucket.band]
        if len(found) < 2:
            return list(found.values())
        order = self._order
        return sorted(found.values(), key=lambda t: order[t.id])

    def bands(self) -> tuple[float, float, float, float]:
        """``(lo, hi, near_lo, near_hi)``: the book's quiet band and near band from the live buckets."""
        return -self._top(self._lo), self._top(self._hi), -self._top(self._near_lo), self._top(self._near_hi)

    def _top(self, heap: list[_Entry]) -> float:
        """The key of the heap's first live entry (stale ones above it are dropped); inf when none."""
        buckets = self._buckets
        while heap:
            key, _, bucket = heap[0]
            if buckets.get(bucket.band) is bucket:
                return key
            heappop(heap)
        return _INF
