"""A crash right after a trailing ratchet keeps it, within the documented bound.

What a SIGKILL leaves is what was committed at that instant: a consistent copy
of the live database file (SQLite's backup API over a read-only connection) is
exactly that.  The engine hands each ratchet's trade row to the store's writer
at once and before its audit event, and the writer commits in order, so in every
such copy a ratchet recorded in the audit log is in the trade row as well, and
the last ratchet is on disk one group commit after it was made.  Ratchets the
writer has not taken yet fold into one (row and event), and the audit log still
tells the whole move.
"""

from __future__ import annotations

import sqlite3

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import Distance, Side, Strategy, TradeRisk, TradeStatus, TrailingSettings
from tmtool.storage.models import TradeEventRow, TradeRow

TRAILING = Strategy("trail", trade_risk=TradeRisk(stop_loss=Distance(20), trailing=TrailingSettings(distance=Distance(6))))


def _as_a_crash_would_leave_it(db_path) -> tuple[float | None, list[float]]:
    """(the trade row's trailing stop, every TRAIL event's new stop) in a copy of what is committed now."""
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    copy = sqlite3.connect(":memory:")
    try:
        source.backup(copy)
        row = copy.execute(f"SELECT trailing_stop FROM {TradeRow._meta.table_name}").fetchone()
        events = copy.execute(
            f"SELECT new FROM {TradeEventRow._meta.table_name} WHERE kind = 'TRAIL' ORDER BY seq"
        ).fetchall()
    finally:
        source.close()
        copy.close()
    return (row[0] if row else None), [float(new) for (new,) in events]


def test_every_ratchet_on_disk_is_in_the_trade_row_and_the_last_one_survives_a_crash_right_after_it(tmp_path):
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("trail", "RELIANCE", "NSE", Side.LONG, quantity=1))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("RELIANCE", 2500.5)

        last = 2700.0 - 6.0
        crashes: list[tuple[float | None, list[float]]] = []

        def last_ratchet_on_disk():
            crashes.append(_as_a_crash_would_leave_it(stack.db_path))
            row_stop, ratchets = crashes[-1]
            return row_stop if ratchets and ratchets[-1] == last else None

        # Bursts of new highs: many ratchets reach the engine in one inbox batch while the
        # writer commits; every copy taken meanwhile is a crash at that moment.
        for start in range(2501, 2701, 50):
            stack.sim.burst("NSE", "RELIANCE", [float(p) for p in range(start, start + 50)])
            crashes.append(_as_a_crash_would_leave_it(stack.db_path))
        row_stop = wait_for(last_ratchet_on_disk, what="the last ratchet committed")
        assert row_stop == last  # a crash right after it keeps it
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == last)
        # Ratchets the writer had not taken yet were folded into one event: the audit log still
        # tells the whole move, each event starting where the one before it ended.
        trails = [e for e in stack.engine.trade_events(trade_id) if e.kind == "TRAIL"]
        assert float(trails[-1].new) == last
        assert all(float(b.old) == float(a.new) for a, b in zip(trails, trails[1:])), [(e.old, e.new) for e in trails]
        with_ratchets = [(row, ratchets) for row, ratchets in crashes if ratchets]
        assert with_ratchets
        for row_stop, ratchets in with_ratchets:
            assert row_stop is not None and row_stop >= max(ratchets), (row_stop, ratchets)


def test_each_ratchet_reaches_the_store_writer_at_once_row_before_event(tmp_path):
    """Not at the end of the engine's inbox batch: so the loss window is the writer's group commit alone."""
    with running_stack(tmp_path, strategies=(TRAILING,)) as stack:
        stack.sim.set_price("NSE", "RELIANCE", 2500.0)
        trade_id = stack.create(CreateTrade("trail", "RELIANCE", "NSE", Side.LONG, quantity=1))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        stack.tick("RELIANCE", 2500.5)

        calls: list[tuple[str, float | None]] = []
        store = stack.store
        save_trade, save_ratchet, record_event = store.save_trade, store.save_ratchet, store.record_event

        def saving(trade, event=None):
            if trade.id == trade_id:
                calls.append(("row", trade.trailing_stop))
                assert event is None or event.kind != "TRAIL", "a ratchet goes through save_ratchet"
            save_trade(trade, event)

        def ratcheting(trade, ts, kind, field, old, new, price):  # its row and its event in one call, row first
            if trade.id == trade_id:
                calls.append(("row", trade.trailing_stop))
                calls.append(("event", float(new)))
            save_ratchet(trade, ts, kind, field, old, new, price)

        def recording(event):
            if event.kind == "TRAIL":
                calls.append(("event", float(event.new)))
            record_event(event)

        store.save_trade, store.save_ratchet, store.record_event = saving, ratcheting, recording  # type: ignore[method-assign]
        stack.sim.burst("NSE", "RELIANCE", [float(p) for p in range(2501, 2521)])  # 20 ratchets, one inbox batch or few
        stack.wait_trade(trade_id, lambda t: t.trailing_stop == 2520.0 - 6.0)

        events = [i for i, (kind, _) in enumerate(calls) if kind == "event"]
        assert len(events) == 20
        for i in events:
            assert calls[i - 1] == ("row", calls[i][1]), calls[max(0, i - 2):i + 1]
