"""Where a tick enters: price routing, stop/target/trailing evaluation, feed health.

``process_tick`` takes one price for one (exchange, symbol): the tick filter
(``domain.ticks``) refuses outliers, a price strictly inside the book's quiet
band changes no trade, and otherwise the trades whose levels or watermarks the
price reaches (the book's level index, ``engine.levels``) are evaluated with the
pure ``domain.rules`` — level changes (trailing, breakeven)
are recorded and exit signals (stop, target, partial target) go to ``exits``.
A price leaving the calm band also re-places it against the near-level band
(``books``), which tells the feed to poll a near symbol sooner.
The running P&L of each strategy holding the symbol moves with every tick; when
it leaves its gates, ``risk`` evaluates the strategy.  Feed status and stale
symbols (prices stale during market hours degrade their trades) are handled here
too.
"""

from __future__ import annotations

from dataclasses import replace

from tmtool.domain import rules
from tmtool.domain.broker import FeedStatus
from tmtool.domain.calendar import exchange_open
from tmtool.domain.models import AlertCategory, AlertPriority, ExitReason, FeedState, Side, Tick, Trade, TradeStatus
from tmtool.engine.books import TradeIndex
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal
from tmtool.engine.orders import OrderManager
from tmtool.engine.ports import TickRecorder
from tmtool.engine.risk import RiskMonitor
from tmtool.engine.state import Book, EngineState

_FEED_ALERTS = {
    FeedState.LIVE: (AlertPriority.INFO, "price feed live"),
    FeedState.RECONNECTING: (AlertPriority.WARNING, "price feed lost: reconnecting"),
    FeedState.POLLING: (AlertPriority.WARNING, "price feed down: polling quotes over REST"),
    FeedState.DOWN: (AlertPriority.CRITICAL, "price feed down"),
}
_EVALUATIONS_KEPT = 8  # distinct trade states remembered per evaluated tick (a linear look-up)


class Watch:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        index: TradeIndex,
        orders: OrderManager,
        exits: ExitController,
        risk: RiskMonitor,
    ) -> None:
        self.state = state
        self._journal = journal
        self._index = index
        self._orders = orders
        self._exits = exits
        self._risk = risk
        self._books = state.books
        self._accept_tick = state.tick_filter.accept
        self.recorder: TickRecorder | None = None  # set by the wiring when ticks are recorded

    # ---------------------------------------------------------------- ticks

    def process_tick(self, tick: Tick) -> None:
        """Evaluate one tick (the inbox's code path; callable directly on the engine's thread or in benchmarks).

        The hot path: a price strictly inside the symbol's calm band (its quiet
        band, narrowed to where near-ness holds) changes no trade, so it costs
        the tick filter, a few comparisons and one running P&L update per
        strategy holding the symbol.
        """
        state = self.state
        book = self._books.get((tick.exchange, tick.symbol))
        if book is None:
            state.ticks_unrouted += 1
            return
        price = tick.price
        if not self._accept_tick(book.key, price):
            if self.recorder is not None:
                self.recorder.refuse(tick)
            return
        if self.recorder is not None:
            self.recorder.record(tick)
        state.ticks_processed += 1
        old = book.price
        book.price = price
        book.ts = tick.ts
        state.dirty = True
        if not book.calm_lo < price < book.calm_hi:
            if not book.lo < price < book.hi:
                self.evaluate_book(book, price, tick.ts)
            self._index.place_price(book)
        exposure = book.exposure
        if not exposure:
            return
        if not old:
            self._index.recompute_book_strategies(book)
            old = price
        delta = price - old
        state.account_unrealised += book.net_qty * delta
        for runtime, quantity in exposure:
            unrealised = runtime.unrealised + quantity * delta
            runtime.unrealised = unrealised
            if not runtime.gate_lo < unrealised < runtime.gate_hi:
                self._risk.evaluate_strategy(runtime, tick.ts)
        if state.account_gated:
            self._risk.check_account(tick.ts)

    def evaluate_book(self, book: Book, price: float, ts: float) -> None:
        """Evaluate the trades ``price`` changes: those whose own quiet band it leaves (found
        through the book's level index, not by looking at every trade) and the paused ones."""
        trades = book.levels.crossed(price)
        changed = False
        # Trades opened alike (one strategy's, at one price) are evaluated alike: one evaluation
        # per distinct ``rules.evaluation_key`` on this tick, looked up among the few seen.  Each
        # entry also gathers the trades that took its evaluation without an exit: they still share
        # every field their bands read, so they go back into the index as one group.  The others
        # (not ACTIVE, paused, exiting, or past the few kept) go back one by one.
        seen: list[tuple[tuple, rules.TickEvaluation | None, list[Trade]]] = []
        alone: list[Trade] = []
        evaluated = False
        try:
            for trade in trades:
                if trade.status is not TradeStatus.ACTIVE:
                    alone.append(trade)
                    continue
                if trade.paused:
                    changed = self._watch_paused_stop(trade, price) or changed
                    alone.append(trade)
                    continue
                key = rules.evaluation_key(trade)
                for seen_key, evaluation, alike in seen:
                    if seen_key == key:
                        break
                else:
                    evaluation, alike = rules.evaluate_tick(trade, price, ts), alone
                    if len(seen) < _EVALUATIONS_KEPT:
                        alike = []
                        seen.append((key, evaluation, alike))
                if evaluation is None:
                    alike.append(trade)
                    continue
                changed = True
                trade.last_price = price
                if not book.degraded:
                    trade.high_watermark = evaluation.high_watermark
                    trade.low_watermark = evaluation.low_watermark
                    for change in evaluation.changes:
                        self.apply_level_change(trade, change, price)
                if evaluation.exit is not None:
                    self._on_exit_signal(trade, evaluation.exit)
                    alone.append(trade)
                else:
                    alike.append(trade)
            evaluated = True
        finally:
            if evaluated:
                groups = []
                for _, _, alike in seen:
                    if len(alike) > 1:
                        groups.append(alike)
                    else:
                        alone.extend(alike)
                self._index.reindex_trades(book, trades, changed, groups, alone)
            else:  # cut short: every trade taken out goes back on its own
                self._index.reindex_trades(book, trades, changed)

    def _watch_paused_stop(self, trade: Trade, price: float) -> bool:
        """A paused trade's stop is not acted on, but crossing it is worth a WARNING: once per
        crossing (again only after the price went back across and crossed anew).  True when
        the price moved to the other side of the stop (the book's band must follow)."""
        was_beyond = rules.stop_crossed(trade, trade.last_price)
        trade.last_price = price
        beyond = rules.stop_crossed(trade, price)
        runtime = self.state.trade_runtime(trade.id)
        if beyond and not runtime.paused_stop_alerted:
            runtime.paused_stop_alerted = True
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: paused trade's stop {trade.effective_stop:.2f} crossed (price {price:.2f}); "
                "nothing was sent: resume it or exit it by hand",
                key=f"paused-stop-{trade.id}",
                trade=trade,
            )
        elif not beyond:
            runtime.paused_stop_alerted = False
        return beyond != was_beyond

    def apply_level_change(self, trade: Trade, change: rules.LevelChange, price: float) -> None:
        journal = self._journal
        setattr(trade, change.field, change.new)
        if change.kind == "BREAKEVEN":
            trade.breakeven_done = True
        # The row before its event: the file holds a prefix of the changes, so a ratchet whose
        # event survived a crash survived in the trade row too.
        journal.level_changed(trade, change.kind, change.field, change.old, change.new, price)
        mode = self.state.settings.trail_alerts
        runtime = self.state.trade_runtime(trade.id)
        if change.kind == "BREAKEVEN" or mode == "every" or (mode == "first" and not runtime.trail_alerted):
            runtime.trail_alerted = True
            what = "stop moved to breakeven" if change.kind == "BREAKEVEN" else "trailing stop raised" if trade.side is Side.LONG else "trailing stop lowered"
            journal.alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: {what} to {change.new:.2f} (price {price:.2f})",
                key=f"trail-{trade.id}",
                trade=trade,
            )

    def _on_exit_signal(self, trade: Trade, signal: rules.ExitSignal) -> None:
        if signal.reason is ExitReason.PARTIAL_TARGET:
            levels = list(trade.partial_levels)
            for index in signal.partial_indexes:
                levels[index] = replace(levels[index], done=True)
            trade.partial_levels = tuple(levels)
            self._journal.event(trade, "PARTIAL", "partial_levels", "", ",".join(map(str, signal.partial_indexes)), signal.reason.value, signal.price)
            self._journal.save_trade(trade)
            self._exits.send_partial_exit(trade, signal.quantity, signal.trigger_price)
            return
        self._exits.begin_exit(trade, signal.reason, trigger_price=signal.trigger_price, price=signal.price)

    def persist_prices(self) -> None:
        state = self.state
        state.schedule(state.settings.ltp_persist_interval, self.persist_prices)
        for book in state.books.values():
            if book.price <= 0:
                continue
            for trade in book.trades:
                if trade.last_price != book.price:
                    trade.last_price = book.price
                    self._journal.save_trade(trade)

    # ---------------------------------------------------------------- feed status and staleness

    def on_feed_status(self, status: FeedStatus) -> None:
        state = self.state
        previous = state.feed_status
        state.feed_status = status
        if status.state is not previous.state:
            priority, text = _FEED_ALERTS[status.state]
            if state.accepting_ticks or status.state is not FeedState.DOWN:
                self._journal.alert(AlertCategory.SYSTEM, priority, text, key="feed-state")
        if status.order_updates_flowing != previous.order_updates_flowing:
            self._orders.repoll_all()
            self._exits.order_updates_changed()
        self._alert_newly_polled(status.polled, previous.polled)
        state.stale = set(status.stale)
        self.update_degraded(state.clock.time())
        state.dirty = True

    def _alert_newly_polled(self, polled: tuple[tuple[str, str], ...], before: tuple[tuple[str, str], ...]) -> None:
        """A WARNING (folded per symbol) for each symbol whose prices start coming from REST polling in market hours."""
        if polled == before:
            return
        now = self.state.clock.time()
        for exchange, symbol in polled:
            if (exchange, symbol) in before or not exchange_open(exchange, now):
                continue
            self._journal.alert(
                AlertCategory.SYSTEM,
                AlertPriority.WARNING,
                f"{exchange}:{symbol}: no ticks from the socket during market hours: prices polled over REST",
                key=f"polled-{exchange}:{symbol}",
            )

    def update_degraded(self, now: float) -> None:
        state = self.state
        for key, book in state.books.items():
            degraded = key in state.stale and exchange_open(key[0], now)
            if degraded == book.degraded:
                continue
            book.degraded = degraded
            for trade in book.trades:
                trade.degraded = degraded
            if degraded and state.settings.stale_alerts:
                self._journal.alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"{key[0]}:{key[1]} prices are stale during market hours: {len(book.trades)} trade(s) degraded, trailing paused",
                    key=f"stale-{key[0]}:{key[1]}",
                )
            state.dirty = True
