"""Trade analytics: pure functions over closed trades.

The control API's ``analytics`` verb and the TUI's history screen both call
``analyse`` so they show the same numbers.  Nothing here reads a clock, does
I/O or mutates its arguments; empty and single-trade inputs never divide by zero
(a ratio without a denominator is ``None``).

Conventions:

* A trade counts when it was filled and is final: status CLOSED or
  CLOSED_EXTERNALLY with ``entry_quantity > 0`` (cancelled entries are left out).
* P&L is ``Trade.realised_pnl`` (partial exits included).  A win has P&L > 0, a
  loss < 0, anything within half a paisa of zero is breakeven (counted in the
  trade count and the win rate's denominator).
* Losses are reported as negative rupees (``average_loss``, ``largest_loss``,
  ``gross_loss``); ``max_drawdown`` is a positive rupee amount.
* Risk for R-multiples = |entry − initial stop| × entry quantity.  The initial
  stop is not kept on the trade (``stop_loss`` may have moved): callers pass it,
  usually taken from the trade's audit log with ``initial_stop_from_events``
  (the first CREATED/LEVEL event that set a stop).  Trades without one have no R.
* Exit slippage = (trigger level − fill price) × side sign, in points per unit,
  ticks and rupees; positive means the fill was worse than the level (a gap
  through a stop shows as a large positive number).  Measured only when the
  trade has an ``exit_trigger_price`` and no partial level filled before the
  final exit (the average exit price would mix fills at different levels).
* Excursions come from the watermarks: maximum favourable excursion (MFE) and
  maximum adverse excursion (MAE) in points per unit and rupees; a watermark of
  0 means "never seen" and gives ``None``.
* Daily P&L groups trades by the Asia/Kolkata date they closed on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from tmtool.domain.calendar import trading_day
from tmtool.domain.models import Trade, TradeEvent, TradeStatus

COUNTED_STATUSES = frozenset({TradeStatus.CLOSED, TradeStatus.CLOSED_EXTERNALLY})
BREAKEVEN_EPSILON = 0.005  # rupees
NO_REASON = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class TradeStats:
    """Summary of a group of closed trades (all, one strategy or one exit reason)."""

    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate: float | None  # wins / trades, 0..1
    net_pnl: float
    gross_profit: float
    gross_loss: float  # <= 0
    average_win: float | None
    average_loss: float | None  # <= 0
    profit_factor: float | None  # gross_profit / |gross_loss|; None without losses
    expectancy: float | None  # average P&L per trade
    largest_win: float | None
    largest_loss: float | None  # <= 0
    max_drawdown: float  # >= 0, peak-to-trough of cumulative P&L in closing order
    average_holding_seconds: float | None
    r_trades: int  # trades with a known initial risk
    average_r: float | None
    total_r: float | None


@dataclass(frozen=True, slots=True)
class TradeResult:
    """The analytics of one closed trade."""

    trade_id: int
    strategy: str
    symbol: str
    exchange: str
    side: str
    exit_reason: str
    quantity: int  # entry quantity
    entry_price: float
    exit_price: float | None
    pnl: float
    opened_at: float | None
    closed_at: float | None
    holding_seconds: float | None
    initial_stop: float | None
    initial_risk: float | None  # rupees
    r_multiple: float | None
    exit_trigger_price: float | None
    slippage_points: float | None  # per unit, positive = worse than the level
    slippage_ticks: float | None
    slippage_rupees: float | None
    mfe_points: float | None
    mae_points: float | None
    mfe_rupees: float | None
    mae_rupees: float | None


@dataclass(frozen=True, slots=True)
class GroupStats:
    """``TradeStats`` of one named group (a strategy or an exit reason)."""

    name: str
    stats: TradeStats


@dataclass(frozen=True, slots=True)
class SlippageStats:
    """Exit slippage over the trades where it could be measured."""

    measured: int
    average_points: float | None
    average_ticks: float | None
    worst_ticks: float | None
    total_rupees: float


@dataclass(frozen=True, slots=True)
class DailyPnl:
    day: date  # Asia/Kolkata
    trades: int
    pnl: float
    cumulative_pnl: float


@dataclass(frozen=True, slots=True)
class AnalyticsReport:
    overall: TradeStats
    by_strategy: tuple[GroupStats, ...]  # sorted by name
    by_exit_reason: tuple[GroupStats, ...]  # sorted by reason
    slippage: SlippageStats
    daily_pnl: tuple[DailyPnl, ...]  # oldest first
    trades: tuple[TradeResult, ...]  # in closing order


# --------------------------------------------------------------------------- helpers


def _money(value: float) -> float:
    return float(round(value, 2))


def _ratio(value: float) -> float:
    return float(round(value, 4))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _maybe(value: float | None, rounder) -> float | None:
    return None if value is None else rounder(value)


def counted_trades(trades: Iterable[Trade]) -> list[Trade]:
    """The filled, final trades in closing order (ties by id)."""
    counted = [t for t in trades if t.status in COUNTED_STATUSES and t.entry_quantity > 0]
    return sorted(counted, key=lambda t: (t.closed_at if t.closed_at is not None else math.inf, t.id))


def max_drawdown(pnls: Iterable[float]) -> float:
    """Largest fall of the running total from its peak (the total starts at 0)."""
    total = peak = worst = 0.0
    for pnl in pnls:
        total += pnl
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return _money(worst)


def _stop_in_event(event: TradeEvent) -> float | None:
    """The stop an event set: ``new`` of a ``stop_loss`` event, or the ``stop=`` part of a ``levels`` one."""
    if event.field == "stop_loss":
        text = event.new
    elif event.field == "levels":
        text = next((part[5:] for part in event.new.split() if part.startswith("stop=")), "")
    else:
        return None
    try:
        price = float(text)
    except ValueError:
        return None
    return price if math.isfinite(price) and price > 0 else None


def initial_stop_from_events(events: Iterable[TradeEvent]) -> float | None:
    """The first stop-loss a trade had, from its audit log.

    Takes the earliest CREATED or LEVEL event that set a positive finite stop:
    a ``stop_loss`` event's ``new`` value, or the ``stop=`` part of the
    ``levels`` event the engine writes when the entry fills.
    """
    for event in sorted(events, key=lambda e: e.ts):
        if event.kind in ("CREATED", "LEVEL"):
            stop = _stop_in_event(event)
            if stop is not None:
                return stop
    return None


def _holding_seconds(trade: Trade) -> float | None:
    if trade.opened_at is None or trade.closed_at is None:
        return None
    return max(0.0, trade.closed_at - trade.opened_at)


def _excursions(trade: Trade) -> tuple[float | None, float | None]:
    """(MFE, MAE) in points per unit from the watermarks; None when unseen."""
    high, low, entry = trade.high_watermark, trade.low_watermark, trade.entry_price
    up = max(0.0, high - entry) if high > 0 else None
    down = max(0.0, entry - low) if low > 0 else None
    return (up, down) if trade.side.sign > 0 else (down, up)


def _slippage_points(trade: Trade) -> float | None:
    if trade.exit_trigger_price is None or trade.exit_price is None:
        return None
    if any(level.done for level in trade.partial_levels):
        return None
    return (trade.exit_trigger_price - trade.exit_price) * trade.side.sign


def trade_result(trade: Trade, initial_stop: float | None = None) -> TradeResult:
    """The per-trade analytics of one closed trade."""
    quantity = trade.entry_quantity
    risk = abs(trade.entry_price - initial_stop) * quantity if initial_stop is not None else None
    r_multiple = trade.realised_pnl / risk if risk else None
    slippage = _slippage_points(trade)
    tick_size = trade.tick_size if trade.tick_size > 0 else None
    exited = trade.exited_quantity or quantity
    mfe, mae = _excursions(trade)
    return TradeResult(
        trade_id=trade.id,
        strategy=trade.strategy,
        symbol=trade.symbol,
        exchange=trade.exchange,
        side=trade.side.value,
        exit_reason=trade.exit_reason.value if trade.exit_reason is not None else NO_REASON,
        quantity=quantity,
        entry_price=trade.entry_price,
        exit_price=trade.exit_price,
        pnl=_money(trade.realised_pnl),
        opened_at=trade.opened_at,
        closed_at=trade.closed_at,
        holding_seconds=_holding_seconds(trade),
        initial_stop=initial_stop,
        initial_risk=_maybe(risk, _money) if risk else None,
        r_multiple=_maybe(r_multiple, _ratio),
        exit_trigger_price=trade.exit_trigger_price,
        slippage_points=_maybe(slippage, _ratio),
        slippage_ticks=_maybe(slippage / tick_size, _ratio) if slippage is not None and tick_size else None,
        slippage_rupees=_maybe(slippage * exited, _money) if slippage is not None else None,
        mfe_points=_maybe(mfe, _ratio),
        mae_points=_maybe(mae, _ratio),
        mfe_rupees=_maybe(mfe * quantity, _money) if mfe is not None else None,
        mae_rupees=_maybe(mae * quantity, _money) if mae is not None else None,
    )


def summarise(results: Sequence[TradeResult]) -> TradeStats:
    """Statistics of a group of per-trade results (taken in the order given)."""
    pnls = [r.pnl for r in results]
    wins = [p for p in pnls if p >= BREAKEVEN_EPSILON]
    losses = [p for p in pnls if p <= -BREAKEVEN_EPSILON]
    gross_profit, gross_loss = sum(wins), sum(losses)
    holdings = [r.holding_seconds for r in results if r.holding_seconds is not None]
    r_values = [r.r_multiple for r in results if r.r_multiple is not None]
    count = len(pnls)
    return TradeStats(
        trades=count,
        wins=len(wins),
        losses=len(losses),
        breakeven=count - len(wins) - len(losses),
        win_rate=_ratio(len(wins) / count) if count else None,
        net_pnl=_money(sum(pnls)),
        gross_profit=_money(gross_profit),
        gross_loss=_money(gross_loss),
        average_win=_maybe(_mean(wins), _money),
        average_loss=_maybe(_mean(losses), _money),
        profit_factor=_ratio(gross_profit / -gross_loss) if losses else None,
        expectancy=_maybe(_mean(pnls), _money),
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        max_drawdown=max_drawdown(pnls),
        average_holding_seconds=_maybe(_mean(holdings), lambda v: round(v, 1)),
        r_trades=len(r_values),
        average_r=_maybe(_mean(r_values), _ratio),
        total_r=_ratio(sum(r_values)) if r_values else None,
    )


def slippage_stats(results: Sequence[TradeResult]) -> SlippageStats:
    measured = [r for r in results if r.slippage_points is not None]
    ticks = [r.slippage_ticks for r in measured if r.slippage_ticks is not None]
    return SlippageStats(
        measured=len(measured),
        average_points=_maybe(_mean([r.slippage_points for r in measured]), _ratio),
        average_ticks=_maybe(_mean(ticks), _ratio),
        worst_ticks=max(ticks) if ticks else None,
        total_rupees=_money(sum(r.slippage_rupees or 0.0 for r in measured)),
    )


def daily_pnl(results: Sequence[TradeResult]) -> tuple[DailyPnl, ...]:
    """P&L per Asia/Kolkata closing date, oldest first, with the running total."""
    days: dict[date, list[float]] = {}
    for result in results:
        if result.closed_at is not None:
            days.setdefault(trading_day(result.closed_at), []).append(result.pnl)
    series, running = [], 0.0
    for day in sorted(days):
        pnl = sum(days[day])
        running += pnl
        series.append(DailyPnl(day=day, trades=len(days[day]), pnl=_money(pnl), cumulative_pnl=_money(running)))
    return tuple(series)


def _grouped(results: Sequence[TradeResult], key) -> tuple[GroupStats, ...]:
    groups: dict[str, list[TradeResult]] = {}
    for result in results:
        groups.setdefault(key(result), []).append(result)
    return tuple(GroupStats(name=name, stats=summarise(groups[name])) for name in sorted(groups))


def analyse(trades: Iterable[Trade], initial_stops: Mapping[int, float] | None = None) -> AnalyticsReport:
    """Analytics of closed trades, overall, per strategy and per exit reason.

    ``initial_stops`` maps trade id to the trade's first stop-loss (for R-multiples).
    """
    stops = initial_stops or {}
    results = tuple(trade_result(t, stops.get(t.id)) for t in counted_trades(trades))
    return AnalyticsReport(
        overall=summarise(results),
        by_strategy=_grouped(results, lambda r: r.strategy),
        by_exit_reason=_grouped(results, lambda r: r.exit_reason),
        slippage=slippage_stats(results),
        daily_pnl=daily_pnl(results),
        trades=results,
    )
