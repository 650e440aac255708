"""The control API's verbs: each one's body schema and its handler.

A handler receives the validated body (``apikey`` removed) and a ``VerbContext``;
it returns the reply's ``data`` or raises ``ApiError``.  Commands go through
``engine.submit`` (the engine's inbox) and wait on the Future with a timeout;
reads use the engine's snapshot and history calls.

Engine refusals (``Denied``) map to HTTP statuses by code: codes naming
something unknown (``UNKNOWN_...``, ``NOT_FOUND``) → 404, codes starting with
``INVALID`` (a value the engine found wrong, e.g. a stop on the wrong side of
the price) → 400, ``NOT_RUNNING`` → 503, ``BROKER_ERROR`` → 502 (OpenAlgo
failed), ``INTERNAL_ERROR`` → 500 (a bug), every other refusal (halted
strategy, exit already in flight, funds, square-off passed, ...) → 409
Conflict.  The reply carries the engine's ``code``.
"""

from __future__ import annotations

from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

from pydantic import BaseModel

from tmtool.api import bodies
from tmtool.api.serialize import to_json
from tmtool.domain import analytics
from tmtool.domain.calendar import IST
from tmtool.clock import Clock
from tmtool.domain.commands import (
    UNSET,
    AcknowledgeAlerts,
    Accepted,
    Command,
    CreateTrade,
    DeleteStrategy,
    Denied,
    ExitAll,
    ExitTrade,
    ModifyTrade,
    PauseTrade,
    Rearm,
    Result,
    ResumeTrade,
    SaveStrategy,
)
from tmtool.config import ConfigError, strategy_from_table
from tmtool.domain.models import (
    EXCHANGES,
    AlertCategory,
    AlertPriority,
    Denial,
    Distance,
    DistanceMode,
    ExitReason,
    PartialTarget,
    PriceType,
    Product,
    Side,
    Trade,
    TrailingSettings,
)
from tmtool.engine.ports import EngineHandle
from tmtool.engine.snapshot import StrategyView, TradeView
from tmtool.domain.validation import validate_create_trade, validate_distance, validate_modify_trade

ACTIONS = {"BUY": Side.LONG, "SELL": Side.SHORT}


class ValidationError(ValueError):
    """A body that passed its model but breaks a rule across fields: ``field`` (dotted path) and ``reason``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class ApiError(Exception):
    """A request that cannot be served: HTTP ``status``, a message, an optional code."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class VerbContext:
    engine: EngineHandle
    clock: Clock
    command_timeout: float


@dataclass(frozen=True)
class Verb:
    """A verb: its body model (validated and published by the server) and its handler."""

    name: str
    summary: str
    body: type[BaseModel]
    handler: Callable[[VerbContext, dict[str, Any]], Any]
    needs_key: bool = True
    statuses: tuple[int, ...] = (400, 403, 429)


# --------------------------------------------------------------------------- shared helpers


def _wait(ctx: VerbContext, command: Command) -> Accepted:
    """Submit a command to the engine's inbox and wait for its answer."""
    return _await(ctx, lambda: ctx.engine.submit(command))


def _await(ctx: VerbContext, send: Callable[[], Future[Result]]) -> Accepted:
    """Hand something to the engine (``send`` returns its Future) and wait for the answer."""
    try:
        future: Future[Result] = send()
    except RuntimeError as exc:  # the engine has stopped taking commands
        raise ApiError(503, f"the engine is not accepting commands: {exc}") from None
    try:
        result = future.result(timeout=ctx.command_timeout)
    except FutureTimeout:
        raise ApiError(
            504,
            f"the engine did not answer within {ctx.command_timeout:g} s; the command may still be "
            "applied — check activetrades before sending it again",
        ) from None
    if isinstance(result, Denied):
        raise ApiError(_denied_status(result.code), result.message, result.code)
    if not isinstance(result, Accepted):
        raise ApiError(500, "the engine gave an unexpected answer")
    return result


_DENIED_STATUSES = {"NOT_RUNNING": 503, "BROKER_ERROR": 502, "INTERNAL_ERROR": 500}


def _denied_status(code: str) -> int:
    if code in _DENIED_STATUSES:
        return _DENIED_STATUSES[code]
    if code.startswith("UNKNOWN") or code == "NOT_FOUND":
        return 404
    if code.startswith("INVALID"):
        return 400
    return 409


def _accepted_data(result: Accepted) -> dict[str, Any]:
    data: dict[str, Any] = {"message": result.message}
    if result.trade_id is not None:
        data["trade_id"] = result.trade_id
    if result.trade_ids:
        data["trade_ids"] = list(result.trade_ids)
    return data


def _refuse(denial: Denial | None) -> None:
    """An engine validation's refusal becomes a 400 carrying its code."""
    if denial is not None:
        raise ApiError(400, denial.message, denial.code)


def _trailing(body: dict[str, Any] | None) -> TrailingSettings | None:
    if body is None:
        return None
    mode = DistanceMode(body["mode"])

    def distance(name: str) -> Distance | None:
        return Distance(body[name], mode) if name in body else None

    return TrailingSettings(
        distance=Distance(body["distance"], mode),
        activation=distance("activation"),
        step_trigger=distance("step_trigger"),
        step_move=distance("step_move"),
    )


def _breakeven(body: dict[str, Any]) -> object:
    """A body's ``breakeven_after``: UNSET when left out, None for null, else a ``Distance``."""
    if "breakeven_after" not in body:
        return UNSET
    given = body["breakeven_after"]
    return None if given is None else Distance(given["distance"], DistanceMode(given["mode"]))


def _partial_targets(items: list[dict[str, Any]]) -> tuple[PartialTarget, ...]:
    return tuple(PartialTarget(Distance(i["distance"], DistanceMode(i["mode"])), i["fraction"]) for i in items)


def _level_from_distance(
    body: dict[str, Any], name: str, side: Side, reference: float, favourable: bool
) -> float:
    """An absolute level ``body[name]`` away from ``reference`` (towards profit when ``favourable``)."""
    distance = Distance(body[name], DistanceMode(body["distance_mode"]))
    denial = validate_distance(distance, name)
    if denial is not None:
        raise ValidationError(name, denial.message)
    direction = side.sign if favourable else -side.sign
    level = reference + direction * distance.points(reference)
    if level <= 0:
        raise ValidationError(name, "puts the level at or below zero")
    return level


def _absolute_levels(
    body: dict[str, Any], side: Side, reference: float | None, reference_hint: str
) -> tuple[object, object]:
    """(stop_loss, target) from absolute prices or distances; UNSET when neither is given."""
    levels: list[object] = []
    for absolute, distance, favourable in (("stop_loss", "stop_loss_distance", False), ("target", "target_distance", True)):
        if absolute in body and distance in body:
            raise ValidationError(distance, f"give either {absolute} or {distance}, not both")
        if distance in body:
            if reference is None:
                raise ValidationError(distance, reference_hint)
            levels.append(_level_from_distance(body, distance, side, reference, favourable))
        else:
            levels.append(body.get(absolute, UNSET))
    return levels[0], levels[1]


def _trade_for_checks(view: TradeView) -> Trade:
    """The fields of an open trade that the level checks read, rebuilt from its view."""
    return Trade(
        id=view.id,
        strategy=view.strategy,
        symbol=view.symbol,
        exchange=view.exchange,
        product=view.product,
        side=view.side,
        quantity=view.quantity,
        entry_price=view.entry_price,
        status=view.status,
        last_price=view.ltp,
    )


def _day_bounds(start: date | None, end: date | None) -> tuple[float | None, float | None]:
    if start is not None and end is not None and start > end:
        raise ValidationError("end_date", "must not be before start_date")
    start_ts = datetime.combine(start, datetime.min.time(), IST).timestamp() if start else None
    end_ts = datetime.combine(end + timedelta(days=1), datetime.min.time(), IST).timestamp() if end else None
    return start_ts, end_ts


def _closed_trades(ctx: VerbContext, body: dict[str, Any]) -> list:
    start_ts, end_ts = _day_bounds(body.get("start_date"), body.get("end_date"))
    trades = ctx.engine.closed_trades(start=start_ts, end=end_ts, strategy=body.get("strategy"))

    def inside(trade) -> bool:
        closed = trade.closed_at
        if closed is None:
            return start_ts is None and end_ts is None
        return (start_ts is None or closed >= start_ts) and (end_ts is None or closed < end_ts)

    strategy = body.get("strategy")
    return [t for t in trades if inside(t) and (strategy is None or t.strategy == strategy)]


# --------------------------------------------------------------------------- handlers


def create_trade(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    side = ACTIONS[body["action"]]
    order_id, entry_price = body.get("orderid"), body.get("entry_price")
    price_type = PriceType(body["pricetype"])
    if order_id is not None and entry_price is not None:
        raise ValidationError("entry_price", "give either orderid (a filled order) or entry_price (a held position)")
    if order_id is not None or entry_price is not None:
        given = "orderid" if order_id is not None else "entry_price"
        for name in ("price", "pricetype"):
            if name in body and (name == "price" or price_type is not PriceType.MARKET):
                raise ValidationError(name, f"only applies when tmtool places the entry (not with {given})")
    if price_type is PriceType.LIMIT and "price" not in body:
        raise ValidationError("price", "is required for a LIMIT entry")
    if price_type is PriceType.MARKET and "price" in body:
        raise ValidationError("price", "only applies to a LIMIT entry")
    reference = entry_price if entry_price is not None else body.get("price")
    stop_loss, target = _absolute_levels(
        body,
        side,
        reference,
        "needs a known entry price (entry_price, or a LIMIT price); use an absolute level "
        "or leave it to the strategy's default distance, which is applied from the fill",
    )
    command = CreateTrade(
        strategy=body["strategy"],
        symbol=body["symbol"],
        exchange=body["exchange"],
        side=side,
        product=Product(body["product"]) if "product" in body else None,
        quantity=body.get("quantity"),
        price_type=price_type,
        limit_price=body.get("price"),
        order_id=order_id,
        entry_price=entry_price,
        stop_loss=None if stop_loss is UNSET else stop_loss,
        target=None if target is UNSET else target,
        trailing=_trailing(body.get("trailing")),
        partial_targets=_partial_targets(body["partial_targets"]) if "partial_targets" in body else None,
        breakeven_after=_breakeven(body),
        note=body.get("note", ""),
    )
    _refuse(validate_create_trade(command))
    return _accepted_data(_wait(ctx, command))


def update_trade(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    trade_id = body["trade_id"]
    level_names = (
        "stop_loss", "target", "stop_loss_distance", "target_distance", "trailing", "partial_targets", "breakeven_after",
    )
    if not any(name in body for name in level_names):
        raise ValidationError("", f"give at least one of {', '.join(level_names)}")
    view = ctx.engine.snapshot().trade(trade_id)
    uses_distance = "stop_loss_distance" in body or "target_distance" in body
    if uses_distance and (view is None or not view.status.is_open):
        raise ApiError(404, f"trade {trade_id} is not an open trade")
    if view is None:  # the engine answers for a trade the latest snapshot does not show yet
        stop_loss, target = body.get("stop_loss", UNSET), body.get("target", UNSET)
    else:
        stop_loss, target = _absolute_levels(
            body, view.side, view.entry_price or None, "needs the trade's entry price, which is not known yet"
        )
    command = ModifyTrade(
        trade_id=trade_id,
        stop_loss=stop_loss,
        target=target,
        trailing=_trailing(body["trailing"]) if "trailing" in body else UNSET,
        partial_targets=_partial_targets(body["partial_targets"]) if "partial_targets" in body else UNSET,
        breakeven_after=_breakeven(body),
    )
    if view is not None:
        _refuse(validate_modify_trade(command, _trade_for_checks(view)))
    return _accepted_data(_wait(ctx, command))


def exit_trade(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    return _accepted_data(_wait(ctx, ExitTrade(body["trade_id"], ExitReason.MANUAL)))


def exit_all(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    command = ExitAll(strategy=body.get("strategy"), reason=ExitReason.PANIC, panic=body.get("panic", False))
    return _accepted_data(_wait(ctx, command))


def rearm(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    return _accepted_data(_wait(ctx, Rearm()))


def pause_trade(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    return _accepted_data(_wait(ctx, PauseTrade(body["trade_id"])))


def resume_trade(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    return _accepted_data(_wait(ctx, ResumeTrade(body["trade_id"])))


def adopt_positions(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    result = _await(ctx, ctx.engine.adopt_positions)
    return {"message": result.message, "trade_ids": list(result.trade_ids)}


def save_strategy(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    try:
        strategy = strategy_from_table(body["strategy"])
    except ConfigError as exc:
        # the engine's own code; the config's words without the value sent (the API never echoes one)
        reason = exc.reason.split(" is not allowed: ", 1)[-1]
        raise ApiError(400, f"{exc.key}: {reason}", "INVALID_STRATEGY") from None
    return _accepted_data(_wait(ctx, SaveStrategy(strategy)))


def delete_strategy(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    open_trades, move_to = body.get("open_trades", "refuse"), body.get("move_to")
    if (open_trades == "move") != (move_to is not None):
        raise ValidationError("move_to", "give move_to exactly when open_trades is move")
    return _accepted_data(_wait(ctx, DeleteStrategy(body["name"], open_trades, move_to)))


def acknowledge_alerts(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    ids, everything = body.get("ids"), body.get("all", False)
    if (ids is None) == (not everything):
        raise ValidationError("ids", "give either ids (a non-empty list) or all: true")
    command = AcknowledgeAlerts(alert_ids=tuple(ids or ()), dismiss=body.get("dismiss", False))
    return _accepted_data(_wait(ctx, command))


def active_trades(ctx: VerbContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    def wanted(trade: TradeView) -> bool:
        return all(body.get(name) in (None, getattr(trade, name)) for name in ("strategy", "symbol", "exchange"))

    return [to_json(t) for t in ctx.engine.snapshot().open_trades if wanted(t)]


def alerts(ctx: VerbContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    found = ctx.engine.alert_history(
        category=body.get("category"), priority=body.get("priority"), limit=body["limit"]
    )
    if body.get("unacknowledged_only", False):
        found = [a for a in found if not a.acknowledged]
    return [to_json(a) for a in found]


def trade_history(ctx: VerbContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    trades = _closed_trades(ctx, body)
    trades.sort(key=lambda t: (t.closed_at or 0.0, t.id))
    return [to_json(t) for t in trades[-body["limit"]:]]


def analytics_report(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    trades = analytics.counted_trades(_closed_trades(ctx, body))
    stops = {}
    for trade in trades:
        stop = analytics.initial_stop_from_events(ctx.engine.trade_events(trade.id))
        if stop is not None:
            stops[trade.id] = stop
    report = to_json(analytics.analyse(trades, stops))
    if not body.get("include_trades", True):
        del report["trades"]
    return report


def trade_events(ctx: VerbContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    return [to_json(event) for event in ctx.engine.trade_events(body["trade_id"])]


def instrument(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    try:
        found = ctx.engine.instrument(body["exchange"], body["symbol"])
    except ValueError as exc:
        raise ApiError(404, str(exc), "UNKNOWN_INSTRUMENT") from None
    return to_json(found)


def strategies(ctx: VerbContext, body: dict[str, Any]) -> list[dict[str, Any]]:
    def view(strategy: StrategyView) -> dict[str, Any]:
        data = to_json(strategy)
        allocated = strategy.allocated_funds
        data["fund_utilisation_percent"] = round(100.0 * strategy.funds_used / allocated, 2) if allocated > 0 else None
        return data

    return [view(s) for s in ctx.engine.snapshot().strategies]


def health(ctx: VerbContext, body: dict[str, Any]) -> dict[str, Any]:
    try:
        snapshot = ctx.engine.snapshot()
    except Exception:  # a broken engine is exactly what health must report, not raise
        return {"ok": False, "engine": "DOWN"}
    system = snapshot.system
    ok = system.engine_running and system.db_state == "OK" and system.broker_state == "OK"
    return {
        "ok": ok,
        "engine": "RUNNING" if system.engine_running else "STOPPED",
        "snapshot_age_seconds": round(max(0.0, ctx.clock.time() - snapshot.ts), 3),
        "feed": system.feed_state.value,
        "last_tick_age_seconds": system.last_tick_age,
        "stale_symbols": len(system.stale_symbols),
        "broker": system.broker_state,
        "server_mode": system.server_mode,
        "database": system.db_state,
        "database_pending_writes": system.db_pending,
        "open_trades": len(snapshot.open_trades),
        "simulated": system.simulated,
        "entries_halted": system.entries_halted,
        "entries_halted_since": system.entries_halted_since,
    }


# --------------------------------------------------------------------------- the verb table

_COMMAND_STATUSES = (400, 403, 404, 409, 429, 502, 503, 504)
_READ_STATUSES = (400, 403, 429)

VERBS: dict[str, Verb] = {
    verb.name: verb
    for verb in (
        Verb("createtrade", "Start managing a trade", bodies.CreateTradeBody, create_trade, statuses=_COMMAND_STATUSES),
        Verb("activetrades", "Open trades", bodies.ActiveTradesBody, active_trades, statuses=_READ_STATUSES),
        Verb("updatetrade", "Change an open trade's levels", bodies.UpdateTradeBody, update_trade, statuses=_COMMAND_STATUSES),
        Verb("exittrade", "Exit one trade now (reason MANUAL)", bodies.TradeIdBody, exit_trade, statuses=_COMMAND_STATUSES),
        Verb(
            "exitall",
            "Exit every open trade, or every open trade of one strategy (reason PANIC)",
            bodies.ExitAllBody,
            exit_all,
            statuses=_COMMAND_STATUSES,
        ),
        Verb(
            "rearm",
            "Lift the panic halt: new entries are taken again",
            bodies.NoFieldsBody,
            rearm,
            statuses=_COMMAND_STATUSES,
        ),
        Verb(
            "adoptpositions",
            "Manage every open positionbook position that no trade covers yet (strategy 'manual')",
            bodies.NoFieldsBody,
            adopt_positions,
            statuses=_COMMAND_STATUSES,
        ),
        Verb(
            "savestrategy",
            "Create a strategy or replace its settings (the engine only: the config file is not written)",
            bodies.SaveStrategyBody,
            save_strategy,
            statuses=_COMMAND_STATUSES,
        ),
        Verb(
            "deletestrategy",
            "Delete a strategy; its open trades are refused, exited or moved",
            bodies.DeleteStrategyBody,
            delete_strategy,
            statuses=_COMMAND_STATUSES,
        ),
        Verb("pausetrade", "Stop acting on a trade's levels", bodies.TradeIdBody, pause_trade, statuses=_COMMAND_STATUSES),
        Verb("resumetrade", "Act on a trade's levels again", bodies.TradeIdBody, resume_trade, statuses=_COMMAND_STATUSES),
        Verb(
            "acknowledgealerts",
            "Acknowledge alerts by id, or all of them",
            bodies.AcknowledgeAlertsBody,
            acknowledge_alerts,
            statuses=_COMMAND_STATUSES,
        ),
        Verb("alerts", "Recent alerts, newest first", bodies.AlertsBody, alerts, statuses=_READ_STATUSES),
        Verb("tradehistory", "Closed trades in a date range, in closing order", bodies.TradeHistoryBody, trade_history, statuses=_READ_STATUSES),
        Verb(
            "analytics",
            "Performance statistics of closed trades, overall, per strategy and per exit reason",
            bodies.AnalyticsBody,
            analytics_report,
            statuses=_READ_STATUSES,
        ),
        Verb("tradeevents", "A trade's audit log, oldest first", bodies.TradeIdBody, trade_events, statuses=_READ_STATUSES),
        Verb(
            "instrument",
            "Tick, lot and freeze size of an instrument",
            bodies.InstrumentBody,
            instrument,
            statuses=(400, 403, 404, 429),
        ),
        Verb("strategies", "Strategies with portfolio state and fund utilisation", bodies.NoFieldsBody, strategies, statuses=_READ_STATUSES),
        Verb(
            "health",
            "Feed, broker, database and engine status (no key needed)",
            bodies.HealthBody,
            health,
            needs_key=False,
            statuses=(400, 429),
        ),
    )
}
