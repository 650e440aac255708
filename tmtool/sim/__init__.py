"""An embedded OpenAlgo-compatible simulator: REST API, WebSocket feed, seeded market, faults.

    from tmtool.sim import Simulator
    with Simulator(api_key="test-key", tick_interval=None) as sim:
        sim.set_price("NSE", "RELIANCE", 2500.0)
        ...  # talk to sim.rest_url + "/api/v1/" and sim.ws_url

It speaks the protocol described in openalgo-api.md (shapes, types, status
codes, error strings and quirks), so tmtool's demo, tests and benchmarks run the
real client code against it.
"""

from tmtool.sim.rest import RateLimits
from tmtool.sim.simulator import Simulator
from tmtool.sim.symbols import SimSymbol, builtin_symbols

__all__ = ["RateLimits", "SimSymbol", "Simulator", "builtin_symbols"]
