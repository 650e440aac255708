"""Price and P&L bands inside which a tick changes nothing (pure).

The engine's tick path is cheap because of two bands computed here:

* ``quiet_band``: per instrument, the open interval of prices that move no stop,
  target, partial target, trailing stop or watermark of any of its trades;
* ``near_band``: per instrument, the open interval of prices that are not near
  (within ``NEAR_LEVEL_FRACTION`` of) any stop, target or open partial target of
  its trades — outside it the price feed is told to poll the symbol sooner when
  its ticks stop;
* ``portfolio_gates``: per strategy, the open interval of unrealised P&L inside
  which no portfolio limit (stop, target, daily loss limit, trailing lock) can
  trigger, so the portfolio rules run only when the P&L leaves it.
"""

from __future__ import annotations

import math
from typing import Iterable

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.models import PortfolioState, Side, Strategy, Trade, TradeStatus
from tmtool.domain.rules import stop_crossed

_INF = math.inf

# "Near a level": within 0.5% of it.  A fraction of the level, not a number of ticks, because
# tick sizes mean nothing across prices (0.05 is 0.002% of a 2,500 stock and 0.1% of a 50 one),
# while liquid NSE instruments move a few tenths of a percent within the few seconds a silent
# symbol goes unpolled: 0.5% covers such a move with room, and stays narrow enough that most
# symbols, most of the time, are not near and keep the slower poll.
NEAR_LEVEL_FRACTION = 0.005


def quiet_band(trades: Iterable[Trade]) -> tuple[float, float]:
    """``(lo, hi)``: a price strictly inside changes no ACTIVE, unpaused trade of ``trades``.

    Exiting and empty trades do not narrow the band; with none left it is
    ``(-inf, inf)``.  A paused trade narrows it only at its stop, on the side its
    last price is not on, so the tick that crosses the stop (either way) leaves
    the band and its crossing can be reported.  The intersection of every
    trade's ``trade_quiet_band``.
    """
    lo, hi = -_INF, _INF
    for trade in trades:
        trade_lo, trade_hi = trade_quiet_band(trade)
        if trade_lo > lo:
            lo = trade_lo
        if trade_hi < hi:
            hi = trade_hi
    return lo, hi


def trade_quiet_band(trade: Trade) -> tuple[float, float]:
    """``(lo, hi)`` for one trade: a price strictly inside changes nothing of it (see ``quiet_band``).

    For an ACTIVE, unpaused trade with an open quantity this is exactly where
    ``rules.evaluate_tick`` answers None: between its watermarks, short of its
    effective stop, its target and its open partial targets (touching counts).
    """
    if trade.status is not TradeStatus.ACTIVE or trade.quantity <= 0:
        return -_INF, _INF
    if trade.paused:
        stop = trade.effective_stop
        if stop is None:
            return -_INF, _INF
        if (trade.side is Side.LONG) != stop_crossed(trade, trade.last_price):
            return stop, _INF
        return -_INF, stop
    entry = trade.entry_price
    lo = trade.low_watermark or entry
    hi = trade.high_watermark or entry
    stop = trade.effective_stop
    target = trade.target
    if trade.side is Side.LONG:
        if stop is not None and stop > lo:
            lo = stop
        if target is not None and target < hi:
            hi = target
        for partial in trade.partial_levels:
            if not partial.done and partial.price < hi:
                hi = partial.price
    else:
        if stop is not None and stop < hi:
            hi = stop
        if target is not None and target > lo:
            lo = target
        for partial in trade.partial_levels:
            if not partial.done and partial.price > lo:
                lo = partial.price
    return lo, hi


def near_band(trades: Iterable[Trade], fraction: float = NEAR_LEVEL_FRACTION) -> tuple[float, float]:
    """``(lo, hi)``: a price strictly inside is farther than ``fraction`` of the level from every
    effective stop, target and open partial target of the ACTIVE, unpaused trades of ``trades``.

    Stops bound it from the side they guard (below for a long, above for a short),
    targets and partial targets from the other; a price at or beyond either end is
    near a level.  With no level it is ``(-inf, inf)``; when the levels are so close
    that the ends cross (``lo >= hi``) every price is near.  The intersection of every
    trade's ``trade_near_band``.
    """
    lo, hi = -_INF, _INF
    for trade in trades:
        trade_lo, trade_hi = trade_near_band(trade, fraction)
        if trade_lo > lo:
            lo = trade_lo
        if trade_hi < hi:
            hi = trade_hi
    return lo, hi


def trade_near_band(trade: Trade, fraction: float = NEAR_LEVEL_FRACTION) -> tuple[float, float]:
    """``(lo, hi)`` for one trade: a price strictly inside is near none of its levels (see ``near_band``)."""
    if trade.status is not TradeStatus.ACTIVE or trade.paused or trade.quantity <= 0:
        return -_INF, _INF
    lo, hi = -_INF, _INF
    stop = trade.effective_stop
    profit_levels = [p.price for p in trade.partial_levels if not p.done]
    if trade.target is not None:
        profit_levels.append(trade.target)
    if trade.side is Side.LONG:
        if stop is not None:
            lo = stop * (1.0 + fraction)
        if profit_levels:
            hi = min(profit_levels) * (1.0 - fraction)
    else:
        if stop is not None:
            hi = stop * (1.0 - fraction)
        if profit_levels:
            lo = max(profit_levels) * (1.0 + fraction)
    return lo, hi


def portfolio_gates(strategy: Strategy, state: PortfolioState) -> tuple[float, float]:
    """``(lo, hi)`` in unrealised P&L: inside it no portfolio limit of ``strategy`` can trigger.

    Kept in unrealised terms (the day's realised P&L already subtracted) so the tick
    path needs no realised lookup.
    """
    risk, funds = strategy.portfolio, strategy.allocated_funds
    floor = -_INF
    for amount in (risk.daily_loss_limit, risk.stop_loss):
        rupees = portfolio_rules.limit_rupees(amount, funds)
        if rupees is not None:
            floor = max(floor, -rupees)
    if state.trailing_armed and state.trailing_lock is not None:
        floor = max(floor, state.trailing_lock)
    ceiling = _INF
    target = portfolio_rules.limit_rupees(risk.target, funds)
    if target is not None:
        ceiling = target
    activation = portfolio_rules.limit_rupees(risk.trailing_activation, funds)
    tracks_peak = activation is not None and portfolio_rules.limit_rupees(risk.trailing_distance, funds) is not None
    if tracks_peak:
        ceiling = min(ceiling, state.peak_pnl if state.trailing_armed else activation)
    return floor - state.realised_pnl, ceiling - state.realised_pnl
