"""Per-trade settings through the real stack: breakeven set per trade, and stops kept across a change of meaning."""

from __future__ import annotations

import dataclasses

import pytest

from tests.stack import running_stack
from tmtool.domain.commands import Accepted, CreateTrade, ModifyTrade, SaveStrategy
from tmtool.domain.models import (
    Distance,
    DistanceMode,
    ExitReason,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)

SIDES = pytest.mark.parametrize("side", [Side.LONG, Side.SHORT])


def _open(stack, strategy: str, side: Side, **levels) -> int:
    stack.sim.set_price("NSE", "RELIANCE", 2500.0)
    trade_id = stack.create(CreateTrade(strategy, "RELIANCE", "NSE", side, quantity=10, **levels))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _tick_seen(stack, trade_id: int, price: float):
    stack.tick("RELIANCE", price)
    return stack.wait_trade(trade_id, lambda t: t.ltp == price)


@SIDES
def test_breakeven_set_on_create_moves_the_stop_to_the_entry(tmp_path, side):
    strategy = Strategy("s1", trade_risk=TradeRisk(stop_loss=Distance(20)))  # no breakeven by default
    sign = side.sign
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        trade_id = _open(stack, "s1", side, breakeven_after=Distance(10))
        assert stack.engine.snapshot().trade(trade_id).breakeven_after == Distance(10)

        view = _tick_seen(stack, trade_id, 2500.0 + sign * 9.95)
        assert view.stop_loss == 2500.0 - sign * 20
        stack.tick("RELIANCE", 2500.0 + sign * 10)
        view = stack.wait_trade(trade_id, lambda t: t.stop_loss == 2500.0)
        assert view.breakeven_done


@SIDES
def test_breakeven_switched_off_on_create_and_set_on_modify(tmp_path, side):
    default = TradeRisk(stop_loss=Distance(20), breakeven_after=Distance(10))
    sign = side.sign
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=default),)) as stack:
        trade_id = _open(stack, "s1", side, breakeven_after=None)
        view = _tick_seen(stack, trade_id, 2500.0 + sign * 15)
        assert (view.stop_loss, view.breakeven_after) == (2500.0 - sign * 20, None)  # the default is off

        # Already 15 in profit: a breakeven of 1% (25 points) waits, one of 10 points moves the stop now.
        assert isinstance(stack.submit(ModifyTrade(trade_id, breakeven_after=Distance(1.0, DistanceMode.PERCENT))), Accepted)
        view = stack.wait_trade(trade_id, lambda t: t.breakeven_after == Distance(1.0, DistanceMode.PERCENT))
        assert view.stop_loss == 2500.0 - sign * 20
        assert isinstance(stack.submit(ModifyTrade(trade_id, breakeven_after=Distance(10))), Accepted)
        view = stack.wait_trade(trade_id, lambda t: t.stop_loss == 2500.0)
        assert view.breakeven_after == Distance(10) and view.breakeven_done

        stack.store.flush()
        changes = [(e.field, e.old, e.new) for e in stack.engine.trade_events(trade_id) if e.field == "breakeven_after"]
        assert changes == [("breakeven_after", "", "1%"), ("breakeven_after", "1%", "10")]


def test_a_percent_trailing_stop_stored_under_the_old_meaning_survives_restart_and_strategy_changes(tmp_path):
    """A stop ratcheted as 1% of the entry (2600 → 2575.00) is kept: under 1% of the best it would be 2574.00."""
    percent = TrailingSettings(Distance(1.0, DistanceMode.PERCENT))
    strategy = Strategy("pct", trade_risk=TradeRisk(stop_loss=Distance(40), trailing=percent))
    with running_stack(tmp_path, strategies=(strategy,)) as stack:
        trade_id = _open(stack, "pct", Side.LONG)
        assert stack.engine.snapshot().trade(trade_id).trailing_stop == 2475.0

        def stored_by_the_old_release() -> None:
            [trade] = [t for t in stack.store.load().open_trades if t.id == trade_id]
            old = dataclasses.replace(trade, trailing_stop=2575.0, high_watermark=2600.0, last_price=2600.0)
            stack.store.save_trade(old)
            stack.sim.set_price("NSE", "RELIANCE", 2600.0)

        stack.restart_engine(stored_by_the_old_release)
        view = stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE)
        assert view.trailing_stop == 2575.0

        view = _tick_seen(stack, trade_id, 2600.5)  # a new best; 1% of it is 2574.50, looser
        assert view.trailing_stop == 2575.0
        wider = TrailingSettings(Distance(2.0, DistanceMode.PERCENT))
        assert isinstance(stack.submit(SaveStrategy(dataclasses.replace(strategy, trade_risk=TradeRisk(trailing=wider)))), Accepted)
        view = _tick_seen(stack, trade_id, 2600.0)
        assert (view.trailing_stop, view.trailing) == (2575.0, percent)  # the trade keeps its own settings

        stack.tick("RELIANCE", 2605.0)  # 1% of 2605 is 2578.95: tighter, so it moves
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == 2578.95)
        stack.tick("RELIANCE", 2578.9)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TRAILING_SL
