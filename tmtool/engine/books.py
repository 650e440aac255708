"""The open trades indexed by instrument and strategy: books, quiet bands, running P&L.

A trade enters the index when it is created or loaded (its instrument is
subscribed on the feed) and leaves it when it ends (unsubscribed once no trade
is left on the instrument).  After every change of a trade's status, quantity or
levels its book is rebuilt: the per-strategy exposure the tick path uses for the
running P&L, the level index (``engine.levels``) that hands a tick only the
trades whose levels or watermarks it reaches, the quiet band
(``domain.bands.quiet_band``, the index's intersection) inside which a tick
changes nothing, and the near-level band (``domain.bands.near_band``): a symbol
whose price is near a stop, target or partial target is marked on the feed
(``Feed.set_near_level``), which then polls it sooner when its ticks stop.  The
tick path looks at one interval, the calm band (the quiet band narrowed to the
stretch where near-ness does not change); only a price leaving it costs more.
"""

from __future__ import annotations

import logging

from tmtool.domain.models import Trade
from tmtool.domain.reconcile import position_key
from tmtool.engine.positions import PositionCache
from tmtool.engine.state import EXPOSED, Book, EngineState, StrategyRuntime

log = logging.getLogger(__name__)


class TradeIndex:
    def __init__(self, state: EngineState, positions: PositionCache) -> None:
        self.state = state
        self._positions = positions

    def add_trade(self, trade: Trade, rebuild: bool = True) -> None:
        """Watch ``trade``; ``rebuild=False`` leaves its book for one ``rebuild_all_books`` after a bulk load."""
        state = self.state
        state.trades[trade.id] = trade
        state.trade_runtime(trade.id)
        runtime = state.runtime(trade.strategy)
        runtime.trades[trade.id] = trade
        book = state.books.get(trade.instrument_key)
        if book is None:
            book = state.books[trade.instrument_key] = Book(trade.instrument_key)
            if trade.last_price > 0:
                state.tick_filter.seed(book.key, trade.last_price)
                book.price = trade.last_price
            if state.running:
                state.feed.subscribe(*book.key)
        book.trades.append(trade)
        self._positions.key(position_key(trade))
        if rebuild:
            self.rebuild_book(book)

    def remove_trade(self, trade: Trade) -> None:
        state = self.state
        state.trades.pop(trade.id, None)
        runtime = state.strategies.get(trade.strategy)
        if runtime is not None:
            runtime.trades.pop(trade.id, None)
        book = state.books.get(trade.instrument_key)
        if book is not None:
            book.trades = [t for t in book.trades if t.id != trade.id]
            if book.trades:
                self.rebuild_book(book)
            else:
                del state.books[book.key]
                if book.near:
                    book.near = False
                    state.feed.set_near_level(*book.key, False)
                state.tick_filter.forget(book.key)
                try:
                    state.feed.unsubscribe(*book.key)
                except ValueError:
                    log.warning("feed had no subscription for %s:%s", *book.key)
                self.recompute_book_strategies(book)
        state.trade_runtimes.pop(trade.id, None)
        self._positions.forget_waiting(trade.id)
        state.closed_today.append(trade)
        if runtime is not None and runtime.deleting and not runtime.trades:
            self.finish_strategy_delete(runtime)

    def finish_strategy_delete(self, runtime: StrategyRuntime) -> None:
        name = runtime.strategy.name
        if self.state.strategies.pop(name, None) is not None:
            self.state.retire_realised_pnl(runtime.state.realised_pnl)
        self.state.store.delete_strategy(name)
        self.state.dirty = True

    def rebuild_trade_book(self, trade: Trade) -> None:
        book = self.state.books.get(trade.instrument_key)
        if book is not None:
            self.rebuild_book(book)

    def refresh_trade_band(self, trade: Trade) -> None:
        book = self.state.books.get(trade.instrument_key)
        if book is not None:
            self.refresh_band(book)

    def rebuild_book(self, book: Book, recompute_strategies: bool = True) -> None:
        """Recompute a symbol's exposure per strategy and its quiet band after any trade change."""
        per_strategy: dict[str, int] = {}
        for trade in book.trades:
            if trade.status in EXPOSED and trade.quantity > 0:
                per_strategy[trade.strategy] = per_strategy.get(trade.strategy, 0) + trade.quantity * trade.side.sign
        book.exposure = tuple((self.state.runtime(name), qty) for name, qty in per_strategy.items())
        book.net_qty = sum(per_strategy.values())
        self.refresh_band(book)
        if recompute_strategies:
            self.recompute_book_strategies(book)
        self.state.dirty = True

    def rebuild_all_books(self) -> None:
        """Every book, then every strategy's unrealised P&L once: linear in the open trades, where
        rebuilding after each loaded trade was quadratic (7 s for 10,000 trades at start-up,
        ``python -m benchmarks.bench_startup``)."""
        for book in self.state.books.values():
            self.rebuild_book(book, recompute_strategies=False)
        for runtime in self.state.strategies.values():
            self.recompute_unrealised(runtime)

    def refresh_band(self, book: Book) -> None:
        """After a change of the book's trades or their levels: its level index, quiet and near-level bands."""
        book.levels.rebuild(book.trades)
        book.lo, book.hi, book.near_lo, book.near_hi = book.levels.bands()
        self.place_price(book)

    def reindex_trades(self, book: Book, trades: list[Trade], changed: bool, alike: list[list[Trade]] = (),
                       alone: list[Trade] = ()) -> None:
        """After ``trades`` (taken out by ``book.levels.crossed``) were evaluated: back into the index,
        and the book's bands placed again when anything ``changed``.  With ``alike``, the trades are
        split between its lists, each holding trades that share every field their bands read (one
        evaluation key, one evaluation applied alike, so each goes back as a group, its band worked
        out once), and ``alone``, re-entered one by one.  Otherwise, when they are most of the book,
        rebuilding the index costs less than re-entering them one by one."""
        levels = book.levels
        if alike:
            for group in alike:
                levels.update_alike(group)
            for trade in alone:
                levels.update(trade)
        elif 2 * len(trades) >= len(book.trades):
            levels.rebuild(book.trades)
        else:
            for trade in trades:
                levels.update(trade)
        if changed:
            book.lo, book.hi, book.near_lo, book.near_hi = levels.bands()
            self.place_price(book)

    def place_price(self, book: Book) -> None:
        """Whether the book's price is near a level (the feed is told when that changes), and the
        calm band around the price inside which neither that nor any trade can change."""
        price, lo, hi, near_lo, near_hi = book.price, book.lo, book.hi, book.near_lo, book.near_hi
        if price <= 0:
            near, book.calm_lo, book.calm_hi = False, lo, hi
        elif near_hi <= near_lo:  # the levels are so close that every price is near one
            near, book.calm_lo, book.calm_hi = True, lo, hi
        elif price <= near_lo:
            near, book.calm_lo, book.calm_hi = True, lo, min(hi, near_lo)
        elif price >= near_hi:
            near, book.calm_lo, book.calm_hi = True, max(lo, near_hi), hi
        else:
            near, book.calm_lo, book.calm_hi = False, max(lo, near_lo), min(hi, near_hi)
        if near is not book.near:
            book.near = near
            self.state.feed.set_near_level(*book.key, near)

    def recompute_book_strategies(self, book: Book) -> None:
        names = {t.strategy for t in book.trades} | {r.strategy.name for r, _ in book.exposure}
        strategies = self.state.strategies
        for name in names:
            runtime = strategies.get(name)
            if runtime is not None:
                self.recompute_unrealised(runtime)

    def recompute_unrealised(self, runtime: StrategyRuntime) -> None:
        state = self.state
        total = 0.0
        for trade in runtime.trades.values():
            if trade.status in EXPOSED and trade.quantity > 0:
                total += trade.unrealised_pnl(state.price_of(trade))
        runtime.unrealised = total
        state.account_unrealised = sum(r.unrealised for r in state.strategies.values())
