"""What the REST and WebSocket servers need from the simulator that hosts them.

The servers are built by :class:`tmtool.sim.simulator.Simulator` and call back
into it; they see it only through :class:`SimulatorHost`, so the simulator
module depends on the servers and never the other way round (``tmtool.sim``
stays free of import cycles; pyproject.toml's import contract keeps it so).
"""

from __future__ import annotations

import threading
from typing import Protocol

from tmtool.clock import Clock
from tmtool.sim.book import Book
from tmtool.sim.faults import Faults
from tmtool.sim.market import Market


class SimulatorHost(Protocol):
    """The simulator as its servers see it: shared state, flags, and a few hooks."""

    faults: Faults
    broker_profile: str
    analyzer_mode: bool
    semi_auto: bool
    margin_calculator: bool
    session_expired: bool
    order_updates_enabled: bool
    _state_lock: threading.RLock
    _book: Book
    _market: Market
    _clock: Clock

    def _key_matches(self, key: object) -> bool: ...

    def _request_arrived(self, monotonic_ts: float) -> None: ...

    def _note_order_event(self, orderid: str) -> None: ...

    def set_price(self, exchange: str, symbol: str, price: float, publish: bool = True) -> None: ...
