"""A running engine on the simulator with the control API in front of it (shared per module)."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from tests.stack import Stack, running_stack
from tmtool.api import ApiServer
from tmtool.domain.models import Distance, Strategy, TradeRisk

API_KEY = "control-api-test-key-0123"
STRATEGIES = (
    Strategy("api", trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(20)), allocated_funds=100_000.0),
    Strategy("hist", trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(20))),
    Strategy("bulk", trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(20))),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("api"), strategies=STRATEGIES) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack) -> Iterator[ApiServer]:
    server = ApiServer(stack.engine, port=0, api_key=API_KEY, requests_per_minute=100_000)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=15.0) as http:
        yield http


def call(client: httpx.Client, verb: str, **fields) -> httpx.Response:
    """POST a verb with the test key and the given fields."""
    return client.post(f"/api/v1/{verb}", json={"apikey": API_KEY, **fields})


def ok(response: httpx.Response):
    """The ``data`` of a successful reply (fails with the reply's text otherwise)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]
