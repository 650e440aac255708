"""Fixtures for the simulator tests: a running simulator with hand-driven prices, and a REST client.

``clock`` and ``manual_sim``: a simulator on a :class:`ManualClock` whose ``monotonic()``
follows the manual time, so lags, delays and fault deadlines move only when a test advances it.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.sim.helpers import API_KEY, Rest
from tmtool.clock import ManualClock
from tmtool.sim import Simulator

#: 2026-01-01 04:00:00 UTC = 09:30:00 IST.
MANUAL_START = 1_767_240_000.0


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(api_key=API_KEY, seed=7, tick_interval=None, rate_limits=None)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def rest(sim: Simulator) -> Iterator[Rest]:
    client = Rest(sim)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MANUAL_START)


@pytest.fixture
def manual_sim(clock: ManualClock) -> Iterator[Simulator]:
    simulator = Simulator(api_key=API_KEY, seed=7, tick_interval=None, rate_limits=None, clock=clock)
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def manual_rest(manual_sim: Simulator) -> Iterator[Rest]:
    client = Rest(manual_sim)
    try:
        yield client
    finally:
        client.close()
