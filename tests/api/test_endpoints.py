"""Every verb over real HTTP against a running engine on the simulator."""

from __future__ import annotations

import pytest

from tests.api.conftest import API_KEY, call, ok
from tests.util import wait_for
from tmtool.domain.calendar import trading_day
from tmtool.domain.models import TradeStatus


def _create(client, stack, symbol: str, price: float, strategy: str = "api", **fields) -> int:
    stack.sim.set_price("NSE", symbol, price)
    data = ok(call(client, "createtrade", strategy=strategy, symbol=symbol, exchange="NSE", action="BUY", quantity=5, **fields))
    stack.wait_status(data["trade_id"], TradeStatus.ACTIVE)
    return data["trade_id"]


def _today(stack) -> str:
    return trading_day(stack.clock.time()).isoformat()


def test_health_needs_no_key_and_shows_no_secret(client):
    for response in (client.get("/api/v1/health"), client.post("/api/v1/health"), client.post("/api/v1/health/", json={})):
        data = ok(response)
        assert (data["engine"], data["database"], data["broker"]) == ("RUNNING", "OK", "OK")
        assert data["ok"] is True
        assert API_KEY not in response.text and "stack-test-key" not in response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"apikey": ""}, {"apikey": "wrong-key-0123456789"}, {"apikey": 12345}, {"apikey": API_KEY + "x"}],
    ids=["missing", "empty", "wrong", "not-a-string", "longer"],
)
def test_a_missing_or_wrong_key_is_refused_without_detail(client, stack, body):
    response = client.post("/api/v1/createtrade", json={**body, "strategy": "api", "symbol": "TCS", "exchange": "NSE", "action": "BUY"})
    assert response.status_code == 403
    assert response.json() == {"status": "error", "message": "invalid API key"}
    assert stack.orders_for("TCS") == []


def test_unknown_verb_is_404_and_a_trailing_slash_is_fine(client):
    response = call(client, "placeorder")
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert isinstance(ok(client.post("/api/v1/strategies/", json={"apikey": API_KEY})), list)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stop_loss": -5}, "stop_loss: must be greater than 0"),
        ({"quantity": 2.5}, "quantity: must be a whole number"),
        ({"quantity": 0}, "quantity: must be at least 1"),
        ({"action": "HOLD"}, "action: must be one of BUY, SELL"),
        ({"exchange": "NSE_INDEX"}, "exchange: must be one of"),
        ({"leverage": 5}, "leverage: unknown field"),
        ({"trailing": {"distance": 0}}, "trailing.distance: must be greater than 0"),
        ({"trailing": {"distance": 5, "step_trigger": 2}}, "step trailing needs both step_trigger and step_move"),
        ({"partial_targets": [{"distance": 5, "fraction": 0.6}, {"distance": 9, "fraction": 0.6}]}, "fractions add up to 1.2"),
        ({"pricetype": "LIMIT"}, "price: is required for a LIMIT entry"),
        ({"stop_loss_distance": 5}, "stop_loss_distance: needs a known entry price"),
        ({"pricetype": "LIMIT", "price": 1400, "stop_loss": 1450}, "stop 1450.00 must be below the entry 1400.00"),
        ({"orderid": "1", "entry_price": 1500}, "entry_price: give either orderid"),
    ],
)
def test_bad_createtrade_bodies_name_the_field_and_change_nothing(client, stack, fields, message):
    body = {"strategy": "api", "symbol": "INFY", "exchange": "NSE", "action": "BUY", "quantity": 1, **fields}
    response = call(client, "createtrade", **body)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert message in response.json()["message"]
    assert stack.orders_for("INFY") == []
    assert all(t.symbol != "INFY" for t in stack.engine.snapshot().trades)


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b'{"apikey": NaN}', "application/json", 400, "NaN is not allowed in JSON"),
        (b'{"apikey": ', "application/json", 400, "body is not valid JSON"),
        (b"[1, 2]", "application/json", 400, "body must be a JSON object"),
        (b"\xff\xfe", "application/json", 400, "body is not UTF-8"),
        (b"apikey=x", "application/x-www-form-urlencoded", 415, "Content-Type: application/json"),
        (b"{" + b" " * 70_000 + b"}", "application/json", 413, "body larger than 65536 bytes"),
    ],
)
def test_malformed_bodies_are_refused(client, content, content_type, status, message):
    response = client.post("/api/v1/activetrades", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status
    assert message in response.json()["message"]


def test_other_methods_are_not_allowed(client):
    assert client.delete("/api/v1/activetrades").status_code == 405
    assert client.get("/api/v1/activetrades").status_code == 405
    assert client.get("/api/v1/elsewhere").status_code == 404


def test_openapi_document_is_published(client):
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/createtrade" in document["paths"]
    create = document["paths"]["/api/v1/createtrade"]["post"]
    assert set(create["responses"]) >= {"200", "400", "403", "404", "409", "413", "415", "429", "503", "504"}
    assert "422" not in create["responses"]  # invalid bodies are 400, as documented


def test_the_published_schema_is_the_model_the_server_validates_with(client):
    from tmtool.api.bodies import CreateTradeBody

    document = client.get("/api/v1/openapi.json").json()
    published = document["components"]["schemas"]["CreateTradeBody"]
    own = CreateTradeBody.model_json_schema(ref_template="#/components/schemas/{model}")
    own.pop("$defs", None)
    assert published == own
    assert published["additionalProperties"] is False


def test_createtrade_places_the_entry_and_activetrades_lists_it(client, stack):
    trade_id = _create(client, stack, "SBIN", 800.0, stop_loss=790, target=820, trailing={"distance": 5, "activation": 3})
    assert stack.position("SBIN") == 5
    trades = ok(call(client, "activetrades", strategy="api", symbol="SBIN"))
    listed = next(t for t in trades if t["id"] == trade_id)
    assert (listed["side"], listed["quantity"], listed["entry_price"]) == ("LONG", 5, 800.0)
    assert (listed["stop_loss"], listed["target"]) == (790.0, 820.0)
    assert listed["trailing"] == {"distance": {"value": 5.0, "mode": "POINTS"}, "activation": {"value": 3.0, "mode": "POINTS"}, "step_trigger": None, "step_move": None}
    assert ok(call(client, "activetrades", strategy="bulk", symbol="SBIN")) == []


def test_createtrade_adopts_a_filled_order_with_the_strategy_defaults(client, stack):
    stack.sim.set_price("NSE", "HDFCBANK", 1650.0)
    ack = stack.broker.place_order(strategy="api", symbol="HDFCBANK", exchange="NSE", action="BUY", quantity=3, product="MIS")
    wait_for(lambda: any(o["status"] == "complete" for o in stack.orders_for("HDFCBANK")), what="order filled")
    data = ok(call(client, "createtrade", strategy="api", symbol="HDFCBANK", exchange="NSE", action="BUY", orderid=ack.order_id))
    view = stack.wait_status(data["trade_id"], TradeStatus.ACTIVE)
    assert (view.entry_price, view.quantity, view.stop_loss, view.target) == (1650.0, 3, 1640.0, 1670.0)
    again = call(client, "createtrade", strategy="api", symbol="HDFCBANK", exchange="NSE", action="BUY", orderid=ack.order_id)
    assert again.status_code == 409 and again.json()["code"] == "ALREADY_MANAGED"


def test_createtrade_turns_distances_into_levels_from_the_limit_price(client, stack):
    stack.sim.set_price("NSE", "TCS", 3500.0)
    data = ok(call(
        client, "createtrade", strategy="api", symbol="TCS", exchange="NSE", action="BUY", quantity=2,
        pricetype="LIMIT", price=3400, stop_loss_distance=1, target_distance=50, distance_mode="PERCENT",
    ))
    stack.wait_status(data["trade_id"], TradeStatus.PENDING_ENTRY)
    stack.sim.set_price("NSE", "TCS", 3395.0)
    view = stack.wait_status(data["trade_id"], TradeStatus.ACTIVE)
    assert (view.stop_loss, view.target) == (3366.0, 5100.0)


def test_createtrade_for_an_unknown_strategy_is_404(client):
    response = call(client, "createtrade", strategy="nobody", symbol="SBIN", exchange="NSE", action="BUY", quantity=1)
    assert response.status_code == 404
    assert response.json()["code"] == "UNKNOWN_STRATEGY"


def test_updatetrade_moves_levels_and_refuses_bad_ones(client, stack):
    trade_id = _create(client, stack, "RELIANCE", 2500.0)
    ok(call(client, "updatetrade", trade_id=trade_id, stop_loss=2495, target=None))
    view = stack.wait_trade(trade_id, lambda t: t.stop_loss == 2495.0)
    assert view.target is None

    ok(call(client, "updatetrade", trade_id=trade_id, stop_loss_distance=2))
    stack.wait_trade(trade_id, lambda t: t.stop_loss == 2498.0)

    above_price = call(client, "updatetrade", trade_id=trade_id, stop_loss=2505)
    assert above_price.status_code == 400
    assert above_price.json()["code"] == "INVALID_STOP"
    assert "below the current price" in above_price.json()["message"]
    nothing = call(client, "updatetrade", trade_id=trade_id)
    assert nothing.status_code == 400 and "give at least one of" in nothing.json()["message"]
    unknown = call(client, "updatetrade", trade_id=987_654, stop_loss=10)
    assert unknown.status_code == 404 and unknown.json()["code"] == "UNKNOWN_TRADE"
    assert stack.engine.snapshot().trade(trade_id).stop_loss == 2498.0


def _paused_events(stack, trade_id: int) -> list[str]:
    stack.store.flush()
    return [e.new for e in stack.engine.trade_events(trade_id) if e.kind == "STATUS" and e.field == "paused"]


def test_pause_and_resume(client, stack):
    trade_id = _create(client, stack, "YESBANK", 20.0)
    assert ok(call(client, "pausetrade", trade_id=trade_id))["trade_id"] == trade_id
    assert _paused_events(stack, trade_id) == ["True"]
    stack.tick("YESBANK", 20.02)  # the engine republishes its snapshot on the next change
    stack.wait_trade(trade_id, lambda t: t.paused)
    ok(call(client, "resumetrade", trade_id=trade_id))
    assert _paused_events(stack, trade_id) == ["True", "False"]
    assert call(client, "pausetrade", trade_id=987_654).status_code == 404


def test_exittrade_then_history_and_analytics(client, stack):
    trade_id = _create(client, stack, "INFY", 1500.0, strategy="hist")
    stack.tick("INFY", 1504.0)
    ok(call(client, "exittrade", trade_id=trade_id))
    closed = stack.wait_status(trade_id, TradeStatus.CLOSED)
    assert closed.exit_reason.value == "MANUAL"
    again = call(client, "exittrade", trade_id=trade_id)
    assert again.status_code == 404
    stack.store.flush()

    history = ok(call(client, "tradehistory", strategy="hist", start_date=_today(stack), end_date=_today(stack)))
    assert [(t["id"], t["status"], t["exit_reason"]) for t in history] == [(trade_id, "CLOSED", "MANUAL")]
    assert ok(call(client, "tradehistory", strategy="hist", end_date="2020-01-01")) == []
    backwards = call(client, "tradehistory", start_date="2026-02-02", end_date="2026-02-01")
    assert backwards.status_code == 400 and "end_date" in backwards.json()["message"]

    report = ok(call(client, "analytics", strategy="hist"))
    overall = report["overall"]
    pnl = closed.realised_pnl
    assert (overall["trades"], overall["net_pnl"]) == (1, round(pnl, 2))
    [result] = report["trades"]
    assert (result["trade_id"], result["initial_stop"], result["initial_risk"]) == (trade_id, 1490.0, 50.0)
    assert result["r_multiple"] == round(pnl / 50.0, 4)
    assert [d["day"] for d in report["daily_pnl"]] == [_today(stack)]
    assert "trades" not in ok(call(client, "analytics", strategy="hist", include_trades=False))


def test_exitall_for_one_strategy_leaves_the_others(client, stack):
    bulk = [_create(client, stack, "SBIN", 800.0, strategy="bulk") for _ in range(2)]
    keep = _create(client, stack, "SBIN", 800.0, strategy="api")
    data = ok(call(client, "exitall", strategy="bulk"))
    assert sorted(data["trade_ids"]) == sorted(bulk)
    for trade_id in bulk:
        stack.wait_status(trade_id, TradeStatus.CLOSED)
    assert stack.engine.snapshot().trade(keep).status is TradeStatus.ACTIVE


def test_alerts_and_acknowledging_them(client, stack):
    trade_id = _create(client, stack, "SBIN", 800.0, strategy="bulk")
    ok(call(client, "exittrade", trade_id=trade_id))
    stack.wait_status(trade_id, TradeStatus.CLOSED)
    stack.store.flush()
    alerts = wait_for(lambda: ok(call(client, "alerts", limit=10)), what="an alert")
    first = alerts[0]["id"]
    ok(call(client, "acknowledgealerts", ids=[first]))

    def acknowledged() -> bool:
        stack.store.flush()
        return first not in [a["id"] for a in ok(call(client, "alerts", unacknowledged_only=True))]

    wait_for(acknowledged, what="alert acknowledged")
    ok(call(client, "acknowledgealerts", all=True))
    both = call(client, "acknowledgealerts", ids=[first], all=True)
    assert both.status_code == 400 and both.json()["message"].startswith("ids:")
    assert call(client, "alerts", priority="LOUD").status_code == 400


def test_strategies_show_portfolio_state_and_fund_use(client, stack):
    _create(client, stack, "SBIN", 800.0, strategy="api")
    stack.wait_snapshot(lambda s: any(v.name == "api" and v.funds_used > 0 for v in s.strategies))
    strategies = {s["name"]: s for s in ok(call(client, "strategies"))}
    assert {"api", "hist", "bulk"} <= set(strategies)
    api = strategies["api"]
    assert api["strategy"]["trade_risk"]["stop_loss"] == {"value": 10.0, "mode": "POINTS"}
    assert api["allocated_funds"] == 100_000.0
    assert api["fund_utilisation_percent"] == round(100 * api["funds_used"] / 100_000.0, 2) > 0
    assert strategies["hist"]["fund_utilisation_percent"] is None  # no allocated funds


def test_an_order_id_the_broker_does_not_know_is_refused_as_an_unknown_order(client, stack):
    reply = call(client, "createtrade", strategy="api", symbol="SBIN", exchange="NSE", action="BUY", orderid="NO-SUCH-ORDER")
    assert reply.status_code == 404
    assert reply.json()["code"] == "UNKNOWN_ORDER" and "NO-SUCH-ORDER" in reply.json()["message"]


def test_money_in_replies_is_rounded_to_paise(client, stack):
    trade_id = _create(client, stack, "SBIN", 800.0, stop_loss=790, target=820)
    stack.tick("SBIN", 800.1)  # 5 x (800.1 - 800.0) is 0.50000000000023 in binary floating point
    stack.wait_trade(trade_id, lambda t: t.ltp == 800.1)
    listed = next(t for t in ok(call(client, "activetrades", strategy="api")) if t["id"] == trade_id)
    for field in ("pnl", "unrealised_pnl", "realised_pnl"):
        assert listed[field] == round(listed[field], 2), (field, listed[field])
    assert listed["unrealised_pnl"] == 0.5


def test_save_and_delete_a_strategy_as_the_readme_shows(client, stack):
    table = {"name": "breakout", "stop_loss": {"value": 1, "mode": "PERCENT"},
             "portfolio": {"daily_loss_limit": 3000}, "max_open_positions": 3}
    ok(call(client, "savestrategy", strategy=table))
    saved = stack.wait_snapshot(lambda s: any(v.name == "breakout" for v in s.strategies))
    strategy = next(v for v in saved.strategies if v.name == "breakout").strategy
    assert (strategy.trade_risk.stop_loss.value, strategy.portfolio.daily_loss_limit.value, strategy.max_open_positions) == (1, 3000, 3)

    bad = call(client, "savestrategy", strategy={**table, "stop_loss": {"value": "1"}})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_STRATEGY"
    assert "strategy.stop_loss.value" in bad.json()["message"] and "'1'" not in bad.json()["message"]
    unknown = call(client, "savestrategy", strategy={**table, "leverage": 5})
    assert unknown.status_code == 400 and "leverage" in unknown.json()["message"]
    assert next(v for v in stack.engine.snapshot().strategies if v.name == "breakout").strategy == strategy  # untouched

    assert call(client, "deletestrategy", name="breakout", open_trades="move").status_code == 400  # move_to missing
    ok(call(client, "deletestrategy", name="breakout"))
    stack.wait_snapshot(lambda s: all(v.name != "breakout" for v in s.strategies))
    assert call(client, "deletestrategy", name="breakout").status_code == 404
