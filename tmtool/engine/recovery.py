"""Loading at start and resuming what the last run left unfinished.

The store's last durable state comes back here: strategies (the config file's
replace stored ones of the same name; strategies only in the database stay),
today's portfolio states, the open trades (indexed in one pass), recent alerts
and the ledger rows of orders that were not final.  After the positionbook
reconciliation each such order is polled, awaited (approval) or looked up, an
exit left with no order is driven again, and an entry that never left is
cancelled.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.calendar import trading_day
from tmtool.domain.models import MANUAL_STRATEGY, ExitReason, OrderPurpose, OrderRecord, OrderState, PortfolioState, Strategy, Trade, TradeStatus
from tmtool.engine.alertbook import AlertBook
from tmtool.engine.books import TradeIndex
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.orders import OrderManager
from tmtool.engine.ports import LoadedState
from tmtool.engine.reconciler import Reconciler
from tmtool.engine.state import EngineState, StrategyRuntime

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        index: TradeIndex,
        orders: OrderManager,
        exits: ExitController,
        reconciler: Reconciler,
        config_strategies: Sequence[Strategy],
    ) -> None:
        self.state = state
        self._journal = journal
        self._index = index
        self._orders = orders
        self._exits = exits
        self._reconciler = reconciler
        self._config_strategies = tuple(config_strategies)
        self._closed_at_start: list[Trade] = []  # recently closed trades, read at start

    def load(self) -> LoadedState:
        """Take the store's state into the engine (before the executor and the feed start)."""
        state = self.state
        now = state.clock.time()
        state.day = trading_day(now)
        loaded = state.store.load()
        self._journal.alerts = AlertBook(next_id=loaded.next_alert_id)
        self._journal.alerts.restore(loaded.recent_alerts)
        state.next_trade_id = max(1, loaded.next_trade_id)
        self._load_strategies(loaded.strategies, loaded.portfolios, now)
        for trade in loaded.open_trades:
            self._index.add_trade(trade, rebuild=False)
            self._known_ids_of(trade)
            self._orders.note_trade_fills(trade)
        self._index.rebuild_all_books()
        self._closed_at_start = self._recently_closed(now)
        for trade in self._closed_at_start:
            self._known_ids_of(trade)
            self._orders.note_trade_fills(trade)
        return loaded

    def restore_orders(self, records: Sequence[OrderRecord]) -> list[LiveOrder]:
        """Track the ledger rows that were not final (once the executor exists)."""
        restored = [live for live in (self._restore_order(record) for record in records) if live is not None]
        self._orders.rebase_restored(restored, [*self.state.trades.values(), *self._closed_at_start])
        return restored

    def resume(self, restored: list[LiveOrder]) -> None:
        """Reconcile with the positionbook, then pick up every unfinished order and exit."""
        self._reconciler.reconcile_at_start()
        self._reconciler.read_fills_at_start()
        for live in restored:
            self._orders.resume(live)
        for trade in list(self.state.trades.values()):
            if trade.status is TradeStatus.EXITING and not self._orders.has_live(trade.id):
                self._exits.drive_exit(trade)
            elif trade.status is TradeStatus.PENDING_ENTRY and not self._orders.has_live(trade.id):
                self._exits.cancel_entry(trade, "the entry order never left before the last shutdown")

    def _load_strategies(self, stored: Sequence[Strategy], portfolios: Sequence[PortfolioState], now: float) -> None:
        state = self.state
        merged: dict[str, Strategy] = {s.name: s for s in stored}
        for strategy in self._config_strategies:
            merged[strategy.name] = strategy
            state.store.save_strategy(strategy)
        if MANUAL_STRATEGY not in merged:
            merged[MANUAL_STRATEGY] = Strategy(name=MANUAL_STRATEGY)
            state.store.save_strategy(merged[MANUAL_STRATEGY])
        today = trading_day(now)
        states = {p.strategy: p for p in portfolios if p.trading_day == today}
        for name, strategy in merged.items():
            portfolio = states.get(name) or portfolio_rules.new_day_state(name, now)
            runtime = StrategyRuntime(strategy, portfolio)
            state.strategies[name] = runtime
            runtime.update_gates()

    def _recently_closed(self, now: float) -> list[Trade]:
        try:
            return self.state.store.closed_trades(start=now - 2 * 86400.0)
        except Exception:  # the history is only used to recognise our own old orders
            log.exception("could not read recently closed trades")
            return []

    def _known_ids_of(self, trade: Trade) -> None:
        known = self._orders.known_order_ids
        if trade.entry_order_id:
            known.add(trade.entry_order_id)
        known.update(trade.exit_order_ids)

    def _restore_order(self, record: OrderRecord) -> LiveOrder | None:
        trade = self.state.trades.get(record.trade_id)
        if trade is None:
            log.warning("ledger row %s names trade %s which is not open; left as is", record.key, record.trade_id)
            return None
        record = self._fills_as_the_trade_took_them(record, trade)
        if record.purpose is OrderPurpose.EXIT and trade.status is TradeStatus.ACTIVE and record.reason is not ExitReason.PARTIAL_TARGET:
            trade.status = TradeStatus.EXITING
            trade.exit_reason = record.reason
        return self._orders.restore(record, trade)

    def _fills_as_the_trade_took_them(self, record: OrderRecord, trade: Trade) -> OrderRecord:
        """The ledger row with the fills its trade has taken in (``Trade.order_fills``).

        A crash keeps a prefix of the rows handed to the store, and a fill moves the trade row and
        the ledger row: the ledger row may lag the trade row (``OrderManager.apply_fill`` hands the
        trade in first).  The restart counts as new only what the broker shows beyond what the
        trade holds, so the trade row decides.  An order the trade has no entry for keeps the
        ledger's count: the ledger row is never ahead of the trade row, so that is 0, or the row
        was written before trades recorded their orders' fills (schema version 4)."""
        taken = next((fill for fill in trade.order_fills if fill.key == record.key), None)
        if taken is None or taken.filled_quantity == record.filled_quantity:
            return record
        log.warning("ledger row %s shows %d filled, its trade #%s took in %d: the trade's count stands",
                    record.key, record.filled_quantity, trade.id, taken.filled_quantity)
        state = record.state
        if 0 < taken.filled_quantity < record.quantity and state in (OrderState.SENT, OrderState.OPEN):
            state = OrderState.PARTIAL
        record = replace(record, filled_quantity=taken.filled_quantity, average_price=taken.average_price, state=state)
        self.state.store.save_order(record)
        return record
