"""The exit controller: where exit decisions are carried out.

The decision to exit (a stop or target crossed on a tick in ``watch``, a
portfolio limit in ``risk``, a command) arrives at ``begin_exit``, which moves
the trade to EXITING.  ``drive_exit`` then sends what the trade still needs,
capped by what the broker's net position on (symbol, exchange, product) holds in
the trade's direction after exits already in flight there (``positions``),
reading ``openposition`` only when the cache says the position is too small.
Orders are split at the freeze quantity and go out through ``orders``.  A
rejected exit is retried with backoff (``exit_max_attempts``), then the trade is
EXIT_FAILED; an expired session parks exits until it is back; manual, panic and
strategy-delete exits escalate past a waiting or failed exit.  Partial targets
send part of a trade.  The trade's end (closed, closed outside tmtool, entry
cancelled) is recorded here too.
"""

from __future__ import annotations

import uuid

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.fills import realised_pnl, running_average
from tmtool.domain.models import (
    AlertCategory,
    AlertPriority,
    ExitReason,
    OrderPurpose,
    OrderRecord,
    OrderState,
    PriceType,
    Trade,
    TradeStatus,
)
from tmtool.domain.reconcile import PositionKey, position_key, split_quantity
from tmtool.engine.books import TradeIndex
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.journal import Journal
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.orders import OrderManager
from tmtool.engine.positions import KeyState, PositionCache
from tmtool.engine.state import EngineState, ExitWait, StrategyRuntime

ESCALATING = frozenset({ExitReason.MANUAL, ExitReason.PANIC, ExitReason.STRATEGY_DELETED})
_EXITABLE = frozenset({TradeStatus.PENDING_ENTRY, TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED})


class ExitController:
    def __init__(
        self, state: EngineState, journal: Journal, positions: PositionCache, index: TradeIndex, orders: OrderManager
    ) -> None:
        self.state = state
        self._journal = journal
        self._positions = positions
        self._index = index
        self._orders = orders
        # Trade id -> (quantity, value) of the fills of its whole-trade exit (not partial targets):
        # the closing line reports the price the exit itself filled at, not the average of every exit.
        self._closing_fills: dict[int, tuple[int, float]] = {}

    # ---------------------------------------------------------------- the decision

    def begin_exit(self, trade: Trade, reason: ExitReason, trigger_price: float | None = None, price: float | None = None) -> str:
        """Decide to exit a whole trade; returns what happened (for command replies).

        A trade already EXITING ignores further decisions, except that a manual or
        panic exit re-drives an exit that is waiting with no order live (never a
        second order while one may still be live).  EXIT_FAILED trades retry only
        on a manual or panic exit.
        """
        journal = self._journal
        status = trade.status
        if status not in _EXITABLE:
            return f"trade is {status.value}"
        runtime = self.state.trade_runtime(trade.id)
        if status is TradeStatus.PENDING_ENTRY:
            runtime.exit_on_fill = reason
            if not self._orders.cancel_entries(trade):
                self.cancel_entry(trade, f"exit requested ({reason.value}) before the entry was sent")
                return "entry cancelled"
            return "cancelling the unfilled entry: whatever filled exits once the broker confirms the cancel"
        if status is TradeStatus.EXITING:
            if reason in ESCALATING and not self._orders.has_live(trade.id):
                runtime.exit_wait = None
                self.drive_exit(trade)
                return "exit re-driven"
            return "already exiting"
        if status is TradeStatus.EXIT_FAILED:
            if reason not in ESCALATING:
                return "exit failed earlier: waiting for a manual exit"
            runtime.exit_attempts = 0
            journal.set_status(trade, TradeStatus.EXITING, f"retry requested ({reason.value})")
            journal.save_trade(trade)
            self.drive_exit(trade)
            return "exit retried"
        self.state.sync_price(trade)
        trade.exit_reason = reason
        trade.exit_trigger_price = trigger_price
        journal.set_status(trade, TradeStatus.EXITING, reason.value)
        journal.event(trade, "EXIT_INTENT", "exit_reason", "", reason.value, reason.value, price if price is not None else trade.last_price or None)
        journal.save_trade(trade)
        self._index.refresh_trade_band(trade)
        runtime.exit_attempts = 0
        self.drive_exit(trade)
        if self._orders.cancel_entries(trade):  # the unfilled rest of the entry must not re-open what exits
            return "exit sent; cancelling the unfilled rest of the entry"
        return "exit sent"

    # ---------------------------------------------------------------- how much, and when

    def drive_exit(self, trade: Trade) -> None:
        """Send what the trade still needs to exit, within what the broker position holds."""
        if trade.status is not TradeStatus.EXITING:
            return
        runtime = self.state.trade_runtime(trade.id)
        if runtime.exit_wait is not None:
            return
        needed = trade.quantity - self._orders.live_exit_quantity(trade)
        if needed <= 0:
            if trade.quantity <= 0 and not self._orders.has_live(trade.id):
                self.close_trade(trade)
            return
        if self.state.broker_state == "SESSION_EXPIRED":
            runtime.exit_wait = ExitWait.PARKED
            return
        pos_key = position_key(trade)
        key_state = self._positions.key(pos_key)
        capacity = self._positions.capacity(trade, key_state)
        if capacity is not None and capacity >= needed:
            self._send_exit(trade, needed)
            return
        if key_state.exits_in_flight:
            # Exit fills in flight on this key may explain the difference: decide once they
            # settle, or after ``settle_wait`` at the latest (an exit may sit unfilled).
            self._wait_for_settle(trade.id, key_state)
            return
        self._confirm_position(trade, pos_key, forced=False)

    def _wait_for_settle(self, trade_id: int, key_state: KeyState) -> None:
        self.state.trade_runtime(trade_id).exit_wait = ExitWait.SETTLING
        key_state.waiting.add(trade_id)
        self.state.schedule(self.state.settings.settle_wait, self._stop_waiting, trade_id)

    def _confirm_position(self, trade: Trade, pos_key: PositionKey, forced: bool) -> None:
        """Read the broker's position for this exit (the slow path) before sending less than the trade."""
        key_state = self._positions.key(pos_key)
        self.state.trade_runtime(trade.id).exit_wait = ExitWait.CONFIRMING
        self.state.job(JobKind.EXIT_POSITION, (trade.id, pos_key, key_state.generation, forced), self.state.broker.open_position,
                       strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product.value)

    def _stop_waiting(self, trade_id: int) -> None:
        trade = self.state.trades.get(trade_id)
        if trade is None:
            return
        runtime = self.state.trade_runtime(trade_id)
        if runtime.exit_wait is not ExitWait.SETTLING:
            return
        pos_key = position_key(trade)
        self._positions.key(pos_key).waiting.discard(trade_id)
        runtime.exit_wait = None
        self._confirm_position(trade, pos_key, forced=True)

    def on_exit_position(self, result: JobResult) -> None:
        trade_id, pos_key, generation, forced = result.context
        trade = self.state.trades.get(trade_id)
        if trade is None:
            return
        runtime = self.state.trade_runtime(trade_id)
        if runtime.exit_wait is not ExitWait.CONFIRMING:
            return
        runtime.exit_wait = None
        if result.error is not None:
            if result.error.kind == "auth":
                runtime.exit_wait = ExitWait.PARKED
                return
            runtime.exit_wait = ExitWait.RETRY
            self.state.schedule(self.state.settings.exit_retry_backoff, self._retry_exit, trade_id)
            return
        key_state = self._positions.key(pos_key)
        if not forced and key_state.exits_in_flight:
            self._wait_for_settle(trade_id, key_state)
            return
        if key_state.generation != generation and not forced:  # the position changed while we read it: read again
            self.drive_exit(trade)
            return
        # A forced read may predate fills of exits still in flight; counting those exits as
        # well can only make the capacity smaller (never an overshoot).
        key_state.net = int(result.value)
        if trade.status is not TradeStatus.EXITING:
            return
        needed = trade.quantity - self._orders.live_exit_quantity(trade)
        capacity = self._positions.capacity(trade, key_state) or 0
        if capacity >= needed:
            self._send_exit(trade, needed)
            return
        if capacity <= 0:
            self.close_externally(trade, f"exit found no position at the broker (net {key_state.net})")
            return
        self.shrink(trade, trade.quantity - (needed - capacity), f"broker holds only {capacity} for this exit (net {key_state.net})")
        self._send_exit(trade, capacity)

    def _retry_exit(self, trade_id: int) -> None:
        trade = self.state.trades.get(trade_id)
        if trade is None:
            return
        runtime = self.state.trade_runtime(trade_id)
        if runtime.exit_wait is ExitWait.RETRY:
            runtime.exit_wait = None
        self.drive_exit(trade)

    def settle_key(self, pos_key: PositionKey) -> None:
        """A key has no exits in flight any more: exits that waited on it go now."""
        key_state = self._positions.keys.get(pos_key)
        if key_state is None or key_state.exits_in_flight or not key_state.waiting:
            return
        waiting, key_state.waiting = key_state.waiting, set()
        for trade_id in sorted(waiting):
            runtime = self.state.trade_runtimes.get(trade_id)
            if runtime is not None and runtime.exit_wait is ExitWait.SETTLING:
                runtime.exit_wait = None
            trade = self.state.trades.get(trade_id)
            if trade is not None:
                self.drive_exit(trade)

    def resume_parked(self) -> None:
        """The broker session is back: exits parked for it go now."""
        parked = [tid for tid, runtime in self.state.trade_runtimes.items() if runtime.exit_wait is ExitWait.PARKED]
        for trade_id in parked:
            self.state.trade_runtimes[trade_id].exit_wait = None
            trade = self.state.trades.get(trade_id)
            if trade is not None:
                self.drive_exit(trade)

    # ---------------------------------------------------------------- sending

    def _send_exit(self, trade: Trade, quantity: int, reason: ExitReason | None = None) -> None:
        state = self.state
        runtime = state.trade_runtime(trade.id)
        runtime.exit_attempts += 1
        attempt = runtime.exit_attempts
        instrument = state.instrument_for(trade)
        freeze = instrument.freeze_quantity
        settings = state.runtime(trade.strategy).strategy.exit_order
        price_type, price = PriceType.MARKET, 0.0
        if settings.price_type is PriceType.LIMIT:
            price_type, price = PriceType.LIMIT, self._orders.marketable_exit_price(trade, settings.protection_percent)
        for piece in split_quantity(quantity, freeze, trade.lot_size):
            record = OrderRecord(
                key=f"x-{trade.id}-{uuid.uuid4().hex[:10]}",
                trade_id=trade.id,
                purpose=OrderPurpose.EXIT,
                action=trade.side.exit_action,
                quantity=piece,
                state=OrderState.INTENT,
                reason=reason or trade.exit_reason,
                price_type=price_type,
                price=price,
                attempt=attempt,
                created_at=state.clock.time(),
                updated_at=state.clock.time(),
            )
            self._orders.track(record, trade)
            self._journal.event(trade, "ORDER", "exit", "", f"{record.action} {piece}", record.reason.value if record.reason else "", price or None)
            self._orders.dispatch(record, trade)

    def send_partial_exit(self, trade: Trade, quantity: int, trigger: float) -> None:
        key_state = self._positions.key(position_key(trade))
        capacity = self._positions.capacity(trade, key_state)
        quantity = min(quantity, trade.quantity - self._orders.live_exit_quantity(trade))
        if quantity <= 0:
            return
        if capacity is not None and capacity < quantity:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: partial target {trigger:.2f} skipped: the broker position holds only {capacity}",
                trade=trade,
            )
            return
        if self.state.broker_state == "SESSION_EXPIRED":
            return
        self._send_exit(trade, quantity, reason=ExitReason.PARTIAL_TARGET)

    # ---------------------------------------------------------------- what the order manager reports

    def on_exit_fill(self, trade: Trade, quantity: int, price: float, reason: ExitReason | None) -> StrategyRuntime | None:
        """Book an exit fill; returns the strategy whose realised P&L changed (for ``risk``)."""
        quantity = min(quantity, trade.quantity)
        if quantity <= 0:
            return None
        state, journal = self.state, self._journal
        previous = trade.exited_quantity
        trade.exit_price = running_average(trade.exit_price or 0.0, previous, price, quantity)
        trade.exited_quantity = previous + quantity
        trade.quantity -= quantity
        pnl = realised_pnl(trade.side, trade.entry_price, price, quantity)
        trade.realised_pnl += pnl
        trade.last_price = price
        trade.updated_at = state.clock.time()
        journal.event(trade, "EXIT_FILL", "quantity", trade.quantity + quantity, trade.quantity, reason.value if reason else "", price)
        if reason is not ExitReason.PARTIAL_TARGET:
            filled, value = self._closing_fills.get(trade.id, (0, 0.0))
            self._closing_fills[trade.id] = (filled + quantity, value + price * quantity)
        journal.save_trade(trade)
        runtime = state.runtime(trade.strategy)
        runtime.state = portfolio_rules.record_realised(runtime.state, pnl, state.clock.time())
        state.store.save_portfolio(runtime.state)
        if reason is ExitReason.PARTIAL_TARGET:
            journal.alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: partial target filled {quantity} at {price:.2f}, P&L {pnl:+.2f}; {trade.quantity} left",
                trade=trade,
            )
        self._index.rebuild_trade_book(trade)
        runtime.update_gates()
        return runtime

    def after_exit_final(self, trade: Trade, live: LiveOrder, order_state: OrderState) -> None:
        record = live.record
        settings = self.state.settings
        if order_state in (OrderState.REJECTED, OrderState.CANCELLED):
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: exit order {order_state.value.lower()} "
                f"(attempt {record.attempt} of {settings.exit_max_attempts}): {record.message or 'no reason given'}",
                key=f"exit-rejected-{trade.id}",
                trade=trade,
            )
        if self._orders.has_live(trade.id):
            return  # other pieces still live: decide when the last one is final
        if trade.status is TradeStatus.ACTIVE:
            if trade.quantity <= 0:
                trade.exit_reason = trade.exit_reason or ExitReason.TARGET
                self._journal.set_status(trade, TradeStatus.EXITING, "partial exits took the whole quantity")
                self.close_trade(trade)
            return
        if trade.status is not TradeStatus.EXITING:
            return
        if trade.quantity <= 0:
            self.close_trade(trade)
            return
        runtime = self.state.trade_runtime(trade.id)
        if runtime.exit_wait is not None:
            return  # parked for the session, or a retry is already scheduled
        if order_state is OrderState.COMPLETE:
            self.drive_exit(trade)  # a piece filled short of the trade: send the rest
            return
        attempts = runtime.exit_attempts
        if attempts >= settings.exit_max_attempts:
            self.exit_failed(trade, f"{attempts} exit attempts failed; last: {record.message or order_state.value}")
            return
        runtime.exit_wait = ExitWait.RETRY
        delay = settings.exit_retry_backoff * (2 ** max(0, attempts - 1))
        self.state.schedule(delay, self._retry_exit, trade.id)

    def exit_not_sent(self, trade: Trade, parked: bool) -> None:
        """An exit order surely did not go out for no fault of the exit: the attempt is not counted."""
        runtime = self.state.trade_runtime(trade.id)
        if parked:
            runtime.exit_wait = ExitWait.PARKED
        runtime.exit_attempts = max(0, runtime.exit_attempts - 1)

    def unresolved(self, trade: Trade, live: LiveOrder) -> None:
        """An ambiguous order could not be proven absent: stop and ask a human (never resend blindly)."""
        runtime = self.state.trade_runtime(trade.id)
        runtime.exit_wait = ExitWait.UNRESOLVED
        # The row stays UNKNOWN in the ledger (looked up again at the next start); in memory it
        # is released so that a human's explicit retry can go ahead.
        self._orders.finish(live, OrderState.UNKNOWN, "outcome never proven: check the broker's order book")
        runtime.exit_wait = None
        if trade.status is TradeStatus.EXITING and not self._orders.has_live(trade.id):
            self.exit_failed(trade, "an exit order's outcome could not be proven; check the broker's order book")

    # ---------------------------------------------------------------- how a trade ends

    def shrink(self, trade: Trade, new_quantity: int, why: str) -> None:
        old = trade.quantity
        trade.quantity = max(0, new_quantity)
        trade.updated_at = self.state.clock.time()
        self._journal.event(trade, "RECONCILE", "quantity", old, trade.quantity, why)
        self._journal.save_trade(trade)
        self._journal.alert(
            AlertCategory.TRADE,
            AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol}: quantity {old} -> {trade.quantity}: {why}",
            trade=trade,
        )
        self._index.rebuild_trade_book(trade)

    def _closing_price_text(self, trade: Trade) -> str:
        """`` filled at 800.00`` (the exit's own fills), with the average of all exits when partials came first."""
        filled, value = self._closing_fills.pop(trade.id, (0, 0.0))
        if filled <= 0:
            return f" at {trade.exit_price:.2f}" if trade.exit_price else ""
        text = f" filled at {value / filled:.2f}"
        if filled < trade.exited_quantity and trade.exit_price:
            text += f" (all exits average {trade.exit_price:.2f})"
        return text

    def close_externally(self, trade: Trade, why: str) -> None:
        self._closing_fills.pop(trade.id, None)
        journal = self._journal
        old = trade.quantity
        trade.quantity = 0
        trade.closed_at = self.state.clock.time()
        self.state.sync_price(trade)
        journal.event(trade, "RECONCILE", "quantity", old, 0, why)
        journal.set_status(trade, TradeStatus.CLOSED_EXTERNALLY, why)
        trade.exit_reason = ExitReason.CLOSED_EXTERNALLY
        journal.save_trade(trade)
        journal.alert(
            AlertCategory.TRADE,
            AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol} {trade.side.value} {old}: closed outside tmtool ({why})",
            key=f"external-{trade.id}",
            trade=trade,
        )
        self._index.remove_trade(trade)

    def close_trade(self, trade: Trade) -> None:
        journal = self._journal
        trade.closed_at = self.state.clock.time()
        self.state.sync_price(trade)
        journal.set_status(trade, TradeStatus.CLOSED, trade.exit_reason.value if trade.exit_reason else "")
        journal.save_trade(trade)
        reason = trade.exit_reason.value if trade.exit_reason else "EXIT"
        exit_price = self._closing_price_text(trade)
        journal.alert(
            AlertCategory.TRADE,
            AlertPriority.INFO if trade.realised_pnl >= 0 else AlertPriority.WARNING,
            f"#{trade.id} {trade.symbol} {trade.side.value} closed: {reason}{exit_price}, P&L {trade.realised_pnl:+.2f}",
            trade=trade,
        )
        self._index.remove_trade(trade)

    def exit_failed(self, trade: Trade, why: str) -> None:
        self._journal.set_status(trade, TradeStatus.EXIT_FAILED, why)
        self._journal.save_trade(trade)
        self._journal.alert(
            AlertCategory.TRADE,
            AlertPriority.CRITICAL,
            f"#{trade.id} {trade.symbol} {trade.side.value} {trade.quantity}: EXIT FAILED ({why}). "
            "Act now: exit it in the broker or retry the exit.",
            key=f"exit-failed-{trade.id}",
            trade=trade,
        )
        self._index.rebuild_trade_book(trade)

    def cancel_entry(self, trade: Trade, why: str) -> None:
        """A trade whose entry never filled ends CANCELLED."""
        trade.closed_at = self.state.clock.time()
        self._journal.set_status(trade, TradeStatus.CANCELLED, why)
        self._journal.save_trade(trade)
        self._journal.alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id} {trade.symbol}: {why}", trade=trade)
        self._index.remove_trade(trade)
