"""``tmtool sim``: run the simulator in the foreground, or inject a fault into a running one.

    tmtool sim [--host 127.0.0.1] [--port 5000] [--ws-port 8765] [--api-key KEY] [--seed 7]
               [--tick-interval 0.5] [--volatility 0.0005] [--broker-profile angel|zerodha]
               [--analyzer] [--semi-auto] [--no-rate-limits]
    tmtool sim fault <name> [key=value ...] [--url http://127.0.0.1:5000] [--api-key KEY]

The key comes from ``--api-key`` or ``TMTOOL_SIM_API_KEY`` and is never printed.
Fault arguments are JSON values (``seconds=2``, ``endpoints='["placeorder"]'``,
``hold=true``); the fault is sent to the admin endpoint ``POST /sim/v1/fault``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request

from tmtool.sim.rest import ADMIN_FAULTS, RateLimits
from tmtool.sim.simulator import BROKER_PROFILES, Simulator

KEY_ENV = "TMTOOL_SIM_API_KEY"


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmtool sim", description="Run the OpenAlgo-compatible simulator.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=5000, help="REST port (0 = any free port)")
    parser.add_argument("--ws-port", type=int, default=8765, help="WebSocket port (0 = any free port)")
    parser.add_argument("--api-key", default=None, help=f"API key clients must send (default: ${KEY_ENV})")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tick-interval", type=float, default=0.5, help="seconds between price rounds; 0 = none")
    parser.add_argument("--volatility", type=float, default=0.0005, help="per-round relative std-dev")
    parser.add_argument("--broker-profile", choices=BROKER_PROFILES, default="angel")
    parser.add_argument("--analyzer", action="store_true", help="start in analyzer (sandbox) mode")
    parser.add_argument("--semi-auto", action="store_true", help="queue orders for approval instead of placing them")
    parser.add_argument("--no-rate-limits", action="store_true", help="turn the per-endpoint rate limits off")
    return parser


def _fault_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tmtool sim fault", description="Inject a fault into a running simulator.")
    parser.add_argument("name", choices=sorted(ADMIN_FAULTS))
    parser.add_argument("args", nargs="*", metavar="key=value", help="fault arguments, values as JSON")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the simulator's REST base URL")
    parser.add_argument("--api-key", default=None, help=f"the simulator's API key (default: ${KEY_ENV})")
    return parser


def _api_key(given: str | None) -> str | None:
    return given or os.environ.get(KEY_ENV) or None


def sim_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fault"]:
        return _fault_main(argv[1:])
    args = _run_parser().parse_args(argv)
    api_key = _api_key(args.api_key)
    if not api_key:
        print(f"tmtool sim: no API key: pass --api-key or set {KEY_ENV}", file=sys.stderr)
        return 2
    try:
        sim = Simulator(
            api_key=api_key, seed=args.seed, host=args.host, rest_port=args.port, ws_port=args.ws_port,
            tick_interval=args.tick_interval or None, volatility=args.volatility,
            broker_profile=args.broker_profile, rate_limits=None if args.no_rate_limits else RateLimits(),
        )
        sim.analyzer_mode = args.analyzer
        sim.semi_auto = args.semi_auto
        sim.start()
    except (OSError, ValueError) as error:
        print(f"tmtool sim: cannot start: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    print(f"OpenAlgo simulator ({args.broker_profile} profile) listening:", flush=True)
    print(f"  REST       {sim.rest_url}/api/v1/", flush=True)
    print(f"  WebSocket  {sim.ws_url}", flush=True)
    print(f"  faults     POST {sim.rest_url}/sim/v1/fault  (or: tmtool sim fault <name> key=value ...)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


def _fault_main(argv: list[str]) -> int:
    args = _fault_parser().parse_args(argv)
    api_key = _api_key(args.api_key)
    if not api_key:
        print(f"tmtool sim fault: no API key: pass --api-key or set {KEY_ENV}", file=sys.stderr)
        return 2
    fault_args = {}
    for item in args.args:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            print(f"tmtool sim fault: argument {item!r} is not key=value", file=sys.stderr)
            return 2
        try:
            fault_args[name] = json.loads(raw)
        except ValueError:
            fault_args[name] = raw  # a bare word: a string
    body = json.dumps({"apikey": api_key, "fault": args.name, "args": fault_args}).encode()
    request = urllib.request.Request(f"{args.url.rstrip('/')}/sim/v1/fault", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as error:
        reply = json.loads(error.read() or b"{}")
        print(f"tmtool sim fault: refused ({error.code}): {reply.get('message', '')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"tmtool sim fault: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    print(f"fault {args.name} injected: {reply.get('status')}")
    return 0
