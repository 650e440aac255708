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
