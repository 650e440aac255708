"""The simulator (and a tick pump) in a process of its own, driven over a pipe.

OpenAlgo is a separate server in production, so its CPU (and its share of the
GIL) is not tmtool's.  Benchmarks that measure tmtool's latency or CPU under a
steady tick load run the simulator here:

    with SimProcess(api_key, symbols) as sim:
        sim.rest_url, sim.ws_url
        sim.set_price("NSE", "LAT0", 989.0)       # returns the monotonic time just before publishing
        sim.wait_order(after=count)               # the arrival time of order number ``count + 1``

``time.monotonic`` is the system-wide CLOCK_MONOTONIC on Linux, so the times
this process reports compare directly with the parent's.  The protocol is one
JSON object per line each way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks.common import TickPump
from tmtool.sim import SimSymbol, Simulator


class SimProcess:
    """Parent side: starts ``python -m benchmarks.sim_process`` and sends it commands."""

    def __init__(self, api_key: str, symbols: list[SimSymbol]) -> None:
        spec = {"api_key": api_key, "symbols": [[s.symbol, s.exchange, s.price, s.token] for s in symbols]}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sim_process"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        ready = self._call(spec)
        self.rest_url: str = ready["rest_url"]
        self.ws_url: str = ready["ws_url"]

    def _call(self, message: dict) -> dict:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps(message) + "\n")
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit code {self._child.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"simulator process: {reply['error']}")
        return reply

    def set_price(self, exchange: str, symbol: str, price: float) -> float:
        return self._call({"op": "set_price", "exchange": exchange, "symbol": symbol, "price": price})["at"]

    def order_count(self) -> int:
        return self._call({"op": "order_count"})["count"]

    def wait_order(self, after: int, timeout: float = 10.0) -> float:
        """Monotonic arrival time of the first order request after the first ``after``."""
        return self._call({"op": "wait_order", "after": after, "timeout": timeout})["at"]

    def subscribed(self, exchange: str, symbol: str) -> bool:
        return self._call({"op": "subscribed", "exchange": exchange, "symbol": symbol})["subscribed"]

    def subscription_count(self) -> int:
        return self._call({"op": "subscription_count"})["count"]

    def start_pump(self, symbols: list[str], rate: float) -> None:
        self._call({"op": "start_pump", "symbols": symbols, "rate": rate})

    def stop_pump(self) -> float:
        """Stops the pump; returns the ticks per second it published."""
        return self._call({"op": "stop_pump"})["rate"]

    def close(self) -> None:
        if self._child.poll() is None:
            try:
                self._call({"op": "quit"})
            except (RuntimeError, OSError):
                pass
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()

    def __enter__(self) -> "SimProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    """Child side: build the simulator from the first line, then answer commands until ``quit``."""
    spec = json.loads(sys.stdin.readline())
    symbols = [SimSymbol(name, exchange, price, token=token) for name, exchange, price, token in spec["symbols"]]
    sim = Simulator(api_key=spec["api_key"], tick_interval=None, symbols=symbols, rate_limits=None)
    sim.start()
    pump: TickPump | None = None
    print(json.dumps({"rest_url": sim.rest_url, "ws_url": sim.ws_url}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            try:
                if op == "quit":
                    print("{}", flush=True)
                    return
                if op == "set_price":
                    at = time.monotonic()
                    sim.set_price(command["exchange"], command["symbol"], command["price"])
                    reply: dict = {"at": at}
                elif op == "order_count":
                    reply = {"count": len(sim.order_events)}
                elif op == "wait_order":
                    deadline = time.monotonic() + command["timeout"]
                    while len(sim.order_events) <= command["after"]:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"no order after #{command['after']} within {command['timeout']} s")
                        time.sleep(0.0002)
                    reply = {"at": sim.order_events[command["after"]][0]}
                elif op == "subscribed":
                    reply = {"subscribed": (command["exchange"], command["symbol"], 1) in sim.subscriptions()}
                elif op == "subscription_count":
                    reply = {"count": len(sim.subscriptions())}
                elif op == "start_pump":
                    pump = TickPump(sim, command["symbols"], command["rate"])
                    pump.start()
                    reply = {}
                elif op == "stop_pump":
                    reply = {"rate": pump.stop() if pump is not None else 0.0}
                    pump = None
                else:
                    raise ValueError(f"unknown command {op!r}")
            except Exception as exc:  # reported to the parent, which raises it
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply), flush=True)
    finally:
        if pump is not None:
            pump.stop()
        sim.stop()


if __name__ == "__main__":
    _serve()
