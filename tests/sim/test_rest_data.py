"""Account and market-data endpoints, routing quirks and rate limits."""

from __future__ import annotations

import httpx

from tests.sim.helpers import API_KEY, Rest
from tmtool.sim import RateLimits, Simulator

UNKNOWN = ("Symbol 'BADSYM' not found for exchange 'NSE'. Please verify the symbol name and ensure master "
           "contracts are downloaded.")


def test_ping_answers_pong_with_the_broker(rest: Rest) -> None:
    assert rest("ping") == (200, {"status": "success", "data": {"message": "pong", "broker": "angel"}})


def test_ping_validation_error_message_is_the_dict_itself(rest: Rest) -> None:
    status, body = rest("ping", extra=1)
    assert status == 400 and body["message"] == {"extra": ["Unknown field."]}


def test_both_trailing_slash_forms_route(sim: Simulator) -> None:
    for path in ("/api/v1/ping", "/api/v1/ping/"):
        response = httpx.post(sim.rest_url + path, json={"apikey": API_KEY})
        assert response.status_code == 200, path


def test_unknown_path_is_404_with_the_path(sim: Simulator) -> None:
    response = httpx.post(sim.rest_url + "/api/v1/nosuchthing", json={"apikey": API_KEY})
    assert response.status_code == 404
    assert response.json() == {"status": "error", "message": "Not found", "path": "/api/v1/nosuchthing"}


def test_a_body_that_is_not_json_is_500(sim: Simulator) -> None:
    response = httpx.post(sim.rest_url + "/api/v1/funds", content=b"apikey=test-key",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 500
    assert response.json() == {"status": "error", "message": "An unexpected error occurred in the API endpoint"}


def test_a_json_body_that_is_not_an_object_is_400(rest: Rest) -> None:
    response = rest.http.post("funds", json=["apikey"])
    assert response.status_code == 400
    assert response.json()["message"] == "{'_schema': ['Invalid input type.']}"


def test_funds_are_strings_in_live_mode(rest: Rest) -> None:
    status, body = rest("funds")
    assert status == 200
    assert set(body["data"]) == {"availablecash", "collateral", "m2mrealized", "m2munrealized", "utiliseddebits"}
    assert all(isinstance(value, str) for value in body["data"].values())
    assert float(body["data"]["availablecash"]) == 10_000_000.0


def test_funds_track_realised_profit(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "SBIN", 800.0)
    rest.order_id(symbol="SBIN", quantity=10)
    sim.set_price("NSE", "SBIN", 812.0)
    rest.order_id(symbol="SBIN", action="SELL", quantity=10)
    data = rest("funds")[1]["data"]
    assert (data["m2mrealized"], data["utiliseddebits"]) == ("120.00", "0.00")


def test_holdings_may_be_empty(rest: Rest) -> None:
    status, body = rest("holdings")
    assert status == 200 and body["data"]["holdings"] == []
    assert set(body["data"]["statistics"]) == {"totalholdingvalue", "totalinvvalue", "totalprofitandloss",
                                               "totalpnlpercentage"}


def test_quotes_shape_and_live_price(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "RELIANCE", 2520.15)
    status, body = rest("quotes", symbol="RELIANCE", exchange="NSE")
    assert status == 200
    data = body["data"]
    assert set(data) == {"open", "high", "low", "ltp", "ask", "bid", "prev_close", "volume"}
    assert (data["ltp"], data["bid"], data["ask"]) == (2520.15, 2520.1, 2520.2)
    assert data["low"] <= data["ltp"] <= data["high"]
    assert "oi" in rest("quotes", symbol="NIFTY30DEC26FUT", exchange="NFO")[1]["data"]


def test_quotes_unknown_symbol_is_400(rest: Rest) -> None:
    assert rest("quotes", symbol="BADSYM", exchange="NSE") == (400, {"status": "error", "message": UNKNOWN})


def test_multiquotes_puts_invalid_items_first(rest: Rest) -> None:
    status, body = rest("multiquotes", symbols=[{"symbol": "SBIN", "exchange": "NSE"},
                                                {"symbol": "BADSYM", "exchange": "NSE"}])
    assert status == 200
    assert body["results"][0] == {"symbol": "BADSYM", "exchange": "NSE", "error": UNKNOWN}
    assert body["results"][1]["symbol"] == "SBIN" and "oi" in body["results"][1]["data"]


def test_multiquotes_all_invalid_is_400_with_the_invalid_list(rest: Rest) -> None:
    status, body = rest("multiquotes", symbols=[{"symbol": "BADSYM", "exchange": "NSE"}])
    assert status == 400 and body["status"] == "error"
    assert body["invalid_symbols"] == [{"symbol": "BADSYM", "exchange": "NSE", "error": UNKNOWN}]


def test_multiquotes_validates_each_item(rest: Rest) -> None:
    status, body = rest("multiquotes", symbols=[{"symbol": "SBIN", "exchange": "nse"}])
    assert status == 400 and body["message"].startswith("{'symbols': {0: {'exchange': ['Must be one of:")
    status, body = rest("multiquotes", symbols=[])
    assert status == 400 and body["message"] == "{'symbols': ['Shorter than minimum length 1.']}"


def test_depth_has_five_levels_a_side(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NSE", "INFY", 1500.0)
    status, body = rest("depth", symbol="INFY", exchange="NSE")
    data = body["data"]
    assert status == 200 and len(data["asks"]) == len(data["bids"]) == 5
    assert data["bids"][0]["price"] < data["ltp"] < data["asks"][0]["price"]
    assert data["totalbuyqty"] == sum(level["quantity"] for level in data["bids"])


def test_symbol_reports_lot_tick_and_freeze_sizes(rest: Rest) -> None:
    data = rest("symbol", symbol="NIFTY30DEC2626000CE", exchange="NFO")[1]["data"]
    assert (data["lotsize"], data["tick_size"], data["freeze_qty"], data["strike"]) == (75, 0.05, 1800, 26000.0)
    assert data["expiry"] == "30-DEC-26" and data["instrumenttype"] == "OPTIDX"
    equity = rest("symbol", symbol="YESBANK", exchange="NSE")[1]["data"]
    assert (equity["lotsize"], equity["tick_size"]) == (1, 0.01) and "freeze_qty" not in equity
    banknifty = rest("symbol", symbol="BANKNIFTY30DEC26FUT", exchange="NFO")[1]["data"]
    assert (banknifty["lotsize"], banknifty["freeze_qty"]) == (35, 900)


def test_analyzer_status(rest: Rest) -> None:
    assert rest("analyzer") == (200, {"status": "success",
                                      "data": {"mode": "live", "analyze_mode": False, "total_logs": 0}})


def test_get_on_an_endpoint_is_not_allowed(sim: Simulator) -> None:
    assert httpx.get(sim.rest_url + "/api/v1/funds").status_code == 405


def test_order_endpoints_are_rate_limited_per_endpoint() -> None:
    with Simulator(api_key=API_KEY, tick_interval=None, rate_limits=RateLimits(order=3, smart_order=3, api=5, window_seconds=600)) as sim:
        rest = Rest(sim)
        try:
            statuses = [rest.order(symbol="SBIN", quantity=1)[0] for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            assert rest.order()[1] == {"status": "error", "retry_after": 60,
                                       "message": "Rate limit exceeded. Please slow down your requests."}
            assert len(sim.orders()) == 3
            # other endpoints have their own windows
            assert [rest("funds")[0] for _ in range(6)] == [200] * 5 + [429]
            assert rest("ping")[0] == 200
        finally:
            rest.close()


def _margin_leg(**overrides) -> dict:
    leg = {"symbol": "NIFTY30DEC26FUT", "exchange": "NFO", "action": "BUY", "quantity": "150",
           "product": "NRML", "pricetype": "MARKET", "price": "0"}
    leg.update(overrides)
    return leg


def test_margin_sums_the_basket_at_the_product_rate(sim: Simulator, rest: Rest) -> None:
    sim.set_price("NFO", "NIFTY30DEC26FUT", 26000.0)
    status, body = rest("margin", positions=[_margin_leg(), _margin_leg(symbol="NIFTY30DEC2626000CE", quantity="75",
                                                                         pricetype="LIMIT", price="200")])
    assert status == 200, body
    data = body["data"]
    assert data["total_margin_required"] == round(0.2 * (150 * 26000.0 + 75 * 200.0), 2)
    assert set(data) >= {"total_margin_required", "span_margin", "exposure_margin"}


def test_margin_refuses_numbers_unknown_keys_and_unknown_symbols(rest: Rest) -> None:
    assert rest("margin", positions=[_margin_leg(quantity=150)])[0] == 400  # quantities are strings
    assert rest("margin", positions=[_margin_leg(extra="x")])[0] == 400
    assert rest("margin", positions=[])[0] == 400
    assert rest("margin", positions=[_margin_leg()] * 51)[0] == 400
    assert rest("margin", positions=[_margin_leg(symbol="NOPE")])[0] == 400


def test_margin_answers_501_where_the_broker_has_no_calculator(sim: Simulator, rest: Rest) -> None:
    sim.margin_calculator = False
    status, body = rest("margin", positions=[_margin_leg()])
    assert status == 501 and body["status"] == "error"
