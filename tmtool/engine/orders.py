"""The order manager: every order tmtool sends, from ledger row to final state.  Orders leave here.

Each order gets a ledger row (``OrderRecord``, its state an ``OrderState``) that
the executor makes durable before it sends the order, carrying the net position
its fills move from (``net_before``); the manager keeps a working copy
(``LiveOrder``) until the row is final and owns the maps from ledger key, broker
order id and trade to it.  Its fate comes from order updates (the feed),
``orderstatus`` polls, approval lookups (OpenAlgo's Action Center) and, when a
reply was lost, looks at the order book and the position read together, judged
by ``domain.evidence.resolve_unknown_order``: found, filled (the position
moved), proven absent over ``absence_grace``, or still unknown (looked at again,
never sent again).  An order taken as filled from the position alone is looked
for in the order book once more well past the book's lag; still missing, it most
likely never reached the broker, and a CRITICAL alert says what may be
unmanaged (``on_moved_check``).  LIMIT exits are re-priced in place with ``modifyorder``;
entries are cancelled with ``cancelorder``.

Exits are reduce-only by construction: every exit order leaves through
``place_exit``, which sends at most ``exit_room`` — the broker's net position in
the trade's direction less every working order that closes it (ours in flight,
others' from the latest order-book read and their order updates) — and nothing
while an exit of ours on the position has an unknown outcome.

The manager never decides what a trade does next.  What happened to an order is
emitted as an event value (``OrderFilled``, ``OrderFinal``, ``PositionSettled``,
``OrderUnresolved``, ``ExitNotSent``, ``SessionExpired``, ``BrokerAnswered``)
to the handler the engine installs (``handlers.OrderEventRouter``), which
applies it with the controllers above, at the moment it happens.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any, Callable

from tmtool.domain.broker import OrderInfo, OrderUpdate
from tmtool.domain.evidence import (
    ExitRoom,
    OrderIntent,
    Outcome,
    candidates,
    exit_room,
    nearer_to_others,
    resolve_unknown_order,
)
from tmtool.domain.fills import new_fill_price
from tmtool.domain.models import (
    AlertCategory,
    AlertPriority,
    ExitReason,
    OrderFill,
    OrderPurpose,
    OrderRecord,
    OrderState,
    PriceType,
    Side,
    Trade,
    TradeStatus,
    round_to_tick,
)
from tmtool.domain.reconcile import PositionKey, order_progress, position_key, split_quantity
from tmtool.engine.executor import JobKind, JobResult, OrderRequest, OrderSendResult
from tmtool.engine.journal import Journal
from tmtool.engine.order_events import (
    BrokerAnswered,
    ExitNotSent,
    LiveOrder,
    OrderEvent,
    OrderFilled,
    OrderFinal,
    PositionSettled,
    SessionExpired,
    UnknownResolved,
)
from tmtool.engine.positions import PositionCache
from tmtool.engine.state import EngineState
from tmtool.engine.tradebook_fills import TradebookFills, fills_unknown, is_final

log = logging.getLogger(__name__)

FILLS_KEPT_PER_KEY = 500  # orders per position key whose fills an intent records (``_fills_on_key``)


def _no_handler(event: OrderEvent) -> None:
    raise RuntimeError(f"the order manager has no event handler for {event!r}")


_REASONS_AWAITED = 200  # orders ended without a reason whose late reason is still taken (the oldest go first)


class OrderManager:
    def __init__(self, state: EngineState, positions: PositionCache, journal: Journal) -> None:
        self.state = state
        self._positions = positions
        self._journal = journal
        self.emit: Callable[[OrderEvent], None] = _no_handler
        self.live: dict[str, LiveOrder] = {}  # ledger key -> live order
        self._by_order_id: dict[str, str] = {}  # broker order id -> ledger key
        # trade id -> ledger keys of its live orders; an order can outlive its trade (an entry
        # still live when the trade is closed outside), so this follows the orders, not the trade
        self._trade_orders: dict[int, set[str]] = {}
        self.known_order_ids: set[str] = set()
        self._early_updates: dict[str, OrderUpdate] = {}
        # orders that ended REJECTED or CANCELLED with no reason given (OpenAlgo's orderstatus has
        # none): the order-update stream may still bring the broker's, after the poll (by order id)
        self._reason_awaited: dict[str, OrderRecord] = {}
        # orders taken as filled from the position before the order book showed them: their rows
        # are claimed from later order-book reads, so that no other lookup takes them for its own
        self._moved_unclaimed: list[tuple[OrderIntent, int, OrderPurpose]] = []
        # per position key, how far each of our orders there has filled (as applied here): what a
        # new intent's ``net_before`` holds, recorded with it as ``fills_before``
        self._fills_on_key: dict[PositionKey, dict[str, int]] = {}
        # orders polled with no filled quantity in the reply: their fills come from the tradebook
        self.tradebook_fills = TradebookFills(state, self.live, self.apply_progress)

    # ---------------------------------------------------------------- queries

    def has_live(self, trade_id: int) -> bool:
        return bool(self._trade_orders.get(trade_id))

    def orders_of(self, trade_id: int) -> list[LiveOrder]:
        live = self.live
        return [live[k] for k in self._trade_orders.get(trade_id, ()) if k in live]

    def live_exit_quantity(self, trade: Trade) -> int:
        return sum(o.remaining for o in self.orders_of(trade.id) if o.record.purpose is OrderPurpose.EXIT)

    def live_entries(self, trade: Trade) -> list[LiveOrder]:
        return [o for o in self.orders_of(trade.id) if o.record.purpose is OrderPurpose.ENTRY]

    def awaiting_approval(self, trade_id: int) -> bool:
        return any(o.record.state is OrderState.AWAITING_APPROVAL for o in self.orders_of(trade_id))

    def on_key(self, pos_key: PositionKey) -> list[LiveOrder]:
        """Our live orders on one position key."""
        return [live for live in self.live.values() if live.pos_key == pos_key]

    def unknown_exits(self, pos_key: PositionKey) -> int:
        """Unfilled quantity of our exits on ``pos_key`` whose outcome is unknown."""
        return sum(
            live.remaining
            for live in self.on_key(pos_key)
            if live.record.purpose is OrderPurpose.EXIT and live.record.state is OrderState.UNKNOWN
        )

    def exit_room(self, trade: Trade) -> ExitRoom | None:
        """How much an exit of ``trade`` may send now: reduce-only (None while the net position is not known).

        The broker's net position in the trade's direction, less our exits in flight there,
        less others' working orders that close it, and nothing at all while an exit of ours
        there has an unknown outcome."""
        pos_key = position_key(trade)
        key_state = self._positions.key(pos_key)
        if key_state.net is None:
            return None
        in_flight = key_state.exit_sell if trade.side is Side.LONG else key_state.exit_buy
        return exit_room(
            trade.side,
            broker_net=key_state.net,
            opposite_open=self._positions.opposite_open(trade),
            own_exits_in_flight=in_flight,
            own_exits_unknown=self.unknown_exits(pos_key),
            others_working_closing=key_state.foreign_closing(trade.side),
        )

    def place_exit(self, trade: Trade, quantity: int, reason: ExitReason | None, attempt: int) -> int:
        """Send an exit of up to ``quantity`` for ``trade`` — never more than ``exit_room`` —
        split at the freeze quantity; returns how much went out (0: no room, nothing sent)."""
        room = self.exit_room(trade)
        if room is None or room.quantity <= 0 or quantity <= 0:
            return 0
        quantity = min(quantity, room.quantity)
        state = self.state
        instrument = state.instrument_for(trade)
        settings = state.runtime(trade.strategy).strategy.exit_order
        price_type, price = PriceType.MARKET, 0.0
        if settings.price_type is PriceType.LIMIT:
            price_type, price = PriceType.LIMIT, self.marketable_exit_price(trade, settings.protection_percent)
        reason = reason or trade.exit_reason
        for piece in split_quantity(quantity, instrument.freeze_quantity, trade.lot_size):
            record = OrderRecord(
                key=f"x-{trade.id}-{uuid.uuid4().hex[:10]}",
                trade_id=trade.id,
                purpose=OrderPurpose.EXIT,
                action=trade.side.exit_action,
                quantity=piece,
                state=OrderState.INTENT,
                reason=reason,
                price_type=price_type,
                price=price,
                attempt=attempt,
                created_at=state.clock.time(),
                updated_at=state.clock.time(),
            )
            live = self.track(record, trade)
            log.info(
                "exit #%s %s: %s %d %s %s (%s, attempt %d, broker net %s)", trade.id, record.key, record.action, piece,
                trade.symbol, price_type.value, reason.value if reason else "EXIT", attempt, live.record.net_before,
            )
            self._journal.event(trade, "ORDER", "exit", "", f"{record.action} {piece}", reason.value if reason else "", price or None)
            self.dispatch(live.record, trade)
        return quantity

    # ---------------------------------------------------------------- the ledger

    def track(self, record: OrderRecord, trade: Trade) -> LiveOrder:
        """Take a ledger row into the live set; a new intent records the net position it moves from."""
        pos_key = position_key(trade)
        if record.state is OrderState.INTENT and record.net_before is None:
            key_state = self._positions.key(pos_key)
            record = replace(record, net_before=key_state.net, fills_before=self._fills_before(pos_key, record.key),
                             lag_fills=key_state.recent_own_fills(self.state.clock.time(), self.state.settings.absence_grace))
        live = LiveOrder(record, trade.strategy, pos_key)
        self.live[record.key] = live
        self._trade_orders.setdefault(trade.id, set()).add(record.key)
        if record.order_id:
            self._by_order_id[record.order_id] = record.key
        key_state = self._positions.key(pos_key)
        key_state.live_orders += 1
        key_state.generation += 1
        if record.purpose is OrderPurpose.EXIT:
            if record.action == "SELL":
                key_state.exit_sell += live.remaining
            else:
                key_state.exit_buy += live.remaining
        return live

    def dispatch(self, record: OrderRecord, trade: Trade) -> None:
        """Hand a tracked ledger row to the executor: made durable first, then sent."""
        record = self.live[record.key].record  # as tracked (with its net_before)
        request = OrderRequest(
            strategy=trade.strategy,
            symbol=trade.symbol,
            exchange=trade.exchange,
            action=record.action,
            quantity=record.quantity,
            product=trade.product.value,
            price_type=record.price_type.value,
            price=record.price,
        )
        assert self.state.executor is not None
        self.state.executor.send_order(record, request, self.state.settings.durable_timeout)

    def set_order(self, live: LiveOrder, **changes: Any) -> None:
        live.record = replace(live.record, updated_at=self.state.clock.time(), **changes)
        self.state.store.save_order(live.record)
        self.state.dirty = True

    def _release_in_flight(self, live: LiveOrder, quantity: int) -> None:
        if quantity <= 0 or live.record.purpose is not OrderPurpose.EXIT:
            return
        key_state = self._positions.key(live.pos_key)
        if live.record.action == "SELL":
            key_state.exit_sell = max(0, key_state.exit_sell - quantity)
        else:
            key_state.exit_buy = max(0, key_state.exit_buy - quantity)

    def finish(self, live: LiveOrder, state: OrderState, message: str = "") -> None:
        """A ledger row became final: release what it held; the trade's controllers decide what next."""
        record = live.record
        was_unknown = record.state is OrderState.UNKNOWN
        self.set_order(live, state=state, message=message or record.message)
        if record.purpose is OrderPurpose.EXIT:
            log.info(
                "exit #%s %s (order %s): %s, filled %d of %d%s", record.trade_id, record.key, record.order_id or "-",
                state.value, live.record.filled_quantity, record.quantity, f": {live.record.message}" if live.record.message else "",
            )
        if state in (OrderState.REJECTED, OrderState.CANCELLED) and not live.record.message and record.order_id:
            if len(self._reason_awaited) >= _REASONS_AWAITED:
                self._reason_awaited.pop(next(iter(self._reason_awaited)))
            self._reason_awaited[record.order_id] = live.record
        self._release_in_flight(live, live.remaining)
        live.remaining = 0
        self.live.pop(record.key, None)
        if record.order_id:
            self._by_order_id.pop(record.order_id, None)
        keys = self._trade_orders.get(record.trade_id)
        if keys is not None:
            keys.discard(record.key)
            if not keys:
                del self._trade_orders[record.trade_id]
        key_state = self._positions.key(live.pos_key)
        key_state.live_orders = max(0, key_state.live_orders - 1)
        trade = self.state.trades.get(record.trade_id)
        if trade is not None:
            self.emit(OrderFinal(trade, live, state))
        if not key_state.exits_in_flight:
            self.emit(PositionSettled(live.pos_key))
        if was_unknown:
            self._unknown_resolved(live.pos_key)

    def _late_reason(self, record: OrderRecord, reason: str) -> None:
        """The broker's reason for an order that already ended without one: kept on its ledger row
        and told, so the trader learns why (the trade's controllers acted on the state long ago)."""
        record = replace(record, message=reason, updated_at=self.state.clock.time())
        self.state.store.save_order(record)
        trade = self.state.trade_today(record.trade_id)
        what = "entry" if record.purpose is OrderPurpose.ENTRY else "exit"
        state = record.state.value.lower()
        text = f"{what} {state}: {reason} (the broker's reason, received after the order was {state})"
        if trade is None:
            log.warning("order %s of trade #%s: %s", record.order_id, record.trade_id, text)
            return
        self._journal.alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id} {trade.symbol}: {text}", trade=trade)

    def _unknown_resolved(self, pos_key: PositionKey) -> None:
        if not self.unknown_exits(pos_key):
            self.emit(UnknownResolved(pos_key))

    # ---------------------------------------------------------------- start-up

    def restore(self, record: OrderRecord, trade: Trade) -> LiveOrder:
        live = self.track(record, trade)
        if record.order_id:
            self.known_order_ids.add(record.order_id)
            # the trade row naming the id comes after the ledger row (``order_id_known``): a crash
            # may have kept the one without the other
            if record.purpose is OrderPurpose.ENTRY and not trade.entry_order_id:
                trade.entry_order_id = record.order_id
                self._journal.save_trade(trade)
            elif record.purpose is OrderPurpose.EXIT and record.order_id not in trade.exit_order_ids:
                trade.exit_order_ids = (*trade.exit_order_ids, record.order_id)
                self._journal.save_trade(trade)
        if record.filled_quantity:
            self._note_fill(live.pos_key, record.key, record.filled_quantity)
        return live

    def note_trade_fills(self, trade: Trade) -> None:
        """A trade loaded at start: what it took in of its orders' fills is where they stand."""
        pos_key = position_key(trade)
        for fill in trade.order_fills:
            self._note_fill(pos_key, fill.key, fill.filled_quantity)

    def rebase_restored(self, restored: list[LiveOrder], trades: list[Trade]) -> None:
        """Move the ``net_before`` of each restored order that has no broker id (its outcome is
        judged by the position) by what the restart will count again, or never count, of the fills
        it holds (``trades``: those loaded, open and recently closed).

        ``net_before`` holds the fills of our other orders on the key as far as ``fills_before``
        says.  A crash keeps a prefix of the rows handed to the store, so the restart starts each
        of those orders from another count: fewer fills (the rest were in the lost tail; the
        restart applies them again and each moves ``net_before`` once more) or more (fills after
        the intent whose rows survived while the moved baseline did not, or that came while the
        intent row was still the executor's to write).  Where an order stands for the restart is
        its restored row if it is live, else what its trade took in (``Trade.order_fills``, the
        same count ``note_trade_fills`` starts new intents from).  Shifting by (where it stands -
        what the intent recorded) of each leaves ``net_before`` holding exactly the fills the
        restart starts from, so every later fill moves it once, as before the crash."""
        for live in restored:
            record = live.record
            if record.order_id or record.net_before is None or record.fills_before is None:
                continue  # no position evidence, or a row from before the fills were recorded with it
            standing: dict[str, tuple[str, int]] = {}
            for trade in trades:
                if position_key(trade) == live.pos_key:
                    standing.update((fill.key, (fill.action, fill.filled_quantity)) for fill in trade.order_fills)
            for other in self.on_key(live.pos_key):
                standing[other.record.key] = (other.record.action, other.record.filled_quantity)
            standing.pop(record.key, None)
            recorded = dict(record.fills_before)
            shift = 0
            for key, (action, filled) in standing.items():
                shift += (1 if action == "BUY" else -1) * (filled - recorded.get(key, 0))
            fills_before = self._fills_before(live.pos_key, record.key)
            if shift or fills_before != record.fills_before:
                if shift:
                    log.warning("order %s of #%s: the restart starts from other fills than its intent saw: its position "
                                "baseline moves %+d (%d -> %d)", record.key, record.trade_id, shift, record.net_before,
                                record.net_before + shift)
                self.set_order(live, net_before=record.net_before + shift, fills_before=fills_before)

    def _note_fill(self, pos_key: PositionKey, key: str, filled: int) -> None:
        fills = self._fills_on_key.setdefault(pos_key, {})
        fills[key] = filled
        if len(fills) > FILLS_KEPT_PER_KEY:  # the oldest orders' rows were committed long since
            del fills[next(iter(fills))]

    def _fills_before(self, pos_key: PositionKey, key: str) -> tuple[tuple[str, int], ...]:
        """How far our orders on ``pos_key`` other than ``key`` have filled, for an intent's ``fills_before``."""
        fills = self._fills_on_key.get(pos_key)
        if not fills:
            return ()
        return tuple(sorted((k, n) for k, n in fills.items() if k != key))

    def resume(self, live: LiveOrder) -> None:
        """Pick up a restored ledger row: poll it, wait for its approval, or look it up."""
        record = live.record
        if record.order_id:
            self.poll(record.key, 0.0)
            self._working(live)
        elif record.state is OrderState.AWAITING_APPROVAL:
            self.state.schedule(self.state.settings.order_status_poll, self._look_for_approved, record.key)
        else:
            self._outcome_unknown(live, "outcome unknown after restart: looking it up")

    # ---------------------------------------------------------------- replies, polls and updates

    def on_order_sent(self, result: JobResult) -> None:
        live = self.live.get(result.context)
        if live is None:
            return
        state, journal = self.state, self._journal
        sent: OrderSendResult = result.value
        trade = state.trades.get(live.record.trade_id)
        if sent is not None and not sent.durable:
            journal.alert(
                AlertCategory.SYSTEM,
                AlertPriority.CRITICAL,
                f"order {live.record.key} went out before its ledger row was on disk (database not writing)",
                key="ledger-not-durable",
            )
        error = result.error
        if error is None and sent.ack is not None:
            ack = sent.ack
            state.server_mode = ack.mode
            if state.broker_state != "OK":
                self.emit(BrokerAnswered())
            if ack.awaiting_approval:
                self.set_order(live, state=OrderState.AWAITING_APPROVAL, message=ack.message or "queued for approval")
                journal.alert(
                    AlertCategory.TRADE,
                    AlertPriority.WARNING,
                    f"#{live.record.trade_id}: {live.record.purpose.value.lower()} order {live.record.action} "
                    f"{live.record.quantity} is waiting for approval in OpenAlgo's Action Center",
                    key=f"approval-{live.record.key}",
                    trade=trade,
                )
                state.schedule(state.settings.order_status_poll, self._look_for_approved, live.record.key)
                return
            self.set_order(live, state=OrderState.SENT, order_id=ack.order_id)
            self.order_id_known(live, ack.order_id)  # after the ledger row: see ``order_id_known``
            early = self._early_updates.pop(ack.order_id, None)
            if early is not None:
                self.apply_progress(live, early.status, early.filled_quantity, early.average_price, early.rejection_reason)
            if live.record.key in self.live:
                self.poll(live.record.key, self.poll_interval())
                self._working(live)
            return
        assert error is not None
        is_exit = live.record.purpose is OrderPurpose.EXIT
        if error.kind == "auth":
            self.emit(SessionExpired(error.message))
            if trade is not None and trade.status is TradeStatus.EXITING and is_exit:
                self.emit(ExitNotSent(trade, parked=True))  # resent when the session is back, without spending an attempt
            self.finish(live, OrderState.NOT_SENT, error.message)
            return
        if error.ambiguous:
            self._outcome_unknown(live, f"reply lost ({error.kind}): {error.message}")
            journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{live.record.trade_id}: no clear reply to {live.record.action} {live.record.quantity} ({error.kind}); "
                "looking for the order in the order book and the position (nothing more is sent on that position until it is found)",
                key=f"unknown-{live.record.key}",
                trade=trade,
            )
            return
        if error.kind in ("rate_limited", "connection"):
            # Surely not placed: the exit goes again after the retry backoff.  A rate limit
            # is no failure of the exit, so it spends no attempt; a refused connection does.
            if error.kind == "rate_limited" and trade is not None and is_exit:
                self.emit(ExitNotSent(trade, parked=False))
            self.finish(live, OrderState.NOT_SENT, f"{error.kind}: {error.message}")
            return
        self.finish(live, OrderState.REJECTED, error.message)

    def order_id_known(self, live: LiveOrder, order_id: str) -> None:
        """The broker's id of ``live``'s order is known: the trade names it too.

        Called after the ledger row carrying the id was handed to the store, so that a crash
        keeping a prefix of the rows never keeps a trade naming the id while the order's row
        lacks it: the restart would look that order up as unknown with its own id taken as
        already claimed, and never find it."""
        self._by_order_id[order_id] = live.record.key
        self.known_order_ids.add(order_id)
        self._positions.take_back_foreign(order_id, live.pos_key, live.record.action)
        trade = self.state.trades.get(live.record.trade_id)
        if trade is None:
            return
        if live.record.purpose is OrderPurpose.EXIT:
            log.info("exit #%s %s: order id %s", trade.id, live.record.key, order_id)
            if order_id not in trade.exit_order_ids:
                trade.exit_order_ids = (*trade.exit_order_ids, order_id)
        else:
            trade.entry_order_id = order_id
        self._journal.save_trade(trade)

    def poll_interval(self) -> float:
        """``order_update_backstop`` while order updates can arrive, else ``order_status_poll``."""
        settings = self.state.settings
        if self.state.feed_status.order_updates_flowing:
            return settings.order_update_backstop
        return settings.order_status_poll

    def poll(self, key: str, delay: float) -> None:
        """Ask for the order's status after ``delay``, unless a poll falls due sooner (a later one is superseded)."""
        live = self.live.get(key)
        if live is None:
            return
        due = self.state.clock.monotonic() + delay
        if live.polling and live.poll_due <= due:
            return
        live.polling = True
        live.poll_due = due
        self.state.schedule(delay, self._request_status, key, due)

    def repoll_all(self) -> None:
        """Order updates started or stopped flowing: every live order polls at the new pace (at once sooner)."""
        for key in list(self.live):
            self.poll(key, self.poll_interval())

    def _request_status(self, key: str, due: float) -> None:
        live = self.live.get(key)
        if live is None or live.poll_due != due:
            return  # gone, or superseded by a sooner poll
        if not live.record.order_id:
            # No broker id yet (the send is still out): nothing to ask.  The order is polled
            # once its id is known, so it must not stay marked as polling.
            live.polling = False
            return
        self.state.job(JobKind.ORDER_STATUS, key, self.state.broker.order_status, live.record.order_id, live.strategy)

    def on_order_status(self, result: JobResult) -> None:
        live = self.live.get(result.context)
        if live is None:
            return
        live.polling = False
        if result.error is None:
            self._take_status(live, result.value)
        if result.context in self.live:
            self.poll(result.context, self.poll_interval())

    def on_order_fills(self, result: JobResult) -> None:
        """A tradebook read for orders whose status replies gave no filled quantity (``tradebook_fills``)."""
        self.tradebook_fills.on_tradebook(result)

    def _take_status(self, live: LiveOrder, info: OrderInfo) -> None:
        """What a status reply or an order book row says of ``live``.  A live server's gives no filled
        quantity unless ``complete``: its fills, and a final state, then wait for the tradebook."""
        if fills_unknown(info):
            self.tradebook_fills.wait(live, info)
            if not is_final(info):  # its state now (OPEN); its fills once the tradebook says
                self.apply_progress(live, info.status, None, info.average_price, "", info.quantity)
            return
        self.apply_progress(live, info.status, info.filled_quantity, info.average_price, info.rejection_reason, info.quantity)

    def on_order_update(self, update: OrderUpdate) -> None:
        key = self._by_order_id.get(update.order_id)
        if key is None:
            if update.rejection_reason and update.order_id in self._reason_awaited:
                self._late_reason(self._reason_awaited.pop(update.order_id), update.rejection_reason)
                return
            if len(self._early_updates) > 1000:
                self._early_updates.pop(next(iter(self._early_updates)))
            self._early_updates[update.order_id] = update
            self._positions.foreign_update(update, self.known_order_ids)
            return
        live = self.live.get(key)
        if live is not None:
            self.apply_progress(live, update.status, update.filled_quantity, update.average_price, update.rejection_reason)

    def apply_progress(
        self,
        live: LiveOrder,
        status: str,
        filled_quantity: int | None,
        average_price: float,
        rejection_reason: str = "",
        ordered_quantity: int | None = None,
    ) -> None:
        record = live.record
        progress = order_progress(status, record.quantity, filled_quantity, average_price)
        filled = min(progress.filled_quantity, record.quantity)
        if filled > record.filled_quantity:
            self.apply_fill(live, filled, progress.average_price)
        elif progress.state is OrderState.PARTIAL and record.state is not OrderState.PARTIAL:
            self.set_order(live, state=OrderState.PARTIAL)
        if progress.state.is_final:
            self.finish(live, progress.state, rejection_reason)
        elif record.state in (OrderState.SENT, OrderState.UNKNOWN) and progress.state is OrderState.OPEN:
            self.set_order(live, state=OrderState.OPEN)

    def apply_fill(self, live: LiveOrder, filled_total: int, average_total: float) -> None:
        record = live.record
        delta = filled_total - record.filled_quantity
        trade = self.state.trades.get(record.trade_id)
        fallback = self.state.price_of(trade) if trade is not None else 0.0
        price, new_average = new_fill_price(record.filled_quantity, record.average_price, filled_total, average_total, fallback)
        order_state = OrderState.PARTIAL if filled_total < record.quantity else record.state
        # A fill moves two rows: the trade's (its quantities) and the order's ledger row.  The store
        # commits a prefix of what it was handed, so a crash can keep either without the other;
        # which fills of a live order are new after a restart is therefore read from the trade row
        # (``Trade.order_fills``, see ``recovery``), never from the ledger row:
        # - the trade takes the fill into ``order_fills`` before the OrderFilled handlers change its
        #   quantities and save it, so every trade row handed in from here on carries the fill and
        #   its bookkeeping together, or (every earlier one) neither: a committed trade row always
        #   says exactly which fills its quantities hold, whatever prefix survived;
        # - the trade row is handed in again below, before the ledger row, so a committed ledger row
        #   carrying the fill (or the order's final row, which comes later still) implies a committed
        #   trade row carrying it: an order dropped from the restored set as final has no fill the
        #   trade lacks.
        # The intent journal keeps the newest trade row handed in with each intent, which is one of
        # those rows, so it holds for the rows the journal restores too.
        if trade is not None:
            trade.order_fills = (*(f for f in trade.order_fills if f.key != record.key),
                                 OrderFill(record.key, record.action, filled_total, new_average))
        live.record = replace(record, updated_at=self.state.clock.time(), filled_quantity=filled_total,
                              average_price=new_average, state=order_state)
        self.state.dirty = True
        self._release_in_flight(live, delta)
        self._note_fill(live.pos_key, record.key, filled_total)
        live.remaining = max(0, live.remaining - delta)
        key_state = self._positions.key(live.pos_key)
        key_state.generation += 1
        sign = 1 if record.action == "BUY" else -1
        key_state.note_own_fill(self.state.clock.time(), sign * delta, self.state.settings.absence_grace)
        if key_state.net is not None:
            key_state.net += sign * delta
        self._shift_baselines(live, sign * delta)
        if record.purpose is OrderPurpose.EXIT:
            log.info("exit #%s %s (order %s): filled %d at %.2f (%d of %d)", record.trade_id, record.key,
                     record.order_id or "-", delta, price, filled_total, record.quantity)
        if trade is not None:
            self.emit(OrderFilled(trade, live, delta, price))
            self._journal.save_trade(trade)  # the handlers may not have (an exit fill of a trade that held nothing)
        self.state.store.save_order(live.record)

    def _shift_baselines(self, filled: LiveOrder, moved: int) -> None:
        """Our ``filled`` order moved the position by ``moved``: the orders on the key whose outcome
        is not known yet move from there now (their ``net_before`` follows)."""
        for other in self.on_key(filled.pos_key):
            if other is filled or other.record.order_id or other.record.net_before is None:
                continue
            if other.record.state is OrderState.UNKNOWN:
                self.set_order(other, net_before=other.record.net_before + moved,
                               fills_before=self._fills_before(filled.pos_key, other.record.key))
            else:
                other.net_shift += moved  # its intent row is still the executor's to write

    # ---------------------------------------------------------------- ambiguous outcomes

    def _outcome_unknown(self, live: LiveOrder, message: str) -> None:
        """The order may or may not be at the broker: it holds its position (no exit goes there)
        and is looked for until the evidence decides."""
        changes: dict[str, Any] = {"state": OrderState.UNKNOWN, "message": message}
        if live.record.net_before is not None:  # it now holds every fill on the key so far
            changes["net_before"] = live.record.net_before + live.net_shift
            changes["fills_before"] = self._fills_before(live.pos_key, live.record.key)
        live.net_shift = 0
        self.set_order(live, **changes)
        live.unknown_since = self.state.clock.time()
        live.absent_since = live.moved_since = None
        log.warning("order %s of #%s (%s %d): %s", live.record.key, live.record.trade_id, live.record.action,
                    live.record.quantity, message)
        self.lookup(live.record.key)

    def lookup(self, key: str) -> None:
        """One look for an order whose outcome is unknown: the order book and the position, read together."""
        live = self.live.get(key)
        if live is None or live.record.state is not OrderState.UNKNOWN:
            return
        trade = self.state.trades.get(live.record.trade_id)
        if trade is None:
            return
        broker = self.state.broker

        def look() -> tuple[list[OrderInfo], int]:
            orders = broker.order_book()
            net = broker.open_position(
                strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product.value
            )
            return orders, net

        self.state.job(JobKind.ORDER_LOOKUP, (key, self._positions.key(live.pos_key).generation, self.order_book_mark()), look)

    def _early_candidates(self, live: LiveOrder) -> list[OrderInfo]:
        """Order updates of ids not known as ours, on ``live``'s key, as order-book rows (the stream
        may tell of an order before the order book shows it)."""
        symbol, exchange, product = live.pos_key
        return [
            OrderInfo(u.order_id, u.symbol, u.exchange, u.action, u.quantity, u.status, u.average_price,
                      u.filled_quantity, product=u.product)
            for u in self._early_updates.values()
            if u.symbol == symbol and u.exchange == exchange and (not u.product or u.product == product)
        ]

    def on_order_lookup(self, result: JobResult) -> None:
        key, generation, asked_mark = result.context
        live = self.live.get(key)
        if live is None or live.record.state is not OrderState.UNKNOWN:
            return
        state, settings = self.state, self.state.settings
        trade = state.trades.get(live.record.trade_id)
        if result.error is not None or trade is None:
            self._look_again(live, trade)
            return
        orders, net = result.value
        self.note_order_book(orders, asked_mark)
        record = live.record
        intent = self._intent(live, trade)
        on_key = [o for o in self.on_key(live.pos_key) if o is not live]
        others_working = any(o.remaining > 0 for o in on_key)
        book = [*orders, *self._early_candidates(live)]
        # rows nearer in time to another of our unknown orders are left to that one
        rivals = [self._intent(o, trade) for o in on_key if not o.record.order_id and o.record.state is OrderState.UNKNOWN]
        claimed = self.known_order_ids | nearer_to_others(book, intent, rivals, self.known_order_ids, settings.broker_zone)
        # an order sent or a fill seen on the key since the read was asked for: the position
        # read may predate it, so it proves nothing this time (the book still may)
        stale = self._positions.key(live.pos_key).generation != generation
        resolution = resolve_unknown_order(
            intent,
            orders=book,
            claimed_order_ids=claimed,
            net_now=None if stale else int(net),
            others_working=others_working,
            now=state.clock.time(),
            absent_since=live.absent_since,
            grace=settings.absence_grace,
            zone=settings.broker_zone,
            moved_since=live.moved_since,
        )
        # a stale read breaks the agreement absence and a move need
        live.absent_since, live.moved_since = resolution.absent_since, resolution.moved_since
        log.info("order %s of #%s: %s (%s)", record.key, record.trade_id, resolution.outcome.value, resolution.why)
        if resolution.outcome is Outcome.FOUND:
            assert resolution.order is not None
            self._claim(live, resolution.order, f"found in the order book ({resolution.why})")
            self._unknown_resolved(live.pos_key)
        elif resolution.outcome is Outcome.MOVED:
            self._filled_by_evidence(live, trade, resolution.why)
        elif resolution.outcome is Outcome.ABSENT:
            what = "the exit may be sent again" if record.purpose is OrderPurpose.EXIT else "the entry never reached the broker"
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{record.trade_id}: {record.action} {record.quantity} {trade.symbol} was never placed ({resolution.why}): {what}",
                key=f"unknown-{record.key}",
                trade=trade,
            )
            self.finish(live, OrderState.NOT_SENT, f"proven absent: {resolution.why}")
        else:
            self._look_again(live, trade)

    @staticmethod
    def _intent(live: LiveOrder, trade: Trade) -> OrderIntent:
        record = live.record
        return OrderIntent(trade.symbol, trade.exchange, trade.product.value, record.action, record.quantity,
                           record.created_at, record.net_before, live.strategy, record.lag_fills)

    def order_book_mark(self) -> int:
        """What an order-book read notes when it is asked for (``note_order_book``'s ``asked_mark``)."""
        return self._positions.update_mark

    def note_order_book(self, orders: list[OrderInfo], asked_mark: int) -> None:
        """Learn from an order-book read asked for at ``asked_mark`` (``order_book_mark``): claim
        the rows of orders taken as filled from the position (oldest first), then note others'
        working orders."""
        zone = self.state.settings.broker_zone
        still: list[tuple[OrderIntent, int, OrderPurpose]] = []
        for intent, trade_id, purpose in self._moved_unclaimed:
            found = candidates(orders, intent, self.known_order_ids, zone)
            if not found:
                still.append((intent, trade_id, purpose))
                continue
            order_id = found[0].order_id
            self.known_order_ids.add(order_id)
            log.info("order %s of #%s, taken as filled from the position, is in the order book now", order_id, trade_id)
            trade = self.state.trade_today(trade_id)
            if trade is not None:
                if purpose is OrderPurpose.EXIT:
                    trade.exit_order_ids = (*trade.exit_order_ids, order_id)
                elif not trade.entry_order_id:
                    trade.entry_order_id = order_id
                self._journal.save_trade(trade)
        self._moved_unclaimed = still[-100:]
        self._positions.note_order_book(orders, self.known_order_ids, asked_mark)

    def _look_again(self, live: LiveOrder, trade: Trade | None) -> None:
        """Still unknown: look again at the status-poll pace; once it has been unknown for long, say so loudly."""
        state = self.state
        since = live.unknown_since if live.unknown_since is not None else state.clock.time()
        if not live.unknown_alerted and state.clock.time() - since >= state.settings.unknown_alert_after:
            live.unknown_alerted = True
            record = live.record
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.CRITICAL,
                f"#{record.trade_id}: the outcome of {record.purpose.value.lower()} {record.action} {record.quantity} "
                f"{trade.symbol if trade else ''} is still unknown after {state.clock.time() - since:.0f} s: it is not sent again "
                "and no exit goes on that position until it is found; check the broker's order book",
                key=f"unknown-long-{record.key}",
                trade=trade,
            )
        state.schedule(state.settings.order_status_poll, self.lookup, live.record.key)

    def _filled_by_evidence(self, live: LiveOrder, trade: Trade, why: str) -> None:
        """The position moved by the order while the book does not show it: it filled."""
        record = live.record
        entry = record.purpose is OrderPurpose.ENTRY
        self._journal.alert(
            AlertCategory.TRADE,
            AlertPriority.CRITICAL if entry else AlertPriority.WARNING,
            f"#{record.trade_id} {trade.symbol}: {record.action} {record.quantity} is not in the broker's order book yet, "
            f"but {why}: taken as filled" + (" and managed with the trade's stop and target" if entry else "")
            + "; the order book lags",
            key=f"unknown-{record.key}",
            trade=trade,
        )
        intent = self._intent(live, trade)
        self._moved_unclaimed.append((intent, record.trade_id, record.purpose))
        # a filled order shows in the order book within the book's lag (``absence_grace`` covers it):
        # one still missing well past that most likely never reached the broker (``on_moved_check``)
        self.state.schedule(2 * self.state.settings.absence_grace, self._check_moved, intent)
        self.apply_fill(live, record.quantity, 0.0)  # at the last price: the book gives none yet
        if record.key in self.live:
            self.finish(live, OrderState.COMPLETE, f"filled by the position's evidence: {why}")

    def _unclaimed(self, intent: OrderIntent) -> tuple[OrderIntent, int, OrderPurpose] | None:
        """The entry of an order taken as filled from the position that no order-book read has claimed yet."""
        return next((entry for entry in self._moved_unclaimed if entry[0] is intent), None)

    def _check_moved(self, intent: OrderIntent) -> None:
        """Read the order book once more for an order taken as filled from the position, unless a
        read has shown it since."""
        if self._unclaimed(intent) is not None:
            self.state.job(JobKind.MOVED_CHECK, (intent, self.order_book_mark()), self.state.broker.order_book)

    def on_moved_check(self, result: JobResult) -> None:
        """An order taken as filled from the position is still not in the order book long after the
        book's lag: most likely it never reached the broker and the position moved for another
        reason (a position read that predated a fill of ours, a trade outside tmtool).  Nothing is
        sent on a guess; a CRITICAL alert names the trade, the order and what may be unmanaged."""
        intent, asked_mark = result.context
        if result.error is not None:
            self.state.schedule(self.state.settings.absence_grace, self._check_moved, intent)
            return
        self.note_order_book(result.value, asked_mark)  # claims it if the book shows it now
        entry = self._unclaimed(intent)
        if entry is None:
            return
        _, trade_id, purpose = entry
        trade = self.state.trade_today(trade_id)
        order = f"{intent.action} {intent.quantity} {intent.exchange}:{intent.symbol} {intent.product}"
        if purpose is OrderPurpose.EXIT:
            risk = (f"it may never have been placed, and {intent.quantity} may be held at the broker with no trade "
                    "managing them (no stop): compare the broker's position with tmtool's open trades and close or "
                    "adopt (adoptpositions) what is left")
        else:
            risk = ("it may never have been placed, and the trade may be managing shares the broker does not hold: "
                    "compare the broker's position with tmtool's open trades")
        self._journal.alert(
            AlertCategory.TRADE,
            AlertPriority.CRITICAL,
            f"#{trade_id}: the {purpose.value.lower()} {order} was taken as filled from the position alone, but the "
            f"broker's order book still does not show it: {risk}",
            key=f"moved-unseen-{trade_id}-{intent.created_at:.3f}",
            trade=trade,
        )

    def _claim(self, live: LiveOrder, found: OrderInfo, message: str) -> None:
        """``found`` in an order book read is ``live``'s order: it is ours from now on."""
        record = live.record
        self._early_updates.pop(found.order_id, None)
        self.set_order(live, state=OrderState.SENT, order_id=found.order_id, message=message)
        self.order_id_known(live, found.order_id)  # after the ledger row: see ``order_id_known``
        self._take_status(live, found)
        if record.key in self.live:
            self.poll(record.key, self.poll_interval())
            self._working(live)

    def _look_for_approved(self, key: str) -> None:
        live = self.live.get(key)
        if live is None or live.record.state is not OrderState.AWAITING_APPROVAL:
            return
        self.state.job(JobKind.APPROVAL_LOOKUP, (key, self.order_book_mark()), self.state.broker.order_book)

    def on_approval_lookup(self, result: JobResult) -> None:
        key, asked_mark = result.context
        live = self.live.get(key)
        if live is None:
            return
        trade = self.state.trades.get(live.record.trade_id)
        if result.error is None and trade is not None:
            self.note_order_book(result.value, asked_mark)
            found = candidates(result.value, self._intent(live, trade), self.known_order_ids, self.state.settings.broker_zone)
            if found:
                self._claim(live, found[0], "approved")
                return
        self.state.schedule(max(self.state.settings.order_status_poll, 1.0), self._look_for_approved, key)

    # ---------------------------------------------------------------- working orders: re-pricing and cancelling

    def _working(self, live: LiveOrder) -> None:
        """An order of ours has its broker id and is not final: cancel it if that is wanted, or
        start the re-pricing clock of a LIMIT exit."""
        if live.cancel_wanted:
            self._send_cancel(live)
        elif live.record.purpose is OrderPurpose.EXIT and live.record.price_type is PriceType.LIMIT:
            trade = self.state.trades.get(live.record.trade_id)
            if trade is not None:
                settings = self.state.runtime(trade.strategy).strategy.exit_order
                self.state.schedule(settings.reprice_after_seconds, self._reprice_due, live.record.key)

    def marketable_exit_price(self, trade: Trade, protection_percent: float) -> float:
        """A LIMIT exit price ``protection_percent`` through the last price (at least one tick)."""
        ltp = self.state.price_of(trade)
        offset = ltp * protection_percent / 100.0
        raw = ltp - offset if trade.side is Side.LONG else ltp + offset
        return round_to_tick(max(raw, trade.tick_size), trade.tick_size)

    def _reprice_due(self, key: str) -> None:
        """A LIMIT exit is still unfilled after ``reprice_after_seconds``: modify it in place,
        marketable at the last price, or to MARKET once ``max_reprices`` are spent.

        The order is changed, never replaced, so the trade never has two live exit
        orders for one quantity; the modification carries the order's whole quantity
        (brokers take the new total, the filled part included)."""
        live = self.live.get(key)
        if live is None or live.modifying or not live.record.order_id:
            return
        if live.record.purpose is not OrderPurpose.EXIT or live.record.price_type is not PriceType.LIMIT:
            return
        state = self.state
        trade = state.trades.get(live.record.trade_id)
        if trade is None or live.remaining <= 0:
            return
        settings = state.runtime(trade.strategy).strategy.exit_order
        record = live.record
        if live.reprices >= settings.max_reprices:
            price_type, price = PriceType.MARKET, 0.0
        else:
            price_type, price = PriceType.LIMIT, self.marketable_exit_price(trade, settings.protection_percent)
        live.modifying = True
        old = f"{record.price_type.value} {record.price:.2f}"
        new = "MARKET" if price_type is PriceType.MARKET else f"LIMIT {price:.2f}"
        self._journal.event(trade, "ORDER", "exit_price", old, new, "re-pricing the unfilled LIMIT exit", state.price_of(trade))
        assert state.executor is not None
        state.executor.run_order_call(
            JobKind.MODIFY_ORDER,
            (key, price_type, price),
            state.broker.modify_order,
            order_id=record.order_id,
            strategy=trade.strategy,
            symbol=trade.symbol,
            exchange=trade.exchange,
            action=record.action,
            product=trade.product.value,
            price_type=price_type.value,
            price=price,
            quantity=record.quantity,
        )

    def on_modify_order(self, result: JobResult) -> None:
        key, price_type, price = result.context
        live = self.live.get(key)
        if live is None:
            return  # final meanwhile (filled, most likely)
        live.modifying = False
        trade = self.state.trades.get(live.record.trade_id)
        if trade is None:
            return
        settings = self.state.runtime(trade.strategy).strategy.exit_order
        error = result.error
        if error is None:
            live.reprices += 1
            live.reprice_failures = 0
            self.set_order(live, price_type=price_type, price=price, message=f"re-priced ({live.reprices})")
            if price_type is PriceType.LIMIT:
                self.state.schedule(settings.reprice_after_seconds, self._reprice_due, key)
            return
        # Refused (often: the order filled or ended meanwhile; or semi-auto mode) or lost: the
        # status tells which; try again later (semi-auto mode may be switched off meanwhile).
        live.reprice_failures += 1
        self.set_order(live, message=f"re-price failed: {error.message}")
        if error.kind == "semi_auto" and live.reprice_failures == 1:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: LIMIT exit {live.record.order_id} is unfilled and semi-auto mode refuses "
                "to re-price it: change it in OpenAlgo or switch to auto mode",
                key=f"reprice-{live.record.key}",
                trade=trade,
            )
        elif live.reprice_failures == 3:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{trade.id} {trade.symbol}: LIMIT exit {live.record.order_id} is unfilled and could not be re-priced "
                f"({error.kind}: {error.message}); still trying",
                key=f"reprice-{live.record.key}",
                trade=trade,
            )
        self.poll(key, 0.0)
        self.state.schedule(settings.reprice_after_seconds, self._reprice_due, key)

    def cancel_entries(self, trade: Trade) -> int:
        """Cancel the trade's live entry orders (those without a broker id as soon as they get
        one); returns how many there are.  The cancel is confirmed by the order's status."""
        entries = self.live_entries(trade)
        for live in entries:
            if live.cancel_wanted:
                continue
            live.cancel_wanted = True
            if live.record.order_id:
                self._send_cancel(live)
            elif live.record.state is OrderState.AWAITING_APPROVAL:
                self._journal.alert(
                    AlertCategory.TRADE,
                    AlertPriority.WARNING,
                    f"#{trade.id} {trade.symbol}: the entry waits for approval in OpenAlgo's Action Center and cannot be "
                    "cancelled from tmtool: reject it there (if it is approved and fills, the trade exits)",
                    key=f"approval-{live.record.key}",
                    trade=trade,
                )
        return len(entries)

    def _send_cancel(self, live: LiveOrder) -> None:
        if live.cancelling or not live.record.order_id or live.record.key not in self.live:
            return
        live.cancelling = True
        live.cancel_attempts += 1
        self.set_order(live, message="cancel requested")
        assert self.state.executor is not None
        self.state.executor.run_order_call(
            JobKind.CANCEL_ORDER, live.record.key, self.state.broker.cancel_order, live.record.order_id, live.strategy
        )

    def on_cancel_order(self, result: JobResult) -> None:
        live = self.live.get(result.context)
        if live is None:
            return  # already final: the cancel (or a last fill) was confirmed
        live.cancelling = False
        error = result.error
        if error is None:
            self.poll(live.record.key, 0.0)  # the order's status confirms the cancel
            return
        trade = self.state.trades.get(live.record.trade_id)
        self.set_order(live, message=f"cancel failed: {error.message}")
        if error.kind == "semi_auto" or live.cancel_attempts >= self.state.settings.exit_max_attempts:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.WARNING,
                f"#{live.record.trade_id}: could not cancel the unfilled entry {live.record.order_id} ({error.message}): "
                "cancel it in OpenAlgo or the broker; whatever fills is exited",
                key=f"cancel-{live.record.key}",
                trade=trade,
            )
            self.poll(live.record.key, 0.0)
            return
        # Refused because the order is final already (the status shows how), or not clearly done: look, then ask again.
        self.poll(live.record.key, 0.0)
        self.state.schedule(self.state.settings.exit_retry_backoff, self._send_cancel_again, live.record.key)

    def _send_cancel_again(self, key: str) -> None:
        live = self.live.get(key)
        if live is not None and live.cancel_wanted:
            self._send_cancel(live)
