"""How fast REST polling covers a silent price: the feed against the simulator over loopback.

    python -m benchmarks.bench_polling              # 5 samples per case
    python -m benchmarks.bench_polling --samples 10 --near-level   # SBIN marked near a level

The feed runs with its production defaults (polled after 2.5 s without a socket
tick, every symbol 1 s after the socket drops, one poll a second, a socket
silent for 15 s reopened).  The clock's date is fixed in NSE hours
(``ManualClock(real_timers=True)``); every duration is real.  Three faults:

* ``silent symbol``: RELIANCE ticks every 50 ms; SBIN's last socket tick is
  delivered, then its REST price moves (a stop crossing) with no tick;
* ``silent socket``: the simulator keeps the socket open and sends nothing;
* ``refused socket``: the socket is dropped and new handshakes are refused.

For each: from the start of the silence (SBIN's last tick delivered, or the
fault switched on) to the first quote request that covers SBIN, and to the
moved price reaching ``on_tick``.  Then, with SBIN being polled, its REST price
is moved at a random moment: from the move to ``on_tick`` (at most one poll
interval plus a request), and from the request that saw it to ``on_tick``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from datetime import datetime

from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST
from tmtool.domain.models import Tick
from tmtool.engine.ports import FeedCallbacks
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.openalgo.feed import OpenAlgoFeed
from tmtool.sim import Simulator

API_KEY = "bench-polling-key"
SBIN, RELIANCE = ("NSE", "SBIN"), ("NSE", "RELIANCE")


class TimedBroker:
    """The real client; notes the monotonic time each quote request covering SBIN was sent."""

    def __init__(self, client: OpenAlgoClient) -> None:
        self._client = client
        self.sbin_requests: list[float] = []

    def multi_quotes(self, instruments):
        if ("SBIN", "NSE") in instruments:
            self.sbin_requests.append(time.monotonic())
        return self._client.multi_quotes(instruments)

    def quotes(self, symbol, exchange):
        if (exchange, symbol) == SBIN:
            self.sbin_requests.append(time.monotonic())
        return self._client.quotes(symbol, exchange)


class Arrivals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ticks: list[tuple[float, Tick]] = []

    def on_tick(self, tick: Tick) -> None:
        with self._lock:
            self.ticks.append((time.monotonic(), tick))

    def arrival(self, key: tuple[str, str], price: float) -> float | None:
        with self._lock:
            return next((at for at, t in self.ticks if t.key == key and t.price == price), None)


def wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError("condition not met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--near-level", action="store_true", help="mark SBIN near a level (polled after 2 s)")
    args = parser.parse_args()
    rng = random.Random(11)

    sim = Simulator(api_key=API_KEY, seed=7, rest_port=0, ws_port=0, tick_interval=None).start()
    client = OpenAlgoClient(sim.rest_url, API_KEY, timeout=2.0)
    broker = TimedBroker(client)
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=IST), real_timers=True)
    feed = OpenAlgoFeed(sim.ws_url, API_KEY, broker=broker, clock=clock, seed=1, stall_after=15.0)
    feed.subscribe(*RELIANCE)
    feed.subscribe(*SBIN)
    if args.near_level:
        feed.set_near_level(*SBIN, True)
    arrivals = Arrivals()
    feed.start(FeedCallbacks(on_tick=arrivals.on_tick))
    stop_pump = threading.Event()
    price = [800.0]

    def next_price() -> float:
        price[0] = round(price[0] - 0.5, 2)
        return price[0]

    def pump() -> None:
        step = 0
        while not stop_pump.wait(0.05):
            step += 1
            try:
                sim.set_price(*RELIANCE, 2500.0 + (step % 20) * 0.05)
            except Exception:  # noqa: BLE001 - the simulator is stopping
                return

    threading.Thread(target=pump, daemon=True).start()

    def sbin_tick_delivered() -> float:
        """Publish one SBIN tick and return when the feed delivered it."""
        value = next_price()
        wait(lambda: (*SBIN, 1) in sim.subscriptions())
        sim.set_price(*SBIN, value)
        return wait(lambda: arrivals.arrival(SBIN, value))

    def covered(since: float, moved: float) -> tuple[float, float]:
        first_poll = wait(lambda: next((t for t in broker.sbin_requests if t >= since), None))
        delivered = wait(lambda: arrivals.arrival(SBIN, moved))
        return first_poll - since, delivered - since

    def settle() -> None:
        wait(lambda: feed.status().state.value == "LIVE")
        sbin_tick_delivered()
        wait(lambda: feed.status().polled == ())

    results: dict[str, list[tuple[float, float]]] = {"silent symbol": [], "silent socket": [], "refused socket": []}
    wait(lambda: feed.status().state.value == "LIVE")
    for _ in range(args.samples):
        settle()
        silent_from = sbin_tick_delivered()
        moved = next_price()
        sim.set_price(*SBIN, moved, publish=False)
        results["silent symbol"].append(covered(silent_from, moved))

        settle()
        moved = next_price()
        silent_from = time.monotonic()
        sim.faults.stall_ws(None)
        sim.set_price(*SBIN, moved)  # published into the silence: lost
        results["silent socket"].append(covered(silent_from, moved))
        sim.faults.clear()

        settle()
        moved = next_price()
        silent_from = time.monotonic()
        sim.faults.refuse_ws(60.0)
        sim.faults.drop_ws()
        sim.set_price(*SBIN, moved, publish=False)
        results["refused socket"].append(covered(silent_from, moved))
        sim.faults.clear()

    # While SBIN is polled: its REST price moves at a random moment.
    settle()
    sbin_tick_delivered()
    wait(lambda: SBIN in feed.status().polled, timeout=10)
    move_to_delivery, request_to_delivery = [], []
    for _ in range(args.samples * 4):
        time.sleep(rng.uniform(0.0, 1.0))  # a random phase against the poll interval, not synchronisation
        moved = next_price()
        moved_at = time.monotonic()
        sim.set_price(*SBIN, moved, publish=False)
        delivered = wait(lambda: arrivals.arrival(SBIN, moved))
        request = max(t for t in broker.sbin_requests if t <= delivered)
        move_to_delivery.append(delivered - moved_at)
        request_to_delivery.append(delivered - request)

    stop_pump.set()
    feed.stop()
    client.close()
    sim.stop()

    def describe(values: list[float]) -> str:
        return f"median {statistics.median(values):.3f} s, max {max(values):.3f} s"

    near = f" ({feed.poll_near_level_after} s: SBIN marked near a level)" if args.near_level else ""
    print(f"defaults: polled after {feed.poll_silent_after} s silent{near}, {feed.poll_after} s after a drop, "
          f"every {feed.poll_interval} s; socket stall {feed.stall_after} s")
    for case, samples in results.items():
        print(f"{case:15s} silence -> first poll: {describe([a for a, _ in samples])}; "
              f"silence -> moved price delivered: {describe([b for _, b in samples])}  (n={len(samples)})")
    print(f"while polling: REST move -> on_tick: {describe(move_to_delivery)}; "
          f"poll request -> on_tick: {describe(request_to_delivery)}  (n={len(move_to_delivery)})")


if __name__ == "__main__":
    main()
