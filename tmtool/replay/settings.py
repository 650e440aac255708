"""What a replay changes: ``--set`` and ``--sweep`` keys, parsed and applied.

A change is ``[SCOPE:]KEY=VALUE``.  SCOPE is empty (every trade and strategy),
a strategy name, or ``#ID`` (one trade).  Trade keys (distances: a number is
points, ``1.5%`` a percent; ``none`` turns the level off):

    stop_loss, target, breakeven_after,
    trailing.distance, trailing.activation, trailing.step_trigger, trailing.step_move, trailing (none only)

Portfolio keys (amounts: a number is rupees, ``2%`` a percent of allocated funds):

    portfolio.stop_loss, portfolio.target, portfolio.daily_loss_limit,
    portfolio.trailing_activation, portfolio.trailing_distance

Account keys (rupees): account.daily_loss_limit, account.daily_profit_target.

A changed trade level is recomputed from the trade's actual entry with the
same ``domain.rules.initial_levels`` the engine uses at the fill.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tmtool.domain import rules
from tmtool.domain.models import (
    AccountLimits,
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    PortfolioRisk,
    Strategy,
    Trade,
    TradeRisk,
    TrailingSettings,
)

TRADE_KEYS = (
    "stop_loss", "target", "breakeven_after", "trailing",
    "trailing.distance", "trailing.activation", "trailing.step_trigger", "trailing.step_move",
)
PORTFOLIO_KEYS = (
    "portfolio.stop_loss", "portfolio.target", "portfolio.daily_loss_limit",
    "portfolio.trailing_activation", "portfolio.trailing_distance",
)
ACCOUNT_KEYS = ("account.daily_loss_limit", "account.daily_profit_target")
KEYS = TRADE_KEYS + PORTFOLIO_KEYS + ACCOUNT_KEYS


class SettingError(ValueError):
    """A ``--set``/``--sweep`` the replay cannot apply; the message says why."""


@dataclass(frozen=True)
class Change:
    key: str
    value: str
    scope: str = ""  # "" = everything, "#12" = trade 12, otherwise a strategy name

    @property
    def label(self) -> str:
        return f"{self.scope + ':' if self.scope else ''}{self.key}={self.value}"

    def covers_trade(self, trade: Trade) -> bool:
        if not self.scope:
            return True
        if self.scope.startswith("#"):
            return self.scope[1:] == str(trade.id)
        return self.scope == trade.strategy

    def covers_strategy(self, name: str) -> bool:
        return not self.scope or self.scope == name


def parse_change(text: str) -> Change:
    """``[SCOPE:]KEY=VALUE`` → ``Change`` (raises ``SettingError``)."""
    if "=" not in text:
        raise SettingError(f"{text!r}: expected KEY=VALUE, e.g. trailing.distance=6")
    left, value = text.split("=", 1)
    scope, _, key = left.rpartition(":")
    key, value, scope = key.strip(), value.strip(), scope.strip()
    if key not in KEYS:
        raise SettingError(f"{key!r} is not a replay setting; one of: {', '.join(KEYS)}")
    if scope.startswith("#") and not scope[1:].isdigit():
        raise SettingError(f"{scope!r}: a trade is named #ID, e.g. #12")
    change = Change(key, value, scope)
    if key in ACCOUNT_KEYS and scope:
        raise SettingError(f"{key} is account-wide: it takes no scope")
    _value_of(change)  # validate now, not half-way through a sweep
    return change


def parse_sweep(text: str) -> list[Change]:
    """``[SCOPE:]KEY=V1,V2,...`` → one ``Change`` per value."""
    if "=" not in text:
        raise SettingError(f"{text!r}: expected KEY=V1,V2,..., e.g. trailing.distance=2,4,6,8")
    left, values = text.split("=", 1)
    return [parse_change(f"{left}={value}") for value in values.split(",") if value.strip()]


def parse_distance(text: str) -> Distance | None:
    text = text.strip()
    if text.lower() in ("none", "off", ""):
        return None
    try:
        if text.endswith("%"):
            value = float(text[:-1])
            if not 0 < value < 100:
                raise SettingError(f"{text!r}: a percent distance lies between 0 and 100")
            return Distance(value, DistanceMode.PERCENT)
        value = float(text)
    except ValueError:
        raise SettingError(f"{text!r} is not a distance (points like 6, or a percent like 1.5%)") from None
    if value <= 0:
        raise SettingError(f"{text!r}: a distance is positive (or none)")
    return Distance(value)


def parse_amount(text: str) -> Amount | None:
    text = text.strip()
    if text.lower() in ("none", "off", ""):
        return None
    try:
        if text.endswith("%"):
            return Amount(float(text[:-1]), AmountMode.PERCENT)
        value = float(text)
    except ValueError:
        raise SettingError(f"{text!r} is not an amount (rupees like 2000, or a percent like 2%)") from None
    if value <= 0:
        raise SettingError(f"{text!r}: an amount is positive (or none)")
    return Amount(value)


def _value_of(change: Change) -> object:
    if change.key in TRADE_KEYS:
        if change.key == "trailing" and change.value.lower() not in ("none", "off"):
            raise SettingError("trailing takes only none; set trailing.distance to trail")
        return parse_distance(change.value)
    if change.key in PORTFOLIO_KEYS:
        return parse_amount(change.value)
    amount = parse_amount(change.value)
    if amount is not None and amount.mode is AmountMode.PERCENT:
        raise SettingError(f"{change.key} is in rupees, not a percent")
    return None if amount is None else amount.value


# --------------------------------------------------------------------------- applying


def apply_to_trade(trade: Trade, changes: list[Change]) -> Trade:
    """The trade as it stands at its entry, with the trade-level ``changes`` that cover it applied."""
    mine = [c for c in changes if c.key in TRADE_KEYS and c.covers_trade(trade)]
    if not mine:
        return trade
    side, entry, tick = trade.side, trade.entry_price, trade.tick_size
    trailing = trade.trailing
    stop, target, trailing_stop = trade.stop_loss, trade.target, trade.trailing_stop
    breakeven_after = trade.breakeven_after
    retrail = False
    for change in mine:
        value = _value_of(change)
        if change.key == "stop_loss":
            stop = None if value is None else rules.initial_levels(side, entry, TradeRisk(stop_loss=value), tick, trade.quantity).stop_loss
        elif change.key == "target":
            target = None if value is None else rules.initial_levels(side, entry, TradeRisk(target=value), tick, trade.quantity).target
        elif change.key == "breakeven_after":
            breakeven_after = value  # type: ignore[assignment]
        elif change.key == "trailing" or (change.key == "trailing.distance" and value is None):
            trailing, retrail = None, True
        else:
            field = change.key.split(".", 1)[1]
            if trailing is None:
                if field != "distance":
                    raise SettingError(f"trade #{trade.id} has no trailing stop: set trailing.distance first")
                trailing = TrailingSettings(distance=value)  # type: ignore[arg-type]
            else:
                trailing = dataclasses.replace(trailing, **{field: value})
            retrail = True
    if retrail:
        if trailing is not None and (trailing.step_trigger is None) != (trailing.step_move is None):
            raise SettingError("step trailing needs both trailing.step_trigger and trailing.step_move")
        trailing_stop = None if trailing is None else rules.trailing_level(trailing, side, entry, entry, tick)
    return dataclasses.replace(
        trade, stop_loss=stop, target=target, trailing=trailing, trailing_stop=trailing_stop, breakeven_after=breakeven_after
    )


def apply_to_strategy(strategy: Strategy, changes: list[Change]) -> Strategy:
    mine = [c for c in changes if c.key in PORTFOLIO_KEYS and c.covers_strategy(strategy.name)]
    if not mine:
        return strategy
    portfolio: PortfolioRisk = strategy.portfolio
    for change in mine:
        portfolio = dataclasses.replace(portfolio, **{change.key.split(".", 1)[1]: _value_of(change)})
    return dataclasses.replace(strategy, portfolio=portfolio)


def apply_to_account(account: AccountLimits, changes: list[Change]) -> AccountLimits:
    for change in changes:
        if change.key in ACCOUNT_KEYS:
            account = dataclasses.replace(account, **{change.key.split(".", 1)[1]: _value_of(change)})
    return account
