"""The engine-thread state every component shares, and its per-trade records.

Only the engine thread touches any of this.  ``EngineState`` holds the open
trades, the books by instrument, the strategy runtimes, the per-trade runtime
records, the instrument cache and the system status the snapshot shows; the
components (``books``, ``orders``, ``exits``, ``entries``, ``risk``, ``watch``,
``reconciler``...) each own a part of the work on it and call downwards only.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import date
from enum import Enum
from typing import Any, Callable, Mapping

from tmtool.clock import Clock
from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.bands import portfolio_gates
from tmtool.domain.broker import FeedStatus, SymbolInfo
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import (
    AccountLimits,
    ExitReason,
    FeedState,
    Instrument,
    PortfolioState,
    Strategy,
    Trade,
    TradeStatus,
)
from tmtool.domain.ticks import TickFilter
from tmtool.engine.executor import JobKind, JobRunner
from tmtool.engine.levels import LevelIndex
from tmtool.engine.ports import Broker, Feed, Store
from tmtool.engine.settings import EngineSettings
from tmtool.engine.timers import Timers

_INF = math.inf
EXPOSED = frozenset({TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED})
CLOSED_KEEP = 500  # today's closed trades kept for the snapshot
RETIRED_PNL_SETTING = "retired_realised_pnl"  # the store's setting: {"day": ISO date, "realised_pnl": today's total of deleted strategies}


class Book:
    """Everything about one (exchange, symbol): its trades, last price, quiet and near-level bands."""

    __slots__ = (
        "key", "trades", "price", "ts", "lo", "hi", "near_lo", "near_hi", "near", "calm_lo", "calm_hi",
        "exposure", "net_qty", "degraded", "levels",
    )

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.trades: list[Trade] = []
        self.price = 0.0
        self.ts = 0.0
        self.lo = -_INF  # a price strictly inside (lo, hi) changes no trade
        self.hi = _INF
        self.near_lo = -_INF  # a price strictly inside (near_lo, near_hi) is near no level
        self.near_hi = _INF
        self.near = False  # the price is near a level (the feed was told so)
        self.calm_lo = -_INF  # a price strictly inside (calm_lo, calm_hi) changes neither a trade nor ``near``
        self.calm_hi = _INF
        self.exposure: tuple[tuple[StrategyRuntime, int], ...] = ()  # signed open quantity per strategy
        self.net_qty = 0
        self.degraded = False
        self.levels = LevelIndex()  # the trades by the prices that change them (kept by ``books``)


class StrategyRuntime:
    """A strategy, its portfolio state for today and its running unrealised P&L."""

    __slots__ = ("strategy", "state", "unrealised", "gate_lo", "gate_hi", "trades", "pnl_series", "deleting", "extremes_unsaved")

    def __init__(self, strategy: Strategy, state: PortfolioState) -> None:
        self.strategy = strategy
        self.state = state
        self.unrealised = 0.0
        self.gate_lo = -_INF  # portfolio rules run only when unrealised P&L leaves (gate_lo, gate_hi)
        self.gate_hi = _INF
        self.trades: dict[int, Trade] = {}  # open trades
        self.pnl_series: deque[float] = deque(maxlen=240)
        self.deleting = False
        self.extremes_unsaved = False  # peak/trough moved outside an evaluation and are not persisted yet

    def update_gates(self) -> None:
        self.gate_lo, self.gate_hi = portfolio_gates(self.strategy, self.state)

    def track_extremes(self) -> None:
        """Fold the running P&L into the day's peak and trough.

        The tick path evaluates a strategy only when its P&L leaves the band its
        limits allow, so between evaluations the peak and trough would lag; this runs
        with every snapshot (at most ``snapshot_hz``) and P&L sample instead, off the
        tick path.  Limits that depend on the peak (an armed trailing lock) gate the
        tick path at the peak, so they never wait for this."""
        state = self.state
        pnl = state.realised_pnl + self.unrealised
        if state.trough_pnl <= pnl <= state.peak_pnl:
            return
        self.state = replace(state, peak_pnl=max(state.peak_pnl, pnl), trough_pnl=min(state.trough_pnl, pnl))
        self.extremes_unsaved = True
        self.update_gates()


class ExitWait(Enum):
    """Why a trade's exit is not being driven right now."""

    CONFIRMING = "confirming"  # reading the broker's position before sending less than the trade
    SETTLING = "settling"  # exits in flight on the position key may explain a shortfall: wait for them
    RETRY = "retry"  # a retry is scheduled after the backoff
    PARKED = "parked"  # the broker session expired: resent when it is back
    UNKNOWN_ORDER = "unknown order"  # an exit of ours on the position has an unknown outcome: nothing goes until it is found
    FOREIGN_ORDERS = "others' orders"  # others' working orders close the position: waiting for them to fill or go


@dataclass(slots=True)
class EntryPlan:
    """What a pending entry was asked for, applied when it fills."""

    command: CreateTrade
    strategy: str


class TradeRuntime:
    """The engine's working state of one open trade beside the ``Trade`` itself (never persisted)."""

    __slots__ = (
        "exit_attempts", "exit_wait", "exit_on_fill", "entry_plan", "trail_alerted", "shortfall_since", "paused_stop_alerted",
        "foreign_wait_alerted",
    )

    def __init__(self) -> None:
        self.exit_attempts = 0  # exit orders sent for the current exit (retries count)
        self.exit_wait: ExitWait | None = None
        self.exit_on_fill: ExitReason | None = None  # an exit asked for before the entry filled
        self.entry_plan: EntryPlan | None = None
        self.trail_alerted = False  # the first trailing-stop move was alerted (trail_alerts = "first")
        # when the exit's position read first showed less than the trade holds (a lagging read may not
        # show recent fills: the trade shrinks or closes only when a read ``absence_grace`` later agrees)
        self.shortfall_since: float | None = None
        self.paused_stop_alerted = False  # the price is across a paused trade's stop and that was alerted
        self.foreign_wait_alerted = False  # the exit's wait on others' working orders was alerted (until it sends again)


class EngineState:
    """The engine-thread state shared by every component (see the module docstring)."""

    def __init__(
        self, *, store: Store, broker: Broker, feed: Feed, clock: Clock, settings: EngineSettings, account: AccountLimits
    ) -> None:
        self.store = store
        self.broker = broker
        self.feed = feed
        self.clock = clock
        self.settings = settings
        self.account = account
        self.account_gated = account.daily_loss_limit is not None or account.daily_profit_target is not None
        self.timers = Timers(clock)
        self.executor: JobRunner | None = None
        self.running = False
        self.accepting_ticks = False  # ticks are taken from the feed (from start until stop)
        self.stopping = False  # stop() was called: new commands are refused

        self.trades: dict[int, Trade] = {}  # open trades
        self.trade_runtimes: dict[int, TradeRuntime] = {}  # open trade id -> its runtime record
        self.closed_today: deque[Trade] = deque(maxlen=CLOSED_KEEP)
        self.books: dict[tuple[str, str], Book] = {}
        self.strategies: dict[str, StrategyRuntime] = {}
        self.instruments: dict[tuple[str, str], Instrument] = {}
        self.next_trade_id = 1
        self.tick_filter = TickFilter(settings.tick_band_percent, settings.tick_confirm)
        self.account_unrealised = 0.0
        # Today's realised P&L of strategies deleted today: still part of the account's day.
        self.retired_realised_pnl = 0.0
        self.account_halted_on: date | None = None
        self.entries_halted_since: float | None = None  # panic (the kill switch): no new entries until re-armed
        self.day: date | None = None

        self.ticks_processed = 0
        self.ticks_unrouted = 0
        self.feed_status = FeedStatus(FeedState.RECONNECTING)  # what a feed reports until it is connected
        self.stale: set[tuple[str, str]] = set()
        self.broker_state = "UNKNOWN"
        self.broker_message = ""
        self.server_mode = ""
        self.db_state = "OK"
        self.db_pending = 0
        self.dirty = True  # something changed since the last snapshot

    def account_realised_pnl(self) -> float:
        """The account's realised P&L today: every strategy's, including those deleted today."""
        return self.retired_realised_pnl + sum(r.state.realised_pnl for r in self.strategies.values())

    def retire_realised_pnl(self, amount: float) -> None:
        """Keep a deleted strategy's realised P&L in the account's day, across restarts: its
        portfolio row is no longer loaded (and a strategy re-created under its name starts anew)."""
        self.retired_realised_pnl += amount
        self.store.save_setting(
            RETIRED_PNL_SETTING,
            json.dumps({"day": self.day.isoformat() if self.day else None, "realised_pnl": self.retired_realised_pnl}),
        )

    def restore_retired_pnl(self, settings: Mapping[str, str]) -> None:
        """Take the deleted strategies' realised P&L back at start, when it is today's."""
        text = settings.get(RETIRED_PNL_SETTING)
        if text is None:
            return
        try:
            saved = json.loads(text)
            day, amount = saved["day"], float(saved["realised_pnl"])
        except (ValueError, TypeError, KeyError):
            return
        if self.day is not None and day == self.day.isoformat() and math.isfinite(amount):
            self.retired_realised_pnl = amount

    def reset_retired_pnl(self) -> None:
        """A new trading day: deleted strategies' P&L belongs to the day that ended."""
        if self.retired_realised_pnl:
            self.store.save_setting(RETIRED_PNL_SETTING, None)
        self.retired_realised_pnl = 0.0

    # ---------------------------------------------------------------- timers and jobs

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        self.timers.schedule(delay, fn, *args)

    def job(self, kind: JobKind, context: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        assert self.executor is not None
        self.executor.run(kind, context, fn, *args, **kwargs)

    # ---------------------------------------------------------------- lookups

    def trade_today(self, trade_id: int) -> Trade | None:
        """Trade ``trade_id``, open or closed today (None when it is neither)."""
        trade = self.trades.get(trade_id)
        if trade is None:
            trade = next((t for t in self.closed_today if t.id == trade_id), None)
        return trade

    def trade_runtime(self, trade_id: int) -> TradeRuntime:
        """The runtime record of a trade (made on first use)."""
        record = self.trade_runtimes.get(trade_id)
        if record is None:
            record = self.trade_runtimes[trade_id] = TradeRuntime()
        return record

    def runtime(self, name: str) -> StrategyRuntime:
        """The strategy runtime of ``name``; a strategy not known yet is created (and saved)."""
        runtime = self.strategies.get(name)
        if runtime is None:
            strategy = Strategy(name=name)
            runtime = self.strategies[name] = StrategyRuntime(strategy, portfolio_rules.new_day_state(name, self.clock.time()))
            self.store.save_strategy(strategy)
            runtime.update_gates()
        return runtime

    def price_of(self, trade: Trade) -> float:
        book = self.books.get(trade.instrument_key)
        if book is not None and book.price > 0:
            return book.price
        return trade.last_price or trade.entry_price

    def sync_price(self, trade: Trade) -> None:
        book = self.books.get(trade.instrument_key)
        if book is not None and book.price > 0:
            trade.last_price = book.price

    def remember_instrument(self, exchange: str, symbol: str, info: SymbolInfo | None) -> Instrument:
        """Tick, lot and freeze size: settings override > broker ``symbol`` > defaults (cached)."""
        override = self.settings.instruments.get(f"{exchange}:{symbol}")
        if override is not None:
            instrument = override
        else:
            tick = info.tick_size if info is not None and info.tick_size > 0 else self.settings.default_tick_size
            lot = info.lot_size if info is not None and info.lot_size > 0 else 1
            freeze = info.freeze_quantity if info is not None and info.freeze_quantity else None
            if freeze is None and exchange in ("NFO", "BFO"):
                freeze = self.settings.freeze_quantity_for(symbol)
            instrument = Instrument(symbol=symbol, exchange=exchange, tick_size=tick, lot_size=lot, freeze_quantity=freeze)
        self.instruments[(exchange, symbol)] = instrument
        return instrument

    def instrument_for(self, trade: Trade) -> Instrument:
        cached = self.instruments.get(trade.instrument_key)
        if cached is not None:
            return cached
        instrument = self.remember_instrument(trade.exchange, trade.symbol, None)
        if instrument.lot_size == 1 and trade.lot_size > 1:
            instrument = replace(instrument, lot_size=trade.lot_size, tick_size=trade.tick_size)
            self.instruments[trade.instrument_key] = instrument
        return instrument
