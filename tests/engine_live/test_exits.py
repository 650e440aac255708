"""The exit protocol against the simulator's faults: at most once, never overshooting."""

from __future__ import annotations

from tests.stack import FAST_SETTINGS, running_stack
from tests.util import wait_for
from tmtool.sim import builtin_symbols
from tmtool.domain.commands import (
    Accepted,
    CreateTrade,
    ExitAll,
    ExitTrade,
    Reconcile,
)
from tmtool.domain.broker import FeedState
from tmtool.domain.models import (
    AlertPriority,
    Distance,
    ExitReason,
    Product,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)

TIGHT = Strategy("tight", trade_risk=TradeRisk(stop_loss=Distance(10)))
WIDE = Strategy("wide", trade_risk=TradeRisk(stop_loss=Distance(40)))


def _open(stack, strategy: str, quantity: int, symbol: str = "RELIANCE", side: Side = Side.LONG, price: float = 2500.0) -> int:
    stack.sim.set_price("NSE", symbol, price)
    trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", side, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _critical(stack) -> list[str]:
    return [a.text for a in stack.engine.snapshot().alerts if a.priority is AlertPriority.CRITICAL]


def test_two_trades_on_one_symbol_exit_one_at_a_time(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT, WIDE)) as stack:
        first = _open(stack, "tight", 10)
        second = _open(stack, "wide", 7)
        assert stack.position("RELIANCE") == 17

        stack.tick("RELIANCE", 2489.0)
        assert stack.wait_status(first, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS
        other = stack.engine.snapshot().trade(second)
        assert (other.status, other.quantity) == (TradeStatus.ACTIVE, 7)
        assert stack.position("RELIANCE") == 7

        assert isinstance(stack.submit(ExitTrade(second)), Accepted)
        assert stack.wait_status(second, TradeStatus.CLOSED).exit_reason is ExitReason.MANUAL
        assert stack.position("RELIANCE") == 0
        assert [o["quantity"] for o in stack.orders_for("RELIANCE", "SELL")] == [10, 7]
        wait_for(lambda: ("NSE", "RELIANCE", 1) not in stack.sim.subscriptions(), what="unsubscribed with the last trade")


def test_exit_whose_reply_times_out_but_filled_is_sent_exactly_once(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        stack.sim.faults.rest_timeout(count=1, endpoints=["placeorder"], process=True)
        stack.tick("RELIANCE", 2488.0)

        closed = stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=15)
        assert closed.exit_reason is ExitReason.STOP_LOSS
        sells = stack.orders_for("RELIANCE", "SELL")
        assert len(sells) == 1 and sells[0]["status"] == "complete"
        assert closed.exit_order_ids == (sells[0]["orderid"],)
        assert stack.position("RELIANCE") == 0


def test_rejected_exit_is_retried_then_exit_failed_then_manual_retry_closes(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        attempts = FAST_SETTINGS.exit_max_attempts  # the default users run with
        stack.sim.faults.reject_orders(count=attempts, reason="RMS: margin exceeds")
        stack.tick("RELIANCE", 2489.0)

        failed = stack.wait_status(trade_id, TradeStatus.EXIT_FAILED)
        assert failed.quantity == 10
        sells = stack.orders_for("RELIANCE", "SELL")
        assert [o["status"] for o in sells] == ["rejected"] * attempts
        assert stack.position("RELIANCE") == 10
        wait_for(lambda: any("EXIT FAILED" in text for text in _critical(stack)), what="critical alert")

        stack.tick("RELIANCE", 2470.0)  # an EXIT_FAILED trade ignores further stop decisions
        assert len(stack.orders_for("RELIANCE", "SELL")) == attempts

        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS
        assert stack.position("RELIANCE") == 0
        assert [o["status"] for o in stack.orders_for("RELIANCE", "SELL")] == ["rejected"] * attempts + ["complete"]


def test_one_rejection_is_retried_and_the_exit_completes(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 4, side=Side.SHORT)
        stack.sim.faults.reject_orders(count=1)
        stack.tick("RELIANCE", 2511.0)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS
        assert [o["status"] for o in stack.orders_for("RELIANCE", "BUY")] == ["rejected", "complete"]
        assert stack.position("RELIANCE") == 0


def test_position_closed_behind_our_back_reconciles_and_later_exit_sends_nothing(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        stack.sim.faults.close_position_externally("RELIANCE", "NSE", "MIS")
        assert stack.position("RELIANCE") == 0

        assert isinstance(stack.submit(Reconcile()), Accepted)
        gone = stack.wait_status(trade_id, TradeStatus.CLOSED_EXTERNALLY)
        assert gone.exit_reason is ExitReason.CLOSED_EXTERNALLY
        assert not stack.engine.watches("NSE", "RELIANCE")

        stack.sim.set_price("NSE", "RELIANCE", 2480.0)
        assert isinstance(stack.submit(ExitAll()), Accepted)
        tmtool_sells = [o for o in stack.orders_for("RELIANCE", "SELL") if o["strategy"] == "tight"]
        assert tmtool_sells == []
        assert stack.position("RELIANCE") == 0


def test_stop_after_an_external_close_sends_nothing_even_before_reconciliation(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        stack.sim.faults.close_position_externally("RELIANCE", "NSE", "MIS")
        stack.tick("RELIANCE", 2480.0)

        gone = stack.wait_status(trade_id, TradeStatus.CLOSED_EXTERNALLY)
        assert gone.quantity == 0
        assert [o for o in stack.orders_for("RELIANCE", "SELL") if o["strategy"] == "tight"] == []
        assert stack.position("RELIANCE") == 0  # never reversed


def test_exits_after_a_close_outside_tmtool_without_order_updates_never_reverse(tmp_path):
    """Two trades of 10 on one symbol and no order-update stream.  The user sells 10 in the broker's
    own app; nothing tells tmtool.  A panic exit reads the position before sizing the exits: the 10
    still held are sold once, the other trade closes as closed outside tmtool, and the account ends
    flat, never short."""
    with running_stack(tmp_path, strategies=(TIGHT, WIDE)) as stack:
        first, second = _open(stack, "tight", 10), _open(stack, "wide", 10)
        assert isinstance(stack.submit(Reconcile()), Accepted)  # the position cache holds the net of 20
        stack.sim.order_updates_enabled = False
        stack.sim.faults.drop_ws()  # the feed comes back without the order-update stream
        wait_for(lambda: stack.feed.status().state is FeedState.LIVE and not stack.feed.status().order_updates,
                 what="the feed live without order updates")
        stack.broker.place_order(strategy="outside", symbol="RELIANCE", exchange="NSE", action="SELL", quantity=10,
                                 product="MIS")
        assert stack.position("RELIANCE") == 10

        assert isinstance(stack.submit(ExitAll()), Accepted)
        ends = [stack.wait_trade(t, lambda v: v.status in (TradeStatus.CLOSED, TradeStatus.CLOSED_EXTERNALLY)).status
                for t in (first, second)]
        assert sorted(s.value for s in ends) == sorted([TradeStatus.CLOSED.value, TradeStatus.CLOSED_EXTERNALLY.value])
        tmtool_sells = [o for o in stack.orders_for("RELIANCE", "SELL") if o["strategy"] != "outside"]
        assert sum(int(o["quantity"]) for o in tmtool_sells) == 10
        assert stack.position("RELIANCE") == 0  # never reversed


def test_semi_auto_exit_is_shown_awaiting_approval_and_not_resent(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        stack.sim.semi_auto = True
        stack.tick("RELIANCE", 2489.0)

        view = stack.wait_trade(trade_id, lambda t: t.awaiting_approval)
        assert view.status is TradeStatus.EXITING
        assert len(stack.sim.pending_approvals()) == 1
        assert stack.orders_for("RELIANCE", "SELL") == []
        wait_for(lambda: any("approval" in a.text for a in stack.engine.snapshot().alerts), what="approval alert")

        denied = stack.submit(ExitTrade(trade_id))
        assert denied.code == "EXIT_IN_FLIGHT"
        stack.tick("RELIANCE", 2480.0)
        assert len(stack.sim.pending_approvals()) == 1  # never a second order while one may go live

        # The user approves it in the broker: an order appears and fills; the trade accounts for it.
        stack.sim.semi_auto = False
        stack.broker.place_order(strategy="tight", symbol="RELIANCE", exchange="NSE", action="SELL", quantity=10, product="MIS")
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.STOP_LOSS
        assert stack.position("RELIANCE") == 0


def test_session_expiry_queues_the_exit_alerts_and_resumes(tmp_path):
    with running_stack(tmp_path, strategies=(TIGHT,)) as stack:
        trade_id = _open(stack, "tight", 10)
        stack.sim.session_expired = True
        stack.tick("RELIANCE", 2489.0)

        wait_for(lambda: stack.engine.snapshot().system.broker_state == "SESSION_EXPIRED", what="session expired")
        assert any("log in to OpenAlgo again" in text for text in _critical(stack))
        assert stack.engine.snapshot().trade(trade_id).status is TradeStatus.EXITING
        assert stack.orders_for("RELIANCE", "SELL") == []

        stack.sim.session_expired = False
        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.STOP_LOSS
        assert [o["status"] for o in stack.orders_for("RELIANCE", "SELL")] == ["complete"]
        assert stack.engine.snapshot().system.broker_state == "OK"
        assert stack.position("RELIANCE") == 0


def test_fno_exit_above_the_freeze_quantity_is_split(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("fno", product=Product.NRML, exchange="NFO"),)) as stack:
        symbol = next(s.symbol for s in builtin_symbols() if s.exchange == "NFO" and s.symbol.startswith("NIFTY") and s.symbol.endswith("FUT"))
        stack.sim.set_price("NFO", symbol, 26100.0)
        for _ in range(2):  # the position is built outside tmtool (each order within the freeze limit)
            stack.broker.place_order(strategy="ext", symbol=symbol, exchange="NFO", action="BUY", quantity=1200, product="NRML")
        assert stack.position(symbol, "NFO", "NRML") == 2400

        trade_id = stack.create(
            CreateTrade("fno", symbol, "NFO", Side.LONG, product=Product.NRML, quantity=2400, entry_price=26100.0)
        )
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        assert isinstance(stack.submit(ExitTrade(trade_id)), Accepted)

        closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
        assert closed.exit_reason is ExitReason.MANUAL
        sells = [o for o in stack.orders_for(symbol, "SELL") if o["strategy"] == "fno"]
        assert sorted(o["quantity"] for o in sells) == [600, 1800]
        assert all(o["status"] == "complete" for o in sells)
        assert stack.position(symbol, "NFO", "NRML") == 0


def test_panic_exits_every_strategy_at_once(tmp_path):
    reason = ExitReason.PANIC
    with running_stack(tmp_path, strategies=(TIGHT, WIDE)) as stack:
        ids = [
            _open(stack, "tight", 3, "RELIANCE"),
            _open(stack, "wide", 4, "SBIN", price=800.0),
            _open(stack, "wide", 5, "INFY", side=Side.SHORT, price=1500.0),
        ]
        result = stack.submit(ExitAll(reason=reason))
        assert sorted(result.trade_ids) == sorted(ids)
        for trade_id in ids:
            assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is reason
        assert stack.sim.positions() == {}
