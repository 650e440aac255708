"""A trade's whole life through the real stack: entry, levels, exit, persistence."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from tests.stack import running_stack
from tmtool.domain.calendar import IST
from tmtool.clock import ManualClock
from tmtool.domain.commands import CreateTrade, ModifyTrade
from tmtool.domain.models import (
    Distance,
    ExitReason,
    PartialTarget,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)

RISK = TradeRisk(stop_loss=Distance(10), target=Distance(20))


def _strategy(name: str = "s1", **risk) -> Strategy:
    return Strategy(name, trade_risk=TradeRisk(**risk) if risk else RISK)


@pytest.mark.parametrize(
    ("side", "exit_price", "reason", "pnl"),
    [
        (Side.LONG, 2489.0, ExitReason.STOP_LOSS, -110.0),
        (Side.LONG, 2521.0, ExitReason.TARGET, 210.0),
        (Side.SHORT, 2511.0, ExitReason.STOP_LOSS, -110.0),
        (Side.SHORT, 2479.0, ExitReason.TARGET, 210.0),
    ],
)
def test_stop_and_target_exit_the_whole_trade(tmp_path, side, exit_price, reason, pnl):
    with running_stack(tmp_path, strategies=(_strategy(),)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", side, quantity=10))
        view = stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert view.entry_price == 2500.0
        assert (view.stop_loss, view.target) == ((2490.0, 2520.0) if side is Side.LONG else (2510.0, 2480.0))
        assert stack.position("RELIANCE") == 10 * side.sign

        inside = 2495.0 if side is Side.LONG else 2505.0
        stack.tick("RELIANCE", inside)
        assert stack.wait_trade(trade_id, lambda t: t.ltp == inside).status is TradeStatus.ACTIVE
        stack.tick("RELIANCE", exit_price)

        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is reason
        assert closed.exit_price == exit_price
        assert closed.realised_pnl == pytest.approx(pnl)
        assert closed.quantity == 0
        assert stack.position("RELIANCE") == 0
        exits = stack.orders_for("RELIANCE", side.exit_action)
        assert [(o["quantity"], o["status"]) for o in exits] == [(10, "complete")]

        stack.store.flush()
        kinds = [e.kind for e in stack.engine.trade_events(trade_id)]
        for kind in ("CREATED", "LEVEL", "EXIT_INTENT", "ORDER", "EXIT_FILL"):
            assert kind in kinds
        assert [t.id for t in stack.engine.closed_trades()] == [trade_id]


@pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])
def test_trailing_stop_ratchets_persists_and_exits(tmp_path, side):
    strategy = _strategy(stop_loss=Distance(20), trailing=TrailingSettings(distance=Distance(10)))
    sign = side.sign
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", side, quantity=5))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)

        stack.tick("SBIN", 800.0 + sign * 10)
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == 800.0)
        stack.tick("SBIN", 800.0 + sign * 25)
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == 800.0 + sign * 15)
        stack.tick("SBIN", 800.0 + sign * 20)  # pulls back: the trailing stop never loosens
        view = stack.wait_trade(trade_id, lambda t: t.ltp == 800.0 + sign * 20)
        assert view.trailing_stop == 800.0 + sign * 15
        assert view.status is TradeStatus.ACTIVE

        stack.tick("SBIN", 800.0 + sign * 14)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TRAILING_SL
        assert closed.realised_pnl == pytest.approx(5 * 14.0)
        assert stack.position("SBIN") == 0

        stack.store.flush()
        trails = [e for e in stack.engine.trade_events(trade_id) if e.kind == "TRAIL"]
        assert [float(e.new) for e in trails] == [800.0, 800.0 + sign * 15]


def test_partial_target_scales_out_then_target_closes_the_rest(tmp_path):
    strategy = _strategy(
        stop_loss=Distance(10), target=Distance(30), partial_targets=(PartialTarget(Distance(10), 0.5),)
    )
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=10))
        view = stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert [(p.price, p.quantity) for p in view.partial_levels] == [(2510.0, 5)]

        stack.tick("RELIANCE", 2511.0)
        view = stack.wait_trade(trade_id, lambda t: t.quantity == 5)
        assert view.status is TradeStatus.ACTIVE
        assert view.realised_pnl == pytest.approx(55.0)
        assert view.partial_levels[0].done
        assert stack.position("RELIANCE") == 5

        stack.tick("RELIANCE", 2530.0)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TARGET
        assert closed.realised_pnl == pytest.approx(55.0 + 150.0)
        assert [o["quantity"] for o in stack.orders_for("RELIANCE", "SELL")] == [5, 5]
        assert stack.position("RELIANCE") == 0


def test_square_off_time_exits_on_the_injected_clock(tmp_path):
    monday = datetime(2026, 1, 5, 14, 59, 0, tzinfo=IST)
    clock = ManualClock(monday, real_timers=True)
    strategy = Strategy("intraday", trade_risk=RISK, square_off_time=time(15, 0))
    with running_stack(tmp_path, strategies=(strategy,), clock=clock) as stack:
        stack.sim.set_price("NSE", "INFY", 1500.0)
        trade_id = stack.create(CreateTrade("intraday", "INFY", "NSE", Side.LONG, quantity=3))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)

        clock.set(datetime(2026, 1, 5, 15, 0, 30, tzinfo=IST))
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.SQUARE_OFF_TIME
        assert stack.position("INFY") == 0
        late = stack.submit(CreateTrade("intraday", "INFY", "NSE", Side.LONG, quantity=3))
        assert late.code == "SQUARE_OFF_PASSED"


def test_modify_levels_applies_and_bad_levels_change_nothing(tmp_path):
    with running_stack(tmp_path, strategies=(_strategy(),)) as stack:
        stack.sim.set_price("NSE", "TCS", 3500.0)
        trade_id = stack.create(CreateTrade("s1", "TCS", "NSE", Side.LONG, quantity=2))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("TCS", 3505.0)

        bad = stack.submit(ModifyTrade(trade_id, stop_loss=3600.0))
        assert bad.code == "INVALID_STOP"
        assert stack.engine.snapshot().trade(trade_id).stop_loss == 3490.0

        ok = stack.submit(ModifyTrade(trade_id, stop_loss=3495.0, target=None))
        assert ok.trade_id == trade_id
        view = stack.wait_trade(trade_id, lambda t: t.stop_loss == 3495.0)
        assert view.target is None
        stack.tick("TCS", 3495.0)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS


def test_invalid_create_is_denied_and_sends_nothing(tmp_path):
    with running_stack(tmp_path, strategies=(_strategy(),)) as stack:
        for command, code in [
            (CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=-5), "INVALID_QUANTITY"),
            (CreateTrade("nope", "RELIANCE", "NSE", Side.LONG, quantity=5), "UNKNOWN_STRATEGY"),
            (CreateTrade("s1", "NOSUCH", "NSE", Side.LONG, quantity=5), "UNKNOWN_SYMBOL"),
            (CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=5, stop_loss=float("nan")), "INVALID_STOP"),
        ]:
            result = stack.submit(command)
            assert result.code == code, result
        assert stack.sim.orders() == []
        assert stack.engine.snapshot().open_trades == ()
