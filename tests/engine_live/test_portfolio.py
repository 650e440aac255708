"""Strategies watched as portfolios: portfolio stop, daily loss halt and lockout, deletion."""

from __future__ import annotations

import queue

import pytest

from datetime import datetime

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.commands import (
    Accepted,
    CreateTrade,
    DeleteStrategy,
    SaveStrategy,
)
from tmtool.domain.calendar import IST
from tmtool.clock import ManualClock
from tmtool.domain.models import (
    AccountLimits,
    Alert,
    AlertPriority,
    Amount,
    Distance,
    ExitReason,
    PortfolioRisk,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)

WIDE = TradeRisk(stop_loss=Distance(100))


def _open(stack, strategy: str, symbol: str, quantity: int, price: float, side: Side = Side.LONG) -> int:
    stack.sim.set_price("NSE", symbol, price)
    trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", side, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def _strategy_view(stack, name: str):
    return next(s for s in stack.engine.snapshot().strategies if s.name == name)


def test_portfolio_stop_exits_every_trade_of_that_strategy_only(tmp_path):
    basket = Strategy("basket", trade_risk=WIDE, portfolio=PortfolioRisk(stop_loss=Amount(500)))
    other = Strategy("other", trade_risk=WIDE)
    with running_stack(tmp_path, strategies=(basket, other)) as stack:
        reliance = _open(stack, "basket", "RELIANCE", 10, 2500.0)
        sbin = _open(stack, "basket", "SBIN", 20, 800.0)
        infy = _open(stack, "other", "INFY", 5, 1500.0)

        stack.tick("RELIANCE", 2470.0)  # -300: inside the limit
        assert stack.wait_trade(sbin, lambda t: t.status is TradeStatus.ACTIVE)
        stack.tick("SBIN", 790.0)  # -200 more: -500 hits the portfolio stop

        for trade_id in (reliance, sbin):
            assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.PORTFOLIO_SL
        assert stack.engine.snapshot().trade(infy).status is TradeStatus.ACTIVE
        assert stack.position("RELIANCE") == 0 and stack.position("SBIN") == 0
        assert stack.position("INFY") == 5
        view = _strategy_view(stack, "basket")
        assert view.realised_pnl == pytest.approx(-500.0)
        assert view.portfolio_stop == -500.0


def test_daily_loss_limit_exits_halts_and_refuses_new_trades(tmp_path):
    careful = Strategy("careful", trade_risk=WIDE, portfolio=PortfolioRisk(daily_loss_limit=Amount(300)))
    with running_stack(tmp_path, strategies=(careful,)) as stack:
        first = _open(stack, "careful", "RELIANCE", 10, 2500.0)
        stack.tick("RELIANCE", 2469.0)

        assert stack.wait_status(first, TradeStatus.CLOSED).exit_reason is ExitReason.DAILY_LOSS_LIMIT
        wait_for(lambda: _strategy_view(stack, "careful").halted, what="strategy halted")
        assert "daily loss limit" in _strategy_view(stack, "careful").halt_reason
        denied = stack.submit(CreateTrade("careful", "SBIN", "NSE", Side.LONG, quantity=1))
        assert denied.code == "HALTED"
        assert stack.orders_for("SBIN") == []
        stack.store.flush()
        stored = {p.strategy: p for p in stack.store.load().portfolios}
        assert stored["careful"].halted


def test_halted_strategy_is_locked_out_of_new_positions(tmp_path):
    careful = Strategy("careful", trade_risk=WIDE, portfolio=PortfolioRisk(daily_loss_limit=Amount(300)))
    with running_stack(tmp_path, strategies=(careful,)) as stack:
        stack.sim.analyzer_mode = True  # the sandbox order book names each order's strategy
        first = _open(stack, "careful", "RELIANCE", 10, 2500.0)
        stack.tick("RELIANCE", 2469.0)
        stack.wait_status(first, TradeStatus.CLOSED)
        wait_for(lambda: _strategy_view(stack, "careful").halted, what="strategy halted")

        stack.sim.set_price("NSE", "SBIN", 800.0)
        # the strategy's own script, outside tmtool, opens a position anyway; someone else trades too
        stack.broker.place_order(strategy="careful", symbol="SBIN", exchange="NSE", action="BUY", quantity=5, product="MIS")
        stack.broker.place_order(strategy="someone", symbol="INFY", exchange="NSE", action="BUY", quantity=3, product="MIS")

        wait_for(lambda: stack.position("SBIN") == 0, what="locked-out position closed")
        locked = stack.wait_snapshot(lambda s: [t for t in s.trades if t.symbol == "SBIN" and t.status.is_final])
        sbin = [t for t in locked.trades if t.symbol == "SBIN"]
        assert [(t.strategy, t.status, t.exit_reason, t.quantity) for t in sbin] == [
            ("careful", TradeStatus.CLOSED, ExitReason.LOCKOUT, 0)
        ]
        assert [o["action"] for o in stack.orders_for("SBIN", strategy="careful")] == ["BUY", "SELL"]
        assert any(a.priority is AlertPriority.CRITICAL and "locked out" in a.text for a in locked.alerts)
        assert stack.position("INFY") == 3  # not the halted strategy's: left alone
        assert not stack.engine.watches("NSE", "INFY")
        assert not any(a.key == "untagged-orders" for a in locked.alerts)


def test_untagged_order_book_cannot_lock_out_and_says_so_once(tmp_path):
    careful = Strategy("careful", trade_risk=WIDE, portfolio=PortfolioRisk(daily_loss_limit=Amount(300)))
    with running_stack(tmp_path, strategies=(careful,)) as stack:  # a live server: no tags in the order book
        first = _open(stack, "careful", "RELIANCE", 10, 2500.0)
        warned = stack.wait_snapshot(lambda s: [a for a in s.alerts if a.key == "untagged-orders"])
        warning = next(a for a in warned.alerts if a.key == "untagged-orders")
        assert warning.priority is AlertPriority.WARNING and "careful" in warning.text and "locked out" in warning.text

        stack.tick("RELIANCE", 2469.0)
        stack.wait_status(first, TradeStatus.CLOSED)
        wait_for(lambda: _strategy_view(stack, "careful").halted, what="strategy halted")
        stack.sim.set_price("NSE", "SBIN", 800.0)
        ack = stack.broker.place_order(strategy="careful", symbol="SBIN", exchange="NSE", action="BUY", quantity=5, product="MIS")

        def fills_seen() -> dict:  # read on the engine thread, where the tradebook polls land
            return stack.engine.run_in_engine_thread(lambda: dict(stack.engine._reconciler.fills_seen or {})).result(5)

        wait_for(lambda: ack.order_id in fills_seen(), what="the engine read the fill")
        assert stack.position("SBIN") == 5  # cannot be attributed: left alone, as the warning said
        assert not stack.engine.watches("NSE", "SBIN")
        history = [a for a in stack.engine.snapshot().alerts if a.key == "untagged-orders"]
        assert len(history) == 1 and history[0].count == 1


def test_account_loss_limit_exits_everything(tmp_path):
    one = Strategy("one", trade_risk=WIDE)
    two = Strategy("two", trade_risk=WIDE)
    with running_stack(tmp_path, strategies=(one, two), account=AccountLimits(daily_loss_limit=400.0)) as stack:
        a = _open(stack, "one", "RELIANCE", 10, 2500.0)
        b = _open(stack, "two", "SBIN", 10, 800.0)
        stack.tick("RELIANCE", 2480.0)  # -200
        stack.tick("SBIN", 780.0)  # -200: account -400
        for trade_id in (a, b):
            assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.ACCOUNT_LOSS_LIMIT
        assert stack.sim.positions() == {}
        assert stack.submit(CreateTrade("one", "INFY", "NSE", Side.LONG, quantity=1)).code == "HALTED"


def test_strategy_deletion_refused_with_open_trades_unless_exit_or_move(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("a", trade_risk=WIDE), Strategy("b", trade_risk=WIDE))) as stack:
        trade_id = _open(stack, "a", "RELIANCE", 2, 2500.0)
        assert stack.submit(DeleteStrategy("a")).code == "HAS_OPEN_TRADES"

        assert isinstance(stack.submit(DeleteStrategy("a", open_trades="move", move_to="b")), Accepted)
        moved = stack.wait_trade(trade_id, lambda t: t.strategy == "b")
        assert moved.status is TradeStatus.ACTIVE
        assert "a" not in {s.name for s in stack.wait_snapshot(lambda s: "a" not in {v.name for v in s.strategies}).strategies}

        assert isinstance(stack.submit(DeleteStrategy("b", open_trades="exit")), Accepted)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STRATEGY_DELETED
        stack.wait_snapshot(lambda s: "b" not in {v.name for v in s.strategies})
        assert stack.position("RELIANCE") == 0

        bad = stack.submit(SaveStrategy(Strategy("", trade_risk=WIDE)))
        assert bad.code == "INVALID_STRATEGY"


def test_a_deleted_strategys_loss_still_counts_toward_the_account_limit_after_a_restart(tmp_path):
    one = Strategy("one", trade_risk=WIDE)
    with running_stack(tmp_path, strategies=(one,), account=AccountLimits(daily_loss_limit=400.0)) as stack:
        assert isinstance(stack.submit(SaveStrategy(Strategy("gone", trade_risk=WIDE))), Accepted)
        lost = _open(stack, "gone", "RELIANCE", 10, 2500.0)
        stack.tick("RELIANCE", 2470.0)
        assert isinstance(stack.submit(DeleteStrategy("gone", open_trades="exit")), Accepted)
        stack.wait_status(lost, TradeStatus.CLOSED)
        stack.wait_snapshot(lambda s: "gone" not in {v.name for v in s.strategies} and s.account_pnl == -300.0)

        stack.restart_engine()
        assert stack.wait_snapshot(lambda s: s.system.engine_running).account_pnl == -300.0
        kept = _open(stack, "one", "SBIN", 10, 800.0)
        stack.tick("SBIN", 790.0)  # -100 more: -400 for the day, the account's limit
        assert stack.wait_status(kept, TradeStatus.CLOSED).exit_reason is ExitReason.ACCOUNT_LOSS_LIMIT


class _CollectingSink:
    """An AlertSink as notifiers are written: it only enqueues."""

    def __init__(self) -> None:
        self.alerts: queue.SimpleQueue[Alert] = queue.SimpleQueue()

    def publish(self, alert: Alert) -> None:
        self.alerts.put(alert)

    def drain(self) -> list[Alert]:
        out = []
        while not self.alerts.empty():
            out.append(self.alerts.get())
        return out


def test_halt_lifts_on_the_next_trading_day_and_sinks_hear_every_alert(tmp_path):
    clock = ManualClock(datetime(2026, 1, 5, 11, 0, tzinfo=IST), real_timers=True)
    careful = Strategy("careful", trade_risk=WIDE, portfolio=PortfolioRisk(daily_loss_limit=Amount(300)))
    sink = _CollectingSink()
    with running_stack(tmp_path, strategies=(careful,), clock=clock, alert_sinks=(sink,)) as stack:
        first = _open(stack, "careful", "RELIANCE", 10, 2500.0)
        stack.tick("RELIANCE", 2469.0)
        stack.wait_status(first, TradeStatus.CLOSED)
        wait_for(lambda: _strategy_view(stack, "careful").halted, what="halted")

        clock.set(datetime(2026, 1, 6, 9, 20, tzinfo=IST))
        wait_for(lambda: not _strategy_view(stack, "careful").halted, what="halt lifted at the day roll")
        assert _strategy_view(stack, "careful").realised_pnl == 0.0
        second = _open(stack, "careful", "SBIN", 1, 800.0)
        assert stack.engine.snapshot().trade(second).status is TradeStatus.ACTIVE

        heard = sink.drain()
        assert any(a.priority is AlertPriority.CRITICAL and "daily loss limit" in a.text for a in heard)
        assert any("new trading day" in a.text for a in heard)
        assert {a.id for a in heard} <= {a.id for a in stack.engine.alert_history()} | {a.id for a in stack.engine.snapshot().alerts}
