"""Seeded data and an engine double for the UI's snapshot tests.

The UI's input is a snapshot, so the snapshot tests serve a fixed
``EngineSnapshot`` and record what the UI submits; no engine thread runs.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from datetime import datetime, time

from tmtool.domain.calendar import IST
from tmtool.clock import ManualClock
from tmtool.domain.commands import Accepted, Command, Denied, Result
from tmtool.domain.models import (
    Alert,
    AlertCategory,
    AlertPriority,
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    ExitReason,
    FeedState,
    Instrument,
    PortfolioRisk,
    PriceType,
    Product,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    Trade,
    TradeEvent,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.engine.ports import EngineLifecycle
from tmtool.engine.snapshot import EngineSnapshot, OrderView, PositionView, StrategyView, SystemView, TradeView

# 2026-01-05 11:15:30 IST, a Monday.
FIXED_NOW = datetime(2026, 1, 5, 11, 15, 30, tzinfo=IST).timestamp()


def fixed_clock() -> ManualClock:
    return ManualClock(FIXED_NOW)


MOMENTUM = Strategy(
    name="momentum",
    trade_risk=TradeRisk(
        stop_loss=Distance(1.0, DistanceMode.PERCENT),
        target=Distance(2.0, DistanceMode.PERCENT),
        trailing=TrailingSettings(Distance(5.0)),
    ),
    portfolio=PortfolioRisk(
        stop_loss=Amount(5000.0),
        target=Amount(10000.0),
        trailing_activation=Amount(4000.0),
        trailing_distance=Amount(1500.0),
        daily_loss_limit=Amount(6000.0),
    ),
    allocated_funds=500000.0,
    sizing=Sizing(SizingMode.RISK_BASED, 1000.0),
    max_open_positions=5,
    square_off_time=time(15, 10),
)
SCALPER = Strategy(
    name="scalper",
    trade_risk=TradeRisk(stop_loss=Distance(3.0), target=Distance(6.0)),
    portfolio=PortfolioRisk(stop_loss=Amount(2.0, AmountMode.PERCENT), daily_loss_limit=Amount(3000.0)),
    allocated_funds=200000.0,
    sizing=Sizing(SizingMode.FIXED_QUANTITY, 50.0),
    max_open_positions=2,
)


def trade_view(
    trade_id: int,
    symbol: str,
    side: Side,
    quantity: int,
    entry: float,
    ltp: float,
    *,
    strategy: str = "momentum",
    stop: float | None = None,
    target: float | None = None,
    trailing_stop: float | None = None,
    status: TradeStatus = TradeStatus.ACTIVE,
    paused: bool = False,
    exit_reason: ExitReason | None = None,
    breakeven_after: Distance | None = None,
) -> TradeView:
    pnl = (ltp - entry) * quantity * side.sign
    effective = stop
    if trailing_stop is not None:
        effective = trailing_stop if stop is None else (max if side is Side.LONG else min)(stop, trailing_stop)
    distance = None if effective is None else (ltp - effective) * side.sign
    return TradeView(
        id=trade_id,
        strategy=strategy,
        symbol=symbol,
        exchange="NSE",
        product=Product.MIS,
        side=side,
        quantity=quantity if status.is_open else 0,
        entry_quantity=quantity,
        entry_price=entry,
        ltp=ltp,
        stop_loss=stop,
        target=target,
        trailing_stop=trailing_stop,
        effective_stop=effective,
        trailing=TrailingSettings(Distance(5.0)) if trailing_stop is not None else None,
        partial_levels=(),
        pnl=round(pnl, 2),
        unrealised_pnl=round(pnl, 2) if status.is_open else 0.0,
        realised_pnl=0.0 if status.is_open else round(pnl, 2),
        pnl_percent=round((ltp - entry) / entry * 100 * side.sign, 4),
        distance_to_stop=None if distance is None else round(distance, 2),
        high_watermark=max(entry, ltp),
        low_watermark=min(entry, ltp),
        status=status,
        paused=paused,
        degraded=False,
        exit_reason=exit_reason,
        exit_price=ltp if not status.is_open else None,
        entry_order_id=f"sim-{trade_id}",
        exit_order_ids=(),
        awaiting_approval=False,
        entry_price_type=PriceType.MARKET,
        opened_at=FIXED_NOW - 3600 + trade_id * 60,
        closed_at=None if status.is_open else FIXED_NOW - 600,
        tick_size=0.05,
        lot_size=1,
        breakeven_after=breakeven_after,
    )


def strategy_view(strategy: Strategy, trades: tuple[TradeView, ...], *, halted: bool = False) -> StrategyView:
    own = [t for t in trades if t.strategy == strategy.name]
    realised = sum(t.realised_pnl for t in own)
    unrealised = sum(t.unrealised_pnl for t in own)
    total = realised + unrealised
    funds = strategy.allocated_funds
    portfolio = strategy.portfolio
    return StrategyView(
        name=strategy.name,
        strategy=strategy,
        realised_pnl=realised,
        unrealised_pnl=unrealised,
        total_pnl=total,
        pnl_series=(0.0, 150.0, 420.0, 300.0, 610.0, 880.0, 700.0, total),
        open_positions=sum(1 for t in own if t.status.is_open),
        max_open_positions=strategy.max_open_positions,
        trades_today=len(own),
        portfolio_stop=-portfolio.stop_loss.rupees(funds) if portfolio.stop_loss else None,
        portfolio_target=portfolio.target.rupees(funds) if portfolio.target else None,
        trailing_lock=None,
        trailing_armed=False,
        peak_pnl=max(880.0, total),
        daily_loss_used=max(0.0, -total),
        daily_loss_limit=portfolio.daily_loss_limit.rupees(funds) if portfolio.daily_loss_limit else None,
        halted=halted,
        halt_reason="DAILY_LOSS_LIMIT" if halted else "",
        funds_used=sum(t.entry_price * t.quantity for t in own if t.status.is_open),
        allocated_funds=funds,
    )


def seeded_trades() -> tuple[TradeView, ...]:
    return (
        trade_view(
            1, "SBIN", Side.LONG, 100, 812.40, 818.95, stop=804.30, target=828.65, trailing_stop=813.95,
            breakeven_after=Distance(1.0, DistanceMode.PERCENT),
        ),
        trade_view(2, "RELIANCE", Side.SHORT, 20, 2921.10, 2930.55, stop=2950.35, target=2862.70),
        trade_view(3, "INFY", Side.LONG, 40, 1588.00, 1601.20, stop=1572.15, target=1619.75, paused=True),
        trade_view(4, "TCS", Side.LONG, 10, 4102.00, 4090.50, strategy="scalper", stop=4099.00, target=4108.00),
        trade_view(
            5,
            "HDFCBANK",
            Side.LONG,
            30,
            1650.00,
            1662.35,
            strategy="scalper",
            stop=1647.00,
            target=1656.00,
            status=TradeStatus.CLOSED,
            exit_reason=ExitReason.TARGET,
        ),
    )


def seeded_alerts() -> tuple[Alert, ...]:
    return (
        Alert(
            id=3,
            ts=FIXED_NOW - 30,
            category=AlertCategory.TRADE,
            priority=AlertPriority.INFO,
            text="#5 HDFCBANK exited at target 1,656.00 (filled 1,662.35), P&L +370.50",
            trade_id=5,
            strategy="scalper",
        ),
        Alert(
            id=2,
            ts=FIXED_NOW - 300,
            category=AlertCategory.SYSTEM,
            priority=AlertPriority.WARNING,
            text="Feed reconnected after 4.2s",
            count=2,
            last_ts=FIXED_NOW - 120,
        ),
        Alert(
            id=1,
            ts=FIXED_NOW - 900,
            category=AlertCategory.TRADE,
            priority=AlertPriority.INFO,
            text="#1 SBIN trailing stop moved to 813.95",
            trade_id=1,
            acknowledged=True,
        ),
    )


def seeded_snapshot(version: int = 1, *, trades: tuple[TradeView, ...] | None = None) -> EngineSnapshot:
    trades = seeded_trades() if trades is None else trades
    strategies = (strategy_view(MOMENTUM, trades), strategy_view(SCALPER, trades, halted=False))
    return EngineSnapshot(
        version=version,
        ts=FIXED_NOW,
        trades=trades,
        strategies=strategies,
        system=SystemView(
            engine_running=True,
            feed_state=FeedState.LIVE,
            last_tick_age=0.4,
            stale_symbols=(),
            broker_state="OK",
            broker_message="",
            db_state="OK",
            db_pending=0,
            server_mode="live",
            ticks_processed=123456,
            ticks_refused=0,
            simulated=True,
        ),
        alerts=seeded_alerts(),
        account_pnl=sum(s.total_pnl for s in strategies),
        orders=seeded_orders(),
        positions=seeded_positions(),
    )


def seeded_positions() -> tuple[PositionView, ...]:
    """SBIN and RELIANCE match; INFY differs (10 sold at the broker behind tmtool's back); TCS not read yet."""
    return (
        PositionView("INFY", "NSE", "MIS", broker_net=30, tmtool_net=40, exits_in_flight=0),
        PositionView("RELIANCE", "NSE", "MIS", broker_net=-20, tmtool_net=-20, exits_in_flight=0),
        PositionView("SBIN", "NSE", "MIS", broker_net=100, tmtool_net=100, exits_in_flight=0),
        PositionView("TCS", "NSE", "MIS", broker_net=None, tmtool_net=10, exits_in_flight=10),
    )


def seeded_orders() -> tuple[OrderView, ...]:
    return (
        OrderView(
            key="x-4-1", trade_id=4, strategy="scalper", symbol="TCS", exchange="NSE", purpose="EXIT", action="SELL",
            quantity=10, filled_quantity=4, average_price=4089.5, state="OPEN", reason="STOP_LOSS", price_type="LIMIT",
            price=4070.0, order_id="sim-77", message="partially filled",
        ),
    )


def closed_trade(trade_id: int, symbol: str, pnl_per_unit: float, *, strategy: str = "momentum", hours_ago: float = 30) -> Trade:
    entry = 1000.0
    exit_price = entry + pnl_per_unit
    closed_at = FIXED_NOW - hours_ago * 3600
    return Trade(
        id=trade_id,
        strategy=strategy,
        symbol=symbol,
        exchange="NSE",
        product=Product.MIS,
        side=Side.LONG,
        quantity=0,
        entry_price=entry,
        status=TradeStatus.CLOSED,
        entry_quantity=10,
        requested_quantity=10,
        stop_loss=entry - 10,
        target=entry + 20,
        high_watermark=max(entry, exit_price) + 2,
        low_watermark=min(entry, exit_price) - 2,
        last_price=exit_price,
        exit_reason=ExitReason.TARGET if pnl_per_unit > 0 else ExitReason.STOP_LOSS,
        exit_trigger_price=entry + 20 if pnl_per_unit > 0 else entry - 10,
        exit_price=exit_price,
        exited_quantity=10,
        realised_pnl=pnl_per_unit * 10,
        created_at=closed_at - 1800,
        opened_at=closed_at - 1800,
        closed_at=closed_at,
        updated_at=closed_at,
    )


def seeded_closed_trades() -> list[Trade]:
    return [
        closed_trade(101, "SBIN", 20.0, hours_ago=70),
        closed_trade(102, "TCS", -10.0, strategy="scalper", hours_ago=50),
        closed_trade(103, "INFY", 20.0, hours_ago=30),
        closed_trade(104, "ITC", -10.0, hours_ago=27),
        closed_trade(105, "WIPRO", 14.5, strategy="scalper", hours_ago=26),
    ]


def open_trade_events(view: TradeView | None) -> list[TradeEvent]:
    """An open trade's audit trail as the engine writes it: created, entry filled, levels, a trail move."""
    if view is None:
        return []
    opened = view.opened_at or FIXED_NOW
    first_stop = view.stop_loss if view.stop_loss is not None else 0.0
    events = [
        TradeEvent(view.id, opened - 2, "CREATED", "", "", f"{view.side.value} {view.entry_quantity} {view.symbol}", "manual entry"),
        TradeEvent(view.id, opened - 1, "ENTRY_ORDER", "order_id", "", view.entry_order_id, "MARKET", price=view.entry_price),
        TradeEvent(view.id, opened, "ENTRY_FILL", "quantity", "0", str(view.entry_quantity), "", price=view.entry_price),
        TradeEvent(
            view.id, opened, "LEVEL", "levels", "", f"stop={first_stop} target={view.target}", "strategy defaults", price=view.entry_price
        ),
    ]
    if view.trailing_stop is not None:
        events.append(
            TradeEvent(view.id, opened + 600, "TRAIL", "trailing_stop", f"{first_stop}", f"{view.trailing_stop}", "best price rose", price=view.high_watermark)
        )
        events.append(
            TradeEvent(view.id, opened + 600, "ALERT", "", "", f"#{view.id} {view.symbol} trailing stop moved to {view.trailing_stop:.2f}", "INFO")
        )
    return events


class EngineDouble:
    """Serves a fixed snapshot, records submitted commands, answers with ``answer``."""

    def __init__(self, snapshot: EngineSnapshot | None = None) -> None:
        self.current = snapshot or seeded_snapshot()
        self.commands: list[Command] = []
        self.answer: Accepted | Denied = Accepted("ok")
        self.closed: list[Trade] = seeded_closed_trades()

    def snapshot(self) -> EngineSnapshot:
        return self.current

    def publish(self, snapshot: EngineSnapshot) -> None:
        self.current = snapshot

    def bump(self, **changes) -> None:
        self.current = dataclasses.replace(self.current, version=self.current.version + 1, **changes)

    def submit(self, command: Command) -> Future[Result]:
        self.commands.append(command)
        future: Future[Result] = Future()
        future.set_result(self.answer)
        return future

    def adopt_positions(self) -> Future[Result]:
        future: Future[Result] = Future()
        future.set_result(self.answer)
        return future

    def closed_trades(self, start=None, end=None, strategy=None) -> list[Trade]:
        return [
            t
            for t in self.closed
            if (start is None or (t.closed_at or 0) >= start)
            and (end is None or (t.closed_at or 0) < end)
            and (strategy is None or t.strategy == strategy)
        ]

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        trade = next((t for t in self.closed if t.id == trade_id), None)
        if trade is not None:
            return [
                TradeEvent(trade_id, trade.created_at, "CREATED", "stop_loss", "", f"{trade.stop_loss}", price=trade.entry_price)
            ]
        return open_trade_events(self.current.trade(trade_id))

    def alert_history(self, since=None, category=None, priority=None, limit=500) -> list[Alert]:
        alerts = [
            a
            for a in self.current.alerts
            if (category is None or a.category.value == category) and (priority is None or a.priority.value == priority)
        ]
        return alerts[:limit]

    def instrument(self, exchange: str, symbol: str) -> Instrument:
        return Instrument(symbol=symbol, exchange=exchange)



def snapshot_app(engine: EngineDouble | None = None, *, simulated: bool = True, lifecycle: EngineLifecycle | None = None):
    """The real app over an engine double, with the fixed clock (for snapshot and Pilot tests).

    With ``lifecycle`` the app starts it on mount and ``stop_engine`` stops it; without, the engine counts as running.
    """
    from tmtool.screens.app import TmtoolApp

    return TmtoolApp(
        engine or EngineDouble(),
        config_path=None,
        clock=fixed_clock(),
        simulated=simulated,
        bell=True,
        lifecycle=lifecycle,
    )
