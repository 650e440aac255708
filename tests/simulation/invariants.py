"""The invariants a simulation run checks, after every step and at the end.

1. ``one-exit``: the exit quantity filled for a trade at the broker never exceeds
   what the trade held (its entry fills, or the quantity it adopted).
2. ``reduce-only``: no exit tmtool sends takes more than tmtool's trades hold on
   the (symbol, exchange, product) when it fills — it never crosses the net
   position through zero or into quantity held outside tmtool (an exit racing a
   close the user made in the broker after the exit was sent is excused).
3. ``no-trade-lost``: at the end of a run (faults stopped, everything delivered,
   time passed) every quantity tmtool's orders opened and still held is covered
   by open trades in the same direction — after crashes too.
4. ``stop-acted``: a tick the engine received that crosses an ACTIVE, un-paused
   trade's effective stop leaves the trade no longer ACTIVE (EXITING or beyond)
   right after the pump that handled it.
5. ``trail-never-loosens``: a trade's trailing stop, as the engine saves it,
   never moves against the trade (within one engine life, and from the durable
   version across a restart).
6. ``durable-survives``: after a crash, every trade the store had committed as
   open is open in the recovered engine with the committed levels and quantity
   (unless the recovery itself changed and saved it), and no committed final
   trade comes back open.
0. ``engine-error``: no engine handler, timer or command logs an exception.

The engine's own view of a trade is the newest version it handed to the store
(``MemoryStore.latest_trades``); the truth of the account is the ``SimBroker``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tmtool.domain.models import OPEN_STATUSES, Side, Trade, TradeStatus

if TYPE_CHECKING:
    from tests.simulation.harness import Simulation

TICK_BAND = 0.15  # ticks further than this from the last one may be held back by the engine's tick filter


@dataclass(frozen=True)
class Violation:
    step: int
    invariant: str
    text: str

    def __str__(self) -> str:
        return f"step {self.step}: [{self.invariant}] {self.text}"


def _crossed(trade: Trade, price: float) -> bool:
    stop = trade.effective_stop
    if stop is None:
        return False
    return price <= stop if trade.side is Side.LONG else price >= stop


class Checker:
    def __init__(self, sim: "Simulation") -> None:
        self.sim = sim
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, object]] = set()
        self._breaches_seen = 0
        self._errors_seen = 0
        self._crossings: list[tuple[Trade, float]] = []
        self._last_delivered: dict[str, float] = {}
        self._durable_before_restart: dict[int, Trade] = {}
        self.checked = {"stop crossings": 0, "trailing ratchets": 0, "recoveries": 0}  # how often 4, 5 and 6 had work

    def fail(self, invariant: str, subject: object, text: str) -> None:
        if (invariant, subject) in self._seen:
            return
        self._seen.add((invariant, subject))
        self.violations.append(Violation(self.sim.step_count, invariant, text))
        self.sim.trace.append(f"      !! [{invariant}] {text}")

    # ---------------------------------------------------------------- per step

    def before_step(self) -> None:
        self._crossings = []

    def note_tick(self, symbol: str, price: float, delivered: bool) -> None:
        """Called when a tick is handed to the feed, before the engine sees it (invariant 4)."""
        if not delivered:
            return
        reference = self._last_delivered.get(symbol)
        self._last_delivered[symbol] = price
        for trade in self.sim.open_trades(symbol):
            if trade.status is not TradeStatus.ACTIVE or trade.paused or trade.quantity <= 0:
                continue
            base = reference or trade.last_price or price
            if abs(price - base) > base * TICK_BAND:
                continue
            if _crossed(trade, price):
                self._crossings.append((trade, price))

    def after_step(self) -> None:
        sim = self.sim
        errors = sim._errors.records
        while self._errors_seen < len(errors):
            self.fail("engine-error", self._errors_seen, errors[self._errors_seen])
            self._errors_seen += 1
        for trade, price in self._crossings:
            self.checked["stop crossings"] += 1
            now = sim.trade(trade.id)
            if now is not None and now.status is TradeStatus.ACTIVE and not now.paused:
                self.fail("stop-acted", trade.id,
                          f"#{trade.id} {trade.side.value} stop {trade.effective_stop} crossed by tick {price:.2f}: "
                          f"still ACTIVE after the pump")
        self._crossings = []
        breaches = sim.broker.reduce_only_breaches
        while self._breaches_seen < len(breaches):
            b = breaches[self._breaches_seen]
            self._breaches_seen += 1
            self.fail("reduce-only", b.order_id,
                      f"exit {b.order_id} of #{b.trade_id} filled {b.quantity} on {b.key[0]} while tmtool held "
                      f"{b.held_before} in its direction (broker net {b.net_before})")
        self._check_exits()

    def _check_exits(self) -> None:
        for trade_id, truth in self.sim.broker.truth.items():
            if truth.exited > truth.entered + truth.adopted:
                self.fail("one-exit", trade_id,
                          f"#{trade_id}: exits filled {truth.exited} at the broker, the trade held "
                          f"{truth.entered + truth.adopted}")

    def on_trade_saved(self, previous: Trade | None, trade: Trade) -> None:
        """Invariant 5, for every trade version the engine hands to the store; and the broker's
        account of what tmtool holds learns each position tmtool adopted (no entry order of its own)."""
        if trade.entry_order_id is None and trade.entry_quantity and (previous is None or not previous.entry_quantity):
            key = (trade.symbol, trade.exchange, trade.product.value)
            self.sim.broker.adopted(trade.id, key, trade.side.sign * trade.entry_quantity)
        if previous is None or previous.trailing_stop is None or trade.trailing_stop is None:
            return
        if trade.status not in OPEN_STATUSES:
            return
        if trade.trailing != previous.trailing:
            return  # the user changed the trailing settings (ModifyTrade)
        if trade.trailing_stop != previous.trailing_stop:
            self.checked["trailing ratchets"] += 1
        looser = (trade.trailing_stop < previous.trailing_stop - 1e-9 if trade.side is Side.LONG
                  else trade.trailing_stop > previous.trailing_stop + 1e-9)
        if looser:
            self.fail("trail-never-loosens", (trade.id, trade.trailing_stop),
                      f"#{trade.id} {trade.side.value}: trailing stop {previous.trailing_stop} -> {trade.trailing_stop}")

    # ---------------------------------------------------------------- crash and recovery

    def before_restart(self) -> None:
        self._durable_before_restart = dict(self.sim.store.committed.trades)
        self._last_delivered = {}

    def after_restart(self) -> None:
        """Invariant 6, right after the new engine's ``start()``."""
        sim = self.sim
        assert sim.engine is not None
        self.checked["recoveries"] += 1
        views = {v.id: v for v in sim.engine.snapshot().trades}
        for trade_id, durable in sorted(self._durable_before_restart.items()):
            view = views.get(trade_id)
            if durable.status not in OPEN_STATUSES:
                if view is not None and view.status in OPEN_STATUSES:
                    self.fail("durable-survives", trade_id, f"#{trade_id} was durably {durable.status.value}, recovered open")
                continue
            if view is None:
                self.fail("durable-survives", trade_id, f"#{trade_id} was durably open ({durable.status.value}), not recovered")
                continue
            if view.status not in OPEN_STATUSES or sim.store.latest_trades.get(trade_id) is not durable:
                continue  # the recovery changed it (and told the store): reconciliation's business
            for name in ("quantity", "entry_price", "stop_loss", "target", "trailing_stop", "side", "symbol", "paused"):
                if getattr(view, name) != getattr(durable, name):
                    self.fail("durable-survives", (trade_id, name),
                              f"#{trade_id}: {name} durably {getattr(durable, name)!r}, recovered {getattr(view, name)!r}")
        # The engine's view from here on: what it recovered, not what the store holds.
        latest = sim.store.latest_trades
        for trade_id in [i for i, t in latest.items() if t.status in OPEN_STATUSES and i not in views]:
            del latest[trade_id]

    # ---------------------------------------------------------------- end of run

    def at_end(self) -> None:
        """Invariant 3 (and 1 once more) once the run has settled."""
        sim = self.sim
        self._check_exits()
        covered: dict[tuple[str, str, str], int] = {}
        for trade in sim.open_trades():
            if trade.status is TradeStatus.PENDING_ENTRY:
                continue
            key = (trade.symbol, trade.exchange, trade.product.value)
            covered[key] = covered.get(key, 0) + trade.quantity * trade.side.sign
        for key, held in sorted(sim.broker.tmtool_held.items()):
            if held == 0:
                continue
            sign = 1 if held > 0 else -1
            managed = covered.get(key, 0) * sign
            if managed < abs(held):
                self.fail("no-trade-lost", key,
                          f"{key[0]}: tmtool's orders hold {held} at the broker, open trades cover {covered.get(key, 0)}")
