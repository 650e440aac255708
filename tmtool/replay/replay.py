"""Replay: the day's trades run again over the day's ticks through the domain's own rules.

The same code that decides live decides here: ``domain.rules.evaluate_tick``
for every trade (stops, targets, partial targets, trailing, breakeven),
``domain.portfolio`` for strategy limits (portfolio stop and target, trailing
lock, daily loss limit and its halt) and account limits, and
``domain.bands`` for the quiet bands and P&L gates that decide when they run —
the tick path of ``engine.watch`` and ``engine.risk``, without orders.

Each trade enters at its live activation time, price and quantity.  From then
on every accepted tick of its instrument is evaluated in recorded order.  An
exit fills at once at the crossing tick's price, moved ``slippage_ticks`` tick
sizes against the trade.  What the rules did not decide (manual level changes,
manual/panic/square-off exits, ...) happens at its live time; an exit from
outside fills at the instrument's last price.  A strategy halted by its daily
loss limit (or the account by its limit) takes no later entry: those trades
are reported as skipped.  A trade still open after the last tick is marked at
the last price (reason ``END_OF_DATA``).  Not replayed: pausing a trade, and the
live engine's stale-feed degradation (a degraded trade's trailing is held).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from tmtool.domain import bands, rules
from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.fills import realised_pnl
from tmtool.domain.models import AccountLimits, ExitReason, PortfolioState, Strategy, Trade, TradeStatus
from tmtool.replay.reader import TickTape
from tmtool.replay.settings import Change, apply_to_account, apply_to_strategy, apply_to_trade
from tmtool.replay.trades import END_OF_DATA, ExitDecision, LiveTrade, OutsideEvent

_INF = math.inf


@dataclass
class ReplayedTrade:
    trade_id: int
    strategy: str
    symbol: str
    exchange: str
    side: str
    entry_price: float
    quantity: int
    opened_at: float
    exits: list[ExitDecision] = field(default_factory=list)
    pnl: float = 0.0
    closed_at: float | None = None
    live_pnl: float = 0.0
    levels: list[tuple[float, str, float | None]] = field(default_factory=list)  # (ts, field, level): at entry, then as moved


@dataclass
class ReplayResult:
    label: str
    trades: list[ReplayedTrade]
    skipped: list[tuple[int, str]]
    ticks: int
    approximate: bool = False

    @property
    def decisions(self) -> list[ExitDecision]:
        return sorted((d for t in self.trades for d in t.exits), key=lambda d: (d.ts, d.trade_id))


class _Book:
    __slots__ = ("key", "trades", "price", "lo", "hi", "exposure")

    def __init__(self, key: tuple) -> None:
        self.key = key
        self.trades: list[Trade] = []
        self.price = 0.0
        self.lo, self.hi = _INF, -_INF  # no trades: nothing to evaluate (the band check is skipped below)
        self.exposure: list[tuple[_StrategyRun, int]] = []


class _StrategyRun:
    __slots__ = ("strategy", "state", "unrealised", "gate_lo", "gate_hi", "trades")

    def __init__(self, strategy: Strategy, state: PortfolioState) -> None:
        self.strategy = strategy
        self.state = state
        self.unrealised = 0.0
        self.trades: list[Trade] = []
        self.update_gates()

    def update_gates(self) -> None:
        self.gate_lo, self.gate_hi = bands.portfolio_gates(self.strategy, self.state)


class Replay:
    """One replay run.  Build with the day's live trades, strategies, account limits and tape; call ``run``."""

    def __init__(
        self,
        live_trades: Sequence[LiveTrade],
        strategies: dict[str, Strategy],
        account: AccountLimits,
        tape: TickTape,
        changes: Sequence[Change] = (),
        slippage_ticks: float = 0.0,
        label: str = "as run",
    ) -> None:
        self.changes = list(changes)
        self.tape = tape
        self.slippage_ticks = slippage_ticks
        self.label = label
        self.account = apply_to_account(account, self.changes)
        self._account_on = self.account.daily_loss_limit is not None or self.account.daily_profit_target is not None
        self._account_halted = False
        self._live = sorted(live_trades, key=lambda t: (t.opened_at, t.start.id))
        day_start = self._live[0].opened_at if self._live else 0.0
        self._strategies: dict[str, _StrategyRun] = {}
        for live in self._live:
            name = live.start.strategy
            if name not in self._strategies:
                base = strategies.get(name) or Strategy(name=name)
                self._strategies[name] = _StrategyRun(
                    apply_to_strategy(base, self.changes), portfolio_rules.new_day_state(name, day_start)
                )
        self._books: dict[tuple, _Book] = {}
        self._results: dict[int, ReplayedTrade] = {}
        self._skipped: list[tuple[int, str]] = []
        self._last_ts = day_start

    # ------------------------------------------------------------------ the run

    def run(self) -> ReplayResult:
        tape = self.tape
        self._live = self._with_ticks(self._live)
        events = self._events()
        keys = tape.keys
        wanted = {self._book_key(live.start) for live in self._live}
        books: list[_Book | None] = []
        for key in keys:
            if key in wanted:
                books.append(self._books.setdefault(key, _Book(key)))
            else:
                books.append(None)
        first = events[0][0] if events else _INF
        if len(tape):
            useful = np.fromiter((b is not None for b in books), dtype=bool, count=len(books)) if books else np.zeros(0, bool)
            mask = tape.accepted & (tape.ts >= first) if len(useful) else np.zeros(len(tape), bool)
            if len(useful):
                mask &= useful[tape.code]
            idx = np.nonzero(mask)[0]
            ts_list = tape.ts[idx].tolist()
            price_list = tape.price[idx].tolist()
            code_list = tape.code[idx].tolist()
        else:
            ts_list, price_list, code_list = [], [], []
        next_event = 0
        event_count = len(events)
        next_event_ts = events[0][0] if events else _INF
        evaluate = self._evaluate_book
        account_on = self._account_on
        for ts, price, code in zip(ts_list, price_list, code_list):
            if ts >= next_event_ts:
                while next_event < event_count and events[next_event][0] <= ts:
                    self._handle(events[next_event])
                    next_event += 1
                next_event_ts = events[next_event][0] if next_event < event_count else _INF
            book = books[code]
            old = book.price
            book.price = price
            if not book.trades:
                continue
            self._last_ts = ts
            if not book.lo < price < book.hi:
                evaluate(book, price, ts)
            if not old:
                for run, _ in book.exposure:
                    self._recompute_unrealised(run)
                old = price
            delta = price - old
            if delta:
                for run, quantity in book.exposure:
                    unrealised = run.unrealised + quantity * delta
                    run.unrealised = unrealised
                    if not run.gate_lo < unrealised < run.gate_hi:
                        self._evaluate_strategy(run, ts)
            if account_on:
                self._check_account(ts)
        while next_event < event_count:
            self._handle(events[next_event])
            next_event += 1
        for book in self._books.values():
            for trade in tuple(book.trades):
                self._exit(trade, END_OF_DATA, self._last_ts, book.price or trade.entry_price, None, trade.quantity, slip=False)
        trades = sorted(self._results.values(), key=lambda r: (r.opened_at, r.trade_id))
        return ReplayResult(self.label, trades, self._skipped, len(ts_list), tape.approximate)

    def _with_ticks(self, trades: list[LiveTrade]) -> list[LiveTrade]:
        """The trades the tape has a tick for after their entry; the others are reported as skipped."""
        tape = self.tape
        last_tick: dict[tuple, float] = {}
        if len(tape):
            accepted = tape.accepted
            for code, key in enumerate(tape.keys):
                times = tape.ts[(tape.code == code) & accepted]
                if len(times):
                    last_tick[key] = float(times.max())
        kept = []
        for live in trades:
            key = self._book_key(live.start)
            if last_tick.get(key, -_INF) >= live.opened_at:
                kept.append(live)
            else:
                self._skipped.append((live.start.id, f"no {live.start.exchange}:{live.start.symbol} ticks recorded after its entry"))
        return kept

    def _events(self) -> list[tuple[float, int, int, object]]:
        """Entries and outside events in time order: (ts, order, trade id, payload)."""
        events: list[tuple[float, int, int, object]] = []
        for live in self._live:
            events.append((live.opened_at, 0, live.start.id, live))
            for outside in live.outside:
                events.append((outside.ts, 1, live.start.id, outside))
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        return events

    def _book_key(self, trade: Trade) -> tuple:
        if self.tape.side_paths:
            return (trade.exchange, trade.symbol, trade.side.value)
        return (trade.exchange, trade.symbol)

    # ------------------------------------------------------------------ entries and outside events

    def _handle(self, event: tuple[float, int, int, object]) -> None:
        ts, _, trade_id, payload = event
        if isinstance(payload, LiveTrade):
            self._enter(payload)
            return
        assert isinstance(payload, OutsideEvent)
        result = self._results.get(trade_id)
        trade = self._open_trade(trade_id)
        if result is None or trade is None:
            return
        if payload.kind == "EXIT":
            book = self._books[self._book_key(trade)]
            self._exit(trade, payload.reason, ts, book.price or trade.last_price, None, trade.quantity)
        elif payload.kind == "LEVEL":
            setattr(trade, payload.field, payload.value)
            result.levels.append((ts, payload.field, payload.value))
            self._refresh_band(self._books[self._book_key(trade)])
        elif payload.kind == "PAUSE":  # the rules skip a paused trade (no exit, no ratchet), as the engine does
            trade.paused = bool(payload.value)
            book = self._books[self._book_key(trade)]
            self._refresh_band(book)
            if not trade.paused and book.price > 0:  # resumed: the engine looks at the last price at once
                self._evaluate_book(book, book.price, ts)

    def _open_trade(self, trade_id: int) -> Trade | None:
        for book in self._books.values():
            for trade in book.trades:
                if trade.id == trade_id:
                    return trade
        return None

    def _enter(self, live: LiveTrade) -> None:
        start = live.start
        run = self._strategies[start.strategy]
        if run.state.halted or self._account_halted:
            why = "account halted by the replay" if self._account_halted else "strategy halted by the replay's daily loss limit"
            self._skipped.append((start.id, why))
            return
        trade = apply_to_trade(dataclasses.replace(start), self.changes)
        trade.partial_levels = tuple(start.partial_levels)
        book = self._books.setdefault(self._book_key(trade), _Book(self._book_key(trade)))
        book.trades.append(trade)
        run.trades.append(trade)
        self._results[trade.id] = ReplayedTrade(
            trade.id, trade.strategy, trade.symbol, trade.exchange, trade.side.value, trade.entry_price,
            trade.quantity, live.opened_at, live_pnl=live.live_pnl,
            levels=[(live.opened_at, "stop_loss", trade.stop_loss), (live.opened_at, "target", trade.target),
                    (live.opened_at, "trailing_stop", trade.trailing_stop)],
        )
        self._rebuild_book(book)
        self._recompute_unrealised(run)
        run.state = portfolio_rules.record_trade_opened(run.state, live.opened_at)

    # ------------------------------------------------------------------ the tick path (as engine.watch)

    def _evaluate_book(self, book: _Book, price: float, ts: float) -> None:
        changed = False
        for trade in tuple(book.trades):
            if trade.status is not TradeStatus.ACTIVE:
                continue
            evaluation = rules.evaluate_tick(trade, price, ts)
            if evaluation is None:
                continue
            changed = True
            trade.last_price = price
            trade.high_watermark = evaluation.high_watermark
            trade.low_watermark = evaluation.low_watermark
            for change in evaluation.changes:
                setattr(trade, change.field, change.new)
                if change.kind == "BREAKEVEN":
                    trade.breakeven_done = True
                self._results[trade.id].levels.append((ts, change.field, change.new))
            signal = evaluation.exit
            if signal is not None:
                self._on_exit_signal(trade, signal)
        if changed:
            self._refresh_band(book)

    def _on_exit_signal(self, trade: Trade, signal: rules.ExitSignal) -> None:
        if signal.reason is ExitReason.PARTIAL_TARGET:
            levels = list(trade.partial_levels)
            for index in signal.partial_indexes:
                levels[index] = dataclasses.replace(levels[index], done=True)
            trade.partial_levels = tuple(levels)
        self._exit(trade, signal.reason.value, signal.ts, signal.price, signal.trigger_price, min(signal.quantity, trade.quantity))

    # ------------------------------------------------------------------ portfolio and account (as engine.risk)

    def _evaluate_strategy(self, run: _StrategyRun, ts: float) -> None:
        evaluation = portfolio_rules.evaluate_portfolio(run.strategy, run.state, run.unrealised, ts)
        if evaluation is None:
            return
        run.state = evaluation.state
        run.update_gates()
        if evaluation.exit_reason is None:
            return
        for trade in [t for t in run.trades if t.status is TradeStatus.ACTIVE]:
            book = self._books[self._book_key(trade)]
            self._exit(trade, evaluation.exit_reason.value, ts, book.price or trade.last_price, None, trade.quantity)

    def _check_account(self, ts: float) -> None:
        if self._account_halted:
            return
        total = sum(run.state.realised_pnl + run.unrealised for run in self._strategies.values())
        verdict = portfolio_rules.evaluate_account(self.account, total)
        if verdict is None:
            return
        self._account_halted = True
        for run in self._strategies.values():
            if not run.state.halted:
                run.state = portfolio_rules.halt(run.state, f"account {verdict.exit_reason.value}", ts)
                run.update_gates()
        for run in self._strategies.values():
            for trade in [t for t in run.trades if t.status is TradeStatus.ACTIVE]:
                book = self._books[self._book_key(trade)]
                self._exit(trade, verdict.exit_reason.value, ts, book.price or trade.last_price, None, trade.quantity)

    # ------------------------------------------------------------------ exits

    def _exit(self, trade: Trade, reason: str, ts: float, tick_price: float, level: float | None, quantity: int, slip: bool = True) -> None:
        quantity = min(quantity, trade.quantity)
        if quantity <= 0:
            return
        fill = tick_price - trade.side.sign * self.slippage_ticks * trade.tick_size if slip else tick_price
        pnl = realised_pnl(trade.side, trade.entry_price, fill, quantity)
        result = self._results[trade.id]
        result.exits.append(ExitDecision(trade.id, ts, reason, tick_price, level, quantity, fill))
        result.pnl += pnl
        trade.quantity -= quantity
        trade.realised_pnl += pnl
        run = self._strategies[trade.strategy]
        run.state = portfolio_rules.record_realised(run.state, pnl, ts)
        book = self._books[self._book_key(trade)]
        if trade.quantity <= 0:
            trade.status = TradeStatus.CLOSED
            trade.closed_at = ts
            result.closed_at = ts
            book.trades.remove(trade)
            run.trades.remove(trade)
        self._rebuild_book(book)
        self._recompute_unrealised(run)
        run.update_gates()
        if not run.gate_lo < run.unrealised < run.gate_hi:
            self._evaluate_strategy(run, ts)

    # ------------------------------------------------------------------ books

    def _refresh_band(self, book: _Book) -> None:
        if book.trades:
            book.lo, book.hi = bands.quiet_band(book.trades)
        else:
            book.lo, book.hi = _INF, -_INF

    def _rebuild_book(self, book: _Book) -> None:
        self._refresh_band(book)
        net: dict[str, int] = {}
        for trade in book.trades:
            if trade.quantity > 0:
                net[trade.strategy] = net.get(trade.strategy, 0) + trade.quantity * trade.side.sign
        book.exposure = [(self._strategies[name], qty) for name, qty in net.items() if qty]

    def _recompute_unrealised(self, run: _StrategyRun) -> None:
        total = 0.0
        for trade in run.trades:
            mark = self._books[self._book_key(trade)].price or trade.entry_price
            total += (mark - trade.entry_price) * trade.quantity * trade.side.sign
        run.unrealised = total


def replay(
    live_trades: Iterable[LiveTrade],
    strategies: dict[str, Strategy],
    account: AccountLimits,
    tape: TickTape,
    changes: Sequence[Change] = (),
    slippage_ticks: float = 0.0,
    label: str = "as run",
) -> ReplayResult:
    return Replay(list(live_trades), strategies, account, tape, changes, slippage_ticks, label).run()
