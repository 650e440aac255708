"""SqliteStore: round trips, reopening, coalescing, durable saves and the read queries."""

from __future__ import annotations

import logging
import math
import os
import stat
from dataclasses import replace
from datetime import date

import pytest

from tmtool.domain.models import (
    AlertCategory,
    AlertPriority,
    OrderState,
    Strategy,
    TradeStatus,
)
from tmtool.engine.ports import LoadedState, StoreStatus, StoreUnavailable
from tmtool.storage.intents import intents_path_for, read_journal
from tmtool.storage import SqliteStore
from tmtool.storage.files import side_files

from tests.storage.samples import T0, full_alert, full_event, full_order, full_portfolio, full_strategy, full_trade


def test_every_record_round_trips_through_the_database(make_store):
    store = make_store()
    trade, strategy, portfolio = full_trade(), full_strategy(), full_portfolio()
    order, event, alert = full_order(), full_event(), full_alert()
    store.save_strategy(strategy)
    store.save_trade(trade)
    store.save_portfolio(portfolio)
    store.save_order(order)
    store.record_event(event)
    store.save_alert(alert)
    assert store.flush()

    loaded = store.load()
    assert loaded.open_trades == (trade,)
    assert loaded.strategies == (strategy,)
    assert loaded.portfolios == (portfolio,)
    assert loaded.open_orders == (order,)
    assert loaded.recent_alerts == (alert,)
    assert store.trade_events(7) == [event]
    assert store.alerts() == [alert]


def test_reopening_gives_the_identical_state(make_store, db_path):
    first = make_store()
    trades = [full_trade(1, trailing_stop=101.5, high_watermark=104.0), full_trade(2, status=TradeStatus.EXITING)]
    for trade in trades:
        first.save_trade(trade)
    first.save_strategy(full_strategy())
    first.save_portfolio(full_portfolio())
    first.save_order(full_order("x-1-1"))
    first.save_order(full_order("x-2-1", OrderState.COMPLETE))
    first.save_alert(full_alert(1))
    first.record_event(full_event(1))
    assert first.flush()
    before = first.load()
    first.close()

    second = make_store()
    after = second.load()
    assert after == before
    assert after.open_trades == tuple(trades)
    assert [order.key for order in after.open_orders] == ["x-1-1"]  # final orders are not "open"
    assert after.next_trade_id == 8  # the order ledger names trade 7, so 7 is never handed out again
    assert after.next_alert_id == 2


def test_load_of_a_new_database_is_empty(make_store):
    assert make_store().load() == LoadedState((), (), (), (), next_trade_id=1, next_alert_id=1, recent_alerts=())


def test_settings_are_kept_across_reopening_and_removed_by_none(make_store):
    first = make_store()
    first.save_setting("kill_switch", '{"since": 1.5}')
    first.save_setting("other", "x")
    first.save_setting("other", None)  # set and removed in one batch: the removal wins
    assert first.flush()
    first.close()
    second = make_store()
    assert second.load().settings == {"kill_switch": '{"since": 1.5}'}  # the database's identity is no setting
    second.save_setting("kill_switch", None)
    assert second.flush()
    assert second.load().settings == {}
    with pytest.raises(ValueError):
        second.save_setting("database_id", "mine")


def test_the_last_version_of_a_trade_wins_and_every_event_is_kept(make_store):
    store = make_store(commit_interval=0.5)
    for step in range(50):
        store.save_trade(full_trade(1, trailing_stop=100.0 + step, updated_at=T0 + step))
        store.record_event(full_event(1, ts=T0 + step))
    assert store.flush()
    assert store.load().open_trades == (full_trade(1, trailing_stop=149.0, updated_at=T0 + 49),)
    assert [event.ts for event in store.trade_events(1)] == [T0 + step for step in range(50)]
    assert store.status() == StoreStatus("OK", pending=0, last_error="", committed=100)


def test_events_continue_their_sequence_after_reopening(make_store):
    first = make_store()
    first.record_event(full_event(1, ts=T0 + 1, kind="CREATED"))
    assert first.flush()
    first.close()
    second = make_store()
    second.record_event(full_event(1, ts=T0 + 2, kind="STATUS"))
    assert second.flush()
    assert [event.kind for event in second.trade_events(1)] == ["CREATED", "STATUS"]


def test_a_trade_saved_with_its_event_queues_the_row_then_the_event_in_the_sequence(make_store):
    """A trailing ratchet is one hand-over: the moved row and its audit event, the row first, the event
    numbered after the trade's earlier events and before its later ones."""
    store = make_store(commit_interval=60.0)
    store.record_event(full_event(1, ts=T0 + 1, kind="CREATED"))
    moved = full_trade(1, trailing_stop=101.0, updated_at=T0 + 2)
    store.save_trade(moved, full_event(1, ts=T0 + 2, kind="TRAIL"))
    store.record_event(full_event(1, ts=T0 + 3, kind="STATUS"))
    queued = [(change.table, change.key) for change in store._queue]
    assert queued == [("trade_event", (1, 1)), ("trade", 1), ("trade_event", (1, 2)), ("trade_event", (1, 3))]
    assert store.flush()
    assert [event.kind for event in store.trade_events(1)] == ["CREATED", "TRAIL", "STATUS"]
    assert store.load().open_trades == (moved,)


def _ratchet(store: SqliteStore, step: int, old: float, new: float) -> None:
    """Trade 1's trailing stop moved from ``old`` to ``new`` by a new best price, handed over as the engine does."""
    trade = full_trade(1, trailing_stop=new, high_watermark=new + 6.0, updated_at=T0 + step)
    store.save_ratchet(trade, T0 + step, "TRAIL", "trailing_stop", f"{old:.2f}", f"{new:.2f}", new + 6.0)


def test_ratchets_queued_behind_each_other_are_written_as_one_row_and_one_event_from_first_to_last(db_path, clock):
    """While the writer has not taken a trade's last ratchet, the next one takes its place: the
    row becomes the newest version and the event runs from the first old stop to the last new one."""
    store = SqliteStore(db_path, clock=clock)
    store.open()
    try:
        store.record_event(full_event(1, ts=T0 + 1, kind="CREATED"))
        for step, (old, new) in enumerate([(100.0, 100.5), (100.5, 101.0), (101.0, 102.5)]):
            _ratchet(store, 2 + step, old, new)
        assert [(c.table, c.key) for c in store._queue] == [("trade_event", (1, 1)), ("trade", 1), ("trade_event", (1, 2))]
        # a story read now shows the run as the writer will write it
        assert [(e.kind, e.old, e.new, e.reason) for e in store.trade_events(1)][1:] == [("TRAIL", "100.00", "102.50", "3 ratchets")]
        store.record_event(full_event(1, ts=T0 + 9, kind="STATUS"))  # any other change of the trade ends the run
        _ratchet(store, 10, 102.5, 103.0)
        assert len(store._queue) == 6
        store.start()
        assert store.flush()
        events = store.trade_events(1)
        assert [(e.kind, e.old, e.new, e.reason, e.ts, e.price) for e in events] == [
            ("CREATED", "819.00", "818.45", "price 809.45", T0 + 1, 809.45),
            ("TRAIL", "100.00", "102.50", "3 ratchets", T0 + 4, 108.5),
            ("STATUS", "819.00", "818.45", "price 809.45", T0 + 9, 809.45),
            ("TRAIL", "102.50", "103.00", "", T0 + 10, 109.0),
        ]
        assert store.load().open_trades == (full_trade(1, trailing_stop=103.0, high_watermark=109.0, updated_at=T0 + 10),)
    finally:
        store.close()


def test_a_ratchet_after_the_writer_took_the_last_one_is_queued_on_its_own(make_store):
    store = make_store()
    _ratchet(store, 2, 100.0, 100.5)
    assert store.flush()  # taken and committed: nothing queued is changed behind the writer's back
    _ratchet(store, 3, 100.5, 101.0)
    _ratchet(store, 4, 101.0, 101.5)
    assert store.flush()
    assert [(e.old, e.new, e.reason) for e in store.trade_events(1)] == [
        ("100.00", "100.50", ""), ("100.50", "101.50", "2 ratchets")
    ]


def test_an_order_row_of_the_trade_ends_a_run_of_ratchets(db_path, clock):
    """An intent journals the trade as queued before it; a later ratchet is queued after the order row, never before it."""
    store = SqliteStore(db_path, clock=clock)
    store.open()
    try:
        _ratchet(store, 2, 100.0, 100.5)
        store.save_order(replace(full_order(), trade_id=1))
        _ratchet(store, 3, 100.5, 101.0)
        assert [c.table for c in store._queue] == ["trade", "trade_event", "order_ledger", "trade", "trade_event"]
        _ratchet(store, 4, 101.0, 101.5)  # folds into the ratchet after the order
        assert store.save_order(replace(full_order("x-1-2", OrderState.INTENT), trade_id=1), durable=True, timeout=0.05)
        _ratchet(store, 5, 101.5, 102.0)
        assert [c.table for c in store._queue] == [
            "trade", "trade_event", "order_ledger", "trade", "trade_event", "order_ledger", "trade", "trade_event"
        ]
        # the intent carries the trade as queued before it: the folded run's newest stop, not a later one
        (intent,) = read_journal(intents_path_for(db_path)).intents
        assert intent.trade is not None and intent.trade.trailing_stop == 101.5
    finally:
        store.close()


def test_an_event_with_its_trade_is_checked_as_record_event_checks_it(db_path, clock, make_store):
    with pytest.raises(TypeError, match="save_trade needs a TradeEvent"):
        make_store().save_trade(full_trade(1), "TRAIL")
    unopened = SqliteStore(db_path, clock=clock)
    with pytest.raises(StoreUnavailable, match="before recording events"):
        unopened.save_trade(full_trade(1), full_event(1))


def test_alerts_update_in_place_when_folded_and_acknowledged(make_store):
    store = make_store()
    alert = full_alert(5, ts=T0)
    store.save_alert(replace(alert, count=1, acknowledged=False))
    assert store.flush()
    store.save_alert(replace(alert, count=4, last_ts=T0 + 80, acknowledged=True))
    assert store.flush()
    assert store.alerts() == [replace(alert, count=4, last_ts=T0 + 80, acknowledged=True)]


def test_alert_queries_filter_and_order_newest_first(make_store):
    store = make_store()
    info = replace(full_alert(1, ts=T0 + 1), priority=AlertPriority.INFO, category=AlertCategory.TRADE, acknowledged=False)
    warning = replace(full_alert(2, ts=T0 + 2), priority=AlertPriority.WARNING, acknowledged=True)
    critical = replace(full_alert(3, ts=T0 + 3), category=AlertCategory.SYSTEM, acknowledged=False)
    for alert in (info, warning, critical):
        store.save_alert(alert)
    assert store.flush()
    assert store.alerts() == [critical, warning, info]
    assert store.alerts(since=T0 + 2) == [critical, warning]
    assert store.alerts(category="TRADE") == [info]
    assert store.alerts(priority="WARNING") == [warning]
    assert store.alerts(include_acknowledged=False) == [critical, info]
    assert store.alerts(limit=1) == [critical]
    with pytest.raises(ValueError, match="priority must be one of INFO, WARNING, CRITICAL"):
        store.alerts(priority="LOUD")
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        store.alerts(limit=0)


def test_closed_trades_by_period_and_strategy(make_store):
    store = make_store()
    closed = [
        full_trade(1, status=TradeStatus.CLOSED, closed_at=T0 + 100),
        full_trade(2, status=TradeStatus.CLOSED_EXTERNALLY, closed_at=T0 + 200, strategy="manual"),
        full_trade(3, status=TradeStatus.CANCELLED, closed_at=T0 + 300),
    ]
    for trade in [*closed, full_trade(4)]:
        store.save_trade(trade)
    assert store.flush()
    assert store.closed_trades() == closed
    assert store.closed_trades(start=T0 + 100, end=T0 + 300) == closed[:2]
    assert store.closed_trades(strategy="manual") == [closed[1]]
    assert store.load().open_trades == (full_trade(4),)
    with pytest.raises(ValueError, match="start must be a finite number"):
        store.closed_trades(start=math.nan)


def test_deleting_a_strategy_and_the_last_operation_in_a_batch_wins(make_store):
    store = make_store(commit_interval=0.5)
    store.save_strategy(full_strategy("a"))
    store.save_strategy(full_strategy("b"))
    store.delete_strategy("a")
    store.delete_strategy("b")
    store.save_strategy(Strategy("b"))
    assert store.flush()
    assert store.load().strategies == (Strategy("b"),)


def test_a_durable_order_is_in_the_intent_journal_when_save_order_returns(make_store, db_path):
    store = make_store(commit_interval=5.0)  # no waiting for the interval when someone needs durability
    assert store.save_order(full_order("x-9-1", OrderState.INTENT), durable=True, timeout=5.0) is True
    journal = read_journal(intents_path_for(db_path))
    assert [intent.order for intent in journal.intents] == [full_order("x-9-1", OrderState.INTENT)]
    assert store.flush()
    assert store.load().open_orders == (full_order("x-9-1", OrderState.INTENT),)
    assert store.save_order(full_order("x-9-1", OrderState.SENT)) is False  # not durable: only enqueued


def test_changes_saved_before_start_are_written_once_started(db_path, clock):
    store = SqliteStore(db_path, clock=clock)
    store.open()
    store.save_trade(full_trade(1))
    assert store.save_order(full_order(), durable=True, timeout=0.05) is True  # journaled: the store is open
    assert store.status().pending == 2
    store.start()
    try:
        assert store.flush()
        assert store.load().open_trades == (full_trade(1),)
        assert store.load().open_orders == (full_order(),)
    finally:
        store.close()


def test_the_caller_keeps_mutating_its_trade_without_changing_what_is_saved(make_store):
    store = make_store(commit_interval=0.5)
    trade = full_trade(1, trailing_stop=100.0)
    store.save_trade(trade)
    trade.trailing_stop = 150.0  # the engine moves on after handing the record over
    assert store.flush()
    assert store.load().open_trades[0].trailing_stop == 100.0


def test_bad_input_is_refused_on_the_callers_thread_and_changes_nothing(make_store):
    store = make_store()
    with pytest.raises(TypeError, match="save_trade needs a Trade, got dict"):
        store.save_trade({"id": 1})
    with pytest.raises(ValueError, match="only finite numbers"):
        store.save_strategy(replace(full_strategy(), allocated_funds=math.inf))
    assert store.status().pending == 0
    assert store.flush()
    assert store.load().strategies == ()


def test_an_unstorable_record_is_dropped_alone_and_loudly(make_store, caplog):
    store = make_store(commit_interval=0.5)
    store.save_trade(full_trade(1))
    store.save_trade(full_trade(2, stop_loss=math.nan))  # would load back as "no stop"
    store.save_trade(full_trade(3))
    with caplog.at_level(logging.ERROR, logger="tmtool.storage"):
        assert store.flush()
    assert [trade.id for trade in store.load().open_trades] == [1, 3]
    assert "Trade id=2: stop_loss is nan" in caplog.text
    assert store.status().state == "OK"
    assert "stop_loss is nan" in store.status().last_error


def test_a_durable_save_of_an_unstorable_order_reports_false(make_store):
    store = make_store()
    assert store.save_order(replace(full_order(), price=math.inf), durable=True, timeout=5.0) is False


def test_database_files_and_backups_are_private(make_store, db_path):
    store = make_store()
    store.save_trade(full_trade())
    assert store.flush()
    created = [db_path, *[path for path in side_files(db_path) if path.exists()]]
    created += list((db_path.parent / "backups").iterdir())
    created.append(db_path.with_name(db_path.name + ".lock"))
    assert len(created) >= 4
    for path in created:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_reads_and_events_need_an_open_store(db_path, clock):
    store = SqliteStore(db_path, clock=clock)
    with pytest.raises(StoreUnavailable, match="call open"):
        store.load()
    with pytest.raises(StoreUnavailable, match="before recording events"):
        store.record_event(full_event())


def test_bad_settings_are_refused(db_path):
    with pytest.raises(ValueError, match="synchronous must be one of FULL, NORMAL, EXTRA, got 'OFF'"):
        SqliteStore(db_path, synchronous="OFF")
    with pytest.raises(ValueError, match="max_batch must be a positive integer"):
        SqliteStore(db_path, max_batch=0)


def test_changes_after_close_are_refused_with_a_log_line(make_store, caplog):
    store = make_store()
    store.close()
    with caplog.at_level(logging.ERROR, logger="tmtool.storage"):
        store.save_trade(full_trade())
        assert store.save_order(full_order(), durable=True) is False
    assert caplog.text.count("is closed") == 2


def test_portfolio_states_are_kept_per_strategy_and_day(make_store):
    store = make_store()
    today = full_portfolio(day=date(2026, 1, 2))
    yesterday = full_portfolio(day=date(2026, 1, 1))
    other = full_portfolio("manual", date(2026, 1, 2))
    for state in (today, yesterday, other, replace(today, realised_pnl=10.0)):
        store.save_portfolio(state)
    assert store.flush()
    assert store.load().portfolios == (yesterday, other, replace(today, realised_pnl=10.0))


def test_a_trade_story_read_right_after_a_change_shows_the_events_not_yet_committed(make_store):
    """The desk opens a trade's story the moment it closes: the audit log it reads holds every event
    handed in, committed or still queued for the writer's next group commit, each once and in order."""
    store = make_store(commit_interval=60.0)  # nothing is committed during the test unless flushed
    store.record_event(full_event(7, ts=T0 + 1, kind="STATUS"))
    assert store.flush()
    store.record_event(full_event(7, ts=T0 + 2, kind="TRAIL"))
    store.record_event(full_event(8, ts=T0 + 3, kind="TRAIL"))
    store.record_event(full_event(7, ts=T0 + 4, kind="EXIT_FILL"))
    assert [(e.ts, e.kind) for e in store.trade_events(7)] == [(T0 + 1, "STATUS"), (T0 + 2, "TRAIL"), (T0 + 4, "EXIT_FILL")]
    assert store.flush()
    assert [e.ts for e in store.trade_events(7)] == [T0 + 1, T0 + 2, T0 + 4]
    assert [e.ts for e in store.trade_events(8)] == [T0 + 3]


@pytest.mark.parametrize(
    ("column", "stored", "words"),
    [
        ("stop_loss", "'eight hundred'", "Trade row stop_loss is 'eight hundred'"),
        ("trailing", "'{not json'", "Trade row trailing: stored text is not valid JSON"),
        ("paused", "7", "Trade row paused is 7"),
    ],
)
def test_a_damaged_trade_column_is_refused_at_load_with_the_column_named(make_store, db_path, column, stored, words):
    """Start-up reads open trades through the raw cursor and the record decoders alone: a value
    of the wrong type is refused, saying which column, never loaded as something else."""
    import sqlite3

    store = make_store()
    store.save_trade(full_trade(1))
    assert store.flush()
    store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"UPDATE trade SET {column} = {stored} WHERE id = 1")
    with pytest.raises(Exception, match=words):
        make_store().load()
