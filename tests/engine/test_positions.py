"""The position cache's view of others' working orders: an order-book read against the stream.

A read is asked for at one moment and answered later; order updates may arrive in
between.  What the cache believes decides how much an exit may sell, so a stale
read must never widen the room (drop a working closing order) and should not
narrow it for ever (revive a cancelled one).
"""

from __future__ import annotations

from tmtool.domain.broker import OrderInfo, OrderUpdate
from tmtool.domain.models import Side
from tmtool.engine.positions import PositionCache

KEY = ("SBIN", "NSE", "MIS")


def _cache() -> PositionCache:
    cache = PositionCache(state=None)  # type: ignore[arg-type]  # the order views never touch the engine state
    cache.key(KEY).net = 10
    return cache


def _update(order_id: str, status: str, filled: int = 0) -> OrderUpdate:
    return OrderUpdate(order_id=order_id, symbol="SBIN", exchange="NSE", action="SELL", quantity=4, status=status,
                       filled_quantity=filled, pending_quantity=4 - filled, average_price=0.0, product="MIS")


def _row(order_id: str, status: str, filled: int = 0) -> OrderInfo:
    return OrderInfo(order_id, "SBIN", "NSE", "SELL", 4, status, filled_quantity=filled, product="MIS")


def test_a_read_asked_before_a_cancel_does_not_revive_the_order() -> None:
    cache = _cache()
    cache.foreign_update(_update("X1", "open"), set())
    asked = cache.update_mark
    cache.foreign_update(_update("X1", "cancelled"), set())  # the stream: cancelled after the read was asked for
    cache.note_order_book([_row("X1", "open")], set(), asked)  # the read still shows it working
    assert cache.key(KEY).foreign_closing(Side.LONG) == 0


def test_a_read_that_does_not_list_a_working_order_keeps_it() -> None:
    cache = _cache()
    asked = cache.update_mark
    cache.foreign_update(_update("X1", "open"), set())
    cache.note_order_book([], set(), asked)  # a lagging book
    assert cache.key(KEY).foreign_closing(Side.LONG) == 4
    cache.note_order_book([], set(), cache.update_mark)  # also a read asked after the update
    assert cache.key(KEY).foreign_closing(Side.LONG) == 4


def test_a_read_is_the_word_on_what_it_lists() -> None:
    cache = _cache()
    cache.foreign_update(_update("X1", "open"), set())
    asked = cache.update_mark
    cache.note_order_book([_row("X1", "cancelled")], set(), asked)  # the stream lost the cancel; the book has it
    assert cache.key(KEY).foreign_closing(Side.LONG) == 0
    cache.note_order_book([_row("X2", "open", filled=1)], set(), asked)  # an order only the book knows of
    assert cache.key(KEY).foreign_closing(Side.LONG) == 3


def test_orders_that_turn_out_ours_are_not_others() -> None:
    cache = _cache()
    cache.foreign_update(_update("X1", "open"), set())
    asked = cache.update_mark - 1
    cache.take_back_foreign("X1", KEY, "SELL")
    cache.note_order_book([_row("X1", "open")], {"X1"}, asked)
    assert cache.key(KEY).foreign_closing(Side.LONG) == 0
