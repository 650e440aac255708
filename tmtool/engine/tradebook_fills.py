"""Fills of our own orders read from the tradebook, when the order's status reply does not say.

OpenAlgo's live ``orderstatus`` carries no filled quantity: only ``complete`` tells how much
filled (all of it).  Fills otherwise come from the order-update stream, and while that is down an
order is polled.  An order polled ``open`` may then be partly filled, and one polled
``cancelled`` (an entry cancelled by an exit, say) may have filled in part before the cancel.
Taken at its word, the first leaves the filled shares held with no stop until the order
completes, and the second leaves them at the broker with no trade at all.

The tradebook has one row per fill (``shared/openalgo-api.md``: use tradebook rows for partial
fills).  So an order whose status reply gave no filled quantity waits here for a tradebook read
that was asked for after that reply, and takes its fills from it; a final status it was polled in
(``cancelled``, ``rejected``) is applied only then, after its fills.  Until then its status polls go
on as before.

Reads are shared by every waiting order: one at a time, at most one every ``order_status_poll``.
An order that asks while a read is in flight waits for the next one (the read in flight may have
been answered before the order's status was).  Its first ask is kept while it asks again in the
same status, so polls that keep coming cannot postpone it.

What it cannot see: a tradebook that lags the order status (a fill the broker made, not yet in
the book when it is read).  The position reconciliation and its alarms are the net for that.
"""

from __future__ import annotations

from tmtool.domain.broker import Fill, OrderInfo
from tmtool.domain.reconcile import order_progress
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.state import EngineState


def fills_unknown(info: OrderInfo) -> bool:
    """Whether a status reply leaves the order's fills unknown (no filled quantity, and not ``complete``)."""
    return info.filled_quantity is None and (info.status or "").strip().lower() != "complete"


def is_final(info: OrderInfo) -> bool:
    return order_progress(info.status, info.quantity, None, 0.0).state.is_final


def tradebook_totals(fills: list[Fill]) -> dict[str, tuple[int, float]]:
    """Per order id: the quantity filled and its value (quantity times price, summed)."""
    totals: dict[str, tuple[int, float]] = {}
    for fill in fills:
        quantity, value = totals.get(fill.order_id, (0, 0.0))
        totals[fill.order_id] = (quantity + fill.quantity, value + fill.quantity * fill.average_price)
    return totals


class TradebookFills:
    """Orders waiting for the tradebook to say how much they filled; ``apply`` takes what it says
    (``OrderManager.apply_progress``)."""

    def __init__(self, state: EngineState, live: dict[str, LiveOrder], apply) -> None:
        self.state = state
        self._live = live
        self._apply = apply
        self._asked = 0  # reads asked for so far (a read is known by its number)
        self._reading = False
        self._scheduled = False
        self._next_at = 0.0  # engine clock, monotonic: no read asked for before then
        self._waiting: dict[str, tuple[int, str, str]] = {}  # ledger key -> (first read that answers, status, reason)

    def wait(self, live: LiveOrder, info: OrderInfo) -> None:
        """``live`` was polled in ``info.status`` with no filled quantity: take its fills from a
        tradebook read asked for from now on, then apply that status."""
        key = live.record.key
        waiting = self._waiting.get(key)
        if waiting is None or waiting[1] != info.status:
            self._waiting[key] = (self._asked + 1, info.status, info.rejection_reason)
        self._want()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _want(self) -> None:
        if self._reading or self._scheduled:
            return
        delay = self._next_at - self.state.clock.monotonic()
        if delay > 0:
            self._scheduled = True
            self.state.schedule(delay, self._read)
            return
        self._read()

    def _read(self) -> None:
        self._scheduled = False
        for key in [k for k in self._waiting if k not in self._live]:
            del self._waiting[key]  # ended meanwhile (an order update, a ``complete`` poll)
        if self._reading or not self._waiting:
            return
        self._asked += 1
        self._reading = True
        self._next_at = self.state.clock.monotonic() + self.state.settings.order_status_poll
        self.state.job(JobKind.ORDER_FILLS, self._asked, self.state.broker.trade_book)

    def on_tradebook(self, result: JobResult) -> None:
        self._reading = False
        number = result.context
        if result.error is None:
            totals = tradebook_totals(result.value)
            for key, (first, status, reason) in list(self._waiting.items()):
                if first > number:
                    continue  # asked for after this read was: the next read answers it
                del self._waiting[key]
                live = self._live.get(key)
                if live is None:
                    continue
                quantity, value = totals.get(live.record.order_id, (0, 0.0))
                self._apply(live, status, quantity, value / quantity if quantity else 0.0, reason)
        if self._waiting:
            self._want()
