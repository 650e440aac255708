"""The WebSocket feed against the simulator over real loopback sockets."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.openalgo.feed import OpenAlgoFeed
from tmtool.domain.models import FeedState, Tick
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.engine.ports import FeedCallbacks
from tmtool.domain.broker import FeedStatus, OrderUpdate
from tmtool.sim import Simulator

from .conftest import API_KEY


class Recorder:
    """Callbacks that only record (thread-safe), as the engine's only enqueue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ticks: list[Tick] = []
        self.updates: list[OrderUpdate] = []
        self.statuses: list[FeedStatus] = []
        self.events: list[Tick | OrderUpdate | FeedStatus] = []  # everything, in the order it arrived

    def callbacks(self) -> FeedCallbacks:
        return FeedCallbacks(on_tick=self._add(self.ticks), on_order_update=self._add(self.updates),
                             on_status=self._add(self.statuses))

    def _add(self, target: list):
        def add(item) -> None:
            with self._lock:
                target.append(item)
                self.events.append(item)
        return add

    def prices(self, symbol: str) -> list[float]:
        with self._lock:
            return [t.price for t in self.ticks if t.symbol == symbol]


@pytest.fixture
def run_feed(sim):
    feeds: list[OpenAlgoFeed] = []

    def start(*subscriptions: tuple[str, str], simulator: Simulator | None = None, **options) -> tuple[OpenAlgoFeed, Recorder]:
        simulator = simulator or sim
        options.setdefault("seed", 1)
        feed = OpenAlgoFeed(simulator.ws_url, API_KEY, **options)
        for exchange, symbol in subscriptions:
            feed.subscribe(exchange, symbol)
        recorder = Recorder()
        feed.start(recorder.callbacks())
        feeds.append(feed)
        return feed, recorder

    yield start
    for feed in feeds:
        feed.stop()


def transitions(recorder: Recorder) -> list[FeedState]:
    """The reported states with repeats collapsed."""
    states: list[FeedState] = []
    for status in list(recorder.statuses):
        if not states or states[-1] is not status.state:
            states.append(status.state)
    return states


def in_order(states: list[FeedState], expected: list[FeedState]) -> bool:
    """``expected`` occurs in ``states`` as a subsequence."""
    remaining = iter(states)
    return all(any(state is wanted for state in remaining) for wanted in expected)


def live(feed: OpenAlgoFeed) -> bool:
    return feed.status().state is FeedState.LIVE


def prime(sim: Simulator, recorder: Recorder, exchange: str, symbol: str, price: float) -> None:
    """Publish ``price`` once the server has the subscription, and wait until the feed delivers it.

    Re-published only if it has not arrived after half a second (a subscription of a
    connection that just died may still be listed), so no extra copy lands later.
    """
    wait_for(lambda: (exchange, symbol, 1) in sim.subscriptions(), what=f"{symbol} subscribed on the server")
    last_publish = [-1.0]

    def delivered() -> bool:
        if price in recorder.prices(symbol):
            return True
        if time.monotonic() - last_publish[0] > 0.5:
            sim.set_price(exchange, symbol, price, publish=True)
            last_publish[0] = time.monotonic()
        return False

    wait_for(delivered, what=f"tick {symbol} {price}")


def test_ticks_arrive_in_order(sim, run_feed):
    feed, recorder = run_feed(("NSE", "RELIANCE"))
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, "NSE", "RELIANCE", 2500.0)
    sequence = [2500.05, 2499.95, 2501.0, 2480.5, 2480.55, 2490.0]
    for price in sequence:
        sim.set_price("NSE", "RELIANCE", price, publish=True)
    wait_for(lambda: recorder.prices("RELIANCE")[-1:] == [2490.0], what="last tick")
    prices = recorder.prices("RELIANCE")
    assert prices[-len(sequence):] == sequence
    assert set(prices[: -len(sequence)]) == {2500.0}
    ticks = [t for t in recorder.ticks if t.symbol == "RELIANCE"]
    assert all(t.exchange == "NSE" and t.ts > 0 for t in ticks)
    status = feed.status()
    assert status.frames >= len(sequence) and status.malformed == 0 and status.subscribed == 1


def test_subscriptions_are_reference_counted(sim, run_feed):
    feed, recorder = run_feed(("NSE", "RELIANCE"))
    feed.subscribe("NSE", "SBIN")
    feed.subscribe("nse", "SBIN")  # the same instrument, a second user
    assert feed.subscriptions() == {("NSE", "RELIANCE"): 1, ("NSE", "SBIN"): 2}
    wait_for(lambda: sim.subscriptions() == {("NSE", "RELIANCE", 1), ("NSE", "SBIN", 1)}, what="wire subscriptions")
    prime(sim, recorder, "NSE", "SBIN", 800.0)

    feed.unsubscribe("NSE", "SBIN")  # one user left: still subscribed on the wire
    sim.set_price("NSE", "SBIN", 801.0, publish=True)
    wait_for(lambda: 801.0 in recorder.prices("SBIN"), what="tick after the first unsubscribe")
    assert ("NSE", "SBIN", 1) in sim.subscriptions()

    feed.unsubscribe("NSE", "SBIN")  # the last user: removed on the wire (per-item mode)
    assert feed.subscriptions() == {("NSE", "RELIANCE"): 1}
    wait_for(lambda: sim.subscriptions() == {("NSE", "RELIANCE", 1)}, what="SBIN removed on the wire")
    sim.set_price("NSE", "SBIN", 802.0, publish=True)
    prime(sim, recorder, "NSE", "RELIANCE", 2502.0)  # published after SBIN on the same socket
    assert 802.0 not in recorder.prices("SBIN")
    assert feed.status().malformed == 0
    with pytest.raises(ValueError, match="not subscribed"):
        feed.unsubscribe("NSE", "SBIN")
    with pytest.raises(ValueError, match="unknown exchange"):
        feed.subscribe("NYSE", "IBM")
    assert feed.subscriptions() == {("NSE", "RELIANCE"): 1}


def test_malformed_frames_over_the_wire_are_counted(sim, run_feed):
    feed, recorder = run_feed(("NSE", "SBIN"))
    wait_for(lambda: live(feed) and feed.status().order_updates, what="LIVE")
    bad = ["garbage", frame("SBIN", "NaN"), frame("SBIN", -3.0), frame("NOSUCH", 5.0)]
    for raw in bad:
        sim.inject_raw_frame(raw)
    sim.inject_raw_frame('{"status": "error", "code": "SERVER_ERROR", "message": "oops"}')
    wait_for(lambda: feed.status().malformed == len(bad) and feed.status().errors == 1, what="counted")
    prime(sim, recorder, "NSE", "SBIN", 805.0)  # still alive and delivering
    assert live(feed) and recorder.prices("SBIN") == [805.0]


def test_reconnects_and_resubscribes_after_a_drop(sim, run_feed):
    feed, recorder = run_feed(("NSE", "RELIANCE"), ("NSE", "INFY"))
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, "NSE", "INFY", 1500.0)
    sim.faults.drop_ws()
    wait_for(lambda: feed.status().reconnects >= 1 and live(feed), what="reconnected")
    prime(sim, recorder, "NSE", "INFY", 1510.0)
    prime(sim, recorder, "NSE", "RELIANCE", 2510.0)
    assert in_order(transitions(recorder), [FeedState.LIVE, FeedState.RECONNECTING, FeedState.LIVE])
    assert sim.ws_clients() == 1


def test_polls_rest_while_the_socket_is_refused_then_returns_to_live(sim, run_feed):
    broker = OpenAlgoClient(sim.rest_url, API_KEY, timeout=1.0, read_retries=0)
    clock = ManualClock(real_timers=True)  # a fixed moment in NSE hours: polling is for exchange hours only
    try:
        feed, recorder = run_feed(("NSE", "TCS"), broker=broker, clock=clock, poll_after=0.2, poll_interval=0.05,
                                  max_backoff=0.2)
        wait_for(lambda: live(feed), what="LIVE")
        sim.faults.refuse_ws(30.0)
        sim.faults.drop_ws()
        wait_for(lambda: feed.status().state is FeedState.POLLING, what="POLLING")
        sim.set_price("NSE", "TCS", 3456.0, publish=False)  # only REST can see this price
        wait_for(lambda: 3456.0 in recorder.prices("TCS"), what="a polled tick")
        sim.faults.clear()
        wait_for(lambda: live(feed), what="LIVE again")
        prime(sim, recorder, "NSE", "TCS", 3460.0)
        assert in_order(transitions(recorder), [FeedState.LIVE, FeedState.RECONNECTING, FeedState.POLLING, FeedState.LIVE])
    finally:
        broker.close()


def test_a_silent_socket_is_detected_and_replaced():
    sim = Simulator(api_key=API_KEY, seed=7, rest_port=0, ws_port=0, tick_interval=0.02)
    sim.start()
    feed = OpenAlgoFeed(sim.ws_url, API_KEY, seed=3, stale_after=5.0, stall_after=0.3, max_backoff=0.2, auth_timeout=0.5)
    feed.subscribe("NSE", "RELIANCE")
    recorder = Recorder()
    try:
        feed.start(recorder.callbacks())
        wait_for(lambda: live(feed) and recorder.prices("RELIANCE"), what="ticks")
        sim.faults.stall_ws(0.8)
        wait_for(lambda: feed.status().reconnects >= 1 and live(feed), what="reconnect after the stall")
        count = len(recorder.prices("RELIANCE"))
        wait_for(lambda: len(recorder.prices("RELIANCE")) > count, what="ticks after the stall")
        assert feed.status().errors >= 1
    finally:
        feed.stop()
        sim.stop()


def test_symbols_without_ticks_are_reported_stale(sim, run_feed):
    clock = ManualClock()
    feed, recorder = run_feed(("NSE", "RELIANCE"), ("NSE", "HDFCBANK"), clock=clock, stale_after=5.0, stall_after=1e6,
                              stale_after_overrides={("NSE", "HDFCBANK"): 60.0})  # an illiquid name: a longer window
    feed.subscribe("NSE", "YESBANK")
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, "NSE", "RELIANCE", 2500.0)
    assert feed.status().stale == ()
    clock.advance(6.0)
    wait_for(lambda: feed.status().stale == (("NSE", "RELIANCE"), ("NSE", "YESBANK")), what="stale set")
    assert any(s.stale == (("NSE", "RELIANCE"), ("NSE", "YESBANK")) for s in recorder.statuses)
    prime(sim, recorder, "NSE", "RELIANCE", 2501.0)
    wait_for(lambda: feed.status().stale == (("NSE", "YESBANK"),), what="fresh again")
    feed.unsubscribe("NSE", "YESBANK")
    assert feed.status().stale == ()
    clock.advance(60.0)
    wait_for(lambda: feed.status().stale == (("NSE", "HDFCBANK"), ("NSE", "RELIANCE")), what="all stale")


def test_refused_authentication_is_down(sim, run_feed, caplog):
    # tmtool's loggers and websocket-client's at DEBUG (the simulator's server library logs frames verbatim)
    caplog.set_level(logging.DEBUG, logger="tmtool")
    caplog.set_level(logging.DEBUG, logger="websocket")
    sim.session_expired = True
    feed, recorder = run_feed(("NSE", "SBIN"))
    wait_for(lambda: feed.status().state is FeedState.DOWN and feed.status().errors >= 1, what="DOWN")
    assert "log in to OpenAlgo again" in caplog.text
    assert API_KEY not in caplog.text and API_KEY not in repr(feed)


def test_order_updates_are_delivered_once(sim, run_feed):
    feed, recorder = run_feed(("NSE", "SBIN"))
    wait_for(lambda: feed.status().order_updates, what="order updates offered")
    with OpenAlgoClient(sim.rest_url, API_KEY) as broker:
        ack = broker.place_order(strategy="s1", symbol="SBIN", exchange="NSE", action="BUY", quantity=3, product="MIS")
    wait_for(lambda: any(u.order_id == ack.order_id and u.status == "complete" for u in recorder.updates),
             what="complete update")
    mine = [(u.order_id, u.status, u.filled_quantity) for u in recorder.updates if u.order_id == ack.order_id]
    assert len(mine) == len(set(mine))
    update = next(u for u in recorder.updates if u.status == "complete")
    assert (update.symbol, update.action, update.quantity, update.filled_quantity) == ("SBIN", "BUY", 3, 3)


def test_order_updates_absent_when_the_server_does_not_offer_them(sim, run_feed):
    feed, _ = run_feed(("NSE", "SBIN"))
    wait_for(lambda: feed.status().order_updates, what="order updates offered")
    sim.order_updates_enabled = False  # the next connection is refused the order stream
    sim.faults.drop_ws()
    wait_for(lambda: feed.status().reconnects >= 1 and not feed.status().order_updates, what="order updates gone")
    assert live(feed) and feed.status().errors >= 1  # the INVALID_ACTION reply was counted


def test_stop_is_quick_and_final(sim, run_feed):
    feed, _ = run_feed(("NSE", "SBIN"))
    wait_for(lambda: live(feed), what="LIVE")
    feed.stop()
    assert feed.status().state is FeedState.DOWN
    assert not [t for t in threading.enumerate() if t.name.startswith("tmtool-feed-")]
    wait_for(lambda: sim.ws_clients() == 0, what="server saw the close")


# ------------------------------------------------------------------ frames fed in directly


def frame(symbol: str, ltp, ts=1) -> str:
    return json.dumps({"type": "market_data", "symbol": symbol, "exchange": "NSE", "mode": 1, "data": {"ltp": ltp, "timestamp": ts}})


def test_cross_mode_duplicates_are_dropped_but_distinct_prices_never():
    feed = OpenAlgoFeed("ws://127.0.0.1:9", API_KEY)
    recorder = Recorder()
    feed._callbacks = recorder.callbacks()  # frames are fed in directly; no threads
    feed.subscribe("NSE", "SBIN")
    for raw in (frame("SBIN", 800.0, 1), frame("SBIN", 800.0, 1), frame("SBIN", 800.05, 2), frame("SBIN", 800.0, 1),
                frame("SBIN", 800.0, 3), frame("SBIN", 800.0, None), frame("SBIN", 800.0, None)):
        feed.handle_frame(raw)
    assert recorder.prices("SBIN") == [800.0, 800.05, 800.0, 800.0, 800.0]


def test_malformed_frames_are_counted_never_fatal(caplog):
    feed = OpenAlgoFeed("ws://127.0.0.1:9", API_KEY)
    recorder = Recorder()
    feed._callbacks = recorder.callbacks()
    feed.subscribe("NSE", "SBIN")
    bad = ["{", "[]", frame("SBIN", "NaN"), frame("SBIN", -1), frame("SBIN", "x"), frame("UNKNOWN", 10.0),
           '{"type": "market_data", "exchange": "NSE"}']
    for raw in bad:
        feed.handle_frame(raw)
    feed.handle_frame('{"status": "error", "code": "INVALID_JSON", "message": "bad"}')
    feed.handle_frame(frame("SBIN", 801.0))
    status = feed.status()
    assert (status.frames, status.malformed, status.errors) == (len(bad) + 2, len(bad), 1)
    assert recorder.prices("SBIN") == [801.0]
    assert len([r for r in caplog.records if "ignored a frame" in r.getMessage()]) == 1  # rate-limited


def test_duplicate_order_updates_are_dropped():
    feed = OpenAlgoFeed("ws://127.0.0.1:9", API_KEY)
    recorder = Recorder()
    feed._callbacks = recorder.callbacks()
    base = {"type": "order_update", "orderid": "7", "symbol": "SBIN", "exchange": "NSE", "action": "BUY",
            "quantity": 10, "pending_quantity": 10, "average_price": 0}
    for status, filled in (("open", 0), ("open", 0), ("open", 4), ("complete", 10), ("complete", 10)):
        feed.handle_frame(json.dumps({**base, "order_status": status, "filled_quantity": filled}))
    assert [(u.status, u.filled_quantity) for u in recorder.updates] == [("open", 0), ("open", 4), ("complete", 10)]


def test_a_failing_callback_does_not_stop_the_prices(sim):
    feed = OpenAlgoFeed(sim.ws_url, API_KEY, seed=1)
    feed.subscribe("NSE", "SBIN")
    received: list[float] = []

    def on_tick(tick: Tick) -> None:
        received.append(tick.price)
        if len(received) == 1:
            raise RuntimeError("consumer bug")

    feed.start(FeedCallbacks(on_tick=on_tick))
    try:
        wait_for(lambda: (sim.set_price("NSE", "SBIN", 800.0 + len(received)) or len(received) >= 2), what="two ticks")
        assert live(feed) and feed.status().errors == 1 and feed.status().reconnects == 0
    finally:
        feed.stop()


@pytest.mark.parametrize("options, complaint", [
    (dict(ws_url="http://127.0.0.1:1"), "ws_url"),
    (dict(api_key=""), "api_key"),
    (dict(stale_after=float("nan")), "stale_after"),
    (dict(poll_interval=0), "poll_interval"),
    (dict(mode=4), "mode"),
    (dict(stale_after_overrides={("NSE", "SBIN"): -1.0}), "NSE:SBIN"),
])
def test_bad_settings_are_refused_with_a_reason(options, complaint):
    arguments = dict(ws_url="ws://127.0.0.1:1", api_key=API_KEY) | options
    with pytest.raises(ValueError, match=complaint) as caught:
        OpenAlgoFeed(**arguments)
    assert API_KEY not in str(caught.value)


def test_reconnect_backoff_grows_with_seeded_jitter_up_to_the_cap():
    def delays(seed: int) -> list[float]:
        feed = OpenAlgoFeed("ws://127.0.0.1:1", API_KEY, seed=seed, initial_backoff=0.1, max_backoff=2.0)
        return [feed._backoff(attempt) for attempt in range(8)]

    first = delays(42)
    assert first == delays(42) and first != delays(43)
    steps = [min(2.0, 0.1 * 2**n) for n in range(8)]
    assert all(step / 2 <= delay <= step for delay, step in zip(first, steps))
