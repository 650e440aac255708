"""Paused trades whose stop is crossed, and panic as a kill switch, over the real stack."""

from __future__ import annotations

import threading

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.commands import Accepted, CreateTrade, Denied, ExitAll, PauseTrade, Rearm, ResumeTrade
from tmtool.domain.models import (
    Alert,
    AlertPriority,
    Distance,
    ExitReason,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)

RISK = TradeRisk(stop_loss=Distance(10))


class _Sink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()

    def publish(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)

    def paused_crossings(self, trade_id: int) -> list[Alert]:
        with self._lock:
            return [a for a in self.alerts if a.trade_id == trade_id and "paused" in a.text and "crossed" in a.text]


def _open(stack, strategy: str, symbol: str, quantity: int, price: float, side: Side = Side.LONG) -> int:
    stack.sim.set_price("NSE", symbol, price)
    trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", side, quantity=quantity))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


def test_a_paused_trade_whose_stop_is_crossed_warns_once_per_crossing(tmp_path):
    sink = _Sink()
    with running_stack(tmp_path, strategies=(Strategy("s", trade_risk=RISK),), alert_sinks=(sink,)) as stack:
        trade_id = _open(stack, "s", "SBIN", 10, 800.0)
        stop = stack.engine.snapshot().trade(trade_id).effective_stop
        assert stop == 790.0
        assert isinstance(stack.submit(PauseTrade(trade_id)), Accepted)

        stack.tick("SBIN", 789.0)  # across the stop: warned, not exited
        wait_for(lambda: len(sink.paused_crossings(trade_id)) == 1, what="first crossing alerted")
        first = sink.paused_crossings(trade_id)[0]
        assert first.priority is AlertPriority.WARNING
        assert "790" in first.text

        stack.tick("SBIN", 785.0)  # still across: no second alert
        stack.tick("SBIN", 780.0)
        stack.tick("SBIN", 795.0)  # back across the stop
        stack.tick("SBIN", 792.0)
        assert len(sink.paused_crossings(trade_id)) == 1
        view = stack.wait_trade(trade_id, lambda t: t.ltp == 792.0)
        assert view.status is TradeStatus.ACTIVE and view.paused
        assert stack.position("SBIN") == 10

        stack.tick("SBIN", 788.0)  # crossed again
        wait_for(lambda: len(sink.paused_crossings(trade_id)) == 2, what="second crossing alerted")
        assert stack.orders_for("SBIN", action="SELL") == []


def test_a_paused_short_warns_when_the_price_rises_through_its_stop(tmp_path):
    sink = _Sink()
    with running_stack(tmp_path, strategies=(Strategy("s", trade_risk=RISK),), alert_sinks=(sink,)) as stack:
        trade_id = _open(stack, "s", "INFY", 5, 1500.0, Side.SHORT)
        assert isinstance(stack.submit(PauseTrade(trade_id)), Accepted)
        stack.tick("INFY", 1511.0)
        wait_for(lambda: len(sink.paused_crossings(trade_id)) == 1, what="short crossing alerted")
        assert isinstance(stack.submit(ResumeTrade(trade_id)), Accepted)
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.STOP_LOSS


def _entries_halted(stack) -> bool:
    return stack.engine.snapshot().system.entries_halted


def test_panic_exits_everything_and_halts_entries_in_every_strategy_until_rearmed(tmp_path):
    sink = _Sink()
    strategies = (Strategy("a", trade_risk=RISK), Strategy("b", trade_risk=RISK))
    with running_stack(tmp_path, strategies=strategies, alert_sinks=(sink,)) as stack:
        first = _open(stack, "a", "SBIN", 10, 800.0)
        second = _open(stack, "b", "INFY", 5, 1500.0, Side.SHORT)
        assert not _entries_halted(stack)

        result = stack.submit(ExitAll(panic=True))
        assert isinstance(result, Accepted) and set(result.trade_ids) == {first, second}
        for trade_id in (first, second):
            assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.PANIC
        assert stack.position("SBIN") == 0 and stack.position("INFY") == 0
        wait_for(lambda: _entries_halted(stack), what="entries halted shown")
        assert stack.engine.snapshot().system.entries_halted_since is not None
        with sink._lock:
            assert any(a.priority is AlertPriority.CRITICAL and "re-arm" in a.text for a in sink.alerts)

        orders_before = len(stack.sim.orders())
        for strategy in ("a", "b", "manual"):
            denied = stack.submit(CreateTrade(strategy, "TCS", "NSE", Side.LONG, quantity=1))
            assert isinstance(denied, Denied) and denied.code == "PANIC_HALT", denied
        assert len(stack.sim.orders()) == orders_before  # nothing reached the broker

        assert isinstance(stack.submit(Rearm()), Accepted)
        wait_for(lambda: not _entries_halted(stack), what="entries re-armed")
        again = _open(stack, "a", "TCS", 1, 4000.0)
        assert stack.engine.snapshot().trade(again).status is TradeStatus.ACTIVE


def test_the_panic_halt_survives_a_restart_and_so_does_the_rearm(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("a", trade_risk=RISK),)) as stack:
        assert isinstance(stack.submit(ExitAll(panic=True)), Accepted)
        wait_for(lambda: _entries_halted(stack), what="entries halted")

        stack.restart_engine()
        wait_for(lambda: _entries_halted(stack), what="still halted after the restart")
        denied = stack.submit(CreateTrade("a", "SBIN", "NSE", Side.LONG, quantity=1))
        assert isinstance(denied, Denied) and denied.code == "PANIC_HALT"

        assert isinstance(stack.submit(Rearm()), Accepted)
        stack.restart_engine()
        stack.sim.set_price("NSE", "SBIN", 800.0)
        assert isinstance(stack.submit(CreateTrade("a", "SBIN", "NSE", Side.LONG, quantity=1)), Accepted)
        assert not _entries_halted(stack)


def test_panic_is_for_every_strategy_and_a_plain_exit_all_halts_nothing(tmp_path):
    with running_stack(tmp_path, strategies=(Strategy("a", trade_risk=RISK),)) as stack:
        scoped = stack.submit(ExitAll(strategy="a", panic=True))
        assert isinstance(scoped, Denied) and scoped.code.startswith("INVALID")
        assert isinstance(stack.submit(ExitAll()), Accepted)
        assert isinstance(stack.submit(Rearm()), Accepted)  # nothing to lift: still fine
        stack.sim.set_price("NSE", "SBIN", 800.0)
        assert isinstance(stack.submit(CreateTrade("a", "SBIN", "NSE", Side.LONG, quantity=1)), Accepted)
        assert not _entries_halted(stack)


def test_the_demo_driver_enters_nothing_while_entries_are_halted(tmp_path):
    from tmtool.runtime import DemoDriver, demo_strategies

    with running_stack(tmp_path, strategies=demo_strategies()) as stack:
        driver = DemoDriver(stack.engine, seed=3)  # never started: stepped by hand
        assert isinstance(stack.submit(ExitAll(panic=True)), Accepted)
        wait_for(lambda: _entries_halted(stack), what="entries halted")
        assert driver.step() is None
        assert stack.engine.snapshot().open_trades == () and stack.sim.orders() == []

        assert isinstance(stack.submit(Rearm()), Accepted)
        wait_for(lambda: not _entries_halted(stack), what="re-armed")
        entered = driver.step()
        assert entered is not None
        assert isinstance(entered.result(timeout=10), Accepted)
