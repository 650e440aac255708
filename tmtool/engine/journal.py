"""Where engine state is persisted and alerts are raised.

Every change the engine makes to a trade reaches the store through here: trade
rows (``save_trade``, handed to the store's writer at once, trailing ratchets
included, so a crash loses at most the last group-commit interval), trade
events (the audit trail), status changes, and alerts
(folded by key in the ``AlertBook``, saved, logged and handed to the alert
sinks).  Order ledger rows are saved by ``orders``; portfolio and strategy rows
by whoever changes them, through the same ``Store`` port.  The store's own
health (memory-only mode) is watched here too.
"""

from __future__ import annotations

import logging
from typing import Sequence

from tmtool.domain.keyvalue import key_values
from tmtool.domain.models import Alert, AlertCategory, AlertPriority, Trade, TradeStatus, level_event
from tmtool.engine.alertbook import AlertBook
from tmtool.engine.ports import AlertSink
from tmtool.engine.state import EngineState

log = logging.getLogger(__name__)

_LOG_LEVEL = {AlertPriority.INFO: logging.INFO, AlertPriority.WARNING: logging.WARNING, AlertPriority.CRITICAL: logging.CRITICAL}


class Journal:
    """Trade rows, trade events, status changes and alerts, on the engine thread."""

    def __init__(self, state: EngineState, sinks: Sequence[AlertSink]) -> None:
        self.state = state
        self._store = state.store
        self._clock = state.clock
        self._sinks = tuple(sinks)
        self.alerts = AlertBook()

    # ---------------------------------------------------------------- trades

    def save_trade(self, trade: Trade) -> None:
        """Hand the store the trade now (it takes its own copy): its writer commits it within one
        group-commit interval.

        Every change goes at once, trailing ratchets included.  Saving ratchets once per inbox
        batch instead halved the engine benchmark's time per tick at 1,000 trades (whose
        random walk ratchets about one tick in seven), but let a crash lose a ratchet for as
        long as the batch ran on top of the commit interval."""
        self._store.save_trade(trade)
        self.state.dirty = True

    def save_open_trades(self) -> None:
        """At shutdown: every open trade saved with its last price."""
        state = self.state
        now = self._clock.time()
        for trade in state.trades.values():
            state.sync_price(trade)
            trade.updated_at = now
            self.save_trade(trade)

    def event(self, trade: Trade, kind: str, field: str = "", old: object = "", new: object = "", reason: str = "", price: float | None = None) -> None:
        self._store.record_event(level_event(trade, self._clock.time(), kind, field, old, new, reason, price))

    def level_changed(self, trade: Trade, kind: str, field: str, old: object, new: object, price: float) -> None:
        """A level the engine moved (a trailing ratchet, breakeven): the trade row and its audit event,
        stamped with one clock reading and handed to the store in one call (the row first).  A
        trailing ratchet goes as one (``Store.save_ratchet``): while the store's writer is behind, it
        takes the place of the trade's previous ratchet in the queue, and its event is built once."""
        now = self._clock.time()
        trade.updated_at = now
        if kind == "TRAIL":
            self._store.save_ratchet(trade, now, kind, field, old, new, price)
        else:
            self._store.save_trade(trade, level_event(trade, now, kind, field, old, new, "", price))
        self.state.dirty = True

    def set_status(self, trade: Trade, status: TradeStatus, reason: str = "") -> None:
        if trade.status is status:
            return
        old = trade.status
        trade.status = status
        trade.updated_at = self._clock.time()
        self.event(trade, "STATUS", "status", old.value, status.value, reason)

    # ---------------------------------------------------------------- alerts

    def alert(
        self,
        category: AlertCategory,
        priority: AlertPriority,
        text: str,
        key: str = "",
        trade: Trade | None = None,
        strategy: str | None = None,
    ) -> Alert:
        alert = self.alerts.raise_alert(
            self._clock.time(),
            category,
            priority,
            text,
            key=key,
            trade_id=trade.id if trade is not None else None,
            strategy=trade.strategy if trade is not None else strategy,
        )
        self._store.save_alert(alert)
        if trade is not None:
            self.event(trade, "ALERT", "", "", text, priority.value)
        log.log(
            _LOG_LEVEL[priority],
            "%s",
            key_values(
                event="alert",
                category=category.value,
                priority=priority.value,
                strategy=alert.strategy,
                trade=alert.trade_id,
                symbol=trade.symbol if trade is not None else None,
                text=text,
            ),
        )
        for sink in self._sinks:
            try:
                sink.publish(alert)
            except Exception:  # a notifier must never stop the monitor
                log.exception("alert sink %r failed", sink)
        self.state.dirty = True
        return alert

    def acknowledge(self, alert_ids: Sequence[int], dismiss: bool) -> int:
        changed = self.alerts.acknowledge(alert_ids, dismiss)
        for alert in changed:
            self._store.save_alert(alert)
        self.state.dirty = True
        return len(changed)

    # ---------------------------------------------------------------- the store's health

    def check_store(self) -> None:
        state = self.state
        state.schedule(state.settings.store_check_interval, self.check_store)
        status = self._store.status()
        state.db_pending = status.pending
        if status.state != state.db_state:
            previous, state.db_state = state.db_state, status.state
            if status.state == "MEMORY_ONLY":
                self.alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.CRITICAL,
                    f"database not writing ({status.last_error or 'unknown error'}): monitoring continues in memory, "
                    f"{status.pending} change(s) queued",
                    key="database",
                )
            elif previous == "MEMORY_ONLY":
                self.alert(AlertCategory.SYSTEM, AlertPriority.INFO, "database writing again: queued changes replayed", key="database")
            state.dirty = True


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
