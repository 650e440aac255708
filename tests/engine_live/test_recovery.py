"""Start-up recovery: reload, reconcile, and resolve exits a previous run left unfinished."""

from __future__ import annotations

import dataclasses

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import (
    Distance,
    ExitReason,
    OrderPurpose,
    OrderRecord,
    OrderState,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)

TRAILING = Strategy("trail", trade_risk=TradeRisk(stop_loss=Distance(20), trailing=TrailingSettings(distance=Distance(10))))


def _open(stack, quantity: int = 10) -> int:
    stack.sim.set_price("NSE", "RELIANCE", 2500.0)
    trade_id = stack.create(CreateTrade("trail", "RELIANCE", "NSE", Side.LONG, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _leave_exit_intent(stack, trade_id: int, net_before: int | None = 10) -> None:
    """The database as a crash right after an exit intent became durable leaves it (the intent
    records the net position it moves from, as the engine does)."""
    [trade] = [t for t in stack.store.load().open_trades if t.id == trade_id]
    stack.store.save_trade(dataclasses.replace(trade, status=TradeStatus.EXITING, exit_reason=ExitReason.TRAILING_SL))
    intent = OrderRecord(
        key=f"x-{trade_id}-crashed", trade_id=trade_id, purpose=OrderPurpose.EXIT, action="SELL", quantity=trade.quantity,
        state=OrderState.INTENT, reason=ExitReason.TRAILING_SL, created_at=stack.clock.time(), updated_at=stack.clock.time(),
        net_before=net_before,
    )
    assert stack.store.save_order(intent, durable=True, timeout=5.0)


def test_restart_keeps_trades_and_committed_trailing_levels(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        trade_id = _open(stack)
        stack.tick("RELIANCE", 2530.0)
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == 2520.0)

        stack.restart_engine()
        view = stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE)
        assert (view.trailing_stop, view.stop_loss, view.quantity, view.entry_price) == (2520.0, 2480.0, 10, 2500.0)
        stack.tick("RELIANCE", 2519.0)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TRAILING_SL
        assert [o["quantity"] for o in stack.orders_for("RELIANCE", "SELL")] == [10]


def test_intent_whose_order_went_out_is_found_not_resent(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        trade_id = _open(stack)

        def crash_after_send() -> None:
            _leave_exit_intent(stack, trade_id)
            stack.broker.place_order(strategy="trail", symbol="RELIANCE", exchange="NSE", action="SELL", quantity=10, product="MIS")

        stack.restart_engine(crash_after_send)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TRAILING_SL
        sells = stack.orders_for("RELIANCE", "SELL")
        assert len(sells) == 1 and closed.exit_order_ids == (sells[0]["orderid"],)
        assert stack.position("RELIANCE") == 0


def test_intent_that_never_left_is_sent_once_the_order_is_proven_absent(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        trade_id = _open(stack)
        stack.restart_engine(lambda: _leave_exit_intent(stack, trade_id))
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.TRAILING_SL
        assert [o["quantity"] for o in stack.orders_for("RELIANCE", "SELL")] == [10]
        assert stack.position("RELIANCE") == 0


def test_position_closed_while_down_is_closed_externally_at_start(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        trade_id = _open(stack)
        stack.restart_engine(lambda: stack.sim.faults.close_position_externally("RELIANCE", "NSE", "MIS"))
        gone = stack.wait_status(trade_id, TradeStatus.CLOSED_EXTERNALLY)
        assert gone.exit_reason is ExitReason.CLOSED_EXTERNALLY
        wait_for(lambda: any("closed outside tmtool" in a.text for a in stack.engine.snapshot().alerts), what="alert")
        assert [o for o in stack.orders_for("RELIANCE", "SELL") if o["strategy"] == "trail"] == []


def test_adopt_positions_takes_over_unmanaged_quantity(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        managed = _open(stack, quantity=10)
        stack.broker.place_order(strategy="ext", symbol="RELIANCE", exchange="NSE", action="BUY", quantity=4, product="MIS")
        stack.sim.set_price("NSE", "SBIN", 800.0)
        stack.broker.place_order(strategy="ext", symbol="SBIN", exchange="NSE", action="SELL", quantity=3, product="MIS")

        result = stack.engine.adopt_positions().result(10)
        assert len(result.trade_ids) == 2
        views = {v.symbol: v for v in (stack.wait_trade(t, lambda v: v.status is TradeStatus.ACTIVE) for t in result.trade_ids)}
        assert (views["RELIANCE"].quantity, views["RELIANCE"].side, views["RELIANCE"].strategy) == (4, Side.LONG, "manual")
        assert (views["SBIN"].quantity, views["SBIN"].side) == (3, Side.SHORT)
        assert stack.engine.snapshot().trade(managed).quantity == 10
        again = stack.engine.adopt_positions().result(10)
        assert again.trade_ids == ()
