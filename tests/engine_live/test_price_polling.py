"""Prices that stop ticking are polled over REST and still exit crossed stops; near-level marking.

Every case runs the whole stack (simulator, SQLite, client, feed, engine) on a
clock fixed in NSE hours with real timers.  The crossing price is set on the
simulator without publishing a tick (``set_price(..., publish=False)``), so only
REST quotes can see it.  The tests assert the order of what happened (the
symbol is polled, the polled price crosses the stop, the exit fills), never how
long it took: ``python -m benchmarks.bench_polled_exit`` measures that.
"""

from __future__ import annotations

import threading
from datetime import datetime

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import Alert, AlertPriority, Distance, ExitReason, FeedState, Side, Strategy, TradeRisk, TradeStatus

MARKET_HOURS = datetime(2026, 1, 5, 10, 0, tzinfo=IST)  # a Monday, NSE open
RISK = Strategy("s1", trade_risk=TradeRisk(stop_loss=Distance(50)))
# Production-like polling, scaled down so the faults resolve quickly.
POLLING = {"poll_silent_after": 1.0, "poll_near_level_after": 0.5, "poll_after": 0.3, "poll_interval": 0.2}


class AlertLog:
    """An alert sink keeping every alert in the order the engine raised it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        with self._lock:
            self._alerts.append(alert)

    def texts(self) -> list[str]:
        with self._lock:
            return [a.text for a in self._alerts]

    def first(self, *words: str) -> int:
        """Index of the first alert whose text holds every one of ``words`` (ValueError when none does)."""
        return next(i for i, text in enumerate(self.texts()) if all(w in text for w in words))


class Ticker:
    """Ticks RELIANCE over the socket every 20 ms while running (the other symbols stay live)."""

    def __init__(self, sim) -> None:
        self._sim = sim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(0.02):
            step += 1
            self._sim.set_price("NSE", "RELIANCE", 2500.0 + (step % 10) * 0.05)


def _open_sbin(stack) -> int:
    stack.sim.set_price("NSE", "SBIN", 800.0)
    trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.LONG, quantity=5, stop_loss=790.0))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    stack.tick("SBIN", 800.5)  # a socket tick: SBIN's silence starts after it
    return trade_id


def _assert_stop_exited_on_the_polled_price(stack, alerts: AlertLog, trade_id: int, before: tuple[str, ...] = ()) -> None:
    """The crossing price exists only in REST quotes: the trade must exit on it, after polling began."""
    stack.sim.set_price("NSE", "SBIN", 780.0, publish=False)
    view = stack.wait_status(trade_id, TradeStatus.CLOSED, timeout=30.0)
    assert view.exit_reason is ExitReason.STOP_LOSS
    intent = [e for e in stack.engine.trade_events(trade_id) if e.kind == "EXIT_INTENT"]
    assert [(e.new, e.price) for e in intent] == [(ExitReason.STOP_LOSS.value, 780.0)]  # decided on the polled price
    assert [o["filled_quantity"] for o in stack.orders_for("SBIN", "SELL")] == [5]  # one exit, filled
    assert stack.position("SBIN") == 0
    order = [alerts.first(*words) for words in (*before, ("NSE:SBIN", "polled over REST"), ("#", "SBIN", "closed"))]
    assert order == sorted(order), alerts.texts()


def test_one_silent_symbol_among_ticking_ones_is_polled_and_its_crossed_stop_exits(tmp_path):
    alerts = AlertLog()
    clock = ManualClock(MARKET_HOURS, real_timers=True)
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, alert_sinks=(alerts,), feed_options=POLLING) as stack:
        trade_id = _open_sbin(stack)
        with Ticker(stack.sim):
            stack.sim.faults.silence_symbol("NSE", "SBIN")
            _assert_stop_exited_on_the_polled_price(stack, alerts, trade_id)
            assert stack.feed.status().state is FeedState.LIVE  # the socket never dropped


def test_a_silent_socket_is_covered_by_polling_and_the_crossed_stop_exits(tmp_path):
    alerts = AlertLog()
    clock = ManualClock(MARKET_HOURS, real_timers=True)
    options = {**POLLING, "stall_after": 2.0}
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, alert_sinks=(alerts,), feed_options=options) as stack:
        trade_id = _open_sbin(stack)
        stack.sim.faults.stall_ws(None, answer_pings=True)
        _assert_stop_exited_on_the_polled_price(stack, alerts, trade_id)


def test_refused_reconnects_are_covered_by_polling_and_the_crossed_stop_exits(tmp_path):
    alerts = AlertLog()
    clock = ManualClock(MARKET_HOURS, real_timers=True)
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, alert_sinks=(alerts,), feed_options=POLLING) as stack:
        trade_id = _open_sbin(stack)
        stack.sim.faults.refuse_ws(3600.0)
        stack.sim.faults.drop_ws()
        _assert_stop_exited_on_the_polled_price(stack, alerts, trade_id, before=(("price feed lost",),))


def test_polled_symbols_are_in_the_snapshot_with_one_folded_warning_each(tmp_path):
    alerts = AlertLog()
    clock = ManualClock(MARKET_HOURS, real_timers=True)
    with running_stack(tmp_path, strategies=(RISK,), clock=clock, alert_sinks=(alerts,), feed_options=POLLING) as stack:
        _open_sbin(stack)
        stack.sim.faults.silence_symbol("NSE", "SBIN")
        stack.wait_snapshot(lambda s: s.system.polled_symbols == (("NSE", "SBIN"),))
        warnings = [a for a in stack.engine.snapshot().alerts if "polled over REST" in a.text]
        assert [(a.priority, a.text.split(":")[:2]) for a in warnings] == [(AlertPriority.WARNING, ["NSE", "SBIN"])]

        stack.sim.faults.resume_symbol("NSE", "SBIN")
        stack.tick("SBIN", 801.0)
        stack.wait_snapshot(lambda s: s.system.polled_symbols == ())


def test_a_price_near_a_stop_or_target_marks_the_symbol_near_a_level_until_it_moves_away_or_the_trade_ends(tmp_path):
    with running_stack(tmp_path, strategies=(RISK,)) as stack:
        marks: list[tuple[str, str, bool]] = []
        real = stack.feed.set_near_level

        def record(exchange: str, symbol: str, near: bool) -> None:
            marks.append((exchange, symbol, near))
            real(exchange, symbol, near)

        stack.feed.set_near_level = record  # type: ignore[method-assign]
        stack.sim.set_price("NSE", "SBIN", 800.0)
        trade_id = stack.create(CreateTrade("s1", "SBIN", "NSE", Side.LONG, quantity=5, stop_loss=760.0, target=850.0))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("SBIN", 801.0)
        stack.tick("SBIN", 763.0)  # within 0.5% of the stop
        stack.tick("SBIN", 763.5)  # still near: no second call
        stack.tick("SBIN", 800.0)
        stack.tick("SBIN", 846.0)  # within 0.5% of the target
        assert marks == [("NSE", "SBIN", True), ("NSE", "SBIN", False), ("NSE", "SBIN", True)]

        stack.tick("SBIN", 851.0)  # the target: the trade ends and its book with it
        stack.wait_status(trade_id, TradeStatus.CLOSED)
        wait_for(lambda: marks[-1] == ("NSE", "SBIN", False), what="near mark cleared with the book")
        assert len(marks) == 4
