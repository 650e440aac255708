"""``SimFeed``: the engine's ``Feed`` port in memory.

The harness hands it ticks (``deliver``) and the broker hands it order updates;
it passes them to the engine's callbacks (which only enqueue) unless it is
``silent`` (connected, no ticks) or ``dropped`` (disconnected: status
RECONNECTING, no ticks and no order updates) or the symbol is not subscribed.
"""

from __future__ import annotations

from tmtool.domain.broker import FeedStatus, OrderUpdate
from tmtool.domain.models import FeedState, Tick
from tmtool.engine.ports import FeedCallbacks


class SimFeed:
    def __init__(self, order_updates: bool = True) -> None:
        self.callbacks: FeedCallbacks | None = None
        self.subscriptions: dict[tuple[str, str], int] = {}
        self.order_updates = order_updates
        self.silent = False
        self.dropped = False
        self.holding_updates = False  # order updates kept back (``hold_order_updates``) until released
        self.held_updates: list[OrderUpdate] = []
        self.last_tick_ts: float | None = None
        self.near_level: set[tuple[str, str]] = set()  # symbols the engine marked near a level

    def start(self, callbacks: FeedCallbacks) -> None:
        self.callbacks = callbacks
        self.subscriptions = {}
        self.silent = self.dropped = False
        self._post_status()

    def subscribe(self, exchange: str, symbol: str) -> None:
        key = (exchange, symbol)
        self.subscriptions[key] = self.subscriptions.get(key, 0) + 1

    def unsubscribe(self, exchange: str, symbol: str) -> None:
        key = (exchange, symbol)
        count = self.subscriptions.get(key, 0)
        if count <= 0:
            raise ValueError(f"not subscribed to {exchange}:{symbol}")
        if count == 1:
            del self.subscriptions[key]
        else:
            self.subscriptions[key] = count - 1

    def set_near_level(self, exchange: str, symbol: str, near: bool) -> None:
        if near:
            self.near_level.add((exchange, symbol))
        else:
            self.near_level.discard((exchange, symbol))

    def status(self) -> FeedStatus:
        state = FeedState.RECONNECTING if self.dropped else FeedState.LIVE
        return FeedStatus(state, last_tick_ts=self.last_tick_ts, subscribed=len(self.subscriptions),
                          order_updates=self.order_updates and not self.dropped)

    def stop(self) -> None:
        self.callbacks = None

    # ---------------------------------------------------------------- driven by the harness

    def deliver(self, tick: Tick) -> bool:
        """Pass a tick on; True when the engine got it."""
        if self.callbacks is None or self.silent or self.dropped or tick.key not in self.subscriptions:
            return False
        self.last_tick_ts = tick.ts
        self.callbacks.on_tick(tick)
        return True

    def order_update(self, update: OrderUpdate) -> None:
        if self.holding_updates:
            self.held_updates.append(update)
            return
        if self.callbacks is not None and self.order_updates and not self.dropped and self.callbacks.on_order_update:
            self.callbacks.on_order_update(update)

    def hold_order_updates(self) -> None:
        """Keep order updates back (a stream that lags the REST reads) until ``release_order_updates``."""
        self.holding_updates = True

    def release_order_updates(self) -> None:
        """Pass the held updates on, in order, and stop holding."""
        self.holding_updates = False
        held, self.held_updates = self.held_updates, []
        for update in held:
            self.order_update(update)

    def drop(self) -> None:
        self.dropped = True
        self._post_status()

    def reconnect(self) -> None:
        self.dropped = False
        self._post_status()

    def _post_status(self) -> None:
        if self.callbacks is not None and self.callbacks.on_status is not None:
            self.callbacks.on_status(self.status())
