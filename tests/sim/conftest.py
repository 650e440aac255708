"""Fixtures for the simulator tests: a running simulator with hand-driven prices, and a REST client."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.sim.helpers import API_KEY, Rest
from tmtool.sim import Simulator


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
