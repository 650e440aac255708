"""Feed throughput (three consumers of one recorded stream), parse rates and reconnect time.

    python -m benchmarks.bench_feed                 # 100,000 frames per consumer
    python -m benchmarks.bench_feed --frames 20000

Side by side, on the same frames:

* ``tmtool_feed``: ``OpenAlgoFeed`` — socket read, ``parse_frame``, routing,
  de-duplication, the ``Tick`` — handing every tick to a ``SimpleQueue.put``
  (what the engine inbox is);
* ``openalgo_sdk``: the official SDK's ``FeedAPI.subscribe_ltp`` with a callback
  that only counts;
* ``bare_decode``: a websocket-client loop that only receives and decodes each
  frame with orjson (the floor).

The frames are recorded from the embedded simulator (``burst()`` over 10
symbols, interleaved) and replayed by a tiny loopback WebSocket server
(``benchmarks/replay_ws.py``) that sends the whole recording with one
``sendall`` once the consumer has subscribed, so each rate is the consumer's:
frames / (replay start → the consumer's callback saw the last one).

Also: ``parse_frame`` on the frames in memory with orjson and with json (the
evidence for orjson), and the reconnect time from ``faults.drop_ws()`` until the
feed is LIVE again and until the first tick after it.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import threading
import time

import orjson
import websocket
from openalgo import FeedAPI

from benchmarks.replay_ws import ReplayServer
from tmtool.openalgo.feed import OpenAlgoFeed, loads_with_json, parse_frame
from tmtool.domain.models import FeedState
from tmtool.engine.ports import FeedCallbacks
from tmtool.sim import SimSymbol, Simulator

API_KEY = "bench-key"


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


SYMBOLS = [f"FEED{i:02d}" for i in range(10)]


def record_frames(count: int) -> list[bytes]:
    """``count`` market-data frames exactly as the simulator sends them (mode 1, LTP), interleaved
    round-robin over ``SYMBOLS``; consecutive prices of a symbol always differ."""
    symbols = [SimSymbol(name, "NSE", 1000.0, token=str(97000 + i)) for i, name in enumerate(SYMBOLS)]
    per_symbol = -(-count // len(symbols))
    sim = Simulator(api_key=API_KEY, seed=3, tick_interval=None, symbols=symbols, rate_limits=None)
    sim.start()
    try:
        ws = websocket.create_connection(sim.ws_url, timeout=10, skip_utf8_validation=True)
        try:
            ws.send(json.dumps({"action": "authenticate", "api_key": API_KEY}))
            ws.recv()
            ws.send(json.dumps({"action": "subscribe", "mode": 1,
                                "symbols": [{"exchange": "NSE", "symbol": s} for s in SYMBOLS]}))
            ws.recv()
            by_symbol: dict[str, list[bytes]] = {name: [] for name in SYMBOLS}
            for name in SYMBOLS:
                sim.burst("NSE", name, [round(1000.0 + (i % 2000) * 0.05, 2) for i in range(per_symbol)])
                while len(by_symbol[name]) < per_symbol:
                    _, data = ws.recv_data()
                    if b'"market_data"' in data:
                        by_symbol[orjson.loads(data)["symbol"]].append(data)
        finally:
            ws.close()
    finally:
        sim.stop()
    interleaved = [frame for group in zip(*by_symbol.values()) for frame in group]
    return interleaved[:count]


class _Finish:
    """Counts deliveries; notes the time of the last expected one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.at = 0.0
        self.done = threading.Event()

    def __call__(self, _item: object = None) -> None:
        self.count += 1
        if self.count == self.expected:
            self.at = time.perf_counter()
            self.done.set()


def _consume_tmtool(url: str, finish: _Finish) -> None:
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    put = inbox.put

    def on_tick(tick) -> None:
        put(tick)
        finish()

    feed = OpenAlgoFeed(url, API_KEY, seed=1)
    for name in SYMBOLS:
        feed.subscribe("NSE", name)
    feed.start(FeedCallbacks(on_tick=on_tick))
    try:
        finish.done.wait(120)
    finally:
        feed.stop()


def _consume_sdk(url: str, finish: _Finish) -> None:
    client = FeedAPI(api_key=API_KEY, host="http://127.0.0.1:9", ws_url=url)
    if not client.connect():
        raise RuntimeError("the SDK client did not connect to the replay server")
    try:
        client.subscribe_ltp([{"exchange": "NSE", "symbol": name} for name in SYMBOLS], on_data_received=finish)
        finish.done.wait(120)
    finally:
        client.disconnect()


def _consume_bare(url: str, finish: _Finish) -> None:
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
    try:
        ws.send(json.dumps({"action": "authenticate", "api_key": API_KEY}))
        ws.send(json.dumps({"action": "subscribe", "mode": 1,
                            "symbols": [{"exchange": "NSE", "symbol": s} for s in SYMBOLS]}))
        recv, loads = ws.recv_data, orjson.loads
        while not finish.done.is_set():
            _, data = recv()
            if loads(data).get("type") == "market_data":
                finish()
    finally:
        ws.close()


CONSUMERS = {"tmtool_feed": _consume_tmtool, "openalgo_sdk": _consume_sdk, "bare_decode": _consume_bare}


def compare_consumers(frames: list[bytes]) -> dict:
    """Ticks per second for each consumer over the same replayed frames, and the ratios."""
    server = ReplayServer(frames, {("NSE", name) for name in SYMBOLS}).start()
    rates: dict[str, float] = {}
    try:
        for name, consume in CONSUMERS.items():
            server.reset()
            finish = _Finish(len(frames))
            consume(server.url, finish)
            if not finish.done.is_set() or server.sent_at is None:
                raise RuntimeError(f"{name}: {finish.count} of {len(frames)} frames arrived within 120 s")
            rates[name] = len(frames) / (finish.at - server.sent_at)
    finally:
        server.stop()
    return {
        "frames": len(frames),
        "symbols": len(SYMBOLS),
        **{f"{name}_ticks_per_s": round(rate) for name, rate in rates.items()},
        "tmtool_vs_sdk": round(rates["tmtool_feed"] / rates["openalgo_sdk"], 2),
        "bare_vs_tmtool": round(rates["bare_decode"] / rates["tmtool_feed"], 2),
    }


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


def run(frames: int = 100_000, seconds: float = 3.0, reconnects: int = 5) -> dict:
    recorded = record_frames(frames)
    share = seconds / 3
    keys = [("NSE", name) for name in SYMBOLS]
    result = {
        "frame_bytes_mean": round(sum(map(len, recorded)) / len(recorded)),
        **compare_consumers(recorded),
        "decode_orjson_per_s": round(rate(parse_frame, recorded[:5000], share)),
        "decode_json_per_s": round(rate(lambda f: parse_frame(f, loads_with_json), recorded[:5000], share)),
        "dispatch_in_memory_ticks_per_s": round(dispatch_rate(recorded[:5000], keys, share)),
    }
    if reconnects:
        to_live, to_tick = reconnect_times(reconnects)
        result.update(
            reconnect_ms_median=round(statistics.median(to_live), 1),
            reconnect_ms=[round(t, 1) for t in to_live],
            reconnect_to_tick_ms_median=round(statistics.median(to_tick), 1),
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--reconnects", type=int, default=5)
    options = parser.parse_args()
    print(json.dumps(run(options.frames, reconnects=options.reconnects), indent=2))
