"""A simulator on loopback ports and clients pointed at it."""

from __future__ import annotations

import pytest

from tmtool.openalgo.client import OpenAlgoClient
from tmtool.sim import Simulator

# A distinctive key, so a leak into logs, messages or reprs is unmistakable.
API_KEY = "sk-tmtool-test-3f9a7c21d0e84b56"


@pytest.fixture
def sim():
    simulator = Simulator(api_key=API_KEY, seed=7, host="127.0.0.1", rest_port=0, ws_port=0, tick_interval=None)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    broker = OpenAlgoClient(sim.rest_url, API_KEY, timeout=2.0, read_retries=2, retry_backoff=0.01, max_retry_wait=0.05)
    yield broker
    broker.close()
