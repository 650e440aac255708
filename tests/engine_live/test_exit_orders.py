"""Marketable LIMIT exits re-priced in place, and exits that first cancel an unfilled entry."""

from __future__ import annotations

from tests.stack import Stack, running_stack
from tests.util import wait_for
from tmtool.domain.commands import Accepted, CreateTrade, ExitTrade
from tmtool.domain.models import (
    AlertPriority,
    Distance,
    ExitOrderSettings,
    ExitReason,
    PriceType,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)
from tmtool.engine.snapshot import TradeView

RISK = TradeRisk(stop_loss=Distance(100))


def _limit_exits(max_reprices: int) -> Strategy:
    settings = ExitOrderSettings(price_type=PriceType.LIMIT, protection_percent=0.5, reprice_after_seconds=0.2,
                                 max_reprices=max_reprices)
    return Strategy("limits", trade_risk=RISK, exit_order=settings)


def _open(stack: Stack, strategy: str, quantity: int, price: float = 2500.0) -> int:
    stack.sim.set_price("NSE", "RELIANCE", price)
    trade_id = stack.create(CreateTrade(strategy, "RELIANCE", "NSE", Side.LONG, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _wait_closed_without_overlap(stack: Stack, trade_id: int, quantity: int, status: TradeStatus = TradeStatus.CLOSED) -> TradeView:
    """Wait for the trade to end while checking, at every look, that the working exit orders
    never hold more than the trade's quantity (no second exit order beside a live one)."""

    def check() -> TradeView | None:
        working = [o for o in stack.orders_for("RELIANCE", "SELL") if o["status"] in ("open", "trigger pending")]
        assert sum(o["pending_quantity"] for o in working) <= quantity, working
        view = stack.engine.snapshot().trade(trade_id)
        return view if view is not None and view.status is status else None

    return wait_for(check, 15.0, what=f"trade #{trade_id} {status.value}")


def _events(stack: Stack, trade_id: int, field: str) -> list[tuple[str, str]]:
    stack.store.flush()
    return [(e.old, e.new) for e in stack.engine.trade_events(trade_id) if e.field == field]


def test_unfilled_limit_exit_is_re_priced_in_place_to_the_new_price(tmp_path):
    with running_stack(tmp_path, strategies=(_limit_exits(max_reprices=5),)) as stack:
        trade_id = _open(stack, "limits", 10)
        stack.sim.set_price("NSE", "RELIANCE", 2440.0, publish=False)  # the market fell; no tick said so yet
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        first = wait_for(lambda: stack.orders_for("RELIANCE", "SELL"), what="the LIMIT exit")
        assert [(o["pricetype"], o["price"], o["status"]) for o in first] == [("LIMIT", 2487.5, "open")]

        stack.tick("RELIANCE", 2450.0)  # above the market: a SELL at 2487.5 still does not fill
        closed = _wait_closed_without_overlap(stack, trade_id, 10)
        assert (closed.exit_reason, closed.exit_price, closed.quantity) == (ExitReason.MANUAL, 2450.0, 0)
        sells = stack.orders_for("RELIANCE", "SELL")
        assert len(sells) == 1  # the same order, modified
        assert (sells[0]["pricetype"], sells[0]["price"], sells[0]["filled_quantity"]) == ("LIMIT", 2437.75, 10)
        assert ("LIMIT 2487.50", "LIMIT 2437.75") in _events(stack, trade_id, "exit_price")
        assert stack.position("RELIANCE") == 0


def test_limit_exit_goes_market_after_its_reprices(tmp_path):
    with running_stack(tmp_path, strategies=(_limit_exits(max_reprices=2),)) as stack:
        trade_id = _open(stack, "limits", 10)
        stack.sim.set_price("NSE", "RELIANCE", 2400.0, publish=False)  # the feed lags: LIMITs at 2487.5 never fill
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)

        closed = _wait_closed_without_overlap(stack, trade_id, 10)
        assert (closed.exit_price, closed.realised_pnl) == (2400.0, -1000.0)
        sells = stack.orders_for("RELIANCE", "SELL")
        assert [(o["pricetype"], o["quantity"], o["filled_quantity"], o["status"]) for o in sells] == [("MARKET", 10, 10, "complete")]
        assert _events(stack, trade_id, "exit_price") == [
            ("LIMIT 2487.50", "LIMIT 2487.50"), ("LIMIT 2487.50", "LIMIT 2487.50"), ("LIMIT 2487.50", "MARKET"),
        ]
        assert stack.position("RELIANCE") == 0


def test_semi_auto_refusing_a_re_price_is_reported_and_re_pricing_resumes_later(tmp_path):
    with running_stack(tmp_path, strategies=(_limit_exits(max_reprices=1),)) as stack:
        trade_id = _open(stack, "limits", 10)
        stack.sim.set_price("NSE", "RELIANCE", 2400.0, publish=False)
        stack.sim.semi_auto = True
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        stack.wait_trade(trade_id, lambda t: t.awaiting_approval)
        # The user approves the queued exit as it was: a LIMIT SELL 10 at 2487.5 that does not fill.
        stack.sim.semi_auto = False
        stack.broker.place_order(strategy="limits", symbol="RELIANCE", exchange="NSE", action="SELL", quantity=10,
                                 product="MIS", price_type="LIMIT", price=2487.5)
        stack.sim.semi_auto = True
        stack.wait_trade(trade_id, lambda t: not t.awaiting_approval and t.exit_order_ids)

        alert = wait_for(lambda: [a for a in stack.engine.snapshot().alerts if "refuses to re-price" in a.text],
                         what="re-price refused alert")
        assert alert[0].priority is AlertPriority.WARNING
        assert stack.engine.snapshot().system.broker_state == "OK"  # a semi-auto 403 is not an expired session
        assert stack.orders_for("RELIANCE", "SELL")[0]["status"] == "open"

        stack.sim.semi_auto = False
        closed = _wait_closed_without_overlap(stack, trade_id, 10)
        assert closed.exit_price == 2400.0
        assert len(stack.orders_for("RELIANCE", "SELL")) == 1
        assert stack.position("RELIANCE") == 0


def test_exit_of_a_pending_entry_cancels_it_and_sends_nothing(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=5, price_type=PriceType.LIMIT,
                                            limit_price=2490.0))
        entry_id = stack.wait_trade(trade_id, lambda t: t.entry_order_id is not None).entry_order_id

        result = stack.submit(ExitTrade(trade_id))
        assert isinstance(result, Accepted) and "cancel" in result.message
        cancelled = stack.wait_status(trade_id, TradeStatus.CANCELLED)
        assert cancelled.quantity == 0
        assert [(o["orderid"], o["status"]) for o in stack.orders_for("RELIANCE")] == [(entry_id, "cancelled")]
        stack.tick("RELIANCE", 2480.0)  # the price the entry waited for: nothing fills any more
        assert stack.position("RELIANCE") == 0
        assert not stack.engine.watches("NSE", "RELIANCE")


def test_a_partly_filled_pending_entry_exits_only_after_the_cancel_is_confirmed(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        stack.sim.faults.partial_fill(0.4)
        trade_id = stack.create(CreateTrade("s1", "RELIANCE", "NSE", Side.LONG, quantity=10, price_type=PriceType.LIMIT,
                                            limit_price=2490.0))
        entry_id = stack.wait_trade(trade_id, lambda t: t.entry_order_id is not None).entry_order_id

        stack.sim.semi_auto = True  # the cancel is refused: the entry stays live
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        wait_for(lambda: any("could not cancel the unfilled entry" in a.text for a in stack.engine.snapshot().alerts),
                 what="cancel refused alert")
        stack.tick("RELIANCE", 2490.0)  # 4 of 10 fill; the rest stays working
        partly = stack.wait_trade(trade_id, lambda t: t.quantity == 4)
        assert partly.status is TradeStatus.ACTIVE  # watched, but its exit waits for the entry to end
        assert stack.orders_for("RELIANCE", "SELL") == []

        stack.sim.semi_auto = False
        stack.broker.cancel_order(entry_id, "s1")  # the user cancels it in OpenAlgo
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert (closed.exit_reason, closed.entry_quantity, closed.quantity) == (ExitReason.MANUAL, 4, 0)
        sells = stack.orders_for("RELIANCE", "SELL")
        assert [(o["quantity"], o["status"]) for o in sells] == [(4, "complete")]
        assert stack.position("RELIANCE") == 0


def test_exit_of_a_partly_filled_trade_cancels_the_rest_of_its_entry(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("s1", trade_risk=RISK),)) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        stack.sim.faults.partial_fill(0.5)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.LONG, quantity=10))
        active = stack.wait_trade(trade_id, lambda t: t.status is TradeStatus.ACTIVE and t.quantity == 5)

        result = stack.submit(ExitTrade(trade_id))
        assert isinstance(result, Accepted) and "cancelling" in result.message
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert (closed.entry_quantity, closed.quantity) == (5, 0)
        entry = next(o for o in stack.sim.orders() if o["orderid"] == active.entry_order_id)
        assert (entry["status"], entry["filled_quantity"]) == ("cancelled", 5)
        assert [o["quantity"] for o in stack.orders_for("SBIN", "SELL")] == [5]
        assert stack.position("SBIN") == 0
