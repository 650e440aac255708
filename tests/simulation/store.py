"""``MemoryStore``: the engine's ``Store`` port in memory, with an explicit durability line.

Every change the engine hands in is queued; the harness's writer (``commit``)
and the engine's ``flush`` commit a prefix of the queue, like the SQLite writer
does.  A durable order save (an order's intent) goes to the intent journal, as
in the SQLite store (``tmtool.storage.intents``): the intent and the newest
version of its trade handed in so far are durable at once, without committing
the queue; a commit prunes the journal entries it covers.  ``crash()`` throws
away the uncommitted tail — exactly what a killed process loses — and then, as
the next start does, writes each journaled intent whose order the committed
state lacks into it, with its trade; ``load()`` returns only what was
committed.  ``refusing`` makes every commit fail (the database not writing):
the queue grows and the status says MEMORY_ONLY; the journal, a file of its
own, still takes intents.

``latest_trades`` is the newest version of each trade the engine handed in (its
in-memory view, as far as it told the store); observers see every trade save.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from tmtool.domain.models import (
    OPEN_STATUSES,
    copy_trade,
    level_event,
    Alert,
    OrderRecord,
    PortfolioState,
    Strategy,
    Trade,
    TradeEvent,
)
from tmtool.engine.ports import LoadedState, StoreStatus


@dataclass
class Committed:
    """What the store has made durable."""

    trades: dict[int, Trade] = field(default_factory=dict)
    strategies: dict[str, Strategy] = field(default_factory=dict)
    portfolios: dict[tuple[str, Any], PortfolioState] = field(default_factory=dict)
    orders: dict[str, OrderRecord] = field(default_factory=dict)
    events: list[TradeEvent] = field(default_factory=list)
    alerts: dict[int, Alert] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    def apply(self, kind: str, value: Any) -> None:
        if kind == "trade":
            self.trades[value.id] = value
        elif kind == "strategy":
            self.strategies[value.name] = value
        elif kind == "delete_strategy":
            self.strategies.pop(value, None)
        elif kind == "portfolio":
            self.portfolios[(value.strategy, value.trading_day)] = value
        elif kind == "order":
            self.orders[value.key] = value
        elif kind == "event":
            self.events.append(value)
        elif kind == "alert":
            self.alerts[value.id] = value
        elif kind == "setting":
            key, text = value
            if text is None:
                self.settings.pop(key, None)
            else:
                self.settings[key] = text
        else:  # pragma: no cover - a programming error in this module
            raise ValueError(kind)


class MemoryStore:
    def __init__(self) -> None:
        self.committed = Committed()
        self.queue: list[tuple[str, Any]] = []
        self.latest_trades: dict[int, Trade] = {}
        self.latest_orders: dict[str, OrderRecord] = {}
        self.refusing = False
        self.commits = 0
        self.trade_observers: list[Callable[[Trade | None, Trade], None]] = []
        # The intent journal: (the queued change, the order, its trade's newest version) not yet committed.
        self.journal: list[tuple[tuple[str, Any], OrderRecord, Trade | None, tuple[OrderRecord, ...]]] = []
        self.recovered_from_journal = 0

    # ---------------------------------------------------------------- writes (enqueue)

    def _enqueue(self, kind: str, value: Any) -> tuple[str, Any]:
        change = (kind, value)
        self.queue.append(change)
        return change

    def save_trade(self, trade: Trade, event: TradeEvent | None = None) -> None:
        """Every version is kept, ratchets included (``save_ratchet``): folding a run of queued
        ratchets is the SQLite writer's business (tests/storage), and invariant 5 looks at each version."""
        # A copy, as SqliteStore takes one: the engine goes on mutating its trade, and a version
        # held by reference would hand later fields to the committed state (and to the journal).
        version = copy_trade(trade)
        previous = self.latest_trades.get(trade.id)
        self.latest_trades[trade.id] = version
        self._enqueue("trade", version)
        if event is not None:
            self.record_event(event)  # right behind its row, as SqliteStore queues it
        for observer in self.trade_observers:
            observer(previous, version)

    def save_ratchet(self, trade: Trade, ts: float, kind: str, field: str, old: object, new: object, price: float) -> None:
        self.save_trade(trade, level_event(trade, ts, kind, field, old, new, "", price))

    def save_strategy(self, strategy: Strategy) -> None:
        self._enqueue("strategy", strategy)

    def delete_strategy(self, name: str) -> None:
        self._enqueue("delete_strategy", name)

    def save_portfolio(self, state: PortfolioState) -> None:
        self._enqueue("portfolio", state)

    def record_event(self, event: TradeEvent) -> None:
        self._enqueue("event", event)

    def save_alert(self, alert: Alert) -> None:
        self._enqueue("alert", alert)

    def save_setting(self, key: str, value: str | None) -> None:
        self._enqueue("setting", (key, value))

    def save_order(self, order: OrderRecord, durable: bool = False, timeout: float = 0.5) -> bool:
        self.latest_orders[order.key] = order
        change = self._enqueue("order", order)
        if not durable:
            return False
        siblings = tuple(o for o in self.latest_orders.values() if o.trade_id == order.trade_id and o.key != order.key)
        self.journal.append((change, order, self.latest_trades.get(order.trade_id), siblings))
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        return self.commit()

    def commit(self, count: int | None = None) -> bool:
        """Commit the first ``count`` queued changes (all when None); False while refusing."""
        if self.refusing:
            return False
        count = len(self.queue) if count is None else min(count, len(self.queue))
        for kind, value in self.queue[:count]:
            self.committed.apply(kind, value)
        if self.journal:
            done = {id(change) for change in self.queue[:count]}
            self.journal = [entry for entry in self.journal if id(entry[0]) not in done]
        del self.queue[:count]
        if count:
            self.commits += 1
        return True

    def status(self) -> StoreStatus:
        state = "MEMORY_ONLY" if self.refusing and self.queue else "OK"
        return StoreStatus(state=state, pending=len(self.queue), last_error="refusing writes" if self.refusing else "",
                           committed=self.commits)

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- crash and reads

    def crash(self) -> int:
        """Lose the uncommitted tail; the engine's view restarts from what is durable.  Returns how much was lost."""
        lost = len(self.queue)
        self.queue.clear()
        for _, order, trade, siblings in self.journal:  # what SqliteStore.open does with the journal left behind
            if order.key in self.committed.orders:
                continue  # the database holds it or a later version of it
            self.committed.orders[order.key] = order
            for sibling in siblings:
                self.committed.orders[sibling.key] = sibling
            if trade is not None:
                self.committed.trades[trade.id] = trade
            self.recovered_from_journal += 1
        self.journal.clear()
        self.latest_trades = dict(self.committed.trades)
        self.latest_orders = dict(self.committed.orders)
        return lost

    def load(self) -> LoadedState:
        c = self.committed
        open_trades = tuple(copy.copy(c.trades[i]) for i in sorted(c.trades) if c.trades[i].status in OPEN_STATUSES)
        open_orders = tuple(sorted((o for o in c.orders.values() if not o.state.is_final), key=lambda o: (o.created_at, o.key)))
        highest = max([0, *c.trades, *(o.trade_id for o in c.orders.values()), *(e.trade_id for e in c.events)])
        portfolios = tuple(c.portfolios[k] for k in sorted(c.portfolios, key=lambda k: (k[1], k[0])))
        alerts = sorted(c.alerts.values(), key=lambda a: (a.ts, a.id), reverse=True)[:50]
        return LoadedState(
            open_trades=open_trades,
            strategies=tuple(c.strategies[n] for n in sorted(c.strategies)),
            portfolios=portfolios,
            open_orders=open_orders,
            next_trade_id=highest + 1,
            next_alert_id=max([0, *c.alerts]) + 1,
            recent_alerts=tuple(alerts),
            settings=dict(c.settings),
        )

    def closed_trades(self, start: float | None = None, end: float | None = None, strategy: str | None = None) -> list[Trade]:
        out = []
        for trade in self.committed.trades.values():
            if trade.status in OPEN_STATUSES or trade.closed_at is None:
                continue
            if start is not None and trade.closed_at < start or end is not None and trade.closed_at >= end:
                continue
            if strategy is not None and trade.strategy != strategy:
                continue
            out.append(copy.copy(trade))
        return sorted(out, key=lambda t: (t.closed_at, t.id))

    def trade_events(self, trade_id: int) -> list[TradeEvent]:
        return [e for e in self.committed.events if e.trade_id == trade_id]

    def alerts(self, since: float | None = None, category: str | None = None, priority: str | None = None,
               include_acknowledged: bool = True, limit: int = 500) -> list[Alert]:
        out = [a for a in self.committed.alerts.values() if since is None or a.ts >= since]
        return sorted(out, key=lambda a: (a.ts, a.id), reverse=True)[:limit]
