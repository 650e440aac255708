"""Alerts raised for other parts of tmtool, and strategy views that keep up with the P&L."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from tests.stack import FAST_SETTINGS, running_stack
from tests.util import wait_for
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import (
    Alert,
    AlertCategory,
    AlertPriority,
    Distance,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
)


class _Sink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()

    def publish(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)


def test_external_alerts_are_raised_folded_persisted_and_published(tmp_path):
    sink = _Sink()
    with running_stack(tmp_path, alert_sinks=(sink,)) as stack:
        engine = stack.engine
        threads = [
            threading.Thread(
                target=engine.report_external_alert,
                args=(f"alert channel telegram is failing: attempt {n}", AlertPriority.WARNING),
                kwargs={"key": "channel:telegram"},
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        engine.report_external_alert("disk almost full", AlertPriority.CRITICAL, category=AlertCategory.TRADE)

        snap = stack.wait_snapshot(lambda s: any(a.key == "channel:telegram" and a.count == 4 for a in s.alerts)
                                   and any(a.text == "disk almost full" for a in s.alerts))
        folded = next(a for a in snap.alerts if a.key == "channel:telegram")
        assert (folded.category, folded.priority) == (AlertCategory.SYSTEM, AlertPriority.WARNING)
        critical = next(a for a in snap.alerts if a.text == "disk almost full")
        assert (critical.category, critical.priority, critical.key) == (AlertCategory.TRADE, AlertPriority.CRITICAL, "")
        with sink._lock:
            published = [a for a in sink.alerts if a.key == "channel:telegram"]
        assert [a.count for a in published] == [1, 2, 3, 4] and {a.id for a in published} == {folded.id}
        stack.store.flush()
        stored = {a.id: a for a in engine.alert_history()}
        assert stored[folded.id].count == 4 and critical.id in stored


def test_external_alert_input_is_checked_and_nothing_is_queued(tmp_path):
    with running_stack(tmp_path) as stack:
        engine = stack.engine
        for args, kwargs, error in [
            (("", AlertPriority.INFO), {}, ValueError),
            (("   ", AlertPriority.INFO), {}, ValueError),
            ((None, AlertPriority.INFO), {}, ValueError),
            (("text", "WARNING"), {}, TypeError),
            (("text", AlertPriority.INFO), {"category": "SYSTEM"}, TypeError),
            (("text", AlertPriority.INFO), {"key": 5}, TypeError),
        ]:
            with pytest.raises(error):
                engine.report_external_alert(*args, **kwargs)
        engine.report_external_alert("marker", AlertPriority.INFO)  # queued after every refused call
        snap = stack.wait_snapshot(lambda s: any(a.text == "marker" for a in s.alerts))
        assert not [a for a in snap.alerts if a.text in ("text", "")]

        engine.stop()
        engine.report_external_alert("after the stop", AlertPriority.WARNING)  # logged, not raised
        assert not any(a.text == "after the stop" for a in engine.snapshot().alerts)


def test_strategy_peak_follows_the_pnl_without_any_limit_near(tmp_path):
    settings = replace(FAST_SETTINGS, pnl_sample_interval=0.1)
    plain = Strategy("plain", trade_risk=TradeRisk(stop_loss=Distance(200)))  # no portfolio limits at all
    with running_stack(tmp_path, strategies=(plain,), settings=settings) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("plain", "RELIANCE", "NSE", Side.LONG, quantity=10))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)

        def view(snap):
            return next(s for s in snap.strategies if s.name == "plain")

        stack.tick("RELIANCE", 2540.0)  # +400
        stack.wait_snapshot(lambda s: view(s).total_pnl == pytest.approx(400.0))
        stack.tick("RELIANCE", 2490.0)  # -100
        snap = stack.wait_snapshot(lambda s: view(s).total_pnl == pytest.approx(-100.0))
        assert view(snap).peak_pnl == pytest.approx(400.0)

        def stored_state():
            stack.store.flush()
            return next((p for p in stack.store.load().portfolios if p.strategy == "plain" and p.trough_pnl < 0), None)

        state = wait_for(stored_state, what="peak and trough persisted")
        assert (state.peak_pnl, state.trough_pnl) == (pytest.approx(400.0), pytest.approx(-100.0))
