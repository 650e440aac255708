"""The portfolio and account monitor: strategy and account limits, square-off, the day roll.

The tick path (``watch``) asks for a strategy's evaluation only when its
unrealised P&L leaves the gates its limits allow (``domain.bands.portfolio_gates``);
the rules themselves are the pure ``domain.portfolio``.  A limit that is hit
exits the strategy's (or every) active trade through ``exits`` — this is where
portfolio exit decisions are made — and a daily loss limit halts the strategy
(or the account) until the next trading day.  The trading calendar (square-off
times, the day roll) runs here on the injected clock.  Panic is the kill switch
kept here too: it halts new entries in every strategy, across days and restarts
(the store keeps it), until the user re-arms.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Mapping, Sequence

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.calendar import trading_day
from tmtool.domain.models import AlertCategory, AlertPriority, ExitReason, Trade, TradeStatus
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal, fmt
from tmtool.engine.state import EngineState, StrategyRuntime

KILL_SWITCH_SETTING = "kill_switch"  # the store's setting that holds a panic halt ({"since": epoch seconds})


class RiskMonitor:
    def __init__(self, state: EngineState, journal: Journal, exits: ExitController) -> None:
        self.state = state
        self._journal = journal
        self._exits = exits
        self._squared_off: dict[str, date] = {}
        self._calendar_due = 0.0

    def evaluate_strategy(self, runtime: StrategyRuntime, ts: float) -> None:
        state, journal = self.state, self._journal
        evaluation = portfolio_rules.evaluate_portfolio(runtime.strategy, runtime.state, runtime.unrealised, ts)
        if evaluation is None:
            return
        before = runtime.state
        runtime.state = evaluation.state
        name = runtime.strategy.name
        if (before.trailing_armed, before.trailing_lock, before.halted) != (
            evaluation.state.trailing_armed, evaluation.state.trailing_lock, evaluation.state.halted,
        ):
            state.store.save_portfolio(runtime.state)
        if evaluation.armed_now:
            journal.alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.INFO,
                f"{name}: portfolio trailing lock armed at P&L {evaluation.pnl:+.2f} (lock {fmt(evaluation.state.trailing_lock)})",
                key=f"lock-armed-{name}",
                strategy=name,
            )
        runtime.update_gates()
        state.dirty = True
        if evaluation.exit_reason is None:
            return
        active = [t for t in runtime.trades.values() if t.status is TradeStatus.ACTIVE]
        if evaluation.halt and not before.halted:
            state.store.save_portfolio(runtime.state)
            journal.alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.CRITICAL,
                f"{name}: daily loss limit hit at P&L {evaluation.pnl:+.2f}; exiting all and halting until the next trading day",
                key=f"halt-{name}",
                strategy=name,
            )
        elif active:
            journal.alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.WARNING,
                f"{name}: {evaluation.exit_reason.value} hit at P&L {evaluation.pnl:+.2f}; exiting {len(active)} trade(s)",
                key=f"portfolio-{evaluation.exit_reason.value}-{name}",
                strategy=name,
            )
        for trade in active:
            self._exits.begin_exit(trade, evaluation.exit_reason)

    def check_account(self, ts: float) -> None:
        state = self.state
        if state.account_halted_on == state.day:
            return
        total = state.account_unrealised + state.account_realised_pnl()
        verdict = portfolio_rules.evaluate_account(state.account, total)
        if verdict is None:
            return
        state.account_halted_on = state.day
        self._journal.alert(
            AlertCategory.PORTFOLIO,
            AlertPriority.CRITICAL,
            f"account {verdict.exit_reason.value} reached (P&L {verdict.pnl:+.2f}, limit {verdict.limit:.2f}): exiting everything, no new trades today",
            key="account-limit",
        )
        for runtime in state.strategies.values():
            if not runtime.state.halted:
                runtime.state = portfolio_rules.halt(runtime.state, f"account {verdict.exit_reason.value}", ts)
                state.store.save_portfolio(runtime.state)
        for trade in list(state.trades.values()):
            if trade.status is TradeStatus.ACTIVE:
                self._exits.begin_exit(trade, verdict.exit_reason)

    def exit_many(self, trades: Sequence[Trade], reason: ExitReason) -> list[int]:
        """Exit several trades at once (all orders go out together on the executor's workers)."""
        done = []
        for trade in trades:
            self._exits.begin_exit(trade, reason)
            done.append(trade.id)
        return done

    # ---------------------------------------------------------------- the kill switch

    def engage_kill_switch(self, now: float) -> bool:
        """Halt new entries everywhere until ``rearm`` (persisted); False when already halted."""
        state = self.state
        if state.entries_halted_since is not None:
            return False
        state.entries_halted_since = now
        state.store.save_setting(KILL_SWITCH_SETTING, json.dumps({"since": now}))
        state.dirty = True
        self._journal.alert(
            AlertCategory.SYSTEM,
            AlertPriority.CRITICAL,
            "PANIC: exiting everything; new entries are halted in every strategy until you re-arm (TUI or the API's rearm)",
            key="kill-switch",
        )
        return True

    def rearm(self) -> bool:
        """Lift the panic halt; False when entries were not halted."""
        state = self.state
        if state.entries_halted_since is None:
            return False
        state.entries_halted_since = None
        state.store.save_setting(KILL_SWITCH_SETTING, None)
        state.dirty = True
        self._journal.alert(AlertCategory.SYSTEM, AlertPriority.WARNING, "re-armed: new entries are taken again", key="kill-switch")
        return True

    def restore_kill_switch(self, settings: Mapping[str, str]) -> None:
        """Take a panic halt saved before a restart back (an unreadable one still halts)."""
        text = settings.get(KILL_SWITCH_SETTING)
        if text is None:
            return
        try:
            since = float(json.loads(text)["since"])
        except (ValueError, TypeError, KeyError):
            since = self.state.clock.time()
        self.state.entries_halted_since = since

    # ---------------------------------------------------------------- calendar

    def check_calendar(self) -> float | None:
        """Roll the day and square off strategies when due (at most once a second); returns the
        time it looked at, None when it did not look."""
        state = self.state
        now = state.clock.time()
        if now < self._calendar_due:
            return None
        self._calendar_due = now + 1.0
        today = trading_day(now)
        if today != state.day:
            self._roll_day(today, now)
        for runtime in list(state.strategies.values()):
            strategy = runtime.strategy
            if strategy.square_off_time is None or self._squared_off.get(strategy.name) == today:
                continue
            if portfolio_rules.square_off_due(strategy, now):
                self._squared_off[strategy.name] = today
                active = [t for t in runtime.trades.values() if t.status is TradeStatus.ACTIVE]
                if active:
                    self._journal.alert(
                        AlertCategory.PORTFOLIO,
                        AlertPriority.INFO,
                        f"{strategy.name}: square-off time {strategy.square_off_time:%H:%M}: exiting {len(active)} trade(s)",
                        key=f"square-off-{strategy.name}",
                        strategy=strategy.name,
                    )
                    self.exit_many(active, ExitReason.SQUARE_OFF_TIME)
        return now

    def _roll_day(self, today: date, now: float) -> None:
        state = self.state
        state.day = today
        state.closed_today.clear()
        state.reset_retired_pnl()
        for runtime in state.strategies.values():
            runtime.state = portfolio_rules.roll_day(runtime.state, now)
            runtime.pnl_series.clear()
            state.store.save_portfolio(runtime.state)
            runtime.update_gates()
        self._journal.alert(AlertCategory.SYSTEM, AlertPriority.INFO, f"new trading day {today.isoformat()}: daily limits reset", key="day-roll")

    def sample_pnl(self) -> None:
        state = self.state
        state.schedule(state.settings.pnl_sample_interval, self.sample_pnl)
        for runtime in state.strategies.values():
            runtime.pnl_series.append(round(runtime.state.realised_pnl + runtime.unrealised, 2))
            runtime.track_extremes()
            if runtime.extremes_unsaved:
                runtime.extremes_unsaved = False
                state.store.save_portfolio(runtime.state)
        state.dirty = True
