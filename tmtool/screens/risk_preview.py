"""What a new trade or a strategy's settings would put at stake: pure previews for the forms.

The sizing itself is the engine's (``tmtool.engine.sizing``) and the default
levels are the engine's rules (``tmtool.domain.rules.initial_levels``), so the
preview shows the numbers the engine will use.  Broker funds are not in the
snapshot: the preview limits a trade by the strategy's allocation only, and the
engine checks the broker's funds when the trade is entered.
"""

from __future__ import annotations

from dataclasses import dataclass

from tmtool.domain import rules, sizing, validation
from tmtool.domain.models import (
    Amount,
    AmountMode,
    Denial,
    Side,
    Strategy,
)
from tmtool.engine.snapshot import StrategyView
from tmtool.screens.formatting import format_money, format_price

# Stand-in for "no broker funds limit known" when sizing a preview.
PREVIEW_FUNDS = 1e15


@dataclass(frozen=True, slots=True)
class TradePreview:
    quantity: int
    notional: float
    stop_loss: float | None  # the stop the trade would get (given, or the strategy's default)
    target: float | None
    risk_amount: float | None
    reward_amount: float | None
    denial: Denial | None = None

    def describe(self, tick_size: float) -> str:
        if self.denial is not None:
            return f"{self.denial.code}: {self.denial.message}"
        parts = [
            f"qty {self.quantity}",
            f"value {format_money(self.notional, decimals=0)}",
            f"stop {format_price(self.stop_loss, tick_size)}",
            f"target {format_price(self.target, tick_size)}",
            f"risk {format_money(self.risk_amount, decimals=0) if self.risk_amount is not None else 'unbounded'}",
            f"reward {format_money(self.reward_amount, decimals=0)}",
        ]
        if self.risk_amount and self.reward_amount is not None:
            parts.append(f"R:R {self.reward_amount / self.risk_amount:.2f}")
        return " · ".join(parts)


def trade_preview(
    view: StrategyView,
    side: Side,
    price: float,
    stop_loss: float | None,
    target: float | None,
    quantity: int | None,
    lot_size: int,
    tick_size: float,
) -> TradePreview:
    """Size (unless ``quantity`` is given) and price the risk of a new trade of ``view``'s strategy."""
    strategy = view.strategy
    defaults = rules.initial_levels(side, price, strategy.trade_risk, tick_size, quantity or lot_size, lot_size)
    stop = stop_loss if stop_loss is not None else _tighter(defaults.stop_loss, defaults.trailing_stop, side)
    take = target if target is not None else defaults.target
    problem = validation.validate_levels(side, price, None, stop, take)
    if problem is not None:
        return TradePreview(0, 0.0, stop, take, None, None, problem)
    if quantity is None:
        available = view.allocated_funds if view.allocated_funds > 0 else PREVIEW_FUNDS
        result = sizing.preview(
            strategy,
            price,
            stop,
            take,
            lot_size,
            available,
            open_positions=view.open_positions,
            halted=view.halted,
            trades_today=view.trades_today,
            funds_in_use=view.funds_used,
        )
        if result.denial is not None:
            return TradePreview(0, 0.0, stop, take, None, None, result.denial)
        return TradePreview(result.quantity, result.notional, stop, take, result.risk_amount, result.reward_amount)
    denial = sizing.entry_denial(strategy, view.open_positions, view.halted, view.trades_today)
    if denial is None and quantity % max(1, lot_size):
        denial = Denial("INVALID_QUANTITY", f"quantity {quantity} is not a multiple of the lot size {lot_size}")
    if denial is not None:
        return TradePreview(0, 0.0, stop, take, None, None, denial)
    risk = quantity * abs(price - stop) if stop is not None else None
    reward = quantity * abs(take - price) if take is not None else None
    return TradePreview(quantity, quantity * price, stop, take, risk, reward)


def _tighter(stop_loss: float | None, trailing_stop: float | None, side: Side) -> float | None:
    if stop_loss is None:
        return trailing_stop
    if trailing_stop is None:
        return stop_loss
    return max(stop_loss, trailing_stop) if side is Side.LONG else min(stop_loss, trailing_stop)


@dataclass(frozen=True, slots=True)
class StrategyPreview:
    """A strategy's settings applied to an example LONG entry at ``price``."""

    lines: tuple[str, ...]
    warnings: tuple[str, ...]


def strategy_preview(strategy: Strategy, price: float, lot_size: int = 1, tick_size: float = 0.05) -> StrategyPreview:
    """Levels, size, money at risk and the portfolio limits in rupees, with warnings."""
    lines: list[str] = []
    warnings: list[str] = []
    available = strategy.allocated_funds if strategy.allocated_funds > 0 else PREVIEW_FUNDS
    levels = rules.initial_levels(Side.LONG, price, strategy.trade_risk, tick_size, lot_size, lot_size)
    stop = _tighter(levels.stop_loss, levels.trailing_stop, Side.LONG)
    lines.append(
        f"LONG at {format_price(price, tick_size)}: stop {format_price(stop, tick_size)}, "
        f"target {format_price(levels.target, tick_size)}"
        + (f", trail starts {format_price(levels.trailing_stop, tick_size)}" if levels.trailing_stop else "")
    )
    sized = sizing.size_position(strategy, price, stop, lot_size, available, 0, False, 0)
    risk_per_trade = None
    if isinstance(sized, Denial):
        lines.append(f"size: {sized.code}: {sized.message}")
    else:
        risk_per_trade = sized * (price - stop) if stop is not None else None
        lines.append(
            f"size {sized} (value {format_money(sized * price, decimals=0)}), money at risk "
            f"{format_money(risk_per_trade, decimals=0) if risk_per_trade is not None else 'unbounded (no stop)'}"
        )
    funds = strategy.allocated_funds
    portfolio = strategy.portfolio
    portfolio_stop = portfolio.stop_loss.rupees(funds) if portfolio.stop_loss else None
    portfolio_target = portfolio.target.rupees(funds) if portfolio.target else None
    daily_limit = portfolio.daily_loss_limit.rupees(funds) if portfolio.daily_loss_limit else None
    lines.append(
        f"portfolio stop {_rupees(portfolio_stop, negative=True)}, target {_rupees(portfolio_target)}, "
        f"daily loss limit {_rupees(daily_limit, negative=True)}"
    )
    if portfolio.trailing_activation and portfolio.trailing_distance:
        lines.append(
            f"trailing lock arms at {_rupees(portfolio.trailing_activation.rupees(funds))}, "
            f"exits {_rupees(portfolio.trailing_distance.rupees(funds))} below the peak"
        )
    if stop is None:
        warnings.append("no per-trade stop: a trade's loss is bounded only by the portfolio limits")
    if risk_per_trade is not None and daily_limit is not None and risk_per_trade > daily_limit:
        warnings.append(
            f"one trade risks {format_money(risk_per_trade, decimals=0)}, more than the daily loss limit "
            f"{format_money(daily_limit, decimals=0)}"
        )
    if risk_per_trade is not None and portfolio_stop is not None and risk_per_trade > portfolio_stop:
        warnings.append(
            f"one trade risks {format_money(risk_per_trade, decimals=0)}, more than the portfolio stop "
            f"{format_money(portfolio_stop, decimals=0)}"
        )
    if portfolio_stop is not None and daily_limit is not None and portfolio_stop > daily_limit:
        warnings.append("the portfolio stop is wider than the daily loss limit; the daily limit will act first")
    if funds <= 0 and (
        _is_percent(portfolio.stop_loss) or _is_percent(portfolio.target) or _is_percent(portfolio.daily_loss_limit)
    ):
        warnings.append("percent portfolio limits need allocated funds (they are 0 now)")
    if stop is not None and levels.target is not None and (levels.target - price) < (price - stop):
        warnings.append("the target is nearer than the stop (reward below risk)")
    return StrategyPreview(tuple(lines), tuple(warnings))


def _rupees(value: float | None, negative: bool = False) -> str:
    if value is None:
        return "off"
    return format_money(-value if negative else value, decimals=0)


def _is_percent(amount: Amount | None) -> bool:
    return amount is not None and amount.mode is AmountMode.PERCENT
