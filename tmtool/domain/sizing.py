"""Position sizing and pre-trade limits: pure functions returning a quantity or a ``Denial``.

Modes (``Strategy.sizing``):

- FIXED_QUANTITY: ``value`` units, rounded down to the lot size.  Refused with
  INSUFFICIENT_FUNDS when that quantity costs more than the funds allow (the
  user asked for an exact size; tmtool does not quietly trade less).
- FIXED_VALUE: ``value`` rupees of notional.
- PERCENT_ALLOCATION: ``value`` percent of the strategy's allocated funds.
- RISK_BASED: ``value`` rupees risked; quantity = value / |price − stop|.

The money-derived modes are capped by the funds limit and rounded down to the
lot size.  The funds limit is the smaller of ``available_funds`` and, when the
strategy has allocated funds, what is left of the allocation after
``funds_in_use`` (the entry value of the strategy's open trades).  Notional is
price × quantity.

F&O (and other derivative) positions tie up margin, not their notional: the
checks take a ``margin_rate``, the fraction of the notional a position blocks
(1 for cash equity; from the server's margin calculator, or
``estimated_margin_rate`` when it has none).  Sizing by value or risk still
measures notional and risk; only the funds cap uses the margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tmtool.domain.models import (
    DERIVATIVE_EXCHANGES,
    Denial,
    Side,
    SizingMode,
    Strategy,
    is_valid_price,
)

_DUST = 1e-9


@dataclass(frozen=True, slots=True)
class SizingPreview:
    """Live preview for the UI: the size and what it puts at stake.

    ``quantity`` is 0 and ``denial`` set when the trade would be refused.
    ``risk_amount`` / ``reward_amount`` are rupees to the stop / target (None when
    that level is not given); ``risk_reward`` is reward ÷ risk.
    """

    quantity: int
    notional: float
    risk_amount: float | None
    reward_amount: float | None
    risk_reward: float | None
    denial: Denial | None = None


def entry_denial(strategy: Strategy, open_positions: int, halted: bool, trades_today: int) -> Denial | None:
    """Why the strategy may not open another trade now, or None."""
    if halted:
        return Denial("HALTED", f"strategy {strategy.name!r} is halted until the next trading day")
    if strategy.max_open_positions is not None and open_positions >= strategy.max_open_positions:
        return Denial(
            "MAX_OPEN_POSITIONS",
            f"strategy {strategy.name!r} already has {open_positions} open positions "
            f"(max {strategy.max_open_positions})",
        )
    if strategy.max_trades_per_day is not None and trades_today >= strategy.max_trades_per_day:
        return Denial(
            "MAX_TRADES_PER_DAY",
            f"strategy {strategy.name!r} has opened {trades_today} trades today (max {strategy.max_trades_per_day})",
        )
    return None


def funds_limit(strategy: Strategy, available_funds: float, funds_in_use: float = 0.0) -> float:
    """The most notional a new trade of this strategy may use (never below 0)."""
    limit = available_funds
    if strategy.allocated_funds > 0:
        limit = min(limit, strategy.allocated_funds - funds_in_use)
    return max(0.0, limit)


def funds_denial(quantity: int, price: float, limit: float, margin_rate: float = 1.0) -> Denial | None:
    """Refuse ``quantity`` at ``price`` when what it blocks (its notional × ``margin_rate``)
    exceeds ``limit`` (``funds_limit``)."""
    needed = quantity * price * margin_rate
    if needed > limit + 1e-9:
        what = f"{needed:.2f}" if margin_rate == 1.0 else f"{needed:.2f} of margin"
        return Denial("INSUFFICIENT_FUNDS", f"{quantity} at {price:.2f} needs {what}; {limit:.2f} available")
    return None


def is_long_option(exchange: str, symbol: str, side: Side) -> bool:
    """A bought option on a derivative exchange (OpenAlgo option symbols end in CE or PE)."""
    return exchange in DERIVATIVE_EXCHANGES and side is Side.LONG and symbol.upper().endswith(("CE", "PE"))


def estimated_margin_rate(exchange: str, symbol: str, side: Side, margin_percent: float) -> float:
    """The fraction of notional a position blocks when no margin calculator says: all of it for
    cash equity and for a bought option (its premium is paid in full), ``margin_percent`` of it
    for other derivative positions (futures, sold options)."""
    if exchange not in DERIVATIVE_EXCHANGES or is_long_option(exchange, symbol, side):
        return 1.0
    return margin_percent / 100.0


def _whole_lots(quantity: float, lot_size: int) -> int:
    lot = max(1, lot_size)
    return int(math.floor(quantity / lot + _DUST)) * lot


def size_position(
    strategy: Strategy,
    price: float,
    stop_price: float | None,
    lot_size: int,
    available_funds: float,
    open_positions: int,
    halted: bool,
    trades_today: int,
    funds_in_use: float = 0.0,
    margin_rate: float = 1.0,
) -> int | Denial:
    """The quantity of a new trade at ``price`` (a positive multiple of ``lot_size``) or why not;
    ``margin_rate`` is the fraction of the notional the position blocks (see the module docstring)."""
    denial = entry_denial(strategy, open_positions, halted, trades_today)
    if denial is not None:
        return denial
    if not is_valid_price(price):
        return Denial("INVALID_PRICE", f"price {price!r} must be a positive finite number")
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size <= 0:
        return Denial("INVALID_QUANTITY", f"lot size {lot_size!r} must be a positive whole number")
    if isinstance(available_funds, bool) or not isinstance(available_funds, (int, float)) or not math.isfinite(
        available_funds
    ):
        return Denial("INSUFFICIENT_FUNDS", f"available funds {available_funds!r} are not a finite amount")
    sizing = strategy.sizing
    mode = sizing.mode
    if not is_valid_price(sizing.value):
        return Denial("INVALID_SIZING", f"{mode.value} sizing value {sizing.value!r} must be a positive finite number")
    if isinstance(margin_rate, bool) or not isinstance(margin_rate, (int, float)) or not (
        math.isfinite(margin_rate) and margin_rate > 0
    ):
        return Denial("INVALID_MARGIN", f"margin rate {margin_rate!r} must be a positive finite fraction of the notional")
    limit = funds_limit(strategy, available_funds, funds_in_use)
    if mode is SizingMode.FIXED_QUANTITY:
        quantity = _whole_lots(sizing.value, lot_size)
        if quantity > 0 and quantity * price * margin_rate > limit + _DUST:
            needed = quantity * price * margin_rate
            return Denial(
                "INSUFFICIENT_FUNDS",
                f"{quantity} at {price:.2f} needs {needed:.2f}{'' if margin_rate == 1.0 else ' of margin'} "
                f"but only {limit:.2f} is available to strategy {strategy.name!r}",
            )
    else:
        money = _money_quantity(strategy, price, stop_price)
        if isinstance(money, Denial):
            return money
        quantity = _whole_lots(min(money, limit / (price * margin_rate)), lot_size)
    if quantity <= 0:
        return Denial(
            "ZERO_QUANTITY",
            f"{mode.value} sizing of {sizing.value:g} gives less than one lot of {lot_size} at {price:.2f} "
            f"(funds available {limit:.2f})",
        )
    return quantity


def _money_quantity(strategy: Strategy, price: float, stop_price: float | None) -> float | Denial:
    sizing = strategy.sizing
    mode = sizing.mode
    if mode is SizingMode.FIXED_VALUE:
        return sizing.value / price
    if mode is SizingMode.PERCENT_ALLOCATION:
        if strategy.allocated_funds <= 0:
            return Denial(
                "NO_ALLOCATION",
                f"PERCENT_ALLOCATION sizing needs allocated funds, and strategy {strategy.name!r} has none",
            )
        return strategy.allocated_funds * sizing.value / 100.0 / price
    if stop_price is None:
        return Denial("NO_STOP", "RISK_BASED sizing needs a stop price to measure the risk per unit")
    if not is_valid_price(stop_price):
        return Denial("INVALID_STOP", f"stop {stop_price!r} must be a positive finite number")
    per_unit = abs(price - stop_price)
    if per_unit <= _DUST:
        return Denial("INVALID_STOP", f"stop {stop_price:.2f} equals the price {price:.2f}: no risk per unit to size on")
    return sizing.value / per_unit


def preview(
    strategy: Strategy,
    price: float,
    stop_price: float | None,
    target_price: float | None,
    lot_size: int,
    available_funds: float,
    open_positions: int = 0,
    halted: bool = False,
    trades_today: int = 0,
    funds_in_use: float = 0.0,
) -> SizingPreview:
    """Size a prospective trade and say what it risks and stands to make (for the UI)."""
    sized = size_position(
        strategy, price, stop_price, lot_size, available_funds, open_positions, halted, trades_today, funds_in_use
    )
    if isinstance(sized, Denial):
        return SizingPreview(0, 0.0, None, None, None, sized)
    risk = sized * abs(price - stop_price) if stop_price is not None and is_valid_price(stop_price) else None
    reward = sized * abs(target_price - price) if target_price is not None and is_valid_price(target_price) else None
    ratio = reward / risk if risk and reward is not None else None
    return SizingPreview(sized, sized * price, risk, reward, ratio)
