"""Short fixed scripts, one per defect the simulation found, each the smallest run that shows it.

Every test asserts what tmtool must do; those that fail today are marked
``xfail(strict=True)`` so that the fix turns them into passes (and the marker
must then go).  Issue 13 names three of them; the others were found by the
random runs of ``test_simulation.py`` and are new.
"""

from __future__ import annotations

import pytest

from tmtool.domain.commands import Accepted, CreateTrade, Denied, ExitAll, ExitTrade
from tmtool.domain.models import Amount, Distance, ExitReason, PortfolioRisk, Product, Side, Strategy, TradeRisk, TradeStatus

from tests.simulation.harness import EXCHANGE, Simulation
from tests.simulation.profiles import LIVE_POLLING

SYMBOL = "SIMA"


def _sim(**kwargs) -> Simulation:
    kwargs.setdefault("symbols", 1)
    kwargs.setdefault("sides", (Side.LONG,))
    kwargs.setdefault("price", 100.0)
    kwargs.setdefault("book_lag", 0.0)
    return Simulation(0, **kwargs)


def _open(sim: Simulation, quantity: int, strategy: str = "scalp") -> int:
    """Create a trade and let it fill; returns its id."""
    future = sim.create(SYMBOL, quantity, strategy)
    sim.drain(2.0)
    result = future.result()
    assert isinstance(result, Accepted) and result.trade_id is not None, result
    assert sim.trade(result.trade_id).status is TradeStatus.ACTIVE
    return result.trade_id


def _names(sim: Simulation) -> set[str]:
    return {v.invariant for v in sim.violations}


def _sent_entry(sim: Simulation, quantity: int) -> int:
    """Create a trade and run its entry through preparation and the broker's reply; returns its id."""
    future = sim.create(SYMBOL, quantity)
    sim.run_job_of("prepare_entry")
    sim.run_job_of("order_sent")
    return future.result().trade_id


def _sent_exit(sim: Simulation, trade_id: int, fault: str | None = None) -> None:
    """Tell a trade to exit and run its position read and its order's send (with ``fault``)."""
    sim.submit(ExitTrade(trade_id))
    sim.run_job_if_pending("exit_position")
    sim.run_job_of("order_sent", fault=fault)


def _first_queued(sim: Simulation, kind: str, matches) -> int:
    """Where in the store's queue the first change of ``kind`` whose value ``matches`` stands."""
    return next(i for i, (queued, value) in enumerate(sim.store.queue) if queued == kind and matches(value))


# --------------------------------------------------------------------------- a clean run of each path


def test_a_rejection_reason_that_comes_after_the_rejection_is_still_told() -> None:
    """OpenAlgo's orderstatus says "rejected" with no reason; only the order-update stream carries the
    broker's reason, and it may come after a status poll already found the order rejected."""
    with _sim(order_updates=True) as sim:
        sim.feed.hold_order_updates()
        future = sim.create(SYMBOL, 5)
        sim.run_job_of("prepare_entry")
        sim.run_job_of("order_sent", fault="reject")
        sim.drain(30.0)  # a status poll finds the entry rejected
        trade_id = future.result().trade_id
        assert sim.trade(trade_id).status is TradeStatus.CANCELLED
        assert not [a for a in sim.engine.snapshot().alerts if "margin exceeds" in a.text]

        sim.feed.release_order_updates()
        sim.drain(1.0)
        told = [a.text for a in sim.engine.snapshot().alerts if "margin exceeds" in a.text]
        assert told == [f"#{trade_id} {SYMBOL}: entry rejected: RMS: margin exceeds (the broker's reason, received after the order was rejected)"]
        ledger = [o for o in sim.store.latest_orders.values() if o.trade_id == trade_id]
        assert [o.message for o in ledger] == ["RMS: margin exceeds"]


def test_a_partly_filled_entry_that_a_live_server_shows_only_in_its_tradebook_is_managed_then_exited() -> None:
    """A live server's orderstatus gives no filled quantity unless ``complete``: with no order-update
    stream, the filled half of an open entry gets its stop, and exiting the trade (which cancels the
    rest of the entry) sells that half: nothing is left at the broker with no trade."""
    with _sim(profile=LIVE_POLLING, order_updates=False) as sim:
        future = sim.create(SYMBOL, 10)
        sim.run_job_of("prepare_entry")
        sim.run_job_of("order_sent", fault="partial")
        sim.drain(5.0)
        trade_id = future.result().trade_id
        held = sim.trade(trade_id)
        assert (held.status, held.quantity) == (TradeStatus.ACTIVE, 5) and held.stop_loss is not None

        sim.submit(ExitTrade(trade_id))
        sim.settle(30.0)
        assert sim.trade(trade_id).status is TradeStatus.CLOSED
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def test_stop_crossed_on_a_tick_exits_the_trade_once() -> None:
    with _sim(order_updates=True) as sim:
        trade_id = _open(sim, 5)
        stop = sim.trade(trade_id).stop_loss
        sim.tick(SYMBOL, stop - 0.5)
        assert sim.trade(trade_id).status is TradeStatus.EXITING
        sim.settle(30.0)
        assert sim.trade(trade_id).status is TradeStatus.CLOSED
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def test_a_crash_after_everything_was_committed_recovers_every_trade() -> None:
    with _sim(order_updates=True) as sim:
        first, second = _open(sim, 5), _open(sim, 3)
        sim.commit()
        sim.crash()
        assert {t.id for t in sim.open_trades()} == {first, second}
        sim.settle(40.0)
        assert sim.violations == []


# --------------------------------------------------------------------------- issue 13


def test_lost_exit_reply_with_book_lag_does_not_exit_twice() -> None:
    """Two trades of 5 on one symbol; the first one's exit is placed and fills but its reply is lost
    (timeout); the order book shows new orders 2 s late.  tmtool looks the order up twice within
    the lag, finds nothing, sees the position still held (the other trade's) and sends a second
    exit: the first trade is exited twice and the second trade's shares are sold."""
    with _sim(order_updates=False, book_lag=2.0) as sim:
        first, second = _open(sim, 5), _open(sim, 5)
        sim.advance(3.0)  # the positionbook has caught up with the entries
        _sent_exit(sim, first, fault="lost_reply")
        sim.drain(3.0)
        sim.settle(30.0)
        assert "one-exit" not in _names(sim), sim.violations
        assert sim.violations == []


def test_entry_placed_before_a_crash_is_not_lost() -> None:
    """A MARKET entry's intent is durable and the order fills, then tmtool is killed before the reply;
    the order book lags 5 s (the restart takes 2).  The restart looks the order up, does not find
    it and cancels the trade: 7 shares stay held with no stop."""
    with _sim(order_updates=False, book_lag=5.0) as sim:
        sim.create(SYMBOL, 7)
        sim.run_job_of("prepare_entry")
        sim.crash(in_flight="placed")
        sim.drain(3.0)
        sim.settle(30.0)
        assert "no-trade-lost" not in _names(sim), sim.violations
        assert sim.violations == []


def test_adopting_a_position_that_is_not_held_is_refused() -> None:
    """Trade B holds 5; a ``createtrade`` with ``entry_price`` for another 5 that the account does
    not hold is accepted; when its stop is crossed it sells B's shares."""
    with _sim(order_updates=True) as sim:
        _open(sim, 5)
        phantom = CreateTrade(strategy="scalp", symbol=SYMBOL, exchange=EXCHANGE, side=Side.LONG, product=Product.MIS,
                              quantity=5, entry_price=100.0)
        future = sim.submit(phantom, "adopt 5 not held")
        sim.drain(1.0)
        result = future.result()
        if isinstance(result, Accepted):  # the stop of the phantom trade, crossed
            sim.tick(SYMBOL, sim.trade(result.trade_id).stop_loss - 0.5)
            sim.settle(30.0)
        assert isinstance(result, Denied), result
        assert sim.violations == []


# --------------------------------------------------------------------------- found by the simulation (new)


def test_exit_waiting_on_another_exit_does_not_drop_its_trade() -> None:
    """Trades A (16) and B (8) on one symbol, no order-update stream; both are told to exit.  A's
    position read (24) lets A's exit of 16 go; B's read comes back while A's exit is in flight, so
    B waits for it to settle.  A's exit fills at the broker, but tmtool learns that only from its
    next status poll.  After ``settle_wait`` (5 s) B reads the position again — 8, A's fill
    included — and still subtracts A's 16 as in flight: 8 - 16 < 0, so B is marked
    CLOSED_EXTERNALLY while the broker holds its 8 shares, unmanaged and without a stop.  (When
    the read is larger the trade is shrunk instead: "broker holds only N for this exit".)"""
    with _sim(order_updates=False) as sim:
        a, b = _open(sim, 16), _open(sim, 8)
        sim.submit(ExitTrade(a))
        sim.submit(ExitTrade(b))
        sim.run_job_if_pending("exit_position")  # A's read: 24, A's exit of 16 is sent
        sim.run_job_if_pending("exit_position")  # B's read: an exit is in flight, B waits
        sim.run_job_of("order_sent")  # A's exit fills at the broker
        sim.advance(5.1)
        sim.run_job_if_pending("exit_position")  # B's forced read, before A's status poll
        assert sim.trade(b).status is not TradeStatus.CLOSED_EXTERNALLY
        sim.settle(30.0)
        assert sim.violations == []


def test_entry_sent_while_the_feed_drops_is_still_followed() -> None:
    """The feed (with its order-update stream) drops between the entry's intent and its send.  The
    feed-status change asks every live order to be polled; the entry has no broker id yet, so its
    poll does nothing but leaves it marked as polling, and it is never polled again: the trade
    stays PENDING_ENTRY for ever while the broker holds the position."""
    with _sim(order_updates=True) as sim:
        future = sim.create(SYMBOL, 5)
        sim.run_job_of("prepare_entry")
        sim.feed_drop()
        sim.advance(0.6)  # the poll timer fires while the order has no broker id
        sim.run_job_of("order_sent")
        sim.drain(20.0)
        trade_id = future.result().trade_id
        assert sim.trade(trade_id).status is TradeStatus.ACTIVE
        sim.settle(30.0)
        assert sim.violations == []


def test_exits_after_a_close_outside_tmtool_do_not_reverse_the_position() -> None:
    """Two trades of 10, the position cache known (a reconciliation ran).  The user sells 10 in the
    broker's own app; no order-update stream tells tmtool.  A panic exit then sizes both exits from
    the cache (20): 20 are sold and the account ends short 10."""
    with _sim(order_updates=False) as sim:
        _open(sim, 10), _open(sim, 10)
        sim.drain(31.0)  # a periodic reconciliation fills the position cache
        sim.external_close(SYMBOL, 10)
        sim.submit(ExitAll())
        sim.drain(5.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] >= 0
        sim.settle(30.0)
        assert sim.violations == []


def test_a_partial_target_after_a_close_outside_tmtool_does_not_reverse_the_position() -> None:
    """A trade of 10 with a partial target, no order-update stream.  The user sells all 10 in the
    broker's own app; the price then reaches the partial target: the position is read first and
    nothing is sold (the cached 10 would have sold 5 and left the account short 5)."""
    with _sim(order_updates=False) as sim:
        trade_id = _open(sim, 10, strategy="stepper")
        sim.external_close(SYMBOL, 10)
        sim.tick(SYMBOL, 101.2)  # past the partial target at +1 %
        sim.drain(5.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        sim.settle(90.0)  # periodic reconciliations close the trade as closed outside tmtool
        assert sim.trade(trade_id).status is TradeStatus.CLOSED_EXTERNALLY
        assert sim.violations == []


def _their_limit_sell(sim: Simulation, quantity: int, price: float) -> str:
    """The user places a LIMIT SELL in the broker's own app that works (does not fill) against the
    position; should it fill, it closes part of tmtool's position (as the checker counts it)."""
    order_id = sim.broker.place_order(strategy="outside", symbol=SYMBOL, exchange=EXCHANGE, action="SELL",
                                      quantity=quantity, product="MIS", price_type="LIMIT", price=price).order_id
    sim.broker.orders[order_id].external_close = True
    return order_id


def test_an_exit_waiting_on_others_orders_goes_once_they_are_cancelled_even_if_the_update_is_lost() -> None:
    """A long 10; the user's LIMIT SELL 4 works against it.  The exit sends 6 and waits for the
    other 4.  The user cancels their order, but the order-update stream loses that update (a
    reconnect, a dropped frame): the waiting exit reads the order book again and sends the last 4."""
    with _sim(order_updates=True) as sim:
        trade_id = _open(sim, 10)
        theirs = _their_limit_sell(sim, 4, 150.0)
        sim.drain(1.0)
        sim.submit(ExitTrade(trade_id))
        sim.drain(10.0)
        assert sim.trade(trade_id).quantity == 4 and sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 4
        sim.feed.order_updates = False  # the cancel's update never arrives
        sim.broker.cancel_order(theirs, "outside")
        sim.feed.order_updates = True
        sim.settle(30.0)
        assert sim.trade(trade_id).status is TradeStatus.CLOSED
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def test_a_lagging_order_book_does_not_hide_others_working_order_from_a_waiting_exit() -> None:
    """As above, but the user's order keeps working and the order book does not list it yet (it
    lags).  The waiting exit reads the book every ``settle_wait``; the stream said the order
    works, and its absence from a lagging book is no proof it went: the exit keeps waiting
    (selling the 4 would leave the account short 4 once the user's order fills)."""
    with _sim(order_updates=True) as sim:
        trade_id = _open(sim, 10)
        theirs = _their_limit_sell(sim, 4, 150.0)
        full_book = sim.broker.order_book
        sim.broker.order_book = lambda: [o for o in full_book() if o.order_id != theirs]  # type: ignore[method-assign]
        sim.drain(1.0)
        sim.submit(ExitTrade(trade_id))
        sim.drain(30.0)
        assert sim.trade(trade_id).quantity == 4 and sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 4
        sim.broker.order_book = full_book  # type: ignore[method-assign]
        sim.tick(SYMBOL, 150.0)  # the user's order fills
        sim.settle(60.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.trade(trade_id).status in (TradeStatus.CLOSED, TradeStatus.CLOSED_EXTERNALLY)
        assert sim.violations == []


def test_an_exit_waiting_on_others_orders_alerts_once() -> None:
    """While the exit waits on the user's working order it looks again every ``settle_wait``; the
    WARNING that says so is raised once, not on every look."""
    with _sim(order_updates=True) as sim:
        trade_id = _open(sim, 10)
        _their_limit_sell(sim, 4, 150.0)
        sim.drain(1.0)
        sim.submit(ExitTrade(trade_id))
        sim.drain(60.0)
        assert sim.trade(trade_id).quantity == 4
        alerts = [a for a in sim.engine.snapshot().alerts if "orders placed outside tmtool" in a.text]
        assert [a.count for a in alerts] == [1], [(a.text, a.count) for a in alerts]
        assert sim.violations == []



def test_crash_between_the_exit_fill_rows_does_not_exit_twice() -> None:
    """Trades A and B of 5 on one symbol.  A's exit fills; the store commits the ledger row carrying
    the fill (still SENT) but not the trade row, and tmtool is killed.  The restart polls the order
    (complete, nothing new), sees A still holding 5 and exits again: B's shares are sold."""
    with _sim(order_updates=True) as sim:
        a, _b = _open(sim, 5), _open(sim, 5)
        sim.commit()
        _sent_exit(sim, a)
        prefix = _first_queued(sim, "order", lambda value: value.trade_id == a and value.filled_quantity > 0)
        sim.commit(prefix + 1)
        sim.crash()
        sim.settle(30.0)
        assert sim.violations == []


@pytest.mark.xfail(strict=True, reason="after a crash, two unknown exits of one strategy, size and time cannot be told apart by any evidence: A takes B's order and B, proven absent, is sent once (12 sold for the 12 held, both closed), but the per-trade one-exit check sees B exited twice")
def test_two_unknown_exits_of_one_size_after_a_crash_are_told_apart() -> None:
    """Trades A and B of 6 on one symbol both exit; tmtool is killed with both sends under way: A's
    intent is durable but never left, B's order was placed and filled.  The restart looks both up;
    ``match_order`` matches by symbol, side and quantity, so A's lookup claims B's order (A closes
    on B's fill), B's order is then 'absent', and B's exit is sent again: B is exited twice and A's
    shares are sold.  (The random crash profile found it: seed 1308.)"""
    with _sim(order_updates=True) as sim:
        a, b = _open(sim, 6), _open(sim, 6)
        sim.commit()
        sim.submit(ExitTrade(a))
        sim.run_job_if_pending("exit_position")
        sim.submit(ExitTrade(b))
        assert [job.kind for job in sim.pending_jobs] == ["order_sent", "order_sent"]
        sim.crash(in_flight=("intent", "placed"))
        sim.drain(5.0)
        sim.settle(30.0)
        assert sim.violations == []


def test_unresolved_entry_lookup_raises_no_error() -> None:
    """A exits with an order that stays open; meanwhile B's entry gets a 5xx before it was placed.
    Every lookup of B's entry sees A's exit in flight, so after 22 lookups the entry is declared
    unresolved: ``_unresolved`` marks the trade, finishing the entry cancels and removes the trade
    (dropping the mark), and ``del self._exit_pending[trade.id]`` raises KeyError."""
    with _sim(order_updates=True) as sim:
        a = _open(sim, 5)
        sim.broker.delay_seconds = 10_000.0
        _sent_exit(sim, a, fault="delay_fill")
        sim.create(SYMBOL, 3)
        sim.run_job_of("prepare_entry")
        sim.run_job_of("order_sent", fault="server_before")
        sim.drain(15.0)
        assert "engine-error" not in _names(sim), sim.violations


def test_a_halted_strategys_fill_before_the_first_tradebook_read_is_closed() -> None:
    """A strategy halts on its daily loss limit and its own script buys again at once, before tmtool
    has read the tradebook for the first time.  That first read took every fill it saw as old, so
    the new position was never locked out: it stayed held, unmanaged, for the rest of the day.
    (An integration test over sockets failed this way on a loaded CI machine.)"""
    careful = Strategy("careful", trade_risk=TradeRisk(stop_loss=Distance(20.0)),
                       portfolio=PortfolioRisk(daily_loss_limit=Amount(5.0)))
    simulation = _sim(order_updates=True)
    simulation.strategies = simulation.strategies + (careful,)
    with simulation as sim:
        first = _open(sim, 5, strategy="careful")
        sim.tick(SYMBOL, 98.5)  # -7.50 on the day: past the limit of 5
        sim.drain(1.0)
        assert sim.trade(first).exit_reason is ExitReason.DAILY_LOSS_LIMIT
        assert sim.clock.time() - sim.started_at < sim.settings.adopt_fills_interval  # no tradebook read yet
        sim.broker.place_order(strategy="careful", symbol=SYMBOL, exchange=EXCHANGE, action="BUY", quantity=4,
                               product=Product.MIS.value)
        sim.settle(30.0)
        locked = [t for t in sim.store.latest_trades.values() if t.exit_reason is ExitReason.LOCKOUT]
        assert [(t.strategy, t.status) for t in locked] == [("careful", TradeStatus.CLOSED)]
        assert sim.broker.net[(SYMBOL, EXCHANGE, Product.MIS.value)] == 0
        assert sim.violations == []


def test_a_position_reversed_by_an_exit_racing_an_outside_close_is_flagged_critical() -> None:
    """The stop is crossed and tmtool decides the exit; before its order leaves, the user sells the
    same 10 in the broker's own app.  Both fill: the account is short 10 and no trade covers it (the
    ``external`` known defect).  tmtool cannot undo it safely by itself yet, but it must not stay
    silent: the next reconciliation raises a CRITICAL alert naming the position and the trade."""
    with _sim(order_updates=True) as sim:
        trade_id = _open(sim, 10)
        sim.tick(SYMBOL, sim.trade(trade_id).stop_loss - 0.5)
        sim.run_job_if_pending("exit_position")
        assert [job.kind for job in sim.pending_jobs] == ["order_sent"]
        sim.external_close(SYMBOL, 10)
        sim.run_job_of("order_sent")
        sim.settle(40.0)  # a periodic reconciliation reads the positionbook
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == -10
        critical = [a for a in sim.store.committed.alerts.values() if a.priority.value == "CRITICAL" and a.key.startswith("reversal-")]
        assert len(critical) == 1, [a.text for a in sim.store.committed.alerts.values()]
        assert f"#{trade_id}" in critical[0].text and "-10" in critical[0].text and SYMBOL in critical[0].text



def test_crash_between_the_entry_fill_rows_does_not_apply_the_fill_twice() -> None:
    """A's entry of 5 fills; the store commits the trade row that applies the fill (5 held) but not
    the ledger row that records it (the entry still shows 0 filled), and tmtool is killed.  The
    restart polls the entry (5 filled), takes the 5 as new and adds them to the trade: A holds 10
    for the broker's 5, and its exit sells 10.  (The random crash_tail profile found it: seed 142.)"""
    with _sim(order_updates=True) as sim:
        trade_id = _sent_entry(sim, 5)
        assert sim.trade(trade_id).quantity == 5
        prefix = _first_queued(sim, "order", lambda value: value.trade_id == trade_id and value.filled_quantity > 0)
        sim.commit(prefix)
        assert sim.store.committed.trades[trade_id].quantity == 5
        sim.crash()
        sim.settle(5.0)
        assert sim.trade(trade_id).quantity == 5
        sim.submit(ExitTrade(trade_id))
        sim.settle(30.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def test_crash_between_the_rows_of_a_partial_exit_fill_does_not_apply_it_twice() -> None:
    """Trades A (10) and B (5) on one symbol; A's exit of 10 fills 5 and keeps working.  The store
    commits A's trade row holding the 5 sold but not the exit's ledger row recording them, and
    tmtool is killed.  The restart must not count the 5 again when it polls the exit (A would be
    closed with 5 still held, or its remaining 5 never sold).  (seed 146 of crash_tail.)"""
    with _sim(order_updates=True) as sim:
        a, _b = _open(sim, 10), _open(sim, 5)
        sim.commit()
        _sent_exit(sim, a, fault="partial")
        assert sim.trade(a).quantity == 5
        prefix = _first_queued(sim, "order", lambda value: value.trade_id == a and value.filled_quantity > 0)
        sim.commit(prefix)
        assert sim.store.committed.trades[a].quantity == 5
        sim.crash()
        sim.drain(5.0)  # the restart polls the exit: 5 of 10 filled, as before the crash
        assert sim.trade(a).quantity == 5
        sim.settle(30.0)  # the exit's other 5 fill
        assert sim.trade(a).status is TradeStatus.CLOSED
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 5
        assert sim.violations == []


def test_a_fill_counted_again_after_a_crash_does_not_move_an_unknown_entrys_baseline_twice() -> None:
    """A (2) and B (3) on one symbol: A's exit fills (5 -> 3) and then C's entry BUY 2 is decided,
    its intent durable with the position it moves from (3); tmtool is killed before C's entry is
    sent, and the store had not committed A's exit fill.  The restart polls A's exit and applies
    its 2 again, as it must for A, and that moved C's recorded baseline to 1 as well: the position
    (3) then looked moved by C's 2 and C was taken as filled, 2 shares it never bought, which its
    exit sells from B.  (crash_tail found it once fills were no longer applied twice.)"""
    with _sim(order_updates=True) as sim:
        a, _b = _open(sim, 2), _open(sim, 3)
        sim.commit()
        _sent_exit(sim, a)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 3
        prefix = _first_queued(sim, "trade", lambda value: value.id == a and value.exited_quantity > 0)
        sim.commit(prefix)
        future = sim.create(SYMBOL, 2)
        sim.run_job_of("prepare_entry")
        c = future.result().trade_id
        sim.crash(in_flight="intent")
        sim.drain(30.0)
        assert sim.trade(c).status is TradeStatus.CANCELLED
        sim.submit(ExitAll())
        sim.settle(30.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def test_a_crash_that_keeps_the_trade_row_naming_the_entrys_order_id_still_finds_the_entry() -> None:
    """A's entry is sent and acknowledged; the store commits the trade row that names the broker's
    order id but not the ledger row that records it, and tmtool is killed.  The restart looks the
    entry up (it has no order id in the ledger) but takes the order id as already claimed (the
    trade names it): the order is never found.  Here the position's evidence takes it as filled
    after 10 s (with a CRITICAL alert that the order book lags); with other orders working on the
    key it stays unknown for ever and its shares are held with no stop.  (crash_tail found it too.)"""
    with _sim(order_updates=True) as sim:
        trade_id = _sent_entry(sim, 5)
        prefix = _first_queued(sim, "trade", lambda value: value.id == trade_id and value.entry_order_id)
        sim.commit(prefix + 1)  # up to the first trade row naming the order id
        sim.crash()
        sim.drain(2.0)
        entry = next(o for o in sim.store.latest_orders.values() if o.trade_id == trade_id)
        assert entry.order_id == sim.trade(trade_id).entry_order_id, entry
        sim.settle(30.0)
        assert sim.trade(trade_id).status is TradeStatus.ACTIVE and sim.trade(trade_id).quantity == 5
        assert sim.violations == []


def test_a_crash_that_keeps_the_entrys_order_id_but_not_the_trade_row_naming_it_names_it_again() -> None:
    """The mirror of the case above: the store commits the entry's ledger row with the broker's order
    id but not the trade row naming it.  The restart polls the order by its id and the trade fills;
    it must name its entry order again (without it the fill looks like a position adopted from
    outside tmtool, and the trade's own order is not recognised in the tradebook)."""
    with _sim(order_updates=True) as sim:
        trade_id = _sent_entry(sim, 5)
        prefix = _first_queued(sim, "order", lambda value: value.trade_id == trade_id and value.order_id)
        sim.commit(prefix + 1)
        assert sim.store.committed.trades[trade_id].entry_order_id is None
        sim.crash()
        sim.settle(30.0)
        trade = sim.trade(trade_id)
        assert trade.status is TradeStatus.ACTIVE and trade.quantity == 5
        assert trade.entry_order_id == sim.store.committed.orders[next(iter(sim.store.committed.orders))].order_id
        assert sim.violations == []


def test_a_fill_while_an_entry_waits_to_be_sent_is_in_its_baseline_after_a_crash() -> None:
    """C's entry BUY 2 is decided (its intent holds the position, 0) but not sent yet when A's entry
    of 2 fills; the intent row the executor writes does not hold A's fill (it comes after it was
    decided).  tmtool is killed with C's send under way (its intent durable, never placed).  The
    restart starts A from its 2 without applying them again, so C's baseline stayed 0; once A's exit
    sells its 2 (moving C's baseline to -2) the position (0) looked moved by C's 2 and C was taken
    as filled: 2 shares it never bought."""
    with _sim(order_updates=True) as sim:
        future_c = sim.create(SYMBOL, 2)
        sim.run_job_of("prepare_entry")
        future_a = sim.create(SYMBOL, 2)
        sim.run_job_of("prepare_entry")
        assert [job.kind for job in sim.pending_jobs] == ["order_sent", "order_sent"]
        sim.run_job(1)  # A's entry: sent and filled
        a, c = future_a.result().trade_id, future_c.result().trade_id
        assert sim.trade(a).quantity == 2
        sim.commit()
        sim.crash(in_flight="intent")
        sim.submit(ExitTrade(a))
        sim.drain(30.0)
        assert sim.trade(c).status is TradeStatus.CANCELLED
        sim.settle(30.0)
        assert sim.broker.net[(SYMBOL, EXCHANGE, "MIS")] == 0
        assert sim.violations == []


def _lagging_read_script(sim: Simulation) -> tuple[int, int]:
    """Trades A and B of 15; A's exit fills and tmtool knows it; B's exit reads a position that does
    not show A's fill yet, its intent is made durable, and tmtool is killed before it leaves."""
    a, b = _open(sim, 15), _open(sim, 15)
    sim.advance(6.0)  # the positionbook has caught up with the entries
    _sent_exit(sim, a)  # A's read: 30; A's exit of 15 goes and fills at the broker
    sim.advance(0.5)
    sim.run_job_of("order_status")  # and tmtool learns of it: net 15
    assert sim.trade(a).status is TradeStatus.CLOSED
    sim.submit(ExitTrade(b))
    sim.run_job_if_pending("exit_position")  # B's read, asked within the positionbook's lag
    sim.crash(in_flight="intent")
    return a, b


def test_a_position_read_that_lags_our_own_fill_does_not_become_an_exits_baseline() -> None:
    """Trades A and B of 15 on one symbol, no order-update stream, the positionbook 5 s behind.  A's
    exit fills and its status poll tells tmtool (net 15).  B's exit reads the position at once: the
    read still shows 30 (A's fill is not in the positionbook yet) and became the cached net, so B's
    exit intent recorded 30 as the position it moves from.  tmtool is killed with that intent durable
    but never sent.  Once the positionbook catches up (15) the position looks to have moved by B's 15
    from 30 and B's exit is taken as filled: B closes and its 15 shares are left with no stop.
    (The ``ambiguous`` profile found it: seed 126.)"""
    with _sim(order_updates=False, book_lag=5.0) as sim:
        _lagging_read_script(sim)
        sim.settle(60.0)
        assert "no-trade-lost" not in _names(sim), sim.violations
        assert sim.violations == []


def test_an_exit_taken_as_filled_that_the_order_book_never_shows_is_flagged_critical() -> None:
    """A's exit intent is durable but tmtool is killed before it leaves; meanwhile the user sells the
    same 10 in the broker's own app, in two orders of 5.  The position moved by exactly the exit's
    10, so the exit is taken as filled, but no such order ever shows in the order book.  Here the shares are gone; were
    the move something else, they would be held with no stop: tmtool must say so loudly, naming the
    trade and the order."""
    with _sim(order_updates=False) as sim:
        trade_id = _open(sim, 10)
        sim.submit(ExitTrade(trade_id))
        sim.run_job_if_pending("exit_position")
        sim.crash(in_flight="intent")
        sim.external_close(SYMBOL, 5)
        sim.external_close(SYMBOL, 5)
        sim.settle(60.0)
        assert sim.trade(trade_id).status is TradeStatus.CLOSED  # taken as filled from the position
        critical = [a for a in sim.store.committed.alerts.values()
                    if a.priority.value == "CRITICAL" and a.key.startswith("moved-unseen-")]
        assert len(critical) == 1, [a.text for a in sim.store.committed.alerts.values()]
        text = critical[0].text
        assert f"#{trade_id}" in text and "SELL 10" in text and SYMBOL in text and "no trade" in text, text


def test_an_exit_whose_reply_was_lost_and_that_filled_raises_no_order_book_alarm() -> None:
    """An exit whose reply was lost filled; the order book and the position show it 5 s late.  It is
    found in the book (or taken as filled and found later): no CRITICAL alarm about a missing order."""
    with _sim(order_updates=False, book_lag=5.0) as sim:
        trade_id = _open(sim, 10)
        sim.advance(6.0)  # the positionbook has caught up with the entry
        _sent_exit(sim, trade_id, fault="lost_reply")
        sim.settle(90.0)
        assert sim.trade(trade_id).status is TradeStatus.CLOSED
        assert not [a.text for a in sim.store.committed.alerts.values() if a.key.startswith("moved-unseen-")]
        assert sim.violations == []
