"""breakeven_after per trade in createtrade and updatetrade: schema, commands, and the engine's view of it."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from tests.api.conftest import call, ok
from tmtool.api.bodies import present
from tmtool.api.verbs import VERBS, VerbContext
from tmtool.clock import ManualClock
from tmtool.domain.commands import UNSET, Accepted, CreateTrade, ModifyTrade
from tmtool.domain.models import Distance, DistanceMode, Side, TradeStatus

PCT = DistanceMode.PERCENT


class _RecordingEngine:
    """Takes commands and accepts them; shows no trades."""

    def __init__(self) -> None:
        self.commands: list[object] = []

    def submit(self, command: object) -> Future:
        self.commands.append(command)
        future: Future = Future()
        future.set_result(Accepted("ok", trade_id=1))
        return future

    def snapshot(self):
        return _NoTrades()


class _NoTrades:
    def trade(self, trade_id: int):
        return None


def _command(verb: str, **body):
    engine = _RecordingEngine()
    verb_def = VERBS[verb]
    verb_def.handler(VerbContext(engine, ManualClock(), 1.0), present(verb_def.body.model_validate({"apikey": "k", **body})))
    [command] = engine.commands
    return command


@pytest.fixture(scope="module")
def held(stack) -> int:
    """An open trade to send updates to."""
    stack.sim.set_price("NSE", "TCS", 3500.0)
    trade_id = stack.create(CreateTrade("api", "TCS", "NSE", Side.LONG, quantity=5))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    return trade_id


CREATE = dict(strategy="api", symbol="SBIN", exchange="NSE", action="BUY", quantity=5)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, UNSET),  # left out: the strategy's default
        ({"breakeven_after": None}, None),  # null: off for this trade
        ({"breakeven_after": {"distance": 10}}, Distance(10)),
        ({"breakeven_after": {"distance": 1.5, "mode": "PERCENT"}}, Distance(1.5, PCT)),
    ],
)
def test_createtrade_and_updatetrade_carry_breakeven_into_the_command(given, expected):
    create = _command("createtrade", **CREATE, **given)
    assert isinstance(create, CreateTrade) and create.breakeven_after == expected
    if given:
        modify = _command("updatetrade", trade_id=7, **given)
        assert modify == ModifyTrade(7, breakeven_after=expected)


@pytest.mark.parametrize(
    ("breakeven", "status", "message"),
    [
        ({"distance": 0}, 400, "breakeven_after.distance: must be greater than 0"),
        ({"mode": "PERCENT"}, 400, "breakeven_after.distance: is required"),
        ({"distance": 5, "mode": "PIPS"}, 400, "breakeven_after.mode: must be one of POINTS, PERCENT"),
        ({"distance": 5, "after": 1}, 400, "breakeven_after.after: unknown field"),
        ({"distance": 100, "mode": "PERCENT"}, 400, "breakeven_after 100% must be less than 100%"),
        (10, 400, "breakeven_after: must be a JSON object"),
    ],
)
def test_bad_breakeven_is_refused_naming_the_field(client, stack, held, breakeven, status, message):
    response = call(client, "createtrade", **{**CREATE, "symbol": "INFY"}, breakeven_after=breakeven)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert stack.orders_for("INFY") == []
    update = call(client, "updatetrade", trade_id=held, breakeven_after=breakeven)
    assert update.status_code == status, update.text
    assert message in update.json()["message"]


def test_breakeven_is_in_the_published_schema_of_both_verbs(client):
    document = client.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]

    def resolved(schema: dict) -> dict:
        return schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else schema

    for verb in ("createtrade", "updatetrade"):
        body = resolved(document["paths"][f"/api/v1/{verb}"]["post"]["requestBody"]["content"]["application/json"]["schema"])
        choices = body["properties"]["breakeven_after"]["anyOf"]
        assert {"type": "null"} in choices
        breakeven = resolved(next(choice for choice in choices if choice != {"type": "null"}))
        assert (breakeven["type"], breakeven["required"]) == ("object", ["distance"])
        assert breakeven["properties"]["mode"]["enum"] == ["POINTS", "PERCENT"]


def test_breakeven_set_over_the_api_shows_in_activetrades(client, stack):
    stack.sim.set_price("NSE", "HDFCBANK", 1650.0)
    created = ok(call(client, "createtrade", **{**CREATE, "symbol": "HDFCBANK"}, breakeven_after={"distance": 1, "mode": "PERCENT"}))
    trade_id = created["trade_id"]
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    listed = next(t for t in ok(call(client, "activetrades", symbol="HDFCBANK")) if t["id"] == trade_id)
    assert listed["breakeven_after"] == {"value": 1.0, "mode": "PERCENT"}

    ok(call(client, "updatetrade", trade_id=trade_id, breakeven_after=None))
    stack.wait_trade(trade_id, lambda t: t.breakeven_after is None)
    ok(call(client, "exittrade", trade_id=trade_id))
    stack.wait_status(trade_id, TradeStatus.CLOSED)
