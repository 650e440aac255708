"""REST polling driven by per-symbol freshness, against the simulator over loopback sockets.

A subscribed symbol whose socket ticks stop is polled over REST during its
exchange's hours until its ticks resume, whatever the socket's state; a silent
or refused socket is covered for every symbol.  The simulator ticks only when
told (``tick_interval=None``), so "one symbol silent" means ticking the others
and not it while its REST quote moves (``publish=False``).
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from tests.util import wait_for
from tmtool.clock import Clock, ManualClock
from tmtool.domain.broker import FeedStatus, Quote
from tmtool.domain.calendar import IST
from tmtool.domain.models import FeedState, Tick
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.openalgo.feed import _RequestBudget

from .test_feed import Recorder, in_order, live, prime, run_feed, transitions  # noqa: F401 - run_feed is a fixture

Key = tuple[str, str]
SBIN, RELIANCE, INFY = ("NSE", "SBIN"), ("NSE", "RELIANCE"), ("NSE", "INFY")


class RecordingBroker:
    """The real client; notes every quote request (endpoint, symbols, clock time) and every reply."""

    def __init__(self, client: OpenAlgoClient, clock: Clock) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self.requests: list[tuple[str, list[Key], float]] = []
        self.replies = 0

    def multi_quotes(self, instruments: list[tuple[str, str]]) -> dict[Key, Quote]:
        self._note("multiquotes", [(exchange, symbol) for symbol, exchange in instruments])
        try:
            return self._client.multi_quotes(instruments)
        finally:
            self._replied()

    def quotes(self, symbol: str, exchange: str) -> Quote:
        self._note("quotes", [(exchange, symbol)])
        try:
            return self._client.quotes(symbol, exchange)
        finally:
            self._replied()

    def _note(self, endpoint: str, keys: list[Key]) -> None:
        with self._lock:
            self.requests.append((endpoint, keys, self._clock.time()))

    def _replied(self) -> None:
        with self._lock:
            self.replies += 1

    def requested(self) -> list[tuple[str, list[Key], float]]:
        with self._lock:
            return list(self.requests)


def first_index(events: list, match) -> int:
    return next(i for i, event in enumerate(events) if match(event))


def is_tick(key: Key, price: float):
    return lambda event: isinstance(event, Tick) and event.key == key and event.price == price


def polled_status(key: Key):
    return lambda event: isinstance(event, FeedStatus) and key in event.polled


def test_a_silent_symbol_among_ticking_ones_is_polled_until_its_ticks_resume(sim, client, run_feed):
    clock = ManualClock()  # silence passes only when the test advances this clock; 09:30 IST, NSE open
    broker = RecordingBroker(client, clock)
    feed, recorder = run_feed(RELIANCE, SBIN, broker=broker, clock=clock, stall_after=1e6)  # default poll windows
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, *RELIANCE, 2500.0)
    prime(sim, recorder, *SBIN, 800.0)

    def tick_then_advance(key: Key, price: float, seconds: float) -> None:
        prime(sim, recorder, *key, price)
        clock.advance(seconds)

    # RELIANCE ticks; SBIN's socket goes quiet while its market falls to 780 (only REST can see it).
    tick_then_advance(RELIANCE, 2501.0, 1.5)
    sim.set_price(*SBIN, 780.0, publish=False)
    tick_then_advance(RELIANCE, 2502.0, 1.5)  # SBIN silent 3.0 s (> 2.5 s), RELIANCE 1.5 s
    wait_for(lambda: 780.0 in recorder.prices("SBIN"), what="SBIN's polled price")
    status = feed.status()
    assert status.state is FeedState.LIVE and status.polled == (SBIN,) and status.stale == ()
    assert [keys for _, keys, _ in broker.requested()] == [[SBIN]]  # the first poll; RELIANCE never asked for
    events = list(recorder.events)
    assert first_index(events, polled_status(SBIN)) < first_index(events, is_tick(SBIN, 780.0))

    # The next interval's quote has not moved: nothing is delivered.  The one after has: it is.
    replies = broker.replies
    tick_then_advance(RELIANCE, 2503.0, 1.0)
    wait_for(lambda: broker.replies > replies, what="the second poll answered")
    sim.set_price(*SBIN, 779.0, publish=False)
    tick_then_advance(RELIANCE, 2504.0, 1.0)
    wait_for(lambda: 779.0 in recorder.prices("SBIN"), what="SBIN's next polled price")
    assert all(keys == [SBIN] for _, keys, _ in broker.requested())

    # SBIN ticks again on the socket: polling stops.  Then RELIANCE goes quiet and only it is polled.
    prime(sim, recorder, *SBIN, 781.0)
    wait_for(lambda: feed.status().polled == (), what="SBIN no longer polled")
    resumed = len(broker.requested())
    tick_then_advance(SBIN, 782.0, 1.5)
    tick_then_advance(SBIN, 783.0, 1.5)  # RELIANCE silent 4.0 s, SBIN 1.5 s
    wait_for(lambda: feed.status().polled == (RELIANCE,), what="RELIANCE polled")
    sim.set_price(*RELIANCE, 2490.0, publish=False)
    tick_then_advance(SBIN, 784.0, 1.0)
    wait_for(lambda: 2490.0 in recorder.prices("RELIANCE"), what="RELIANCE's polled price")
    after = broker.requested()[resumed:]
    assert after and all(keys == [RELIANCE] for _, keys, _ in after)
    # Every price once: a polled quote equal to the socket's last price, or unchanged since the last poll, is dropped.
    assert recorder.prices("SBIN") == [800.0, 780.0, 779.0, 781.0, 782.0, 783.0, 784.0]
    assert recorder.prices("RELIANCE") == [2500.0, 2501.0, 2502.0, 2503.0, 2504.0, 2490.0]
    assert feed.status().polled_ticks == 3


def test_symbols_near_a_level_or_with_their_own_window_are_polled_sooner(sim, client, run_feed):
    clock = ManualClock()
    broker = RecordingBroker(client, clock)
    feed, recorder = run_feed(RELIANCE, SBIN, INFY, broker=broker, clock=clock, stall_after=1e6)
    feed.set_near_level("NSE", "SBIN", True)  # polled after 2.0 s instead of 2.5 s
    feed.set_stale_after("NSE", "INFY", 1.5)  # its own window bounds its polling too
    wait_for(lambda: live(feed), what="LIVE")
    for key, price in ((RELIANCE, 2500.0), (SBIN, 800.0), (INFY, 1500.0)):
        prime(sim, recorder, *key, price)
    sim.set_price(*SBIN, 790.0, publish=False)
    sim.set_price(*INFY, 1490.0, publish=False)
    clock.advance(2.2)
    wait_for(lambda: 790.0 in recorder.prices("SBIN") and 1490.0 in recorder.prices("INFY"), what="polled prices")
    assert feed.status().polled == (INFY, SBIN)
    assert all(RELIANCE not in keys for _, keys, _ in broker.requested())


def test_a_silent_socket_is_polled_then_replaced(sim, client, run_feed):
    clock = ManualClock(real_timers=True)  # fixed in NSE hours; sockets, timeouts and polls in real time
    broker = RecordingBroker(client, clock)
    feed, recorder = run_feed(RELIANCE, INFY, broker=broker, clock=clock, stall_after=0.6, poll_silent_after=0.2,
                              poll_after=0.2, poll_interval=0.1, max_backoff=0.2, auth_timeout=0.3)
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, *RELIANCE, 2500.0)
    prime(sim, recorder, *INFY, 1500.0)
    sim.faults.stall_ws(None)  # connected, nothing sent: the ticks below are lost
    sim.set_price(*RELIANCE, 2450.0)
    sim.set_price(*INFY, 1490.0)
    wait_for(lambda: 2450.0 in recorder.prices("RELIANCE") and 1490.0 in recorder.prices("INFY"),
             what="both prices polled")
    wait_for(lambda: feed.status().state is FeedState.POLLING, what="the silent socket torn down, polling")
    sim.faults.clear()
    wait_for(lambda: live(feed) and feed.status().reconnects >= 1, what="reconnected")
    prime(sim, recorder, *RELIANCE, 2451.0)
    prime(sim, recorder, *INFY, 1491.0)
    wait_for(lambda: feed.status().polled == (), what="polling stopped")

    events = list(recorder.events)
    assert first_index(events, polled_status(RELIANCE)) < first_index(events, is_tick(RELIANCE, 2450.0))
    assert first_index(events, polled_status(INFY)) < first_index(events, is_tick(INFY, 1490.0))
    assert in_order(transitions(recorder), [FeedState.LIVE, FeedState.RECONNECTING, FeedState.POLLING, FeedState.LIVE])
    assert feed.status().errors >= 1  # the stall was counted
    assert recorder.prices("RELIANCE").count(2450.0) == 1 and recorder.prices("INFY").count(1490.0) == 1


def test_a_refused_socket_is_polled_for_every_symbol(sim, client, run_feed):
    clock = ManualClock(real_timers=True)
    broker = RecordingBroker(client, clock)
    feed, recorder = run_feed(SBIN, INFY, broker=broker, clock=clock, poll_interval=0.1, max_backoff=0.2)
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, *SBIN, 800.0)
    prime(sim, recorder, *INFY, 1500.0)
    sim.faults.refuse_ws(30.0)
    sim.faults.drop_ws()
    sim.set_price(*SBIN, 790.0, publish=False)
    wait_for(lambda: 790.0 in recorder.prices("SBIN"), what="a polled price")
    status = feed.status()
    assert status.state is FeedState.POLLING and status.polled == (INFY, SBIN)
    assert [keys for _, keys, _ in broker.requested()][0] == [INFY, SBIN]  # one batch for both
    events = list(recorder.events)
    down = first_index(events, lambda e: isinstance(e, FeedStatus) and e.state is FeedState.RECONNECTING)
    assert down < first_index(events, polled_status(SBIN)) < first_index(events, is_tick(SBIN, 790.0))
    assert recorder.prices("INFY") == [1500.0]  # its quote did not move: nothing new to deliver


def test_a_server_without_multiquotes_is_polled_one_symbol_at_a_time(sim, client, run_feed):
    clock = ManualClock(real_timers=True)
    broker = RecordingBroker(client, clock)
    sim.faults.rest_fail(404, count=1000, endpoints="multiquotes")
    feed, recorder = run_feed(SBIN, INFY, broker=broker, clock=clock, poll_silent_after=0.2, poll_interval=0.1)
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, *SBIN, 800.0)
    prime(sim, recorder, *INFY, 1500.0)
    sim.set_price(*SBIN, 795.0, publish=False)
    sim.set_price(*INFY, 1495.0, publish=False)
    wait_for(lambda: 795.0 in recorder.prices("SBIN") and 1495.0 in recorder.prices("INFY"), what="polled prices")
    requests = broker.requested()
    assert requests[0][0] == "multiquotes"
    assert {"quotes"} == {endpoint for endpoint, _, _ in requests[1:]}
    assert {tuple(keys) for _, keys, _ in requests[1:]} >= {(SBIN,), (INFY,)}
    assert recorder.prices("SBIN") == [800.0, 795.0] and recorder.prices("INFY") == [1500.0, 1495.0]


def test_no_polling_outside_exchange_hours(sim, client, run_feed):
    closed = datetime(2026, 1, 1, 10, 30, tzinfo=timezone.utc)  # 16:00 IST: NSE closed
    opening = datetime(2026, 1, 2, 9, 20, tzinfo=IST)
    clock = ManualClock(closed)
    broker = RecordingBroker(client, clock)
    feed, recorder = run_feed(SBIN, broker=broker, clock=clock, stall_after=1e6)
    wait_for(lambda: live(feed), what="LIVE")
    prime(sim, recorder, *SBIN, 800.0)
    clock.advance(6.0)  # silent past the polling and the staleness windows
    wait_for(lambda: feed.status().stale == (SBIN,), what="stale after hours")
    assert feed.status().polled == ()
    sim.set_price(*SBIN, 810.0, publish=False)
    clock.set(opening)
    wait_for(lambda: 810.0 in recorder.prices("SBIN"), what="polled once NSE opened")
    assert broker.requested() and all(when >= opening.timestamp() for _, _, when in broker.requested())


def test_the_request_budget_follows_a_moving_one_second_window():
    clock = ManualClock()
    budget = _RequestBudget(clock, per_second=3)
    assert [budget.take("multiquotes") for _ in range(4)] == [True, True, True, False]
    assert budget.take("quotes")  # each endpoint has its own window
    clock.advance(0.5)
    assert not budget.take("multiquotes")
    clock.advance(0.5)
    assert budget.take("multiquotes")
    budget.pause("multiquotes", 1.0)  # the server said 429
    clock.advance(2.0)
    assert budget.take("multiquotes")
    budget.pause("quotes", 1.0)
    clock.advance(0.9)
    assert not budget.take("quotes")
