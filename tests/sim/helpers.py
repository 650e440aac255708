"""Helpers for the simulator tests: a REST caller and WebSocket conveniences."""

from __future__ import annotations

import json
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tmtool.sim import Simulator

API_KEY = "test-key"


class Rest:
    """POSTs to ``/api/v1/<endpoint>`` with the key filled in; returns (status, body)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.http = httpx.Client(base_url=sim.rest_url + "/api/v1/", timeout=10)

    def __call__(self, endpoint: str, **fields: Any) -> tuple[int, dict]:
        fields.setdefault("apikey", API_KEY)
        response = self.http.post(endpoint, json=fields)
        return response.status_code, response.json()

    def order(self, symbol: str = "RELIANCE", action: str = "BUY", quantity: Any = 10, **fields: Any) -> tuple[int, dict]:
        fields.setdefault("strategy", "test")
        fields.setdefault("exchange", "NSE")
        return self("placeorder", symbol=symbol, action=action, quantity=quantity, **fields)

    def order_id(self, **fields: Any) -> str:
        status, body = self.order(**fields)
        assert status == 200, body
        return body["orderid"]

    def close(self) -> None:
        self.http.close()


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def send_json(ws: ClientConnection, message: dict) -> None:
    ws.send(json.dumps(message))


def ws_client(sim: Simulator, authenticate: bool = True) -> ClientConnection:
    ws = connect(sim.ws_url, open_timeout=5, legacy=True)
    if authenticate:
        send_json(ws, {"action": "authenticate", "api_key": API_KEY})
        reply = recv_json(ws)
        assert reply["type"] == "auth" and reply["status"] == "success", reply
    return ws


def subscribe(ws: ClientConnection, *symbols: tuple[str, str], mode: Any = 1) -> dict:
    """Subscribe (list form) and return the ack."""
    send_json(ws, {"action": "subscribe", "mode": mode,
                   "symbols": [{"exchange": exchange, "symbol": symbol} for exchange, symbol in symbols]})
    ack = recv_json(ws)
    assert ack["type"] == "subscribe", ack
    return ack
