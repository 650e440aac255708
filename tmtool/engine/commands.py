"""The command handlers: what the TUI, the control API and the CLI ask of the engine.

Each command class (``domain.commands``) has one handler here, run on the
engine thread; its ``Future`` resolves to ``Accepted`` or ``Denied``.  Handlers
validate and then hand the work to the controllers (``entries``, ``exits``,
``risk``, ``reconciler``); a level change re-evaluates the trade's book at the
last price through ``watch`` at once.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import replace
from typing import Any, Callable

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain import rules
from tmtool.domain.commands import (
    UNSET,
    AcknowledgeAlerts,
    Accepted,
    CreateTrade,
    DeleteStrategy,
    Denied,
    ExitAll,
    ExitTrade,
    ExitTrades,
    ModifyTrade,
    PauseTrade,
    Rearm,
    Reconcile,
    ResumeTrade,
    SaveStrategy,
)
from tmtool.domain.models import (
    MANUAL_STRATEGY,
    AlertCategory,
    AlertPriority,
    ExitReason,
    Trade,
    TradeRisk,
    TradeStatus,
    round_stop,
    round_target,
)
from tmtool.domain.validation import validate_modify_trade, validate_strategy
from tmtool.engine.books import TradeIndex
from tmtool.engine.entries import EntryController
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal, fmt
from tmtool.engine.orders import OrderManager
from tmtool.engine.reconciler import Reconciler
from tmtool.engine.risk import RiskMonitor
from tmtool.engine.state import EngineState, StrategyRuntime
from tmtool.engine.watch import Watch

log = logging.getLogger(__name__)


class CommandHandlers:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        index: TradeIndex,
        orders: OrderManager,
        exits: ExitController,
        entries: EntryController,
        risk: RiskMonitor,
        watch: Watch,
        reconciler: Reconciler,
    ) -> None:
        self.state = state
        self._journal = journal
        self._index = index
        self._orders = orders
        self._exits = exits
        self._entries = entries
        self._risk = risk
        self._watch = watch
        self._reconciler = reconciler
        self._handlers: dict[type, Callable[[Any, Future], None]] = {
            CreateTrade: entries.create_trade,
            ModifyTrade: self._modify,
            ExitTrade: self._exit,
            ExitTrades: self._exit_trades,
            ExitAll: self._exit_all,
            Rearm: self._rearm,
            PauseTrade: lambda command, future: self._set_paused(command.trade_id, True, future),
            ResumeTrade: lambda command, future: self._set_paused(command.trade_id, False, future),
            SaveStrategy: self._save_strategy,
            DeleteStrategy: self._delete_strategy,
            AcknowledgeAlerts: self._acknowledge,
            Reconcile: lambda command, future: reconciler.reconcile_now(future),
        }

    def handle(self, command: object, future: Future) -> None:
        try:
            handler = self._handlers.get(type(command))
            if handler is None:
                future.set_result(Denied("UNKNOWN_COMMAND", f"{type(command).__name__} is not an engine command"))
                return
            handler(command, future)
        except Exception as exc:
            log.exception("command %s failed", type(command).__name__)
            if not future.done():
                future.set_result(Denied("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"))

    def _open_trade(self, trade_id: int, future: Future) -> Trade | None:
        trade = self.state.trades.get(trade_id)
        if trade is None:
            future.set_result(Denied("UNKNOWN_TRADE", f"no open trade #{trade_id}"))
        return trade

    def _modify(self, command: ModifyTrade, future: Future) -> None:
        state, journal = self.state, self._journal
        trade = self._open_trade(command.trade_id, future)
        if trade is None:
            return
        if trade.status not in (TradeStatus.ACTIVE, TradeStatus.PENDING_ENTRY):
            future.set_result(Denied("TRADE_NOT_ACTIVE", f"trade #{trade.id} is {trade.status.value}"))
            return
        state.sync_price(trade)
        denial = validate_modify_trade(command, trade)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        if trade.status is TradeStatus.PENDING_ENTRY:
            plan = state.trade_runtime(trade.id).entry_plan
            if plan is None:
                future.set_result(Denied("TRADE_NOT_ACTIVE", f"trade #{trade.id} has no pending entry plan"))
                return
            fields = ("stop_loss", "target", "trailing", "partial_targets", "breakeven_after")
            changes = {name: getattr(command, name) for name in fields if getattr(command, name) is not UNSET}
            plan.command = replace(plan.command, **changes)
            future.set_result(Accepted("levels set for when the entry fills", trade_id=trade.id))
            return
        now = state.clock.time()
        if command.stop_loss is not UNSET:
            new = None if command.stop_loss is None else round_stop(float(command.stop_loss), trade.side, trade.tick_size)  # type: ignore[arg-type]
            journal.event(trade, "LEVEL", "stop_loss", trade.stop_loss, new, "manual")
            trade.stop_loss = new
        if command.target is not UNSET:
            new = None if command.target is None else round_target(float(command.target), trade.side, trade.tick_size)  # type: ignore[arg-type]
            journal.event(trade, "LEVEL", "target", trade.target, new, "manual")
            trade.target = new
        if command.trailing is not UNSET:
            new_stop = rules.retrail(trade, command.trailing)  # type: ignore[arg-type]
            journal.event(trade, "LEVEL", "trailing_stop", trade.trailing_stop, new_stop, "manual")
            trade.trailing = command.trailing  # type: ignore[assignment]
            trade.trailing_stop = new_stop
        if command.partial_targets is not UNSET:
            partials = command.partial_targets or ()
            levels = rules.initial_levels(
                trade.side, trade.entry_price, TradeRisk(partial_targets=partials), trade.tick_size, trade.quantity, trade.lot_size  # type: ignore[arg-type]
            )
            journal.event(trade, "LEVEL", "partial_levels", len(trade.partial_levels), len(levels.partial_levels), "manual")
            trade.partial_levels = levels.partial_levels
        if command.breakeven_after is not UNSET and command.breakeven_after != trade.breakeven_after:
            old_text = trade.breakeven_after.describe() if trade.breakeven_after is not None else ""
            new_text = command.breakeven_after.describe() if command.breakeven_after is not None else ""
            journal.event(trade, "LEVEL", "breakeven_after", old_text, new_text, "manual")
            trade.breakeven_after = command.breakeven_after
            trade.breakeven_done = False  # a new distance arms breakeven afresh; it only ever tightens the stop
            book = state.books.get(trade.instrument_key)
            level = None if book is not None and book.degraded else rules.breakeven_stop(trade)  # stale prices move nothing
            if level is not None:
                self._watch.apply_level_change(trade, rules.LevelChange("stop_loss", trade.stop_loss, level, "BREAKEVEN"), trade.last_price)
        trade.updated_at = now
        journal.save_trade(trade)
        book = state.books.get(trade.instrument_key)
        if book is not None:
            self._index.refresh_band(book)
        journal.alert(
            AlertCategory.TRADE,
            AlertPriority.INFO,
            f"#{trade.id} {trade.symbol}: levels changed (stop {fmt(trade.effective_stop)}, target {fmt(trade.target)})",
            key=f"levels-{trade.id}",
            trade=trade,
        )
        future.set_result(Accepted("levels changed", trade_id=trade.id))
        if book is not None and book.price > 0:
            self._watch.evaluate_book(book, book.price, now)

    def _exit(self, command: ExitTrade, future: Future) -> None:
        trade = self._open_trade(command.trade_id, future)
        if trade is None:
            return
        if trade.status is TradeStatus.EXITING and self._orders.has_live(trade.id):
            future.set_result(Denied("EXIT_IN_FLIGHT", f"trade #{trade.id} already has an exit order in flight"))
            return
        outcome = self._exits.begin_exit(trade, command.reason)
        future.set_result(Accepted(outcome, trade_id=trade.id))

    def _exit_trades(self, command: ExitTrades, future: Future) -> None:
        trades = self.state.trades
        chosen = [trades[t] for t in command.trade_ids if t in trades]
        missing = [t for t in command.trade_ids if t not in trades]
        done = self._risk.exit_many(chosen, command.reason)
        message = f"exiting {len(done)} trade(s)" + (f"; not open: {missing}" if missing else "")
        future.set_result(Accepted(message, trade_ids=tuple(done)))

    def _exit_all(self, command: ExitAll, future: Future) -> None:
        state = self.state
        if command.panic and command.strategy is not None:
            future.set_result(Denied("INVALID_PANIC_SCOPE", "panic exits every strategy and halts all entries: give no strategy"))
            return
        if command.strategy is not None and command.strategy not in state.strategies:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        if command.panic:
            self._risk.engage_kill_switch(state.clock.time())  # before the exits: nothing new enters meanwhile
        trades = [t for t in state.trades.values() if command.strategy is None or t.strategy == command.strategy]
        done = self._risk.exit_many(trades, command.reason)
        scope = f"strategy {command.strategy}" if command.strategy else "every strategy"
        self._journal.alert(AlertCategory.PORTFOLIO, AlertPriority.WARNING, f"{command.reason.value}: exiting {len(done)} trade(s) of {scope}", key=f"exit-all-{command.strategy}")
        future.set_result(Accepted(f"exiting {len(done)} trade(s)", trade_ids=tuple(done)))

    def _rearm(self, command: Rearm, future: Future) -> None:
        lifted = self._risk.rearm()
        future.set_result(Accepted("re-armed: new entries are taken again" if lifted else "entries were not halted"))

    def _set_paused(self, trade_id: int, paused: bool, future: Future) -> None:
        trade = self._open_trade(trade_id, future)
        if trade is None:
            return
        if trade.paused != paused:
            trade.paused = paused
            self._journal.event(trade, "STATUS", "paused", not paused, paused)
            self._journal.save_trade(trade)
            book = self.state.books.get(trade.instrument_key)
            if book is not None:
                self._index.refresh_band(book)
                if not paused and book.price > 0:
                    self._watch.evaluate_book(book, book.price, self.state.clock.time())
        future.set_result(Accepted("paused" if paused else "resumed", trade_id=trade.id))

    def _save_strategy(self, command: SaveStrategy, future: Future) -> None:
        state = self.state
        strategy = command.strategy
        denial = validate_strategy(strategy)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        runtime = state.strategies.get(strategy.name)
        if runtime is None:
            runtime = state.strategies[strategy.name] = StrategyRuntime(strategy, portfolio_rules.new_day_state(strategy.name, state.clock.time()))
            state.store.save_portfolio(runtime.state)
        else:
            runtime.strategy = strategy
        state.store.save_strategy(strategy)
        runtime.update_gates()
        state.dirty = True
        future.set_result(Accepted(f"strategy {strategy.name} saved"))

    def _delete_strategy(self, command: DeleteStrategy, future: Future) -> None:
        state = self.state
        runtime = state.strategies.get(command.name)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.name!r}"))
            return
        if command.name == MANUAL_STRATEGY:
            future.set_result(Denied("PROTECTED", "the manual strategy holds hand-entered trades and cannot be deleted"))
            return
        open_trades = list(runtime.trades.values())
        if open_trades and command.open_trades == "exit":
            runtime.deleting = True
            done = self._risk.exit_many(open_trades, ExitReason.STRATEGY_DELETED)
            future.set_result(Accepted(f"exiting {len(done)} trade(s); the strategy is deleted once they close", trade_ids=tuple(done)))
            return
        if open_trades and command.open_trades == "move":
            target = state.strategies.get(command.move_to or "")
            if target is None or target is runtime:
                future.set_result(Denied("UNKNOWN_STRATEGY", f"cannot move trades to {command.move_to!r}"))
                return
            for trade in open_trades:
                runtime.trades.pop(trade.id, None)
                trade.strategy = target.strategy.name
                target.trades[trade.id] = trade
                self._journal.event(trade, "STATUS", "strategy", command.name, target.strategy.name, "strategy deleted")
                self._journal.save_trade(trade)
                self._index.rebuild_trade_book(trade)
            self._index.recompute_unrealised(target)
        elif open_trades:
            future.set_result(
                Denied("HAS_OPEN_TRADES", f"strategy {command.name!r} has {len(open_trades)} open trade(s): exit or move them")
            )
            return
        self._index.finish_strategy_delete(runtime)
        future.set_result(Accepted(f"strategy {command.name} deleted"))

    def _acknowledge(self, command: AcknowledgeAlerts, future: Future) -> None:
        changed = self._journal.acknowledge(command.alert_ids, command.dismiss)
        future.set_result(Accepted(f"{changed} alert(s) acknowledged"))
