"""The entry controller: new trades, adopted orders and positions, activation at the fill.

A ``CreateTrade`` command is checked (validation, the strategy's gates), then
prepared off the engine thread (instrument, price, funds — or the adopted
order's status) and becomes a PENDING_ENTRY trade: an entry order goes out
through ``orders``, or an adopted order is tracked, or a held position is taken
as filled.  The first fill activates the trade (levels from the fill price,
explicit levels kept when valid); later fills average in.  An exit asked for
before the entry filled waits for the entry's cancel to be confirmed, then
whatever filled exits in one go.  Positions the broker holds that no trade
covers are adopted here too (``adopt_positions`` and fills claimed by
``reconciler``).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain import rules
from tmtool.domain.broker import BrokerError, OrderInfo, Position
from tmtool.domain.commands import UNSET, Accepted, CreateTrade, Denied
from tmtool.domain.fills import running_average
from tmtool.domain.models import (
    DERIVATIVE_EXCHANGES,
    EXCHANGES,
    MANUAL_STRATEGY,
    AlertCategory,
    AlertPriority,
    Instrument,
    OrderPurpose,
    OrderRecord,
    OrderState,
    PriceType,
    Product,
    Side,
    Strategy,
    Trade,
    TradeRisk,
    TradeStatus,
    round_stop,
    round_target,
)
from tmtool.domain.reconcile import PositionKey, order_progress, position_key, split_quantity
from tmtool.domain.sizing import (
    entry_denial,
    estimated_margin_rate,
    funds_denial,
    funds_limit,
    size_position,
)
from tmtool.domain.validation import validate_create_trade, validate_levels
from tmtool.engine.books import TradeIndex
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal, fmt
from tmtool.engine.order_events import LiveOrder
from tmtool.engine.orders import OrderManager
from tmtool.engine.positions import PositionCache
from tmtool.engine.state import EXPOSED, EngineState, EntryPlan, StrategyRuntime
from tmtool.engine.tradebook_fills import fills_unknown, tradebook_totals
from tmtool.engine.ports import Broker


class EntryController:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        positions: PositionCache,
        index: TradeIndex,
        orders: OrderManager,
        exits: ExitController,
    ) -> None:
        self.state = state
        self._journal = journal
        self._positions = positions
        self._index = index
        self._orders = orders
        self._exits = exits

    # ---------------------------------------------------------------- a new trade

    def create_trade(self, command: CreateTrade, future: Future) -> None:
        state = self.state
        denial = validate_create_trade(command)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        runtime = state.strategies.get(command.strategy)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        adopting = command.order_id is not None or command.entry_price is not None
        if command.entry_price is not None and command.order_id is None and command.quantity is None:
            future.set_result(Denied("INVALID_QUANTITY", "adopting a held position needs its quantity"))
            return
        if not adopting:
            denied = self.entry_denied(runtime)
            if denied is not None:
                future.set_result(denied)
                return
        if state.broker_state == "SESSION_EXPIRED" and command.entry_price is None:
            future.set_result(Denied("SESSION_EXPIRED", "the OpenAlgo session expired: log in to OpenAlgo again"))
            return
        exchange, symbol = command.exchange, command.symbol
        known_price = state.books[(exchange, symbol)].price if (exchange, symbol) in state.books else 0.0
        cached = state.instruments.get((exchange, symbol))
        broker = state.broker
        needs_funds = not adopting
        product = Product(command.product) if command.product is not None else runtime.strategy.product
        margin_percent = state.settings.fno_margin_percent
        generation = self._positions.key((symbol, exchange, product.value)).generation

        def prepare() -> dict[str, Any]:
            out: dict[str, Any] = {}
            try:
                out["symbol_info"] = cached or broker.symbol_info(symbol, exchange)
            except BrokerError as exc:
                if exc.kind in ("validation", "not_found"):
                    raise
                out["symbol_info"] = None
            if command.order_id is not None:
                try:
                    info = broker.order_status(command.order_id, command.strategy)
                except BrokerError as exc:
                    if exc.kind in ("validation", "not_found"):  # the order, not the symbol, is what is unknown
                        raise BrokerError("unknown_order", f"no order {command.order_id!r} at the broker: {exc.message}") from None
                    raise
                if fills_unknown(info):  # a live server's reply: how much filled (a cancelled order too) is in the tradebook
                    quantity, value = tradebook_totals(broker.trade_book()).get(info.order_id, (0, 0.0))
                    info = replace(info, filled_quantity=quantity, average_price=value / quantity if quantity else 0.0)
                out["order"] = info
            if adopting:
                # adoption takes over what the account holds: the positionbook must show it
                out["positions"] = broker.position_book()
            else:
                out["price"] = known_price or broker.quotes(symbol, exchange).ltp
                if needs_funds:
                    out["funds"] = broker.funds().available_cash
                    known = out["symbol_info"] or cached
                    lot = known.lot_size if known is not None else 1
                    out["margin_rate"] = _margin_rate(broker, command, product, float(out["price"]), lot, margin_percent)
                # the net position the entry's fills move from (judges an entry whose reply is lost)
                out["net"] = (product.value, generation, broker.open_position(strategy=command.strategy, symbol=symbol,
                                                                             exchange=exchange, product=product.value))
            return out

        state.job(JobKind.PREPARE_ENTRY, (command, future), prepare)

    def entry_denied(self, runtime: StrategyRuntime) -> Denied | None:
        strategy = runtime.strategy
        if self.state.entries_halted_since is not None:
            return Denied("PANIC_HALT", "new entries are halted since the panic exit: re-arm first (TUI or the API's rearm)")
        if runtime.deleting:
            return Denied("STRATEGY_DELETED", f"strategy {strategy.name!r} is being deleted")
        open_positions = sum(1 for t in runtime.trades.values() if t.status.is_open)
        halted = runtime.state.halted or self.state.account_halted_on == self.state.day
        denial = entry_denial(strategy, open_positions, halted, runtime.state.trades_today)
        if denial is not None:
            return Denied(denial.code, denial.message)
        if portfolio_rules.square_off_due(strategy, self.state.clock.time()):
            return Denied("SQUARE_OFF_PASSED", f"strategy {strategy.name!r} is past its square-off time for today")
        return None

    def on_prepare_entry(self, result: JobResult) -> None:
        """The prepared entry is back (an expired session was already taken note of by the job router)."""
        command, future = result.context
        if result.error is not None:
            kind = result.error.kind
            code = ("SESSION_EXPIRED" if kind == "auth" else "UNKNOWN_ORDER" if kind == "unknown_order"
                    else "UNKNOWN_SYMBOL" if kind in ("validation", "not_found") else "BROKER_ERROR")
            future.set_result(Denied(code, result.error.message))
            return
        data = result.value
        instrument = self.state.remember_instrument(command.exchange, command.symbol, data.get("symbol_info"))
        runtime = self.state.strategies.get(command.strategy)
        if runtime is None:
            future.set_result(Denied("UNKNOWN_STRATEGY", f"no strategy named {command.strategy!r}"))
            return
        if command.order_id is not None:
            self._adopt_order(command, future, instrument, data["order"], data["positions"])
        elif command.entry_price is not None:
            self._adopt_position(command, future, instrument, data["positions"])
        else:
            product, generation, net = data["net"]
            key_state = self._positions.key((command.symbol, command.exchange, product))
            if key_state.generation == generation and not key_state.live_orders:
                key_state.take_read(int(net))
            self._place_entry(
                command, future, instrument, runtime, float(data["price"]), float(data.get("funds", 0.0)),
                float(data.get("margin_rate", 1.0)),
            )

    def _new_trade(self, command: CreateTrade, instrument: Instrument, status: TradeStatus, runtime: StrategyRuntime) -> Trade:
        state = self.state
        now = state.clock.time()
        strategy = runtime.strategy
        trade = Trade(
            id=state.next_trade_id,
            strategy=strategy.name,
            symbol=command.symbol,
            exchange=command.exchange,
            product=Product(command.product) if command.product is not None else strategy.product,
            side=Side(command.side),
            quantity=0,
            entry_price=0.0,
            status=status,
            tick_size=instrument.tick_size,
            lot_size=instrument.lot_size,
            entry_price_type=PriceType(command.price_type),
            entry_limit_price=command.limit_price,
            created_at=now,
            updated_at=now,
            note=command.note,
        )
        state.next_trade_id += 1
        state.trade_runtime(trade.id).entry_plan = EntryPlan(command, strategy.name)
        return trade

    def _place_entry(
        self, command: CreateTrade, future: Future, instrument: Instrument, runtime: StrategyRuntime, price: float, funds: float,
        margin_rate: float = 1.0,
    ) -> None:
        """Size and check the entry (an F&O one against margin: ``margin_rate`` of its notional), then
        send it, split at the freeze quantity like an exit: one ledger row per piece, every piece
        filling into the same trade."""
        denied = self.entry_denied(runtime)
        if denied is not None:
            future.set_result(denied)
            return
        denial = validate_create_trade(command, current_price=price, lot_size=instrument.lot_size)
        if denial is not None:
            future.set_result(Denied(denial.code, denial.message))
            return
        state = self.state
        side = Side(command.side)
        reference = command.limit_price if command.price_type == PriceType.LIMIT and command.limit_price else price
        strategy = runtime.strategy
        margin_percent = state.settings.fno_margin_percent
        funds_in_use = sum(
            t.entry_price * t.quantity * estimated_margin_rate(t.exchange, t.symbol, t.side, margin_percent)
            for t in runtime.trades.values()
            if t.status in EXPOSED
        )
        if command.quantity is not None:
            quantity = command.quantity
            short = funds_denial(quantity, reference, funds_limit(strategy, funds, funds_in_use), margin_rate)
            if short is not None:
                future.set_result(Denied(short.code, short.message))
                return
        else:
            stop = command.stop_loss
            if stop is None:
                stop = rules.initial_levels(side, reference, self._risk_for(strategy, command), instrument.tick_size, 1, instrument.lot_size).stop_loss
            open_positions = sum(1 for t in runtime.trades.values() if t.status.is_open)
            sized = size_position(
                strategy, reference, stop, instrument.lot_size, funds, open_positions, runtime.state.halted,
                runtime.state.trades_today, funds_in_use, margin_rate,
            )
            if not isinstance(sized, int):
                future.set_result(Denied(sized.code, sized.message))
                return
            quantity = sized
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        trade.requested_quantity = quantity
        # the explicit levels ride on the pending trade too: an entry resolved after a restart keeps them
        trade.stop_loss, trade.target = command.stop_loss, command.target
        if command.price_type == PriceType.LIMIT:
            trade.entry_price = command.limit_price or 0.0
        trade.last_price = price
        self._index.add_trade(trade)
        self._journal.event(trade, "CREATED", "status", "", trade.status.value, f"{side.entry_action} {quantity}", price)
        self._journal.save_trade(trade)
        runtime.state = portfolio_rules.record_trade_opened(runtime.state, state.clock.time())
        state.store.save_portfolio(runtime.state)
        pieces = split_quantity(quantity, instrument.freeze_quantity, instrument.lot_size)
        records = [
            OrderRecord(
                key=f"e-{trade.id}-{uuid.uuid4().hex[:10]}",
                trade_id=trade.id,
                purpose=OrderPurpose.ENTRY,
                action=side.entry_action,
                quantity=piece,
                state=OrderState.INTENT,
                price_type=PriceType(command.price_type),
                price=command.limit_price or 0.0,
                created_at=state.clock.time(),
                updated_at=state.clock.time(),
            )
            for piece in pieces
        ]
        for record in records:  # every piece is tracked before any goes out
            self._orders.track(record, trade)
        for record in records:
            self._orders.dispatch(record, trade)
        split = f" in {len(pieces)} orders (freeze quantity {instrument.freeze_quantity})" if len(pieces) > 1 else ""
        future.set_result(Accepted(f"entry {side.entry_action} {quantity} {trade.symbol} sent{split}", trade_id=trade.id))

    def unheld_denial(self, pos_key: PositionKey, side: Side, quantity: int, positions: list[Position]) -> Denied | None:
        """Adoption takes over a held position: refused unless the positionbook holds ``quantity`` in
        ``side``'s direction beyond what the open trades on the key account for."""
        net = sum(int(p.quantity) for p in positions if (p.symbol, p.exchange, p.product) == pos_key)
        managed = self.managed_quantity(pos_key)
        pending = sum(
            t.requested_quantity * t.side.sign
            for t in self.state.trades.values()
            if position_key(t) == pos_key and t.status is TradeStatus.PENDING_ENTRY and t.side is side
        )
        free = (net - managed - pending) * side.sign
        if quantity <= free:
            return None
        symbol, exchange, product = pos_key
        return Denied(
            "POSITION_NOT_HELD",
            f"the broker holds {net:+d} {exchange}:{symbol} {product} and open trades account for {managed + pending:+d}: "
            f"{max(0, free)} {side.value} free to adopt, not {quantity}",
        )

    def _adopt_order(
        self, command: CreateTrade, future: Future, instrument: Instrument, info: OrderInfo, positions: list[Position]
    ) -> None:
        progress = order_progress(info.status, int(info.quantity), info.filled_quantity, info.average_price)
        if progress.state in (OrderState.REJECTED, OrderState.CANCELLED) and progress.filled_quantity == 0:
            future.set_result(Denied("ORDER_NOT_FILLED", f"order {info.order_id} is {info.status}: nothing to manage"))
            return
        orders = self._orders
        if info.order_id in orders.known_order_ids:
            future.set_result(Denied("ALREADY_MANAGED", f"order {info.order_id} already belongs to a trade"))
            return
        expected = Side(command.side).entry_action
        if info.action.upper() != expected:
            future.set_result(Denied("SIDE_MISMATCH", f"order {info.order_id} is a {info.action}, not a {expected}"))
            return
        runtime = self.state.strategies[command.strategy]
        product = Product(info.product) if info.product else Product(command.product) if command.product else runtime.strategy.product
        filled = min(progress.filled_quantity, int(info.quantity))
        if filled:
            denied = self.unheld_denial((command.symbol, command.exchange, product.value), Side(command.side), filled, positions)
            if denied is not None:
                future.set_result(denied)
                return
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        trade.product = product
        trade.requested_quantity = int(info.quantity)
        self._index.add_trade(trade)
        self._journal.event(trade, "CREATED", "entry_order_id", "", info.order_id, "adopted order")
        self._positions.key(position_key(trade)).net = None  # the fill may not be in the cache yet
        record = OrderRecord(
            key=f"e-{trade.id}-{uuid.uuid4().hex[:10]}",
            trade_id=trade.id,
            purpose=OrderPurpose.ENTRY,
            action=expected,
            quantity=int(info.quantity),
            state=OrderState.SENT,
            order_id=info.order_id,
            created_at=self.state.clock.time(),
            updated_at=self.state.clock.time(),
            message="adopted",
        )
        live = orders.track(record, trade)
        self.state.store.save_order(record)
        orders.order_id_known(live, info.order_id)
        filled = min(progress.filled_quantity, record.quantity)
        if filled > 0:
            orders.apply_fill(live, filled, progress.average_price)
        if progress.state.is_final:
            orders.finish(live, progress.state)
        else:
            orders.poll(record.key, orders.poll_interval())
        self._journal.save_trade(trade)
        future.set_result(Accepted(f"order {info.order_id} adopted", trade_id=trade.id))

    def _adopt_position(self, command: CreateTrade, future: Future, instrument: Instrument, positions: list[Position]) -> None:
        runtime = self.state.strategies[command.strategy]
        assert command.quantity is not None and command.entry_price is not None
        product = Product(command.product) if command.product is not None else runtime.strategy.product
        pos_key = (command.symbol, command.exchange, product.value)
        denied = self.unheld_denial(pos_key, Side(command.side), command.quantity, positions)
        if denied is not None:
            future.set_result(denied)
            return
        key_state = self._positions.key(pos_key)
        if not key_state.live_orders:
            key_state.take_read(sum(int(p.quantity) for p in positions if (p.symbol, p.exchange, p.product) == pos_key))
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        self._index.add_trade(trade)
        self._journal.event(trade, "CREATED", "quantity", "", command.quantity, "adopted position", command.entry_price)
        denial = self._activate(trade, command.quantity, float(command.entry_price))
        if denial is not None:
            self._journal.alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id}: {denial}", trade=trade)
        future.set_result(Accepted(f"position adopted as trade #{trade.id}", trade_id=trade.id))

    @staticmethod
    def _risk_for(strategy: Strategy, command: CreateTrade | None) -> TradeRisk:
        risk = strategy.trade_risk
        if command is None:
            return risk
        if command.trailing is not None:
            risk = replace(risk, trailing=command.trailing)
        if command.partial_targets is not None:
            risk = replace(risk, partial_targets=command.partial_targets)
        if command.breakeven_after is not UNSET:
            risk = replace(risk, breakeven_after=command.breakeven_after)
        return risk

    # ---------------------------------------------------------------- fills and the entry's end

    def on_entry_fill(self, trade: Trade, quantity: int, price: float) -> None:
        if trade.status is TradeStatus.PENDING_ENTRY:
            denial = self._activate(trade, quantity, price)
            if denial is not None:
                self._journal.alert(AlertCategory.TRADE, AlertPriority.WARNING, f"#{trade.id}: {denial}", trade=trade)
            return
        trade.entry_price = running_average(trade.entry_price, trade.entry_quantity, price, quantity)
        trade.entry_quantity += quantity
        trade.quantity += quantity
        trade.updated_at = self.state.clock.time()
        self._journal.event(trade, "ENTRY_FILL", "quantity", trade.quantity - quantity, trade.quantity, "", price)
        self._journal.save_trade(trade)
        self._index.rebuild_trade_book(trade)
        if trade.status in (TradeStatus.EXITING, TradeStatus.EXIT_FAILED) and not self._orders.has_live(trade.id):
            self._exits.drive_exit(trade)

    def _activate(self, trade: Trade, quantity: int, price: float) -> str | None:
        """Make a trade ACTIVE at its fill; levels from the fill price, explicit levels win when valid."""
        state, journal = self.state, self._journal
        trade_runtime = state.trade_runtime(trade.id)
        plan, trade_runtime.entry_plan = trade_runtime.entry_plan, None
        runtime = state.runtime(trade.strategy)
        command = plan.command if plan is not None else None
        # explicit levels: the command's, or (the plan lost in a restart) those the pending trade carries
        explicit_stop = command.stop_loss if command is not None else trade.stop_loss
        explicit_target = command.target if command is not None else trade.target
        risk = self._risk_for(runtime.strategy, command)
        levels = rules.initial_levels(trade.side, price, risk, trade.tick_size, quantity, trade.lot_size)
        now = state.clock.time()
        trade.quantity = quantity
        trade.entry_quantity = quantity
        trade.requested_quantity = trade.requested_quantity or quantity
        trade.entry_price = price
        trade.stop_loss, trade.target = levels.stop_loss, levels.target
        trade.trailing = risk.trailing
        trade.trailing_stop = levels.trailing_stop
        trade.breakeven_after = risk.breakeven_after
        trade.partial_levels = levels.partial_levels
        trade.high_watermark = trade.low_watermark = price
        trade.opened_at = now
        trade.last_price = trade.last_price or price
        note = None
        if explicit_stop is not None or explicit_target is not None:
            denial = validate_levels(trade.side, price, None, explicit_stop, explicit_target)
            if denial is None:
                if explicit_stop is not None:
                    trade.stop_loss = round_stop(explicit_stop, trade.side, trade.tick_size)
                if explicit_target is not None:
                    trade.target = round_target(explicit_target, trade.side, trade.tick_size)
            else:
                note = f"explicit levels refused against the fill {price:.2f} ({denial.message}); strategy defaults used"
        journal.set_status(trade, TradeStatus.ACTIVE, "entry filled")
        journal.event(trade, "LEVEL", "levels", "", f"stop={trade.stop_loss} target={trade.target} trail={trade.trailing_stop}", "", price)
        journal.save_trade(trade)
        self._index.rebuild_trade_book(trade)
        journal.alert(
            AlertCategory.TRADE,
            AlertPriority.INFO,
            f"#{trade.id} {trade.symbol} {trade.side.value} {quantity} @ {price:.2f} active "
            f"(stop {fmt(trade.effective_stop)}, target {fmt(trade.target)})",
            trade=trade,
        )
        if trade_runtime.exit_on_fill is not None and not self._orders.live_entries(trade):
            reason, trade_runtime.exit_on_fill = trade_runtime.exit_on_fill, None
            self._exits.begin_exit(trade, reason)
        return note

    def after_entry_final(self, trade: Trade, live: LiveOrder, order_state: OrderState) -> None:
        if order_state is not OrderState.COMPLETE:
            if trade.status is TradeStatus.PENDING_ENTRY and trade.entry_quantity == 0 and self._orders.live_entries(trade):
                return  # other pieces of a split entry are still working: the last one decides
            if trade.status is TradeStatus.PENDING_ENTRY and trade.entry_quantity == 0:
                if live.cancel_wanted and order_state is OrderState.CANCELLED:
                    why = "entry cancelled before it filled: exit requested"
                else:
                    why = f"entry {order_state.value.lower()}: {live.record.message or 'no reason given'}"
                self._exits.cancel_entry(trade, why)
                return
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"#{trade.id} {trade.symbol}: entry ended {order_state.value.lower()} after filling {trade.entry_quantity}",
                trade=trade,
            )
        if self._orders.live_entries(trade):
            return
        trade_runtime = self.state.trade_runtime(trade.id)
        pending_exit = trade_runtime.exit_on_fill
        if pending_exit is not None and trade.status is TradeStatus.ACTIVE:
            # The cancel is confirmed (or the entry filled after all): what filled exits now, in one go.
            trade_runtime.exit_on_fill = None
            self._exits.begin_exit(trade, pending_exit)
        elif trade.status is TradeStatus.EXITING and not self._orders.has_live(trade.id):
            self._exits.drive_exit(trade)  # fills that came in while the trade was exiting go out too

    # ---------------------------------------------------------------- adoption from the books

    def start_adopt_positions(self, future: Future) -> None:
        self.state.job(JobKind.ADOPT_POSITIONS, future, self.state.broker.position_book)

    def on_adopt_positions(self, result: JobResult) -> None:
        future: Future = result.context
        if result.error is not None:
            future.set_result(Denied("BROKER_ERROR", result.error.message))
            return
        adopted: list[int] = []
        for position in result.value:
            pos_key = (position.symbol, position.exchange, position.product)
            key_state = self._positions.keys.get(pos_key)
            if position.quantity == 0 or (key_state is not None and key_state.live_orders):
                continue
            managed = self.managed_quantity(pos_key)
            unmanaged = position.quantity - managed
            if unmanaged == 0 or (managed and (managed > 0) != (unmanaged > 0)):
                continue
            trade = self.adopt_unmanaged(position, abs(unmanaged), MANUAL_STRATEGY, position.average_price or position.ltp)
            if trade is not None:
                adopted.append(trade.id)
        future.set_result(Accepted(f"adopted {len(adopted)} position(s)", trade_ids=tuple(adopted)))

    def managed_quantity(self, pos_key: tuple[str, str, str]) -> int:
        """The signed open quantity of the trades on ``pos_key``."""
        return sum(
            t.quantity * t.side.sign for t in self.state.trades.values() if position_key(t) == pos_key and t.status in EXPOSED
        )

    def adopt_unmanaged(self, position: Position, quantity: int, strategy: str, price: float) -> Trade | None:
        if position.exchange not in EXCHANGES:
            return None
        try:
            product = Product(position.product)
        except ValueError:
            return None
        if not price or price <= 0:
            return None
        state = self.state
        runtime = state.runtime(strategy)
        instrument = state.instruments.get((position.exchange, position.symbol)) or state.remember_instrument(position.exchange, position.symbol, None)
        command = CreateTrade(
            strategy=strategy, symbol=position.symbol, exchange=position.exchange,
            side=Side.LONG if position.quantity > 0 else Side.SHORT, product=product, quantity=quantity, entry_price=price,
        )
        trade = self._new_trade(command, instrument, TradeStatus.PENDING_ENTRY, runtime)
        self._index.add_trade(trade)
        self._journal.event(trade, "CREATED", "quantity", "", quantity, "adopted from the positionbook", price)
        self._positions.key(position_key(trade)).take_read(position.quantity)
        self._activate(trade, quantity, price)
        return trade


def _margin_rate(broker: Broker, command: CreateTrade, product: Product, price: float, lot_size: int, margin_percent: float) -> float:
    """The fraction of an entry's notional the broker will block (run off the engine thread).

    Cash equity blocks all of it.  For F&O the server's margin calculator is asked for the
    order itself (or one lot when the strategy sizes it); a server or broker without one,
    or a failing call, leaves the estimate (``estimated_margin_rate``).  An expired session
    is no reason to estimate: it fails the entry.
    """
    side = Side(command.side)
    estimate = estimated_margin_rate(command.exchange, command.symbol, side, margin_percent)
    if command.exchange not in DERIVATIVE_EXCHANGES:
        return estimate
    quantity = command.quantity or max(1, lot_size)
    limit = command.limit_price if command.price_type == PriceType.LIMIT and command.limit_price else 0.0
    reference = limit or price
    try:
        required = broker.margin_required(
            symbol=command.symbol, exchange=command.exchange, action=side.entry_action, quantity=quantity,
            product=product.value, price_type=PriceType(command.price_type).value, price=limit,
        )
    except BrokerError as exc:
        if exc.kind == "auth":
            raise
        return estimate
    if required <= 0 or reference <= 0:
        return estimate
    return required / (quantity * reference)
