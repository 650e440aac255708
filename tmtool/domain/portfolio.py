"""Portfolio rules: a strategy's trades watched as one P&L, and account-wide limits.

Pure functions over ``PortfolioState``, ``Strategy``, numbers and a time
(epoch seconds).  Nothing here reads a clock, does I/O or mutates an argument:
functions that change state return a new ``PortfolioState`` (a copy).

How the engine uses this module:

1. On every trading day change (``needs_roll``) replace the state with
   ``roll_day(state, ts)`` — a fresh state for the new Asia/Kolkata day, halt
   cleared.
2. After every tick of one of the strategy's trades (and after every fill) call
   ``evaluate_portfolio(strategy, state, unrealised_pnl, ts)``.  It returns None
   when nothing changed; otherwise a ``PortfolioEvaluation`` whose ``state`` the
   engine stores (and persists), and whose ``exit_reason`` — when not None —
   means "exit every open trade of this strategy".  ``halt`` means the strategy
   is halted until the next trading day (daily loss limit).
3. Sum every strategy's P&L and call ``evaluate_account(limits, total_pnl)``;
   a non-None result means "exit every open trade of every strategy and halt
   them all for the day".
4. ``square_off_due(strategy, ts)`` is checked on the engine's timer.
5. ``record_realised`` after each exit fill, ``record_trade_opened`` after each
   entry; ``entry_denial`` (sizing) refuses new trades while halted or at the
   daily trade count.

Portfolio exits are level based: while the P&L stays beyond a limit every
evaluation names the reason again; the engine exits only trades that are still
ACTIVE, so a repeated reason never exits a trade twice.  A halted state yields
no further exit reason (the halt already produced one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tmtool.domain.calendar import to_ist, trading_day
from tmtool.domain.models import (
    AccountLimits,
    Amount,
    AmountMode,
    ExitReason,
    PortfolioState,
    Strategy,
)


@dataclass(frozen=True, slots=True)
class PortfolioEvaluation:
    """What one evaluation of a strategy's portfolio decided.

    ``state``: the new state (a copy) to keep; ``pnl``: realised today +
    unrealised; ``exit_reason``: exit all of the strategy's open trades when not
    None; ``halt``: halt the strategy until the next trading day; ``armed_now``:
    the trailing lock armed on this evaluation (worth an alert).
    """

    state: PortfolioState
    pnl: float
    exit_reason: ExitReason | None = None
    halt: bool = False
    armed_now: bool = False


@dataclass(frozen=True, slots=True)
class AccountEvaluation:
    """An account-wide limit was reached: exit everything, halt every strategy for the day."""

    exit_reason: ExitReason
    pnl: float
    limit: float


def limit_rupees(amount: Amount | None, allocated_funds: float) -> float | None:
    """An ``Amount`` in rupees; None when off (or in PERCENT without allocated funds)."""
    if amount is None:
        return None
    if amount.mode is AmountMode.PERCENT and allocated_funds <= 0:
        return None
    return amount.rupees(allocated_funds)


def portfolio_pnl(state: PortfolioState, unrealised_pnl: float) -> float:
    """Strategy P&L: realised today + unrealised of the open trades."""
    return state.realised_pnl + unrealised_pnl


def evaluate_portfolio(
    strategy: Strategy, state: PortfolioState, unrealised_pnl: float, ts: float
) -> PortfolioEvaluation | None:
    """Check the strategy's portfolio limits at P&L = realised + ``unrealised_pnl``.

    Order: daily loss limit (exit all and halt), portfolio stop, portfolio
    target, trailing lock.  The trailing lock is checked as it stood before this
    evaluation, then arms or rises with the new peak.  Returns None when nothing
    changed (no new peak or trough, no lock move, no exit).
    """
    pnl = state.realised_pnl + unrealised_pnl
    peak = pnl if pnl > state.peak_pnl else state.peak_pnl
    trough = pnl if pnl < state.trough_pnl else state.trough_pnl
    if state.halted:
        if peak == state.peak_pnl and trough == state.trough_pnl:
            return None
        return PortfolioEvaluation(dataclasses.replace(state, peak_pnl=peak, trough_pnl=trough, updated_at=ts), pnl)

    risk = strategy.portfolio
    funds = strategy.allocated_funds
    exit_reason: ExitReason | None = None
    halt = False
    daily_loss = limit_rupees(risk.daily_loss_limit, funds)
    stop = limit_rupees(risk.stop_loss, funds)
    target = limit_rupees(risk.target, funds)
    if daily_loss is not None and pnl <= -daily_loss:
        exit_reason, halt = ExitReason.DAILY_LOSS_LIMIT, True
    elif stop is not None and pnl <= -stop:
        exit_reason = ExitReason.PORTFOLIO_SL
    elif target is not None and pnl >= target:
        exit_reason = ExitReason.PORTFOLIO_TARGET
    elif state.trailing_armed and state.trailing_lock is not None and pnl <= state.trailing_lock:
        exit_reason = ExitReason.PORTFOLIO_TRAILING

    armed, lock, armed_now = _trailing_lock(strategy, state, pnl, peak)
    if (
        exit_reason is None
        and peak == state.peak_pnl
        and trough == state.trough_pnl
        and armed == state.trailing_armed
        and lock == state.trailing_lock
    ):
        return None
    new_state = dataclasses.replace(
        state,
        peak_pnl=peak,
        trough_pnl=trough,
        trailing_armed=armed,
        trailing_lock=lock,
        halted=halt,
        halt_reason=_halt_reason(daily_loss, pnl) if halt else state.halt_reason,
        updated_at=ts,
    )
    return PortfolioEvaluation(new_state, pnl, exit_reason, halt, armed_now)


def _trailing_lock(
    strategy: Strategy, state: PortfolioState, pnl: float, peak: float
) -> tuple[bool, float | None, bool]:
    """(armed, lock level, armed on this evaluation) after P&L ``pnl`` with day peak ``peak``."""
    risk = strategy.portfolio
    activation = limit_rupees(risk.trailing_activation, strategy.allocated_funds)
    distance = limit_rupees(risk.trailing_distance, strategy.allocated_funds)
    if activation is None or distance is None:
        return state.trailing_armed, state.trailing_lock, False
    armed = state.trailing_armed
    armed_now = False
    if not armed and pnl >= activation:
        armed = armed_now = True
    if not armed:
        return False, state.trailing_lock, False
    lock = peak - distance
    if state.trailing_lock is not None and state.trailing_lock >= lock:
        lock = state.trailing_lock
    return True, lock, armed_now


def _halt_reason(limit: float, pnl: float) -> str:
    return f"daily loss limit {limit:.2f} reached (P&L {pnl:.2f}); halted until the next trading day"


def evaluate_account(limits: AccountLimits, total_pnl: float) -> AccountEvaluation | None:
    """Account-wide daily loss limit and profit target over every strategy's P&L."""
    if limits.daily_loss_limit is not None and total_pnl <= -limits.daily_loss_limit:
        return AccountEvaluation(ExitReason.ACCOUNT_LOSS_LIMIT, total_pnl, limits.daily_loss_limit)
    if limits.daily_profit_target is not None and total_pnl >= limits.daily_profit_target:
        return AccountEvaluation(ExitReason.ACCOUNT_TARGET, total_pnl, limits.daily_profit_target)
    return None


# --------------------------------------------------------------------------- state changes


def new_day_state(strategy_name: str, ts: float) -> PortfolioState:
    """A fresh state for the trading day ``ts`` falls in (Asia/Kolkata)."""
    return PortfolioState(strategy=strategy_name, trading_day=trading_day(ts), updated_at=ts)


def needs_roll(state: PortfolioState, ts: float) -> bool:
    """True when ``ts`` falls in a later trading day than ``state``."""
    return trading_day(ts) > state.trading_day


def roll_day(state: PortfolioState, ts: float) -> PortfolioState:
    """The state for the trading day of ``ts``: fresh (halt cleared) on a new day, else ``state`` itself."""
    if not needs_roll(state, ts):
        return state
    return new_day_state(state.strategy, ts)


def halt(state: PortfolioState, reason: str, ts: float) -> PortfolioState:
    """The state halted (until the next trading day) for ``reason``."""
    return dataclasses.replace(state, halted=True, halt_reason=reason, updated_at=ts)


def record_realised(state: PortfolioState, pnl: float, ts: float) -> PortfolioState:
    """Add the realised P&L of an exit fill to today's total."""
    return dataclasses.replace(state, realised_pnl=state.realised_pnl + pnl, updated_at=ts)


def record_trade_opened(state: PortfolioState, ts: float) -> PortfolioState:
    """Count one more trade opened today (for ``max_trades_per_day``)."""
    return dataclasses.replace(state, trades_today=state.trades_today + 1, updated_at=ts)


def square_off_due(strategy: Strategy, ts: float) -> bool:
    """True once the Asia/Kolkata wall time of ``ts`` has reached the strategy's square-off time."""
    if strategy.square_off_time is None:
        return False
    return to_ist(ts).time() >= strategy.square_off_time
