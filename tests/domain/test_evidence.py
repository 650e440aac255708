"""Unknown order outcomes are resolved by evidence, never by a clock window; exits are reduce-only."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from hypothesis import given, strategies as st

from tmtool.domain.broker import OrderInfo
from tmtool.domain.calendar import IST
from tmtool.domain.evidence import (
    OrderIntent,
    Outcome,
    candidates,
    exit_room,
    nearer_to_others,
    parse_broker_time,
    resolve_unknown_order,
    working_closing_quantity,
)
from tmtool.domain.models import Side

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=IST).timestamp()
SELL_5 = OrderIntent("SBIN", "NSE", "MIS", "SELL", 5, created_at=T0, net_before=5)


def order(order_id: str, *, action: str = "SELL", quantity: int = 5, status: str = "complete", timestamp: str = "", product: str = "MIS", symbol: str = "SBIN", filled: int | None = None) -> OrderInfo:
    return OrderInfo(order_id, symbol, "NSE", action, quantity, status, product=product, timestamp=timestamp, filled_quantity=filled)


def look(intent: OrderIntent = SELL_5, *, orders=(), claimed=frozenset(), net_now=5, others_working=False, now=T0, absent_since=None, grace=5.0, moved_since=None):
    return resolve_unknown_order(
        intent, orders=list(orders), claimed_order_ids=claimed, net_now=net_now, others_working=others_working,
        now=now, absent_since=absent_since, grace=grace, moved_since=moved_since,
    )


def test_an_order_stamped_hours_away_in_another_zone_is_still_found():
    # the server writes naive UTC; read as IST it looks 5.5 hours before the intent
    utc_text = datetime.fromtimestamp(T0, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    result = look(orders=[order("A1", timestamp=utc_text)])
    assert result.outcome is Outcome.FOUND and result.order.order_id == "A1"


def test_a_claimed_order_is_not_found_again_and_the_nearest_unclaimed_one_wins():
    near = datetime.fromtimestamp(T0 + 1, IST).strftime("%Y-%m-%d %H:%M:%S")
    far = datetime.fromtimestamp(T0 - 600, IST).strftime("%Y-%m-%d %H:%M:%S")
    result = look(orders=[order("OLD", timestamp=far), order("MINE", timestamp=near), order("TAKEN", timestamp=near)], claimed={"TAKEN"})
    assert result.order.order_id == "MINE"
    assert look(orders=[order("TAKEN")], claimed={"TAKEN"}).outcome is Outcome.UNKNOWN


def test_orders_of_another_product_side_quantity_or_symbol_do_not_match():
    others = [order("P", product="CNC"), order("S", action="BUY"), order("Q", quantity=4), order("X", symbol="TCS")]
    assert look(orders=others).outcome is Outcome.UNKNOWN


def test_absence_needs_the_book_and_the_position_to_agree_over_the_whole_grace_period():
    first = look(now=T0 + 1)
    assert first.outcome is Outcome.UNKNOWN and first.absent_since == T0 + 1
    early = look(now=T0 + 4, absent_since=first.absent_since)
    assert early.outcome is Outcome.UNKNOWN
    late = look(now=T0 + 6, absent_since=first.absent_since)
    assert late.outcome is Outcome.ABSENT


def test_a_position_that_moved_by_the_order_over_the_grace_proves_the_fill_while_the_book_lags():
    first = look(net_now=0, now=T0 + 1)
    assert first.outcome is Outcome.UNKNOWN and first.moved_since == T0 + 1  # a lagging book may show an old position
    assert look(net_now=0, now=T0 + 4, moved_since=T0 + 1).outcome is Outcome.UNKNOWN
    assert look(net_now=0, now=T0 + 6, moved_since=T0 + 1).outcome is Outcome.MOVED
    assert look(net_now=0, now=T0 + 6, moved_since=T0 + 1, others_working=True).outcome is Outcome.UNKNOWN  # another order of ours may explain it
    assert look(net_now=3, now=T0 + 6, moved_since=T0 + 1).outcome is Outcome.UNKNOWN  # not by the order: a partial or someone else
    assert look(net_now=-2, now=T0 + 6, moved_since=T0 + 1).outcome is Outcome.UNKNOWN  # by more: something else moved it too
    assert look(net_now=5, now=T0 + 6, moved_since=T0 + 1).moved_since is None  # the move went away: start again
    entry = OrderIntent("SBIN", "NSE", "MIS", "BUY", 7, created_at=T0, net_before=0)
    assert look(entry, net_now=7, now=T0 + 5, moved_since=T0).outcome is Outcome.MOVED


def test_without_a_recorded_position_nothing_is_ever_proven_absent():
    intent = OrderIntent("SBIN", "NSE", "MIS", "SELL", 5, created_at=T0, net_before=None)
    assert look(intent, now=T0 + 3600, absent_since=T0).outcome is Outcome.UNKNOWN


def test_broker_times_are_read_in_the_configured_zone():
    assert parse_broker_time("2026-01-05 04:30:00", timezone.utc) == T0
    assert parse_broker_time("05-Jan-2026 10:00:00") == T0
    assert parse_broker_time("") is None and parse_broker_time("garbage") is None


def test_exit_room_is_reduce_only():
    assert exit_room(Side.LONG, broker_net=10, opposite_open=0, own_exits_in_flight=5, own_exits_unknown=0).quantity == 5
    assert exit_room(Side.LONG, broker_net=10, opposite_open=0, own_exits_in_flight=0, own_exits_unknown=0, others_working_closing=8).quantity == 2
    blocked = exit_room(Side.LONG, broker_net=10, opposite_open=0, own_exits_in_flight=0, own_exits_unknown=5)
    assert blocked.quantity == 0 and blocked.blocked_by_unknown
    assert exit_room(Side.SHORT, broker_net=-4, opposite_open=0, own_exits_in_flight=0, own_exits_unknown=0).quantity == 4
    assert exit_room(Side.SHORT, broker_net=3, opposite_open=0, own_exits_in_flight=0, own_exits_unknown=0).quantity == 0


def test_working_closing_orders_count_whoever_placed_them():
    book = [
        order("MINE", status="open"),
        order("THEIRS", status="open", quantity=4, filled=1),
        order("DONE", status="complete"),
        order("OPENS", action="BUY", status="open"),
    ]
    assert working_closing_quantity(book, symbol="SBIN", exchange="NSE", product="MIS", side=Side.LONG, exclude_order_ids={"MINE"}) == 3


@given(
    net=st.integers(-50, 50),
    opposite=st.integers(0, 20),
    in_flight=st.integers(0, 30),
    unknown=st.integers(0, 5),
    others=st.integers(0, 30),
    side=st.sampled_from([Side.LONG, Side.SHORT]),
)
def test_an_exit_of_the_room_never_takes_the_position_across_zero(net, opposite, in_flight, unknown, others, side):
    room = exit_room(side, broker_net=net, opposite_open=opposite, own_exits_in_flight=in_flight, own_exits_unknown=unknown, others_working_closing=others)
    assert room.quantity >= 0
    # everything working plus this exit fills: the position (less the opposite trades' share) never crosses zero
    held = net * side.sign + opposite
    assert held - in_flight - others - room.quantity >= min(0, held - in_flight - others)
    if unknown:
        assert room.quantity == 0


def test_a_row_tagged_with_another_strategy_is_not_the_order():
    intent = OrderIntent("SBIN", "NSE", "MIS", "SELL", 5, created_at=T0, net_before=5, strategy="scalp")
    tagged = OrderInfo("T", "SBIN", "NSE", "SELL", 5, "complete", product="MIS", strategy="swing")
    untagged = OrderInfo("U", "SBIN", "NSE", "SELL", 5, "complete", product="MIS")
    assert candidates([tagged], intent, set()) == []
    assert candidates([tagged, untagged], intent, set()) == [untagged]


def test_rows_nearer_to_another_unknown_intent_are_left_to_it():
    mine = OrderIntent("SBIN", "NSE", "MIS", "BUY", 8, created_at=T0, net_before=0)
    rival = replace(mine, created_at=T0 + 60)
    near_rival = order("R", action="BUY", quantity=8, timestamp=datetime.fromtimestamp(T0 + 61, IST).strftime("%Y-%m-%d %H:%M:%S"))
    assert nearer_to_others([near_rival], mine, [rival], set()) == {"R"}
    assert nearer_to_others([near_rival], rival, [mine], set()) == set()
    undated = order("D", action="BUY", quantity=8)
    assert nearer_to_others([undated], mine, [rival], set()) == set()  # a time never rules a row out on its own
    assert nearer_to_others([near_rival], mine, [replace(rival, quantity=7)], set()) == set()  # not the rival's kind


def test_a_whole_second_row_time_covers_the_whole_second():
    """10:00:06 names any time in that second: an intent at :06.9 is nearer to it than one at :05.9."""
    early = OrderIntent("SBIN", "NSE", "MIS", "BUY", 8, created_at=T0 + 5.9, net_before=0)
    late = replace(early, created_at=T0 + 6.9)
    row = order("R", action="BUY", quantity=8, timestamp=datetime.fromtimestamp(T0 + 6, IST).strftime("%Y-%m-%d %H:%M:%S"))
    assert nearer_to_others([row], early, [late], set()) == {"R"}
    assert nearer_to_others([row], late, [early], set()) == set()


def test_a_baseline_read_that_may_predate_our_latest_fills_does_not_prove_a_move():
    """SELL 15 recorded 30 as its baseline, read 2 s after an exit of ours sold 15 there: the read
    may not show that fill yet, so 15 may be the position from before the order as well as after
    it.  Only the order book can tell; without it the order is proven absent over the grace (a
    filled order would show in the book within it), never taken as filled."""
    intent = OrderIntent("SBIN", "NSE", "MIS", "SELL", 15, created_at=T0, net_before=30, lag_fills=(-15,))
    first = look(intent, net_now=15, now=T0 + 1)
    assert first.outcome is Outcome.UNKNOWN and first.moved_since is None and first.absent_since == T0 + 1
    assert look(intent, net_now=15, now=T0 + 6, absent_since=T0 + 1).outcome is Outcome.ABSENT
    assert look(intent, net_now=30, now=T0 + 6, absent_since=T0 + 1).outcome is Outcome.ABSENT  # the read's own position
    assert look(intent, orders=[order("A1", quantity=15)], net_now=15, now=T0 + 6).outcome is Outcome.FOUND
    # a move the recent fills cannot explain still proves the fill
    unexplained = replace(intent, lag_fills=(7,))
    assert look(unexplained, net_now=15, now=T0 + 6, moved_since=T0 + 1).outcome is Outcome.MOVED
    # the fills are applied newest first: (-4, -15) explains 30 -> 15 only together with the -4
    assert look(replace(intent, lag_fills=(-15, -4)), net_now=11, now=T0 + 6, absent_since=T0 + 1).outcome is Outcome.ABSENT
    assert look(replace(intent, lag_fills=(-15, -4)), net_now=26, now=T0 + 6, absent_since=T0 + 1).outcome is Outcome.ABSENT
