"""The pure reconciliation decisions and the alert book."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmtool.engine.alertbook import AlertBook
from tmtool.domain.models import (
    AlertCategory,
    AlertPriority,
    OrderState,
    Product,
    Side,
    Trade,
    TradeStatus,
)
from tmtool.domain.reconcile import (
    order_progress,
    reconcile_positions,
    split_quantity,
)
from tmtool.engine.settings import EngineSettings

KEY = ("RELIANCE", "NSE", "MIS")


def _trade(trade_id: int, quantity: int, side: Side = Side.LONG, opened_at: float = 0.0) -> Trade:
    return Trade(
        id=trade_id, strategy="s", symbol="RELIANCE", exchange="NSE", product=Product.MIS, side=side,
        quantity=quantity, entry_price=100.0, status=TradeStatus.ACTIVE, opened_at=opened_at or float(trade_id),
    )


def test_matching_position_has_no_discrepancy():
    assert reconcile_positions([_trade(1, 10), _trade(2, 5)], {KEY: 15}) == []


def test_position_gone_closes_every_trade():
    [found] = reconcile_positions([_trade(1, 10), _trade(2, 5)], {})
    assert found.kind == "CLOSED"
    assert {(c.trade_id, c.new_quantity) for c in found.changes} == {(1, 0), (2, 0)}


def test_smaller_position_shrinks_newest_first():
    [found] = reconcile_positions([_trade(1, 10, opened_at=1.0), _trade(2, 5, opened_at=2.0)], {KEY: 8})
    assert found.kind == "SMALLER"
    assert [(c.trade_id, c.old_quantity, c.new_quantity) for c in found.changes] == [(2, 5, 0), (1, 10, 8)]


def test_reversed_position_counts_as_closed_and_larger_is_only_reported():
    [closed] = reconcile_positions([_trade(1, 10)], {KEY: -4})
    assert closed.kind == "CLOSED" and closed.changes[0].new_quantity == 0
    [larger] = reconcile_positions([_trade(1, 10)], {KEY: 25})
    assert larger.kind == "LARGER" and larger.changes == ()


def test_busy_keys_and_mixed_sides_change_nothing():
    assert reconcile_positions([_trade(1, 10)], {}, busy_keys={KEY}) == []
    [mixed] = reconcile_positions([_trade(1, 10), _trade(2, 4, Side.SHORT)], {KEY: 2})
    assert mixed.kind == "MIXED" and mixed.changes == ()
    assert reconcile_positions([_trade(1, 10), _trade(2, 4, Side.SHORT)], {KEY: 6}) == []


@given(quantity=st.integers(1, 20000), lots=st.integers(1, 40), lot=st.sampled_from([1, 15, 35, 75]))
def test_split_pieces_add_up_and_respect_the_freeze(quantity, lots, lot):
    freeze = lots * lot
    pieces = split_quantity(quantity, freeze, lot)
    assert sum(pieces) == quantity
    assert all(0 < p <= freeze for p in pieces)


def test_split_keeps_whole_lots():
    assert split_quantity(2400, 1800, 75) == [1800, 600]
    assert split_quantity(1000, 900, 35) == [875, 125]
    assert split_quantity(0, 1800, 75) == []
    assert split_quantity(500, None, 1) == [500]


@pytest.mark.parametrize(
    ("status", "filled", "expected"),
    [
        ("complete", None, (OrderState.COMPLETE, 10)),
        ("open", 4, (OrderState.PARTIAL, 4)),
        ("open", None, (OrderState.OPEN, 0)),
        ("rejected", 0, (OrderState.REJECTED, 0)),
        ("cancelled", 3, (OrderState.CANCELLED, 3)),
        ("trigger pending", 0, (OrderState.OPEN, 0)),
        ("something new", 0, (OrderState.OPEN, 0)),
    ],
)
def test_order_progress(status, filled, expected):
    progress = order_progress(status, 10, filled, 0.0)
    assert (progress.state, progress.filled_quantity) == expected


def test_alerts_fold_within_the_window_and_not_after_acknowledging():
    book = AlertBook(next_id=7, fold_window=300)
    first = book.raise_alert(1000.0, AlertCategory.SYSTEM, AlertPriority.WARNING, "feed lost", key="feed")
    again = book.raise_alert(1100.0, AlertCategory.SYSTEM, AlertPriority.CRITICAL, "feed lost again", key="feed")
    assert (again.id, again.count, again.last_ts, again.priority) == (7, 2, 1100.0, AlertPriority.CRITICAL)
    assert again.text == "feed lost again"
    later = book.raise_alert(1500.0, AlertCategory.SYSTEM, AlertPriority.WARNING, "feed lost", key="feed")
    assert later.id == 8  # outside the window: a new alert
    [acked] = book.acknowledge([8])
    assert acked.acknowledged
    fresh = book.raise_alert(1501.0, AlertCategory.SYSTEM, AlertPriority.WARNING, "feed lost", key="feed")
    assert fresh.id == 9
    assert [a.id for a in book.recent()] == [9, 8, 7]
    book.acknowledge((), dismiss=True)
    assert book.recent() == () and first.id == 7


def test_alert_book_and_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="fold_window"):
        AlertBook(fold_window=-1)
    with pytest.raises(ValueError, match="snapshot_hz"):
        EngineSettings(snapshot_hz=50)
    with pytest.raises(ValueError, match="trail_alerts"):
        EngineSettings(trail_alerts="sometimes")
    with pytest.raises(ValueError, match="order_status_poll"):
        EngineSettings(order_status_poll=float("nan"))
    assert EngineSettings().freeze_quantity_for("BANKNIFTY30DEC26FUT") == 900
    assert EngineSettings().freeze_quantity_for("RELIANCE") is None
