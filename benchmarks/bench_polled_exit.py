"""How fast a stop crossed during a price silence is exited: the whole stack over loopback.

    python -m benchmarks.bench_polled_exit              # 3 samples per fault
    python -m benchmarks.bench_polled_exit --samples 5

The real simulator, SQLite store, client, feed and engine, with the production
defaults of the feed (``[feed]`` in the config: polled after 2.5 s without a
socket tick, 2 s for a symbol near a level, every symbol 1 s after the socket
drops, one poll a second, a socket silent for 15 s reopened) and of the engine
(order status every 0.5 s while order updates do not flow).  The clock's date is
fixed in NSE hours (``ManualClock(real_timers=True)``); every duration is real.

Each sample opens a long SBIN trade with its stop at 790, ticks SBIN to 793
over the socket (within 0.5% of the stop: the engine marks it near a level),
then starts a fault and at once moves SBIN's REST price to 789 without a tick:

* ``silent symbol``: SBIN's ticks stop; RELIANCE keeps ticking every 50 ms;
* ``silent socket``: the socket stays open and sends nothing;
* ``refused socket``: the socket is dropped and new handshakes are refused.

Reported per fault, from the fault (which is also the crossing): to the polled
price reaching the engine (the first poll), to the exit order reaching the
simulator, and to the trade CLOSED in the engine's snapshot (the fill confirmed);
and from the polled price to the exit order.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from tests.stack import running_stack
from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import FeedState, Side, Strategy, TradeStatus
from tmtool.engine.settings import EngineSettings

FEED_DEFAULTS = {
    "stale_after": 5.0, "poll_after": 1.0, "poll_interval": 1.0, "poll_silent_after": 2.5,
    "poll_near_level_after": 2.0, "stall_after": 15.0, "max_backoff": 10.0,
}
STOP, NEAR, CROSSED = 790.0, 793.0, 789.0


def _wait(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)  # a measuring loop, 2 ms resolution
    raise TimeoutError("condition not met")


def _ticker(sim, stop: threading.Event) -> None:
    step = 0
    while not stop.wait(0.05):
        step += 1
        try:
            sim.set_price("NSE", "RELIANCE", 2500.0 + (step % 20) * 0.05)
        except Exception:  # noqa: BLE001 - the simulator is stopping
            return


def _sample(stack, start_fault) -> tuple[float, float, float]:
    engine, sim = stack.engine, stack.sim
    sim.set_price("NSE", "SBIN", 800.0)
    trade_id = stack.create(CreateTrade("bench", "SBIN", "NSE", Side.LONG, quantity=5, stop_loss=STOP))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    stack.tick("SBIN", NEAR)
    sells_before = len(stack.orders_for("SBIN", "SELL"))
    start = time.monotonic()
    start_fault(sim)
    sim.set_price("NSE", "SBIN", CROSSED, publish=False)
    polled = _wait(lambda: engine.last_price("NSE", "SBIN") == CROSSED and time.monotonic())
    ordered = _wait(lambda: len(stack.orders_for("SBIN", "SELL")) > sells_before and time.monotonic())
    closed = _wait(lambda: (v := engine.snapshot().trade(trade_id)) is not None and v.status is TradeStatus.CLOSED and time.monotonic())
    sim.faults.clear()
    _wait(lambda: stack.feed.status().state is FeedState.LIVE)
    return polled - start, ordered - start, closed - start


FAULTS = {
    "silent symbol": lambda sim: sim.faults.silence_symbol("NSE", "SBIN"),
    "silent socket": lambda sim: sim.faults.stall_ws(None),
    "refused socket": lambda sim: (sim.faults.refuse_ws(60.0), sim.faults.drop_ws()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    clock = ManualClock(datetime(2026, 1, 5, 10, 0, tzinfo=IST), real_timers=True)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in FAULTS}
    with tempfile.TemporaryDirectory(prefix="tmtool-bench-polled-exit-") as tmp:
        with running_stack(Path(tmp), strategies=(Strategy("bench"),), clock=clock, settings=EngineSettings(),
                           stale_after=FEED_DEFAULTS["stale_after"], feed_options=FEED_DEFAULTS) as stack:
            stop = threading.Event()
            threading.Thread(target=_ticker, args=(stack.sim, stop), daemon=True).start()
            try:
                for _ in range(args.samples):
                    for name, fault in FAULTS.items():
                        results[name].append(_sample(stack, fault))
            finally:
                stop.set()

    def describe(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

    print("feed: " + ", ".join(f"{k}={v}" for k, v in FEED_DEFAULTS.items()) + "; engine: EngineSettings() defaults")
    for name, samples in results.items():
        print(f"{name:15s} fault/crossing -> first polled price: {describe([p for p, _, _ in samples])}; "
              f"-> exit order: {describe([o for _, o, _ in samples])}; -> CLOSED: {describe([c for _, _, c in samples])}; "
              f"polled price -> exit order: {describe([o - p for p, o, _ in samples])}  (n={len(samples)})")


if __name__ == "__main__":
    main()
