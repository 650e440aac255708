"""Entries: market and limit, partial fills, rejections, adoption of an order."""

from __future__ import annotations

import pytest

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.broker import FeedState
from tmtool.domain.commands import Accepted, CreateTrade, ExitTrade
from tmtool.domain.models import (
    Distance,
    PriceType,
    Side,
    Sizing,
    SizingMode,
    Strategy,
    TradeRisk,
    TradeStatus,
)

RISK = TradeRisk(stop_loss=Distance(10), target=Distance(20))


def test_limit_entry_waits_for_its_price_then_levels_come_from_the_fill(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(
            CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=5, price_type=PriceType.LIMIT, limit_price=2490.0)
        )
        pending = stack.wait_trade(trade_id, lambda t: t.entry_order_id is not None)
        assert pending.status is TradeStatus.PENDING_ENTRY
        assert stack.position("RELIANCE") == 0

        stack.tick("RELIANCE", 2490.0)
        active = stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert (active.entry_price, active.quantity, active.stop_loss, active.target) == (2490.0, 5, 2480.0, 2510.0)
        assert stack.position("RELIANCE") == 5


def test_partial_entry_fill_activates_the_filled_part_then_grows(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        stack.sim.faults.partial_fill(0.5)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.SHORT, quantity=10))
        active = stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert active.quantity == 5
        assert stack.position("SBIN") == -5

        stack.sim.fill_order(active.entry_order_id)
        grown = stack.wait_trade(trade_id, lambda t: t.quantity == 10)
        assert grown.entry_quantity == 10 and grown.status is TradeStatus.ACTIVE
        stack.tick("SBIN", 810.0)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).quantity == 0
        assert stack.position("SBIN") == 0


def _without_order_updates(stack) -> None:
    """The feed comes back without OpenAlgo's order-update stream: orders are polled, and a live
    server's orderstatus carries no filled quantity (only ``complete`` says how much: all)."""
    stack.sim.order_updates_enabled = False
    stack.sim.faults.drop_ws()
    wait_for(lambda: stack.feed.status().state is FeedState.LIVE and not stack.feed.status().order_updates,
             what="the feed live without order updates")


def test_a_partial_entry_fill_is_found_in_the_tradebook_while_order_updates_are_down(tmp_path):
    """The filled part gets its stop while the rest of the entry stays open: not held unmanaged
    until the order completes (OpenAlgo's live orderstatus shows no partial fill; its tradebook does)."""
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        _without_order_updates(stack)
        stack.sim.set_price("NSE", "SBIN", 800.0)
        stack.sim.faults.partial_fill(0.5)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.LONG, quantity=10))
        active = stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert (active.quantity, active.entry_price, active.stop_loss) == (5, 800.0, 790.0)
        assert stack.position("SBIN") == 5

        stack.sim.fill_order(active.entry_order_id)
        assert stack.wait_trade(trade_id, lambda t: t.quantity == 10).entry_quantity == 10


def test_an_entry_cancelled_after_a_partial_fill_exits_the_filled_part_while_order_updates_are_down(tmp_path):
    """Exiting a trade whose entry is partly filled cancels the rest; the cancelled order's
    orderstatus says nothing of the fill, so the tradebook must: the filled shares are sold."""
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        _without_order_updates(stack)
        stack.sim.set_price("NSE", "SBIN", 800.0)
        stack.sim.faults.partial_fill(0.5)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.SHORT, quantity=10))
        wait_for(lambda: stack.position("SBIN") == -5, what="half the entry filled at the broker")
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        ended = stack.wait_trade(trade_id, lambda t: t.status in (TradeStatus.CLOSED, TradeStatus.CANCELLED))
        assert stack.position("SBIN") == 0, "the filled part of the entry was left at the broker"
        assert ended.status is TradeStatus.CLOSED and ended.entry_quantity == 5


def test_adopting_a_cancelled_order_that_partly_filled_manages_the_filled_part(tmp_path):
    """A live server's orderstatus of a cancelled order says nothing of its fills: the tradebook does."""
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "HDFCBANK", 1650.0)
        stack.sim.faults.partial_fill(0.5)
        ack = stack.broker.place_order(strategy="s1", symbol="HDFCBANK", exchange="NSE", action="BUY", quantity=4, product="MIS")
        stack.broker.cancel_order(ack.order_id, "s1")
        assert stack.position("HDFCBANK") == 2
        result = stack.submit(CreateTrade("s1", "HDFCBANK", "NSE", Side.LONG, order_id=ack.order_id))
        assert isinstance(result, Accepted), result
        view = stack.wait_status(result.trade_id, TradeStatus.ACTIVE)
        assert (view.quantity, view.entry_price, view.stop_loss) == (2, 1650.0, 1640.0)


def test_rejected_entry_cancels_the_trade(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "INFY", 1500.0)
        # the broker's reason comes only on the order-update stream (orderstatus has none): once it flows
        wait_for(lambda: stack.feed.status().order_updates, what="the order-update stream subscribed")
        stack.sim.faults.reject_orders(count=1, reason="RMS: margin exceeds")
        trade_id = stack.create(CreateTrade("s1", "INFY", "NSE", Side.LONG, quantity=2))
        cancelled = stack.wait_status(trade_id, TradeStatus.CANCELLED)
        assert cancelled.quantity == 0
        wait_for(lambda: any("margin exceeds" in a.text for a in stack.engine.snapshot().alerts), what="rejection alert")
        assert not stack.engine.watches("NSE", "INFY")


def test_sizing_from_the_strategy_and_funds(tmp_path):
    sized = Strategy("sized", trade_risk=RISK, sizing=Sizing(SizingMode.RISK_BASED, 1000.0))
    greedy = Strategy("greedy", trade_risk=RISK, allocated_funds=10_000.0, sizing=Sizing(SizingMode.FIXED_QUANTITY, 100))
    with running_stack(tmp_path, strategies=(sized, greedy)) as stack:
        stack.sim.set_price("NSE", "TCS", 3500.0)
        trade_id = stack.create(CreateTrade("sized", "TCS", "NSE", Side.LONG))
        assert stack.wait_status(trade_id, TradeStatus.ACTIVE).quantity == 100  # 1000 risked / 10 points
        denied = stack.submit(CreateTrade("greedy", "TCS", "NSE", Side.LONG))
        assert denied.code == "INSUFFICIENT_FUNDS"


def test_adopting_a_filled_order(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "HDFCBANK", 1650.0)
        ack = stack.broker.place_order(strategy="s1", symbol="HDFCBANK", exchange="NSE", action="BUY", quantity=3, product="MIS")
        result = stack.submit(CreateTrade("s1", "HDFCBANK", "NSE", Side.LONG, order_id=ack.order_id))
        assert isinstance(result, Accepted)
        view = stack.wait_status(result.trade_id, TradeStatus.ACTIVE)
        assert (view.quantity, view.entry_price, view.stop_loss, view.entry_order_id) == (3, 1650.0, 1640.0, ack.order_id)
        again = stack.submit(CreateTrade("s1", "HDFCBANK", "NSE", Side.LONG, order_id=ack.order_id))
        assert again.code == "ALREADY_MANAGED"
        stack.tick("HDFCBANK", 1640.0)
        assert stack.wait_status(result.trade_id, TradeStatus.CLOSED).realised_pnl == pytest.approx(-30.0)
        assert stack.position("HDFCBANK") == 0
