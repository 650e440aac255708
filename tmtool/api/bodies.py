"""The control API's request bodies as pydantic models: what FastAPI validates and publishes.

One model per verb.  Numbers, whole numbers and flags are the config file's
strict value types (``tmtool.config``): a text is never taken for a number nor
a number for a flag, and NaN/Infinity are refused.  Unknown fields are refused.
Optional fields that may not be null default to ``None`` without admitting
null; fields where null means "clear" say so.  ``present`` turns a validated
body into the plain dict the verb handlers read: the fields that were sent,
plus the defaults that carry meaning (a mode, a limit), never a field that was
left out.

``describe_error`` words pydantic's first error as ``field: reason`` (dotted
path, ``[i]`` for list items) without ever echoing the value that was sent.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from tmtool.config import Flag, Number, Whole
from tmtool.domain.models import EXCHANGES, AlertCategory, AlertPriority, DistanceMode, PriceType, Product

MAX_PRICE = 10_000_000.0
MAX_QUANTITY = 10_000_000
MAX_TRADE_ID = 2**53
NO_CONTROL_CHARS = "^[^\\u0000-\\u001f\\u007f]+$"
SYMBOL_PATTERN = "^[A-Z0-9&_.:-]+$"
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

Mode = Literal[tuple(m.value for m in DistanceMode)]
Positive = Annotated[Number, Field(gt=0, le=MAX_PRICE)]
TradeId = Annotated[Whole, Field(ge=1, le=MAX_TRADE_ID)]


def _drop_null_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omitted(description: str = "", **constraints: Any) -> Any:
    """A field that may be left out (then the handler does not see it) but, unless typed so, not null."""
    return Field(default=None, description=description, json_schema_extra=_drop_null_default, **constraints)


def _calendar_date(value: object) -> date:
    if not isinstance(value, str) or not DATE_PATTERN.match(value):
        raise PydanticCustomError("date_text", "must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date_text", "is not a real calendar date") from None


CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]


def Text(max_length: int, pattern: str = NO_CONTROL_CHARS) -> Any:  # noqa: N802 - reads as a type
    return Annotated[str, Field(strict=True, min_length=1, max_length=max_length, pattern=pattern)]


class Body(BaseModel):
    """A JSON object with exactly the declared fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class KeyedBody(Body):
    """A verb's body: ``apikey`` is required over TCP; on the Unix socket the socket's permissions stand for it."""

    apikey: Annotated[str, Field(strict=True, max_length=256)] | None = omitted(
        "the control API key (required over TCP; not needed on the Unix socket)"
    )


class DistanceBody(Body):
    distance: Positive = Field(description="distance (PERCENT: of the price it is measured from)")
    mode: Mode = Field(default="POINTS", description="POINTS or PERCENT")


class TrailingBody(Body):
    """Trailing stop; every distance in it is in ``mode`` units."""

    distance: Positive = Field(
        description="how far the stop trails the best price (PERCENT: of the best price; step trailing: the "
        "first stop, from the entry price)"
    )
    mode: Mode = Field(default="POINTS", description="POINTS or PERCENT")
    activation: Positive = omitted("trailing starts once the price moved this far in favour (PERCENT: of the entry price)")
    step_trigger: Positive = omitted(
        "step trailing: each further move of this size (PERCENT: of the previous step's trigger price, the first "
        "from the entry price) ..."
    )
    step_move: Positive = omitted("... moves the stop by this much (PERCENT: of the stop's level); give both step fields or neither")


class PartialTargetBody(Body):
    distance: Positive = Field(description="distance in favour of entry")
    mode: Mode = Field(default="POINTS", description="POINTS or PERCENT")
    fraction: Annotated[Number, Field(gt=0, le=1)] = Field(description="fraction of the entry quantity")


class BreakevenBody(Body):
    """Move the stop to the entry price once the price is this far in profit."""

    distance: Positive = Field(description="profit that arms breakeven (PERCENT: of the entry price)")
    mode: Mode = Field(default="POINTS", description="POINTS or PERCENT")


PartialTargets = Annotated[list[PartialTargetBody], Field(max_length=10)]
Exchange = Literal[tuple(sorted(EXCHANGES))]


class _LevelDistances(Body):
    stop_loss_distance: Positive = omitted("stop as a distance from the entry price (instead of stop_loss)")
    target_distance: Positive = omitted("target as a distance from the entry price (instead of target)")
    distance_mode: Mode = Field(
        default="POINTS", description="unit of stop_loss_distance and target_distance: POINTS or PERCENT of the entry price"
    )


class CreateTradeBody(KeyedBody, _LevelDistances):
    """Three ways: ``orderid`` adopts a filled order; ``entry_price`` adopts a held position; otherwise
    tmtool places the entry (MARKET, or LIMIT at ``price``) sized by ``quantity`` or the strategy.
    Levels not given come from the strategy's defaults (``breakeven_after``: null switches the
    strategy's breakeven off for this trade)."""

    strategy: Text(64) = Field(description="strategy name (manual for hand-entered trades)")
    symbol: Text(40, SYMBOL_PATTERN) = Field(description="OpenAlgo symbol, e.g. RELIANCE")
    exchange: Exchange = Field(description="exchange")
    action: Literal["BUY", "SELL"] = Field(description="BUY opens a LONG trade, SELL a SHORT one")
    product: Literal[tuple(p.value for p in Product)] = omitted("MIS, CNC or NRML (default: the strategy's)")
    quantity: Annotated[Whole, Field(ge=1, le=MAX_QUANTITY)] = omitted("units to enter (default: the strategy's sizing)")
    pricetype: Literal[tuple(p.value for p in PriceType)] = Field(default="MARKET", description="entry order type when tmtool places it")
    price: Positive = omitted("limit price of a LIMIT entry")
    orderid: Text(64) = omitted("adopt this filled OpenAlgo order (tmtool reads its fill)")
    entry_price: Positive = omitted("adopt a position already held at this price (no order is sent)")
    stop_loss: Positive = omitted("absolute stop price")
    target: Positive = omitted("absolute target price")
    trailing: TrailingBody = omitted("trailing stop")
    partial_targets: PartialTargets = omitted("scale-out levels; fractions of the entry quantity add up to less than 1")
    breakeven_after: BreakevenBody | None = omitted(
        "move the stop to the entry price once the price is this far in profit; null: no breakeven for this trade"
    )
    note: Annotated[str, Field(strict=True, max_length=200)] = omitted("free text kept with the trade")


class UpdateTradeBody(KeyedBody, _LevelDistances):
    """Fields left out stay as they are. ``stop_loss_distance``, ``target_distance`` and
    ``breakeven_after`` are measured from the trade's entry price."""

    trade_id: TradeId = Field(description="tmtool's trade id")
    stop_loss: Positive | None = omitted("absolute stop price; null clears the stop")
    target: Positive | None = omitted("absolute target price; null clears the target")
    trailing: TrailingBody | None = omitted("trailing settings; null turns trailing off")
    partial_targets: PartialTargets = omitted("scale-out levels; fractions of the entry quantity add up to less than 1")
    breakeven_after: BreakevenBody | None = omitted(
        "move the stop to the entry price once the price is this far in profit; null: no breakeven for this trade"
    )


class TradeIdBody(KeyedBody):
    trade_id: TradeId = Field(description="tmtool's trade id")


class StrategyFilterBody(KeyedBody):
    strategy: Text(64) = omitted("strategy name")


class ExitAllBody(StrategyFilterBody):
    """With ``panic``: new entries are refused (code PANIC_HALT) in every strategy, across restarts,
    until ``rearm``; ``health`` shows ``entries_halted``."""

    panic: Flag = omitted("the kill switch: also halt new entries in every strategy until `rearm` (not with `strategy`)")


class SaveStrategyBody(KeyedBody):
    """A strategy exactly as a ``[[strategy]]`` table of the config file (the same keys and
    checks; see config.example.toml).  A strategy of that name is replaced."""

    strategy: dict[str, Any] = Field(
        description="the strategy as the config file's [[strategy]] table: name, trade_risk, portfolio, sizing, ..."
    )


class DeleteStrategyBody(KeyedBody):
    """A strategy with open trades is refused unless ``open_trades`` is ``exit`` (each exits with
    reason STRATEGY_DELETED; the strategy goes once they close) or ``move`` (to ``move_to``)."""

    name: Text(64) = Field(description="the strategy's name")
    open_trades: Literal["refuse", "exit", "move"] = Field(default="refuse", description="what to do with its open trades")
    move_to: Text(64) = omitted("with open_trades move: the strategy that takes them")


class NoFieldsBody(KeyedBody):
    """Only the key."""


class ActiveTradesBody(StrategyFilterBody):
    symbol: Text(40, SYMBOL_PATTERN) = omitted("OpenAlgo symbol, e.g. RELIANCE")
    exchange: Exchange = omitted("exchange")


class AcknowledgeAlertsBody(KeyedBody):
    ids: Annotated[list[Annotated[Whole, Field(ge=1, le=MAX_TRADE_ID)]], Field(min_length=1, max_length=1000)] = omitted(
        "alert ids"
    )
    all: Flag = omitted("acknowledge every alert")
    dismiss: Flag = omitted("also remove them from the recent list")


class AlertsBody(KeyedBody):
    limit: Annotated[Whole, Field(ge=1, le=500)] = Field(default=50, description="how many")
    priority: Literal[tuple(p.value for p in AlertPriority)] = omitted("only this priority")
    category: Literal[tuple(c.value for c in AlertCategory)] = omitted("only this category")
    unacknowledged_only: Flag = omitted("leave out acknowledged alerts")


class _DateRange(KeyedBody):
    start_date: CalendarDate = omitted("first day (Asia/Kolkata), YYYY-MM-DD, inclusive")
    end_date: CalendarDate = omitted("last day (Asia/Kolkata), YYYY-MM-DD, inclusive")
    strategy: Text(64) = omitted("strategy name")


class TradeHistoryBody(_DateRange):
    limit: Annotated[Whole, Field(ge=1, le=10_000)] = Field(default=1000, description="at most this many (the latest)")


class AnalyticsBody(_DateRange):
    include_trades: Flag = omitted("include the per-trade results (default true)")


class InstrumentBody(KeyedBody):
    symbol: Text(40, SYMBOL_PATTERN) = Field(description="OpenAlgo symbol, e.g. RELIANCE")
    exchange: Exchange = Field(description="exchange")


class HealthBody(Body):
    apikey: Annotated[str, Field(strict=True, max_length=256)] = omitted("ignored")


class SuccessReply(BaseModel):
    status: Literal["success"]
    data: Any


class ErrorReply(BaseModel):
    status: Literal["error"]
    message: str
    code: str | None = omitted("the engine's refusal code")
    retry_after: int | None = omitted("seconds to wait (429)")


# --------------------------------------------------------------------------- turning bodies into handler input


def present(body: BaseModel | None) -> dict[str, Any]:
    """The fields that were sent (nested bodies too), plus defaults that are not None; never ``apikey``."""
    if body is None:
        return {}
    values: dict[str, Any] = {}
    for name, info in type(body).model_fields.items():
        if name == "apikey":
            continue
        if name in body.model_fields_set:
            values[name] = _plain(getattr(body, name))
        elif info.default is not None and not info.is_required():
            values[name] = info.default
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return present(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------- error wording


def _path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _choices(expected: str) -> str:
    return ", ".join(re.findall(r"'([^']*)'", expected)) or expected


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _reason(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    reasons = {
        "missing": lambda: "is required",
        "extra_forbidden": lambda: "unknown field",
        "greater_than": lambda: f"must be greater than {_number(ctx['gt'])}",
        "greater_than_equal": lambda: f"must be at least {_number(ctx['ge'])}",
        "less_than": lambda: f"must be less than {_number(ctx['lt'])}",
        "less_than_equal": lambda: f"must be at most {_number(ctx['le'])}",
        "int_type": lambda: "must be a whole number",
        "int_from_float": lambda: "must be a whole number",
        "float_type": lambda: "must be a number",
        "finite_number": lambda: "must be a finite number",
        "bool_type": lambda: "must be true or false",
        "string_type": lambda: "must be a string",
        "string_too_short": lambda: f"must be at least {ctx.get('min_length')} characters long",
        "string_too_long": lambda: f"must be at most {ctx.get('max_length')} characters long",
        "string_pattern_mismatch": lambda: f"must match the pattern {ctx.get('pattern')}",
        "literal_error": lambda: f"must be one of {_choices(str(ctx.get('expected', '')))}",
        "model_type": lambda: "must be a JSON object",
        "model_attributes_type": lambda: "must be a JSON object",
        "dict_type": lambda: "must be a JSON object",
        "list_type": lambda: "must be an array",
        "too_short": lambda: f"must hold at least {ctx.get('min_length')} items",
        "too_long": lambda: f"must hold at most {ctx.get('max_length')} items",
    }
    if error.get("input", ...) is None and kind != "missing":
        return "must not be null"
    wording = reasons.get(kind)
    if wording is not None:
        return wording()
    return str(error.get("msg", "is not valid"))


def describe_error(errors: list[dict[str, Any]]) -> str:
    """``field: reason`` for the first error (FastAPI's ``body`` prefix left out)."""
    if not errors:
        return "invalid request"
    error = errors[0]
    location = tuple(error.get("loc", ()))
    if location and location[0] == "body":
        location = location[1:]
    path = _path(location)
    reason = _reason(error)
    return f"{path}: {reason}" if path else reason
