"""Records with every field set to a non-default value, for round-trip tests."""

from __future__ import annotations

from datetime import date, time

from tmtool.domain.models import (
    Alert,
    AlertCategory,
    AlertPriority,
    Amount,
    AmountMode,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    ExitReason,
    OrderFill,
    OrderPurpose,
    OrderRecord,
    OrderState,
    PartialLevel,
    PartialTarget,
    PortfolioRisk,
    PortfolioState,
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

T0 = 1_767_240_000.0


def full_strategy(name: str = "momentum") -> Strategy:
    return Strategy(
        name=name,
        trade_risk=TradeRisk(
            stop_loss=Distance(1.5, DistanceMode.PERCENT),
            target=Distance(12.0),
            trailing=TrailingSettings(
                distance=Distance(2.0),
                activation=Distance(0.5, DistanceMode.PERCENT),
                step_trigger=Distance(3.0),
                step_move=Distance(1.25),
            ),
            breakeven_after=Distance(4.0),
            partial_targets=(PartialTarget(Distance(5.0), 0.5), PartialTarget(Distance(1.0, DistanceMode.PERCENT), 0.25)),
        ),
        portfolio=PortfolioRisk(
            stop_loss=Amount(5000.0),
            target=Amount(2.5, AmountMode.PERCENT),
            trailing_activation=Amount(3000.0),
            trailing_distance=Amount(1000.0),
            daily_loss_limit=Amount(1.0, AmountMode.PERCENT),
        ),
        allocated_funds=250_000.0,
        sizing=Sizing(SizingMode.RISK_BASED, 1500.0),
        max_open_positions=4,
        max_trades_per_day=9,
        square_off_time=time(15, 10),
        exit_order=ExitOrderSettings(PriceType.LIMIT, 0.75, 2.5, 3),
        product=Product.NRML,
        exchange="NFO",
        adopt_fills=True,
    )


def full_trade(trade_id: int = 7, **changes: object) -> Trade:
    trade = Trade(
        id=trade_id,
        strategy="momentum",
        symbol="SBIN",
        exchange="NSE",
        product=Product.CNC,
        side=Side.SHORT,
        quantity=40,
        entry_price=812.35,
        status=TradeStatus.ACTIVE,
        entry_quantity=50,
        requested_quantity=60,
        stop_loss=820.0,
        target=790.05,
        trailing=TrailingSettings(Distance(1.0, DistanceMode.PERCENT), activation=Distance(2.0)),
        trailing_stop=818.45,
        breakeven_after=Distance(3.0),
        breakeven_done=True,
        partial_levels=(PartialLevel(800.0, 10, True), PartialLevel(795.5, 10)),
        high_watermark=813.1,
        low_watermark=801.2,
        last_price=802.0,
        tick_size=0.05,
        lot_size=1,
        entry_order_id="25010100000001",
        entry_price_type=PriceType.LIMIT,
        entry_limit_price=812.4,
        exit_order_ids=("25010100000002", "25010100000003"),
        exit_reason=ExitReason.PARTIAL_TARGET,
        exit_trigger_price=800.0,
        exit_price=799.95,
        exited_quantity=10,
        realised_pnl=124.0,
        paused=True,
        degraded=True,
        created_at=T0,
        opened_at=T0 + 1.25,
        closed_at=None,
        updated_at=T0 + 30.5,
        note="scaled out once",
        order_fills=(OrderFill("e-7-1a2b3c", "SELL", 50, 812.35), OrderFill("x-7-4d5e6f", "BUY", 10, 799.95)),
    )
    for name, value in changes.items():
        setattr(trade, name, value)
    return trade


def full_portfolio(strategy: str = "momentum", day: date = date(2026, 1, 1)) -> PortfolioState:
    return PortfolioState(
        strategy=strategy,
        trading_day=day,
        realised_pnl=-1250.5,
        peak_pnl=800.0,
        trough_pnl=-1400.25,
        trailing_armed=True,
        trailing_lock=300.0,
        halted=True,
        halt_reason="DAILY_LOSS_LIMIT",
        trades_today=5,
        updated_at=T0 + 60,
    )


def full_order(key: str = "x-7-1", state: OrderState = OrderState.SENT) -> OrderRecord:
    return OrderRecord(
        key=key,
        trade_id=7,
        purpose=OrderPurpose.EXIT,
        action="BUY",
        quantity=40,
        state=state,
        reason=ExitReason.TRAILING_SL,
        price_type=PriceType.LIMIT,
        price=820.5,
        order_id="25010100000004",
        filled_quantity=15,
        average_price=819.95,
        attempt=2,
        message="repriced",
        created_at=T0 + 40,
        updated_at=T0 + 43.5,
        net_before=-40,
        fills_before=(("e-7-1a2b3c", 50), ("x-8-7a8b9c", 5)),
        lag_fills=(-5, 12),
    )


def full_event(trade_id: int = 7, ts: float = T0 + 5, kind: str = "TRAIL") -> TradeEvent:
    return TradeEvent(
        trade_id=trade_id,
        ts=ts,
        kind=kind,
        field="trailing_stop",
        old="819.00",
        new="818.45",
        reason="price 809.45",
        price=809.45,
        strategy="momentum",
    )


def full_alert(alert_id: int = 3, ts: float = T0 + 9) -> Alert:
    return Alert(
        id=alert_id,
        ts=ts,
        category=AlertCategory.PORTFOLIO,
        priority=AlertPriority.CRITICAL,
        text="momentum hit its daily loss limit",
        key="daily-loss:momentum",
        trade_id=7,
        strategy="momentum",
        count=3,
        acknowledged=True,
        last_ts=ts + 30,
    )
