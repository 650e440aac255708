"""Checks for every level, quantity and setting a user or the API can set.

Each check returns None when the value is acceptable, or a ``Denial`` whose
upper-case code says what kind of value is wrong and whose message says which
value and why, e.g. ``Denial("INVALID_STOP", "stop 2510.00 must be below the
entry 2500.00 for a LONG")``.  Nothing raises, nothing is changed.

Codes: INVALID_PRICE, INVALID_QUANTITY, INVALID_SYMBOL, UNKNOWN_EXCHANGE,
INVALID_SIDE / INVALID_PRODUCT / INVALID_PRICE_TYPE / ... (``invalid_enum``),
INVALID_STOP, INVALID_TARGET, INVALID_DISTANCE, INVALID_TRAILING,
INVALID_PARTIALS, INVALID_AMOUNT, INVALID_PORTFOLIO, INVALID_SIZING,
INVALID_EXIT_ORDER, INVALID_STRATEGY, INVALID_LIMIT.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Iterable

from tmtool.domain.commands import UNSET, CreateTrade, ModifyTrade
from tmtool.domain.models import (
    EXCHANGES,
    DATA_ONLY_EXCHANGES,
    Amount,
    AmountMode,
    Denial,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    PartialTarget,
    PortfolioRisk,
    PriceType,
    Product,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    Trade,
    TradeRisk,
    TrailingSettings,
    is_valid_price,
)

MAX_STRATEGY_NAME = 64


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _fmt(value: object) -> str:
    if _is_number(value) and math.isfinite(value):  # type: ignore[arg-type]
        return f"{value:.2f}"
    return repr(value)


# --------------------------------------------------------------------------- basic values


def validate_price(price: object, name: str = "price") -> Denial | None:
    """A positive, finite number."""
    if not is_valid_price(price):
        return Denial("INVALID_PRICE", f"{name} {_fmt(price)} must be a positive finite number")
    return None


def validate_quantity(quantity: object, lot_size: int = 1, name: str = "quantity") -> Denial | None:
    """A positive whole number that is a multiple of the lot size."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return Denial("INVALID_QUANTITY", f"{name} {quantity!r} must be a whole number")
    if quantity <= 0:
        return Denial("INVALID_QUANTITY", f"{name} {quantity} must be positive")
    if lot_size > 1 and quantity % lot_size:
        return Denial("INVALID_QUANTITY", f"{name} {quantity} must be a multiple of the lot size {lot_size}")
    return None


def validate_symbol(symbol: object) -> Denial | None:
    """Non-empty, upper case, no spaces (OpenAlgo's symbol format)."""
    if not isinstance(symbol, str) or not symbol:
        return Denial("INVALID_SYMBOL", f"symbol {symbol!r} must be a non-empty text")
    if any(ch.isspace() for ch in symbol) or not symbol.isprintable():
        return Denial("INVALID_SYMBOL", f"symbol {symbol!r} must not contain spaces or control characters")
    if symbol != symbol.upper():
        return Denial("INVALID_SYMBOL", f"symbol {symbol!r} must be upper case (e.g. {symbol.upper()!r})")
    return None


def validate_exchange(exchange: object, tradable: bool = True) -> Denial | None:
    """A known exchange; with ``tradable`` the data-only index exchanges are refused."""
    allowed = EXCHANGES if tradable else EXCHANGES | DATA_ONLY_EXCHANGES
    if isinstance(exchange, str) and exchange in allowed:
        return None
    if tradable and exchange in DATA_ONLY_EXCHANGES:
        return Denial("UNKNOWN_EXCHANGE", f"exchange {exchange!r} carries index data only and cannot be traded")
    return Denial("UNKNOWN_EXCHANGE", f"exchange {exchange!r} is not one of {', '.join(sorted(allowed))}")


def invalid_enum(value: object, enum_type: type[Enum], name: str) -> Denial | None:
    """``value`` is a member of ``enum_type`` or the exact name of one."""
    if isinstance(value, enum_type):
        return None
    if isinstance(value, str) and value in enum_type.__members__:
        return None
    allowed = ", ".join(enum_type.__members__)
    return Denial(f"INVALID_{name.upper().replace(' ', '_')}", f"{name} {value!r} is not one of {allowed}")


# --------------------------------------------------------------------------- levels


def validate_stop(
    side: Side, stop: object, entry: float | None, current_price: float | None = None, allow_profit_lock: bool = False
) -> Denial | None:
    """A LONG's stop lies below the entry and below the current price (mirror for SHORT).

    With ``allow_profit_lock`` (modifying a trade already in profit) the stop may
    sit beyond the entry, but never at or through the current price.
    """
    denial = validate_price(stop, "stop")
    if denial is not None:
        return Denial("INVALID_STOP", denial.message)
    below = side is Side.LONG
    word = "below" if below else "above"
    refs: list[tuple[str, float]] = []
    if entry is not None and not allow_profit_lock:
        refs.append(("the entry", entry))
    if current_price is not None:
        refs.append(("the current price", current_price))
    for label, ref in refs:
        if (stop >= ref) if below else (stop <= ref):  # type: ignore[operator]
            return Denial("INVALID_STOP", f"stop {_fmt(stop)} must be {word} {label} {_fmt(ref)} for a {side.value}")
    return None


def validate_target(
    side: Side, target: object, entry: float | None, current_price: float | None = None
) -> Denial | None:
    """A LONG's target lies above the entry and above the current price (mirror for SHORT)."""
    denial = validate_price(target, "target")
    if denial is not None:
        return Denial("INVALID_TARGET", denial.message)
    above = side is Side.LONG
    word = "above" if above else "below"
    for label, ref in (("the entry", entry), ("the current price", current_price)):
        if ref is None:
            continue
        if (target <= ref) if above else (target >= ref):  # type: ignore[operator]
            return Denial(
                "INVALID_TARGET", f"target {_fmt(target)} must be {word} {label} {_fmt(ref)} for a {side.value}"
            )
    return None


def validate_levels(
    side: Side,
    entry: float | None,
    current_price: float | None,
    stop_loss: float | None,
    target: float | None,
    allow_profit_lock: bool = False,
) -> Denial | None:
    """Stop and target (either may be None = not set) against entry and current price."""
    if stop_loss is not None:
        denial = validate_stop(side, stop_loss, entry, current_price, allow_profit_lock)
        if denial is not None:
            return denial
    if target is not None:
        return validate_target(side, target, entry, current_price)
    return None


# --------------------------------------------------------------------------- settings


def validate_distance(distance: object, name: str, allow_zero: bool = False) -> Denial | None:
    """A ``Distance`` with a positive finite value (0 allowed with ``allow_zero``)."""
    if not isinstance(distance, Distance):
        return Denial("INVALID_DISTANCE", f"{name} {distance!r} must be a distance in POINTS or PERCENT")
    if invalid_enum(distance.mode, DistanceMode, "distance mode") is not None:
        return Denial("INVALID_DISTANCE", f"{name} mode {distance.mode!r} must be POINTS or PERCENT")
    value = distance.value
    ok = _is_number(value) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        need = "zero or more" if allow_zero else "greater than 0"
        return Denial("INVALID_DISTANCE", f"{name} {value!r} must be a finite number {need}")
    if distance.mode is DistanceMode.PERCENT and value >= 100:
        return Denial("INVALID_DISTANCE", f"{name} {value:g}% must be less than 100% of the price it is measured from")
    return None


def validate_trailing(settings: TrailingSettings) -> Denial | None:
    """Distance > 0; activation ≥ 0; step trailing needs both step values, step_move ≤ step_trigger."""
    checks: list[tuple[object, str, bool]] = [(settings.distance, "trailing distance", False)]
    if settings.activation is not None:
        checks.append((settings.activation, "trailing activation", True))
    if (settings.step_trigger is None) != (settings.step_move is None):
        return Denial("INVALID_TRAILING", "step trailing needs both step_trigger and step_move (or neither)")
    if settings.is_step:
        checks.append((settings.step_trigger, "trailing step_trigger", False))
        checks.append((settings.step_move, "trailing step_move", False))
    for value, name, allow_zero in checks:
        denial = validate_distance(value, name, allow_zero)
        if denial is not None:
            return Denial("INVALID_TRAILING", denial.message)
    if settings.is_step:
        trigger, move = settings.step_trigger, settings.step_move
        if trigger.mode is move.mode and move.value > trigger.value:  # type: ignore[union-attr]
            return Denial(
                "INVALID_TRAILING",
                f"trailing step_move {move.value:g} must not exceed step_trigger {trigger.value:g}: "  # type: ignore[union-attr]
                "the stop would jump past the price",
            )
    return None


def validate_partial_targets(partials: Iterable[PartialTarget]) -> Denial | None:
    """Each fraction in (0, 1), their total below 1, each distance > 0."""
    total = 0.0
    for index, partial in enumerate(partials):
        if not isinstance(partial, PartialTarget):
            return Denial("INVALID_PARTIALS", f"partial target {index + 1} {partial!r} is not a partial target")
        denial = validate_distance(partial.distance, f"partial target {index + 1} distance")
        if denial is not None:
            return Denial("INVALID_PARTIALS", denial.message)
        fraction = partial.fraction
        if not (_is_number(fraction) and math.isfinite(fraction) and 0 < fraction < 1):
            return Denial(
                "INVALID_PARTIALS", f"partial target {index + 1} fraction {fraction!r} must be between 0 and 1"
            )
        total += fraction
    if total >= 1:
        return Denial(
            "INVALID_PARTIALS",
            f"partial target fractions add up to {total:g}; they must stay below 1 so a part is left for the target",
        )
    return None


def validate_trade_risk(risk: TradeRisk) -> Denial | None:
    for value, name in (
        (risk.stop_loss, "stop_loss"),
        (risk.target, "target"),
        (risk.breakeven_after, "breakeven_after"),
    ):
        if value is not None:
            denial = validate_distance(value, name)
            if denial is not None:
                return denial
    if risk.trailing is not None:
        denial = validate_trailing(risk.trailing)
        if denial is not None:
            return denial
    return validate_partial_targets(risk.partial_targets)


def validate_amount(amount: object, name: str, allocated_funds: float) -> Denial | None:
    """A positive finite ``Amount``; PERCENT needs allocated funds."""
    if not isinstance(amount, Amount) or invalid_enum(amount.mode, AmountMode, "amount mode") is not None:
        return Denial("INVALID_AMOUNT", f"{name} {amount!r} must be an amount in AMOUNT (rupees) or PERCENT")
    value = amount.value
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        return Denial("INVALID_AMOUNT", f"{name} {value!r} must be a finite number greater than 0")
    if amount.mode is AmountMode.PERCENT and allocated_funds <= 0:
        return Denial("INVALID_AMOUNT", f"{name} in PERCENT needs allocated funds greater than 0")
    return None


def validate_portfolio_risk(risk: PortfolioRisk, allocated_funds: float) -> Denial | None:
    for value, name in (
        (risk.stop_loss, "portfolio stop_loss"),
        (risk.target, "portfolio target"),
        (risk.trailing_activation, "portfolio trailing_activation"),
        (risk.trailing_distance, "portfolio trailing_distance"),
        (risk.daily_loss_limit, "portfolio daily_loss_limit"),
    ):
        if value is not None:
            denial = validate_amount(value, name, allocated_funds)
            if denial is not None:
                return denial
    if (risk.trailing_activation is None) != (risk.trailing_distance is None):
        return Denial(
            "INVALID_PORTFOLIO", "the portfolio trailing lock needs both trailing_activation and trailing_distance"
        )
    return None


def validate_sizing(sizing: Sizing, allocated_funds: float) -> Denial | None:
    if invalid_enum(sizing.mode, SizingMode, "sizing mode") is not None:
        return Denial("INVALID_SIZING", f"sizing mode {sizing.mode!r} is not one of {', '.join(SizingMode.__members__)}")
    value = sizing.value
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        return Denial("INVALID_SIZING", f"sizing value {value!r} must be a finite number greater than 0")
    if sizing.mode is SizingMode.FIXED_QUANTITY and value != int(value):
        return Denial("INVALID_SIZING", f"FIXED_QUANTITY sizing value {value!r} must be a whole number")
    if sizing.mode is SizingMode.PERCENT_ALLOCATION:
        if value > 100:
            return Denial("INVALID_SIZING", f"PERCENT_ALLOCATION {value:g} must not exceed 100")
        if allocated_funds <= 0:
            return Denial("INVALID_SIZING", "PERCENT_ALLOCATION sizing needs allocated funds greater than 0")
    return None


def validate_exit_order(settings: ExitOrderSettings) -> Denial | None:
    if invalid_enum(settings.price_type, PriceType, "price type") is not None:
        return Denial("INVALID_EXIT_ORDER", f"exit price type {settings.price_type!r} must be MARKET or LIMIT")
    pct = settings.protection_percent
    if not (_is_number(pct) and math.isfinite(pct) and 0 <= pct < 20):
        return Denial("INVALID_EXIT_ORDER", f"protection_percent {pct!r} must be at least 0 and below 20")
    after = settings.reprice_after_seconds
    if not (_is_number(after) and math.isfinite(after) and after > 0):
        return Denial("INVALID_EXIT_ORDER", f"reprice_after_seconds {after!r} must be greater than 0")
    reprices = settings.max_reprices
    if isinstance(reprices, bool) or not isinstance(reprices, int) or reprices < 0:
        return Denial("INVALID_EXIT_ORDER", f"max_reprices {reprices!r} must be a whole number, 0 or more")
    return None


def validate_strategy_name(name: object) -> Denial | None:
    if not isinstance(name, str) or not name.strip():
        return Denial("INVALID_STRATEGY", f"strategy name {name!r} must be a non-empty text")
    if name != name.strip() or not name.isprintable() or len(name) > MAX_STRATEGY_NAME:
        return Denial(
            "INVALID_STRATEGY",
            f"strategy name {name!r} must be printable, without leading or trailing spaces, "
            f"at most {MAX_STRATEGY_NAME} characters",
        )
    return None


def _optional_count(value: object, name: str) -> Denial | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return Denial("INVALID_STRATEGY", f"{name} {value!r} must be a whole number greater than 0 (or unset)")
    return None


def validate_strategy(strategy: Strategy) -> Denial | None:
    """Every setting of a strategy, and the ones that depend on each other."""
    funds = strategy.allocated_funds
    checks = (
        lambda: validate_strategy_name(strategy.name),
        lambda: None
        if _is_number(funds) and math.isfinite(funds) and funds >= 0
        else Denial("INVALID_STRATEGY", f"allocated_funds {funds!r} must be a finite amount, 0 or more"),
        lambda: invalid_enum(strategy.product, Product, "product"),
        lambda: validate_exchange(strategy.exchange),
        lambda: _optional_count(strategy.max_open_positions, "max_open_positions"),
        lambda: _optional_count(strategy.max_trades_per_day, "max_trades_per_day"),
        lambda: validate_trade_risk(strategy.trade_risk),
        lambda: validate_portfolio_risk(strategy.portfolio, funds),
        lambda: validate_sizing(strategy.sizing, funds),
        lambda: validate_exit_order(strategy.exit_order),
    )
    for check in checks:
        denial = check()
        if denial is not None:
            return denial
    return None


def validate_account_limits(daily_loss_limit: object, daily_profit_target: object) -> Denial | None:
    for value, name in ((daily_loss_limit, "daily_loss_limit"), (daily_profit_target, "daily_profit_target")):
        if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
            return Denial("INVALID_LIMIT", f"account {name} {value!r} must be a finite amount greater than 0")
    return None


# --------------------------------------------------------------------------- commands


def validate_create_trade(
    command: CreateTrade, current_price: float | None = None, lot_size: int = 1
) -> Denial | None:
    """A new trade: instrument, side, quantity, prices, and levels against entry and current price."""
    denial = (
        validate_symbol(command.symbol)
        or validate_exchange(command.exchange)
        or invalid_enum(command.side, Side, "side")
        or (invalid_enum(command.product, Product, "product") if command.product is not None else None)
        or invalid_enum(command.price_type, PriceType, "price type")
        or (validate_quantity(command.quantity, lot_size) if command.quantity is not None else None)
        or (validate_price(command.entry_price, "entry price") if command.entry_price is not None else None)
        or (validate_price(current_price, "current price") if current_price is not None else None)
        or validate_strategy_name(command.strategy)
    )
    if denial is not None:
        return denial
    if command.price_type is PriceType.LIMIT or command.price_type == "LIMIT":
        if command.limit_price is None:
            return Denial("INVALID_PRICE", "a LIMIT entry needs a limit price")
        denial = validate_price(command.limit_price, "limit price")
        if denial is not None:
            return denial
    elif command.limit_price is not None:
        return Denial("INVALID_PRICE", "a limit price is only allowed with a LIMIT entry")
    side = Side(command.side)
    entry = command.entry_price
    if entry is None and command.price_type == PriceType.LIMIT:
        entry = command.limit_price
    denial = validate_levels(side, entry, current_price, command.stop_loss, command.target)
    if denial is not None:
        return denial
    if command.trailing is not None:
        denial = validate_trailing(command.trailing)
        if denial is not None:
            return denial
    denial = validate_breakeven_after(command.breakeven_after)
    if denial is not None:
        return denial
    if command.partial_targets is not None:
        return validate_partial_targets(command.partial_targets)
    return None


def validate_breakeven_after(value: object) -> Denial | None:
    """A trade's ``breakeven_after``: UNSET (leave / strategy default), None (off) or a distance > 0."""
    if value is UNSET or value is None:
        return None
    return validate_distance(value, "breakeven_after")


def validate_modify_trade(command: ModifyTrade, trade: Trade) -> Denial | None:
    """New levels of an open trade.

    The stop must stay on the loss side of the current price; it may be moved
    beyond the entry (locking in profit) as breakeven and trailing do.  Without
    a known current price the stop must lie on the loss side of the entry.  The
    target must lie beyond both the entry and the current price.
    """
    current = trade.last_price if trade.last_price > 0 else None
    if command.stop_loss is not UNSET and command.stop_loss is not None:
        # Without a current price there is nothing to lock profit against: the entry rules.
        lock = current is not None
        denial = validate_stop(trade.side, command.stop_loss, trade.entry_price, current, allow_profit_lock=lock)
        if denial is not None:
            return denial
    if command.target is not UNSET and command.target is not None:
        denial = validate_target(trade.side, command.target, trade.entry_price, current)
        if denial is not None:
            return denial
    if command.trailing is not UNSET and command.trailing is not None:
        if not isinstance(command.trailing, TrailingSettings):
            return Denial("INVALID_TRAILING", f"trailing {command.trailing!r} is not a trailing setting")
        denial = validate_trailing(command.trailing)
        if denial is not None:
            return denial
    denial = validate_breakeven_after(command.breakeven_after)
    if denial is not None:
        return denial
    if command.partial_targets is not UNSET:
        if command.partial_targets is None:
            return None
        if not isinstance(command.partial_targets, tuple):
            return Denial("INVALID_PARTIALS", f"partial targets {command.partial_targets!r} must be a tuple")
        return validate_partial_targets(command.partial_targets)
    return None
