"""The exit controller: where exit decisions are carried out.

The decision to exit (a stop or target crossed on a tick in ``watch``, a
portfolio limit in ``risk``, a command) arrives at ``begin_exit``, which moves
the trade to EXITING.  ``drive_exit`` then sends what the trade still needs
through the order manager's ``place_exit``, the one place that caps an exit
reduce-only (``orders.OrderManager.exit_room``: the broker's net position in the
trade's direction less every working order that closes it), reading
``openposition`` when the cache says the position is too small or may be stale
(no order-update stream: ``_cache_is_current``).  While an
exit of ours on the position has an unknown outcome the exit waits, visibly
(``ExitWait.UNKNOWN_ORDER``), and goes once the order is found or proven absent.  A
rejected exit is retried with backoff (``exit_max_attempts``), then the trade is
EXIT_FAILED; an expired session parks exits until it is back; manual, panic and
strategy-delete exits escalate past a waiting or failed exit.  Partial targets
send part of a trade.  The trade's end (closed, closed outside tmtool, entry
cancelled) is recorded here too.
"""

from __future__ import annotations

import logging

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.fills import realised_pnl, running_average
from tmtool.domain.models import (
    AlertCategory,
    AlertPriority,
    ExitReason,
    OrderState,
    Trade,
    TradeStatus,
)
from tmtool.domain.broker import OrderInfo
from tmtool.domain.evidence import ExitRoom
from tmtool.domain.reconcile import PositionKey, position_key
from tmtool.engine.books import TradeIndex
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.journal import Journal
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.orders import OrderManager
from tmtool.engine.positions import KeyState, PositionCache
from tmtool.engine.state import EngineState, ExitWait, StrategyRuntime

ESCALATING = frozenset({ExitReason.MANUAL, ExitReason.PANIC, ExitReason.STRATEGY_DELETED})
_EXITABLE = frozenset({TradeStatus.PENDING_ENTRY, TradeStatus.ACTIVE, TradeStatus.EXITING, TradeStatus.EXIT_FAILED})

log = logging.getLogger(__name__)


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
        room = self._orders.exit_room(trade)
        if room is not None and room.blocked_by_unknown:
            self._wait_for_unknown(trade, key_state)
            return
        if room is not None and room.quantity >= needed and self._cache_is_current(key_state):
            self._send_exit(trade, needed)
            return
        if key_state.exits_in_flight:
            # Exit fills in flight on this key may explain the difference: decide once they
            # settle, or after ``settle_wait`` at the latest (an exit may sit unfilled).
            self._wait_for_settle(trade.id, key_state)
            return
        self._confirm_position(trade, pos_key, forced=False)

    def _cache_is_current(self, key_state: KeyState) -> bool:
        """Whether an exit may be sized from the cached net position without reading it first.

        Only while the order-update stream flows and the net was read since it last started or
        stopped: the stream then carries every order on the account, ours and those placed in the
        broker's own app, so the cache is current and a stop costs no REST round trip (the normal
        case).  Without the stream a close outside tmtool reaches the cache only with the next
        positionbook read; an exit sized from it could sell what is no longer held and reverse the
        position, so every exit then reads ``openposition`` first (``_confirm_position``) and a
        second exit on the key waits for the first to settle and reads again.  Polling the
        positionbook instead would still leave a window between polls and cost a read per
        interval for every key, where this costs one read per exit and only without the stream.
        """
        return key_state.confirmed and self.state.feed_status.order_updates_flowing

    def order_updates_changed(self) -> None:
        """The order-update stream started or stopped flowing: closes outside tmtool may have been
        missed meanwhile, so no cached net is trusted for an exit until it is read again."""
        self._positions.unconfirm_all()

    def _wait_for_unknown(self, trade: Trade, key_state: KeyState) -> None:
        """An exit of ours on the position has an unknown outcome: this exit waits until it is found
        or proven absent (``unblock_key``), never sent beside it."""
        runtime = self.state.trade_runtime(trade.id)
        if runtime.exit_wait is not ExitWait.UNKNOWN_ORDER:
            log.info("exit #%s waits: an exit on %s has an unknown outcome", trade.id, trade.symbol)
            self._journal.event(trade, "ORDER", "exit_wait", "", ExitWait.UNKNOWN_ORDER.value,
                                "an exit on this position has an unknown outcome")
        runtime.exit_wait = ExitWait.UNKNOWN_ORDER
        key_state.waiting.add(trade.id)

    def _wait_for_settle(self, trade_id: int, key_state: KeyState) -> None:
        self.state.trade_runtime(trade_id).exit_wait = ExitWait.SETTLING
        key_state.waiting.add(trade_id)
        self.state.schedule(self.state.settings.settle_wait, self._stop_waiting, trade_id)

    def _confirm_position(self, trade: Trade, pos_key: PositionKey, forced: bool, with_orders: bool = False) -> None:
        """Read the broker's position for this exit (the slow path) before sending less than the trade.

        ``with_orders``: the exit waits on others' working orders, so the order book is read
        too — first, so that an order of theirs that fills between the two reads still counts
        against the room (the stream's word that it went may never come: a reconnect or a
        dropped frame must not leave the exit waiting for ever).
        """
        key_state = self._positions.key(pos_key)
        self.state.trade_runtime(trade.id).exit_wait = ExitWait.CONFIRMING
        broker = self.state.broker
        context = (trade.id, pos_key, key_state.generation, key_state.foreign_generation, forced,
                   self._orders.order_book_mark() if with_orders else None)
        kwargs = dict(strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product.value)
        if not with_orders:
            self.state.job(JobKind.EXIT_POSITION, context, broker.open_position, **kwargs)
            return

        def read() -> tuple[list[OrderInfo], int]:
            orders = broker.order_book()
            return orders, broker.open_position(**kwargs)

        self.state.job(JobKind.EXIT_POSITION, context, read)

    def _stop_waiting(self, trade_id: int) -> None:
        trade = self.state.trades.get(trade_id)
        if trade is None:
            return
        runtime = self.state.trade_runtime(trade_id)
        if runtime.exit_wait not in (ExitWait.SETTLING, ExitWait.FOREIGN_ORDERS):
            return
        on_foreign = runtime.exit_wait is ExitWait.FOREIGN_ORDERS
        pos_key = position_key(trade)
        self._positions.key(pos_key).waiting.discard(trade_id)
        runtime.exit_wait = None
        self._confirm_position(trade, pos_key, forced=True, with_orders=on_foreign)

    def on_exit_position(self, result: JobResult) -> None:
        trade_id, pos_key, generation, foreign_generation, forced, asked_mark = result.context
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
        if asked_mark is not None:
            orders, net = result.value
            self._orders.note_order_book(orders, asked_mark)
        else:
            net = result.value
        if not forced and key_state.exits_in_flight:
            self._wait_for_settle(trade_id, key_state)
            return
        if key_state.generation != generation and not forced:  # the position changed while we read it: read again
            self.drive_exit(trade)
            return
        if key_state.foreign_generation != foreign_generation:  # others' orders filled meanwhile: the read is stale
            self._confirm_position(trade, pos_key, forced, with_orders=asked_mark is not None)
            return
        # A forced read may predate fills of exits still in flight; counting those exits as
        # well can only make the room smaller (never an overshoot).
        key_state.take_read(int(net))
        if trade.status is not TradeStatus.EXITING:
            return
        needed = trade.quantity - self._orders.live_exit_quantity(trade)
        room = self._orders.exit_room(trade)
        assert room is not None  # the net position was just read
        if room.blocked_by_unknown:
            self._wait_for_unknown(trade, key_state)
            return
        if room.quantity >= needed:
            runtime.shortfall_since = None
            self._send_exit(trade, needed)
            return
        now, grace = self.state.clock.time(), self.state.settings.absence_grace
        if runtime.shortfall_since is None:
            runtime.shortfall_since = now
        unconfirmed = now - runtime.shortfall_since < grace
        if key_state.exits_in_flight or key_state.foreign_closing(trade.side) or unconfirmed:
            # Working orders on the position (ours or others') may explain the shortfall: send
            # what the room allows, never shrink or close the trade on their account.
            # (and a position read shows less than the trade for the first time: a lagging read may
            # not show recent fills yet, so it is read again ``absence_grace`` later before the
            # trade shrinks or closes)
            if room.quantity > 0:
                self._send_exit(trade, room.quantity)
            else:
                self._wait_for_working(trade, key_state, grace if unconfirmed else None)
            return
        runtime.shortfall_since = None
        if room.quantity <= 0:
            self.close_externally(trade, f"exit found no position at the broker (net {key_state.net})")
            return
        self.shrink(trade, trade.quantity - (needed - room.quantity), f"broker holds only {room.quantity} for this exit (net {key_state.net})")
        self._send_exit(trade, room.quantity)

    def _wait_for_working(self, trade: Trade, key_state: KeyState, delay: float | None = None) -> None:
        """No room while working orders close the position (or a short read is not confirmed yet):
        look again after ``settle_wait`` (or ``delay``)."""
        foreign = key_state.foreign_closing(trade.side)
        runtime = self.state.trade_runtime(trade.id)
        if foreign and not runtime.foreign_wait_alerted:
            runtime.foreign_wait_alerted = True  # once while the exit waits on them (it looks again every settle_wait)
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: the exit waits: orders placed outside tmtool for {foreign} are working "
                "against this position; cancel them in the broker or let them fill",
                key=f"foreign-orders-{trade.id}",
                trade=trade,
            )
        runtime.exit_wait = ExitWait.FOREIGN_ORDERS if foreign else ExitWait.SETTLING
        key_state.waiting.add(trade.id)
        wait = self.state.settings.settle_wait if delay is None else max(delay, self.state.settings.settle_wait)
        self.state.schedule(wait, self._stop_waiting, trade.id)

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
        for trade_id in sorted(key_state.waiting):
            runtime = self.state.trade_runtimes.get(trade_id)
            if runtime is not None and runtime.exit_wait is ExitWait.UNKNOWN_ORDER:
                continue  # waits for the unknown order (``unblock_key``), not for fills
            key_state.waiting.discard(trade_id)
            if runtime is not None and runtime.exit_wait in (ExitWait.SETTLING, ExitWait.FOREIGN_ORDERS):
                runtime.exit_wait = None
            trade = self.state.trades.get(trade_id)
            if trade is not None:
                self.drive_exit(trade)

    def unblock_key(self, pos_key: PositionKey) -> None:
        """No exit of ours on the key has an unknown outcome any more: exits that waited for it go now."""
        key_state = self._positions.keys.get(pos_key)
        if key_state is None:
            return
        for trade_id in sorted(key_state.waiting):
            runtime = self.state.trade_runtimes.get(trade_id)
            if runtime is None or runtime.exit_wait is not ExitWait.UNKNOWN_ORDER:
                continue
            key_state.waiting.discard(trade_id)
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

    def _send_exit(self, trade: Trade, quantity: int, reason: ExitReason | None = None) -> int:
        """One exit attempt through the order manager (which caps it reduce-only); returns what went out."""
        runtime = self.state.trade_runtime(trade.id)
        runtime.exit_attempts += 1
        runtime.foreign_wait_alerted = False  # a later wait on others' orders is news again
        sent = self._orders.place_exit(trade, quantity, reason, runtime.exit_attempts)
        if not sent:
            runtime.exit_attempts -= 1
        return sent

    def send_partial_exit(self, trade: Trade, quantity: int, trigger: float) -> None:
        """Send a partial target's exit; without a current position cache (``_cache_is_current``)
        the position is read first (``on_partial_position``)."""
        quantity = min(quantity, trade.quantity - self._orders.live_exit_quantity(trade))
        if quantity <= 0 or self.state.broker_state == "SESSION_EXPIRED":
            return
        pos_key = position_key(trade)
        key_state = self._positions.key(pos_key)
        if not self._cache_is_current(key_state):
            self.state.job(JobKind.PARTIAL_POSITION, (trade.id, pos_key, key_state.generation, quantity, trigger),
                           self.state.broker.open_position, strategy=trade.strategy, symbol=trade.symbol,
                           exchange=trade.exchange, product=trade.product.value)
            return
        self._send_partial(trade, quantity, trigger)

    def on_partial_position(self, result: JobResult) -> None:
        """The position read for a partial target: the exit goes within what it holds."""
        trade_id, pos_key, generation, quantity, trigger = result.context
        trade = self.state.trades.get(trade_id)
        if trade is None or trade.status is not TradeStatus.ACTIVE:
            return  # closed or exiting whole meanwhile: nothing partial to send
        if result.error is not None:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: partial target {trigger:.2f} skipped: the broker position could not be read",
                trade=trade,
            )
            return
        key_state = self._positions.key(pos_key)
        if key_state.generation != generation:  # the position changed while we read it: read again
            self.send_partial_exit(trade, quantity, trigger)
            return
        key_state.take_read(int(result.value))
        quantity = min(quantity, trade.quantity - self._orders.live_exit_quantity(trade))
        if quantity > 0 and self.state.broker_state != "SESSION_EXPIRED":
            self._send_partial(trade, quantity, trigger)

    def _send_partial(self, trade: Trade, quantity: int, trigger: float) -> None:
        room: ExitRoom | None = self._orders.exit_room(trade)
        if room is None or room.quantity < quantity:
            if room is None:
                why = "the broker position is not known yet"
            elif room.blocked_by_unknown:
                why = "an exit on the position has an unknown outcome"
            else:
                why = f"the broker position holds only {room.quantity}"
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: partial target {trigger:.2f} skipped: {why}",
                trade=trade,
            )
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
