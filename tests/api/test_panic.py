"""Panic over the control API: exitall with panic halts entries everywhere until rearm."""

from __future__ import annotations

from tests.api.conftest import call, ok
from tests.util import wait_for
from tmtool.domain.models import ExitReason, TradeStatus


def _create(client, stack, symbol: str, price: float, strategy: str = "api") -> int:
    stack.sim.set_price("NSE", symbol, price)
    data = ok(call(client, "createtrade", strategy=strategy, symbol=symbol, exchange="NSE", action="BUY", quantity=5))
    stack.wait_status(data["trade_id"], TradeStatus.ACTIVE)
    return data["trade_id"]


def _halted(client) -> bool:
    return ok(call(client, "health"))["entries_halted"]


def test_exitall_with_panic_exits_everything_and_halts_entries_until_rearm(client, stack):
    trades = [_create(client, stack, "SBIN", 800.0), _create(client, stack, "INFY", 1500.0, strategy="bulk")]
    assert _halted(client) is False

    data = ok(call(client, "exitall", panic=True))
    assert sorted(data["trade_ids"]) == sorted(trades)
    for trade_id in trades:
        assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.PANIC
    wait_for(lambda: _halted(client), what="health shows entries halted")
    assert ok(call(client, "health"))["entries_halted_since"] is not None

    refused = call(client, "createtrade", strategy="hist", symbol="TCS", exchange="NSE", action="BUY", quantity=1)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "PANIC_HALT"

    assert "re-armed" in ok(call(client, "rearm"))["message"]
    wait_for(lambda: not _halted(client), what="health shows entries re-armed")
    _create(client, stack, "TCS", 4000.0, strategy="hist")


def test_panic_cannot_be_scoped_to_one_strategy(client):
    response = call(client, "exitall", strategy="api", panic=True)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "INVALID_PANIC_SCOPE"
    assert _halted(client) is False


def test_the_panic_flag_must_be_a_boolean(client):
    response = call(client, "exitall", panic="yes")
    assert response.status_code == 400, response.text
    assert _halted(client) is False
