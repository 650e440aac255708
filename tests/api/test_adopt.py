"""adoptpositions: positions opened outside tmtool come under management (strategy 'manual')."""

from __future__ import annotations

from tests.api.conftest import call, ok
from tests.util import wait_for


def test_adopt_positions_manages_an_outside_position_once(stack, client):
    stack.tick("YESBANK", 20.0)
    # A position opened outside tmtool (straight at the broker).
    order_id = stack.broker.place_order(
        strategy="elsewhere", symbol="YESBANK", exchange="NSE", action="BUY", quantity=500, product="MIS"
    ).order_id
    assert order_id
    wait_for(lambda: stack.sim.positions().get(("YESBANK", "NSE", "MIS")) == 500, what="the outside fill")

    data = ok(call(client, "adoptpositions"))
    assert len(data["trade_ids"]) == 1
    trade_id = data["trade_ids"][0]
    view = stack.wait_trade(trade_id, lambda t: t.status.value == "ACTIVE")
    assert (view.strategy, view.symbol, view.side.value, view.quantity) == ("manual", "YESBANK", "LONG", 500)

    # Adopting again finds nothing new: the position is covered.
    again = ok(call(client, "adoptpositions"))
    assert again["trade_ids"] == []

    # The adopted trade is managed like any other: an exit closes exactly it.
    ok(call(client, "exittrade", trade_id=trade_id))
    stack.wait_trade(trade_id, lambda t: t.status.value == "CLOSED")
    assert stack.sim.positions().get(("YESBANK", "NSE", "MIS"), 0) == 0
