"""Feed throughput and reconnect time against the embedded simulator.

Run: ``python -m benchmarks.bench_feed`` (or ``run(seconds)`` from code).  Reports

* ``decode_orjson_per_s`` / ``decode_json_per_s``: ``parse_frame`` on captured
  simulator frames with each decoder (the evidence for using orjson);
* ``dispatch_ticks_per_s``: ``OpenAlgoFeed.handle_frame`` (parse, route,
  de-duplicate, build the Tick, hand it to an enqueueing callback) on the same frames;
* ``socket_ticks_per_s``: ticks delivered end to end over a loopback WebSocket
  while the simulator bursts 30,000 prices back to back (its own encoding and
  sending share the CPU, so this is a lower bound for the client side);
* ``reconnect_ms_median`` (and each sample): from ``faults.drop_ws()`` until the
  feed is LIVE again, and ``reconnect_to_tick_ms_median`` until the first tick
  after that.
"""

from __future__ import annotations

import json
import queue
import statistics
import threading
import time

import websocket

from tmtool.engine.feed import OpenAlgoFeed, loads_with_json, parse_frame
from tmtool.engine.models import FeedState
from tmtool.engine.ports import FeedCallbacks
from tmtool.sim import Simulator

API_KEY = "bench-key"


def capture_frames(sim: Simulator, keys: list[tuple[str, str]], count: int = 5000, timeout: float = 10.0) -> list[bytes]:
    """Raw market-data frames exactly as the simulator sends them."""
    ws = websocket.create_connection(sim.ws_url, timeout=timeout)
    try:
        ws.send(json.dumps({"action": "authenticate", "api_key": API_KEY}))
        ws.send(json.dumps({"action": "subscribe", "mode": 1,
                            "symbols": [{"exchange": e, "symbol": s} for e, s in keys]}))
        frames: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(frames) < count and time.monotonic() < deadline:
            _, data = ws.recv_data()
            if b'"market_data"' in data:
                frames.append(data)
        return frames
    finally:
        ws.close()


def rate(function, items: list, seconds: float) -> float:
    """Calls of ``function`` per second over ``items``, repeated for about ``seconds``."""
    done = 0
    started = time.perf_counter()
    while True:
        for item in items:
            function(item)
        done += len(items)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def dispatch_rate(frames: list[bytes], keys: list[tuple[str, str]], seconds: float) -> float:
    feed = OpenAlgoFeed("ws://127.0.0.1:9", API_KEY)
    sink: queue.SimpleQueue = queue.SimpleQueue()
    feed._callbacks = FeedCallbacks(on_tick=sink.put)  # frames fed in directly, no threads
    for exchange, symbol in keys:
        feed.subscribe(exchange, symbol)
    # Distinct timestamps per pass, so nothing is dropped as a duplicate.
    passes = [json.dumps({**json.loads(f), "data": {**json.loads(f)["data"], "timestamp": i}}).encode()
              for i, f in enumerate(frames)]
    return rate(feed.handle_frame, passes, seconds)


def socket_rate(ticks: int = 30_000) -> float:
    """Ticks per second end to end: the simulator bursts ``ticks`` prices at one subscribed symbol."""
    sim = Simulator(api_key=API_KEY, seed=11, rest_port=0, ws_port=0, tick_interval=None)
    sim.start()
    received = [0]
    done = threading.Event()
    final_price = 9999.95

    def on_tick(tick) -> None:
        received[0] += 1
        if tick.price == final_price:
            done.set()

    feed = OpenAlgoFeed(sim.ws_url, API_KEY, seed=1)
    feed.subscribe("NSE", "RELIANCE")
    try:
        feed.start(FeedCallbacks(on_tick=on_tick))
        deadline = time.monotonic() + 10
        while not received[0] and time.monotonic() < deadline:  # until the subscription is in effect
            sim.set_price("NSE", "RELIANCE", 2500.0, publish=True)
            time.sleep(0.01)
        prices = [2400.0 + (i % 2000) * 0.05 for i in range(ticks - 1)] + [final_price]
        before, started = received[0], time.perf_counter()
        sim.burst("NSE", "RELIANCE", prices)
        if not done.wait(60):
            raise RuntimeError("the burst did not arrive within 60 s")
        elapsed = time.perf_counter() - started
        delivered = received[0] - before
        if delivered != ticks:
            raise RuntimeError(f"{ticks} ticks sent, {delivered} delivered")
        return delivered / elapsed
    finally:
        feed.stop()
        sim.stop()


def reconnect_times(drops: int = 5) -> tuple[list[float], list[float]]:
    """Milliseconds from a drop to LIVE, and to the first tick after it."""
    sim = Simulator(api_key=API_KEY, seed=5, rest_port=0, ws_port=0, tick_interval=None)
    sim.start()
    live = threading.Event()
    ticked = threading.Event()

    def on_status(status) -> None:
        if status.state is FeedState.LIVE:
            live.set()

    feed = OpenAlgoFeed(sim.ws_url, API_KEY, seed=2)
    feed.subscribe("NSE", "RELIANCE")
    to_live: list[float] = []
    to_tick: list[float] = []
    try:
        feed.start(FeedCallbacks(on_tick=lambda _t: ticked.set(), on_status=on_status))
        live.wait(10)
        for n in range(drops):
            live.clear()
            started = time.perf_counter()
            sim.faults.drop_ws()
            if not live.wait(10):
                raise RuntimeError("the feed did not reconnect within 10 s")
            to_live.append((time.perf_counter() - started) * 1000)
            ticked.clear()
            price = 2500.0 + n
            while not ticked.is_set():  # publish until the resubscribed socket delivers
                sim.set_price("NSE", "RELIANCE", price, publish=True)
                ticked.wait(0.001)
                price += 0.05
            to_tick.append((time.perf_counter() - started) * 1000)
            time.sleep(1.1)  # let the connection count as stable, so each drop starts from the first backoff step
    finally:
        feed.stop()
        sim.stop()
    return to_live, to_tick


def run(seconds: float = 5.0) -> dict:
    keys = [("NSE", s) for s in ("RELIANCE", "SBIN", "INFY", "TCS", "HDFCBANK", "YESBANK")]
    sim = Simulator(api_key=API_KEY, seed=7, rest_port=0, ws_port=0, tick_interval=0.001)
    sim.start()
    try:
        frames = capture_frames(sim, keys)
    finally:
        sim.stop()
    share = seconds / 3
    to_live, to_tick = reconnect_times()
    return {
        "frames_captured": len(frames),
        "frame_bytes_mean": round(sum(map(len, frames)) / len(frames)),
        "decode_orjson_per_s": round(rate(parse_frame, frames, share)),
        "decode_json_per_s": round(rate(lambda f: parse_frame(f, loads_with_json), frames, share)),
        "dispatch_ticks_per_s": round(dispatch_rate(frames, keys, share)),
        "socket_ticks_per_s": round(socket_rate()),
        "reconnect_ms_median": round(statistics.median(to_live), 1),
        "reconnect_ms": [round(t, 1) for t in to_live],
        "reconnect_to_tick_ms_median": round(statistics.median(to_tick), 1),
    }


if __name__ == "__main__":
    for name, value in run().items():
        print(f"{name:30} {value}")
