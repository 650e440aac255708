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
    the band and its crossing can be reported.  The intersection of the trades'
    own quiet bands (``trade_bands``).
    """
    lo, hi = -_INF, _INF
    for trade in trades:
        trade_lo, trade_hi, _, _ = trade_bands(trade)
        if trade_lo > lo:
            lo = trade_lo
        if trade_hi < hi:
            hi = trade_hi
    return lo, hi


def near_band(trades: Iterable[Trade], fraction: float = NEAR_LEVEL_FRACTION) -> tuple[float, float]:
    """``(lo, hi)``: a price strictly inside is farther than ``fraction`` of the level from every
    effective stop, target and open partial target of the ACTIVE, unpaused trades of ``trades``.

    Stops bound it from the side they guard (below for a long, above for a short),
    targets and partial targets from the other; a price at or beyond either end is
    near a level.  With no level it is ``(-inf, inf)``; when the levels are so close
    that the ends cross (``lo >= hi``) every price is near.  The intersection of the
    trades' own near bands (``trade_bands``).
    """
    lo, hi = -_INF, _INF
    for trade in trades:
        _, _, trade_lo, trade_hi = trade_bands(trade, fraction)
        if trade_lo > lo:
            lo = trade_lo
        if trade_hi < hi:
            hi = trade_hi
    return lo, hi


def trade_bands(trade: Trade, fraction: float = NEAR_LEVEL_FRACTION) -> tuple[float, float, float, float]:
    """``(lo, hi, near_lo, near_hi)``: one trade's quiet band and near band (see ``quiet_band``
    and ``near_band``); ``(-inf, inf)`` for what the trade does not bound.

    For an ACTIVE, unpaused trade with an open quantity ``rules.evaluate_tick``
    answers None strictly inside its quiet band (between its watermarks, short of
    its effective stop, its target and its open partial targets; touching a level
    counts as crossing it) and never beyond it.
    """
    if trade.status is not TradeStatus.ACTIVE or trade.quantity <= 0:
        return -_INF, _INF, -_INF, _INF
    stop = trade.effective_stop
    if trade.paused:
        if stop is None:
            return -_INF, _INF, -_INF, _INF
        if (trade.side is Side.LONG) != stop_crossed(trade, trade.last_price):
            return stop, _INF, -_INF, _INF
        return -_INF, stop, -_INF, _INF
    entry = trade.entry_price
    lo = trade.low_watermark or entry
    hi = trade.high_watermark or entry
    target = trade.target
    near_lo, near_hi = -_INF, _INF
    if trade.side is Side.LONG:
        nearest = target  # the lowest profit level
        for partial in trade.partial_levels:
            if not partial.done and (nearest is None or partial.price < nearest):
                nearest = partial.price
        if stop is not None:
            if stop > lo:
                lo = stop
            near_lo = stop * (1.0 + fraction)
        if nearest is not None:
            if nearest < hi:
                hi = nearest
            near_hi = nearest * (1.0 - fraction)
    else:
        nearest = target  # the highest profit level
        for partial in trade.partial_levels:
            if not partial.done and (nearest is None or partial.price > nearest):
                nearest = partial.price
        if stop is not None:
            if stop < hi:
                hi = stop
            near_hi = stop * (1.0 - fraction)
        if nearest is not None:
            if nearest > lo:
                lo = nearest
            near_lo = nearest * (1.0 + fraction)
    return lo, hi, near_lo, near_hi


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
