"""Orders whose reply is lost, over real sockets: exactly one exit, no lost entry, no phantom adoption.

The simulator places the order and then answers 500, drops the connection or
hangs (``process=True``); its order book lags the broker by 0-5 s; its naive
timestamps are written in UTC or IST; a second trade may hold the same symbol.
Whatever the mix, an exit goes out once and never reverses the position, the
other trade keeps its shares, and an entry that filled is managed with its stop.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from tests.stack import FAST_SETTINGS, running_stack
from tests.util import wait_for
from tmtool.domain.commands import Accepted, CreateTrade, Denied, ExitTrade, Reconcile
from tmtool.domain.models import AlertPriority, Distance, ExitReason, OrderState, Side, Strategy, TradeRisk, TradeStatus

TIGHT = Strategy("tight", trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(50)))
WIDE = Strategy("wide", trade_risk=TradeRisk(stop_loss=Distance(40)))
# the grace must cover the order book's lag: an order the book does not show yet is never declared absent
LAGGING = dataclasses.replace(FAST_SETTINGS, absence_grace=8.0)
SYMBOL = "RELIANCE"


def _fault(stack, fault: str) -> None:
    faults = stack.sim.faults
    if fault == "500":
        faults.rest_fail(500, endpoints=["placeorder"], process=True)
    elif fault == "drop":
        faults.rest_drop(endpoints=["placeorder"], process=True)
    else:
        faults.rest_timeout(endpoints=["placeorder"], process=True)


def _open(stack, strategy: str, quantity: int) -> int:
    trade_id = stack.create(CreateTrade(strategy, SYMBOL, "NSE", Side.LONG, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _alerts(stack, priority: AlertPriority) -> list[str]:
    return [a.text for a in stack.engine.snapshot().alerts if a.priority is priority]


def _broker(stack, *, lag: float, zone: str, updates: bool) -> None:
    stack.sim.faults.server_time_zone(zone)
    stack.sim.faults.lag_order_book(lag)
    stack.sim.order_updates_enabled = updates


# fault, order-book lag, a second trade on the symbol, the server's zone, the order-update stream
EXIT_CASES = [
    ("500", 0.0, False, "Asia/Kolkata", False),
    ("500", 5.0, True, "UTC", False),
    ("500", 2.0, True, "Asia/Kolkata", True),
    ("drop", 2.0, True, "UTC", False),
    ("drop", 5.0, False, "Asia/Kolkata", False),
    ("timeout", 0.0, True, "UTC", False),
    ("timeout", 5.0, True, "Asia/Kolkata", False),
    ("timeout", 3.0, False, "UTC", True),
]


@pytest.mark.parametrize("fault, lag, second, zone, updates", EXIT_CASES)
def test_an_exit_whose_reply_is_lost_goes_out_exactly_once(tmp_path, fault, lag, second, zone, updates):
    with running_stack(tmp_path, strategies=(TIGHT, WIDE), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 5)
        other = _open(stack, "wide", 5) if second else None
        held = 5 if second else 0
        _broker(stack, lag=lag, zone=zone, updates=updates)
        _fault(stack, fault)

        stack.tick(SYMBOL, 2489.0)  # the tight stop only
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=20)

        sells = stack.orders_for(SYMBOL, "SELL")
        assert [(o["strategy"], o["quantity"], o["status"]) for o in sells] == [("tight", 5, "complete")]
        assert closed.exit_reason is ExitReason.STOP_LOSS and closed.quantity == 0 and closed.realised_pnl < 0
        assert stack.position(SYMBOL) == held
        if other is not None:
            view = stack.engine.snapshot().trade(other)
            assert (view.status, view.quantity) == (TradeStatus.ACTIVE, 5)
        stack.sim.faults.lag_order_book(0)  # the book catches up: nothing more is sent
        wait_for(lambda: not stack.engine.snapshot().trade(other or trade_id).exit_wait, what="no order left unknown")
        assert len(stack.orders_for(SYMBOL, "SELL")) == 1


def test_an_exit_that_was_never_placed_is_sent_again_only_after_the_grace(tmp_path):
    """A 500 with nothing placed: the book and the position agree it is absent over the grace, then it goes once."""
    with running_stack(tmp_path, strategies=(TIGHT, WIDE)) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 5)
        other = _open(stack, "wide", 5)
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=False)
        stack.tick(SYMBOL, 2489.0)
        stack.wait_trade(trade_id, lambda t: t.exit_wait == "unknown order")
        assert stack.orders_for(SYMBOL, "SELL") == []
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS
        assert [o["quantity"] for o in stack.orders_for(SYMBOL, "SELL")] == [5]
        assert stack.position(SYMBOL) == 5 and stack.engine.snapshot().trade(other).quantity == 5


def test_a_second_exit_on_the_symbol_waits_while_the_first_is_unknown(tmp_path):
    """While one exit's outcome is unknown, another trade's stop on the symbol sends nothing; it goes once the first is found."""
    with running_stack(tmp_path, strategies=(TIGHT, WIDE), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        first = _open(stack, "tight", 5)
        second = _open(stack, "wide", 5)
        _broker(stack, lag=5.0, zone="UTC", updates=False)
        stack.sim.faults.lag_positions(5.0)  # nothing proves the first exit filled until the books catch up
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=True)
        stack.tick(SYMBOL, 2489.0)
        stack.wait_trade(first, lambda t: t.exit_wait == "unknown order")
        assert isinstance(stack.submit(ExitTrade(second)), Accepted)
        waiting = stack.wait_trade(second, lambda t: t.status is TradeStatus.EXITING and t.exit_wait == "unknown order")
        assert waiting.quantity == 5 and len(stack.orders_for(SYMBOL, "SELL")) == 1

        assert stack.wait_status(first, TradeStatus.CLOSED, timeout=20).exit_reason is ExitReason.STOP_LOSS
        assert stack.wait_status(second, TradeStatus.CLOSED, timeout=20).exit_reason is ExitReason.MANUAL
        assert [(o["strategy"], o["quantity"]) for o in stack.orders_for(SYMBOL, "SELL")] == [("tight", 5), ("wide", 5)]
        assert stack.position(SYMBOL) == 0


def test_an_order_taken_as_filled_keeps_its_book_row_from_a_later_lookup(tmp_path):
    """A's exit is taken as filled from the position while the book lags; B's exit is then lost and never
    placed.  When B looks, A's row is in the book: it is A's (claimed first), so B is proven absent and sent."""
    with running_stack(tmp_path, strategies=(TIGHT, WIDE), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        first = _open(stack, "tight", 5)
        second = _open(stack, "wide", 5)
        _broker(stack, lag=12.0, zone="Asia/Kolkata", updates=False)  # longer than the grace: the position decides
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=True)
        stack.tick(SYMBOL, 2489.0)
        stack.wait_status(first, TradeStatus.CLOSED, timeout=20)
        assert any("taken as filled" in t for t in _alerts(stack, AlertPriority.WARNING))
        [sold] = stack.orders_for(SYMBOL, "SELL")
        wait_for(lambda: any(o.order_id == sold["orderid"] for o in stack.broker.order_book()), timeout=20, interval=0.25,
                 what="A's row in the book")

        stack.sim.faults.lag_order_book(0)  # the book has caught up (so the resent exit's status is seen at once)
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=False)
        assert isinstance(stack.submit(ExitTrade(second)), Accepted)
        assert stack.wait_status(second, TradeStatus.CLOSED, timeout=20).exit_reason is ExitReason.MANUAL
        assert [(o["strategy"], o["quantity"]) for o in stack.orders_for(SYMBOL, "SELL")] == [("tight", 5), ("wide", 5)]
        assert stack.position(SYMBOL) == 0
        assert stack.engine.snapshot().trade(first).exit_order_ids == (sold["orderid"],)


ENTRY_CASES = [
    ("500", 0.0, False, "Asia/Kolkata", False),
    ("500", 5.0, True, "UTC", False),
    ("drop", 2.0, True, "Asia/Kolkata", False),
    ("timeout", 5.0, False, "UTC", False),
    ("timeout", 2.0, True, "Asia/Kolkata", True),
]


@pytest.mark.parametrize("fault, lag, second, zone, updates", ENTRY_CASES)
def test_an_entry_whose_reply_is_lost_is_managed_with_its_stop(tmp_path, fault, lag, second, zone, updates):
    with running_stack(tmp_path, strategies=(TIGHT, WIDE), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        other = _open(stack, "wide", 5) if second else None
        _broker(stack, lag=lag, zone=zone, updates=updates)
        _fault(stack, fault)

        trade_id = stack.create(CreateTrade("tight", SYMBOL, "NSE", Side.LONG, quantity=7))
        active = stack.wait_status(trade_id, TradeStatus.ACTIVE, timeout=20)
        assert (active.quantity, active.entry_price, active.stop_loss, active.target) == (7, 2500.0, 2490.0, 2550.0)
        buys = [o for o in stack.orders_for(SYMBOL, "BUY") if o["strategy"] == "tight"]
        assert [o["quantity"] for o in buys] == [7]
        assert stack.position(SYMBOL) == 7 + (5 if second else 0)
        if other is not None:
            assert stack.engine.snapshot().trade(other).quantity == 5

        stack.tick(SYMBOL, 2489.0)  # its stop works: exactly its own 7 go
        assert stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=20).exit_reason is ExitReason.STOP_LOSS
        assert stack.position(SYMBOL) == (5 if second else 0)


def test_an_entry_that_was_never_placed_is_cancelled_only_when_proven_absent(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=False)
        trade_id = stack.create(CreateTrade("tight", SYMBOL, "NSE", Side.LONG, quantity=7))
        assert stack.wait_status(trade_id, TradeStatus.CANCELLED).quantity == 0
        assert stack.orders_for(SYMBOL) == [] and stack.position(SYMBOL) == 0


# ---------------------------------------------------------------------------- a crash between intent and reply


def _hang_then_restart(stack, lag: float) -> None:
    """The order is placed but its reply never comes; the engine goes down before it knows (as a
    crash would leave it: the intent durable, the outcome unknown); the order book lags."""
    stack.sim.order_updates_enabled = False
    stack.sim.faults.lag_order_book(lag)
    stack.sim.faults.rest_timeout(endpoints=["placeorder"], process=True)


def _wait_placed(stack, action: str, count: int) -> None:
    wait_for(lambda: len(stack.orders_for(SYMBOL, action)) == count, what=f"{count} {action} placed")


def _ledger(stack, trade_id: int):
    return [o for o in stack.store.load().open_orders if o.trade_id == trade_id]


def test_a_crash_between_an_exit_intent_and_its_reply_exits_once(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT, WIDE), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 5)
        other = _open(stack, "wide", 5)
        _hang_then_restart(stack, lag=4.0)
        stack.tick(SYMBOL, 2489.0)
        _wait_placed(stack, "SELL", 1)
        stack.restart_engine()
        [left] = _ledger(stack, trade_id) or [None]
        assert left is None or left.net_before == 10  # the intent recorded the position it moves from

        closed = stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=20)
        assert closed.exit_reason is ExitReason.STOP_LOSS
        assert [(o["strategy"], o["quantity"]) for o in stack.orders_for(SYMBOL, "SELL")] == [("tight", 5)]
        assert stack.position(SYMBOL) == 5
        assert stack.wait_trade(other, lambda t: t.status is TradeStatus.ACTIVE).quantity == 5


def test_a_crash_between_an_entry_intent_and_its_reply_loses_no_entry(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        _hang_then_restart(stack, lag=5.0)
        trade_id = stack.create(CreateTrade("tight", SYMBOL, "NSE", Side.LONG, quantity=7, stop_loss=2485.0, target=2560.0))
        _wait_placed(stack, "BUY", 1)
        stack.restart_engine()

        active = stack.wait_status(trade_id, TradeStatus.ACTIVE, timeout=20)
        assert (active.quantity, active.stop_loss, active.target) == (7, 2485.0, 2560.0)  # managed with its own levels
        assert stack.position(SYMBOL) == 7 and len(stack.orders_for(SYMBOL, "BUY")) == 1
        stack.tick(SYMBOL, 2484.0)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=20).exit_reason is ExitReason.STOP_LOSS
        assert stack.position(SYMBOL) == 0


def test_an_old_intent_without_a_recorded_position_is_never_resent_and_alerts(tmp_path):
    """A ledger row from before net_before: absence cannot be proven, so it stays unknown (CRITICAL), never resent."""
    settings = dataclasses.replace(FAST_SETTINGS, unknown_alert_after=1.0)
    with running_stack(tmp_path, strategies=(TIGHT,), settings=settings) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 5)

        def old_intent() -> None:
            from tmtool.domain.models import OrderPurpose, OrderRecord

            [trade] = [t for t in stack.store.load().open_trades if t.id == trade_id]
            stack.store.save_trade(dataclasses.replace(trade, status=TradeStatus.EXITING, exit_reason=ExitReason.MANUAL))
            intent = OrderRecord(key=f"x-{trade_id}-old", trade_id=trade_id, purpose=OrderPurpose.EXIT, action="SELL",
                                 quantity=5, state=OrderState.INTENT, reason=ExitReason.MANUAL,
                                 created_at=stack.clock.time(), updated_at=stack.clock.time())
            assert stack.store.save_order(intent, durable=True, timeout=5.0)

        stack.restart_engine(old_intent)
        wait_for(lambda: any("still unknown" in text for text in _alerts(stack, AlertPriority.CRITICAL)), what="critical alert")
        view = stack.engine.snapshot().trade(trade_id)
        assert (view.status, view.exit_wait) == (TradeStatus.EXITING, "unknown order")
        assert stack.orders_for(SYMBOL, "SELL") == [] and stack.position(SYMBOL) == 5


# ---------------------------------------------------------------------------- adoption checks the book


def test_adopting_a_position_the_account_does_not_hold_is_refused(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        held = _open(stack, "tight", 5)
        phantom = CreateTrade("tight", SYMBOL, "NSE", Side.LONG, quantity=5, entry_price=2500.0)
        refused = stack.submit(phantom)
        assert isinstance(refused, Denied) and refused.code == "POSITION_NOT_HELD", refused
        assert "0 LONG free to adopt, not 5" in refused.message

        stack.broker.place_order(strategy="ext", symbol=SYMBOL, exchange="NSE", action="BUY", quantity=3, product="MIS")
        assert isinstance(stack.submit(phantom), Denied)  # 3 are free, not 5
        short = stack.submit(CreateTrade("tight", SYMBOL, "NSE", Side.SHORT, quantity=1, entry_price=2500.0))
        assert isinstance(short, Denied) and short.code == "POSITION_NOT_HELD"
        adopted = stack.submit(dataclasses.replace(phantom, quantity=3))
        assert isinstance(adopted, Accepted)
        assert stack.wait_status(adopted.trade_id, TradeStatus.ACTIVE).quantity == 3

        stack.tick(SYMBOL, 2489.0)  # both stops: exactly what is held goes
        stack.wait_status(adopted.trade_id, TradeStatus.CLOSED)
        stack.wait_status(held, TradeStatus.CLOSED)
        assert stack.position(SYMBOL) == 0


def test_adopting_an_order_whose_fill_is_not_held_is_refused(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        order_id = stack.broker.place_order(strategy="ext", symbol=SYMBOL, exchange="NSE", action="BUY", quantity=4, product="MIS").order_id
        stack.broker.place_order(strategy="ext", symbol=SYMBOL, exchange="NSE", action="SELL", quantity=4, product="MIS")
        refused = stack.submit(CreateTrade("tight", SYMBOL, "NSE", Side.LONG, order_id=order_id))
        assert isinstance(refused, Denied) and refused.code == "POSITION_NOT_HELD", refused


# ---------------------------------------------------------------------------- others' working orders


def test_an_exit_leaves_room_for_others_working_closing_orders(tmp_path):
    """Someone's LIMIT SELL 4 works against a long 10: the exit sends 6, waits (alerted) for the rest, and goes
    once that order is cancelled; the position never goes short."""
    settings = dataclasses.replace(FAST_SETTINGS, settle_wait=0.5)
    with running_stack(tmp_path, strategies=(TIGHT,), settings=settings) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 10)
        theirs = stack.broker.place_order(strategy="ext", symbol=SYMBOL, exchange="NSE", action="SELL", quantity=4,
                                          product="MIS", price_type="LIMIT", price=2600.0).order_id
        key_state = stack.engine._orders._positions.key((SYMBOL, "NSE", "MIS"))  # the engine's cache of the position
        wait_for(lambda: key_state.foreign_closing(Side.LONG) == 4, what="their order known to the engine (its update)")
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        stack.wait_trade(trade_id, lambda t: t.quantity == 4 and t.exit_wait == "others' orders")
        assert [o["quantity"] for o in stack.orders_for(SYMBOL, "SELL", strategy="tight")] == [6]
        wait_for(lambda: any("orders placed outside tmtool" in t for t in _alerts(stack, AlertPriority.WARNING)), what="alert")
        assert stack.position(SYMBOL) == 4

        stack.broker.cancel_order(theirs, "ext")
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.MANUAL
        assert [o["quantity"] for o in stack.orders_for(SYMBOL, "SELL", strategy="tight")] == [6, 4]
        assert stack.position(SYMBOL) == 0


def test_an_exit_its_order_id_its_fill_and_its_outcome_are_logged_at_info(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tmtool.engine.orders")
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        trade_id = _open(stack, "tight", 5)
        stack.tick(SYMBOL, 2489.0)
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
    [order_id] = closed.exit_order_ids
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.getMessage().startswith(f"exit #{trade_id} ")]
    assert any("SELL 5 RELIANCE MARKET (STOP_LOSS" in line for line in lines), lines
    assert any(line.endswith(f"order id {order_id}") for line in lines), lines
    assert any(f"(order {order_id}): filled 5 at 2489.00" in line for line in lines), lines
    assert any(f"(order {order_id}): COMPLETE, filled 5 of 5" in line for line in lines), lines


def test_a_lagging_positionbook_does_not_close_a_trade_whose_shares_are_held(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        stack.sim.faults.lag_positions(3.0)
        trade_id = _open(stack, "tight", 5)
        assert isinstance(stack.submit(Reconcile()), Accepted)  # the book does not show the entry yet
        reconciler = stack.engine._reconciler
        wait_for(lambda: reconciler._suspect, what="the short read noted")
        wait_for(lambda: not reconciler._suspect, timeout=20, what="the confirming read")
        view = stack.engine.snapshot().trade(trade_id)
        assert (view.status, view.quantity) == (TradeStatus.ACTIVE, 5) and stack.position(SYMBOL) == 5


def test_an_entry_whose_fill_only_the_position_shows_is_managed_with_a_critical_alert(tmp_path):
    """The book lags longer than the grace: the position's move, held over the grace, proves the fill."""
    with running_stack(tmp_path, strategies=(TIGHT,), settings=LAGGING) as stack:
        stack.sim.set_price("NSE", SYMBOL, 2500.0)
        _broker(stack, lag=12.0, zone="UTC", updates=False)
        stack.sim.faults.rest_fail(500, endpoints=["placeorder"], process=True)
        trade_id = stack.create(CreateTrade("tight", SYMBOL, "NSE", Side.LONG, quantity=7))
        active = stack.wait_status(trade_id, TradeStatus.ACTIVE, timeout=20)
        assert (active.quantity, active.stop_loss) == (7, 2490.0)
        assert any("taken as filled" in t for t in _alerts(stack, AlertPriority.CRITICAL))
        assert stack.position(SYMBOL) == 7 and len(stack.orders_for(SYMBOL, "BUY")) == 1
