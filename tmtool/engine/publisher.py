"""Immutable snapshots for everyone outside the engine thread.

The TUI, the control API and the alert channels never touch engine state: they
read the ``EngineSnapshot`` published here (at most ``snapshot_hz`` times a
second, only when something changed) and are called back as listeners right
after each publish, on the engine thread (they must only enqueue and return).
"""

from __future__ import annotations

import logging
from typing import Callable

from tmtool.domain import portfolio as portfolio_rules
from tmtool.domain.models import FeedState, OrderState, Trade, TradeStatus
from tmtool.engine.journal import Journal
from tmtool.engine.orders import OrderManager
from tmtool.engine.positions import PositionCache
from tmtool.engine.snapshot import EngineSnapshot, OrderView, PositionView, StrategyView, SystemView, TradeView
from tmtool.engine.state import EXPOSED, EngineState, ExitWait, StrategyRuntime

log = logging.getLogger(__name__)


class SnapshotPublisher:
    def __init__(
        self, state: EngineState, journal: Journal, orders: OrderManager, positions: PositionCache | None = None
    ) -> None:
        self.state = state
        self._journal = journal
        self._orders = orders
        self._positions = positions
        self.listeners: list[Callable[[EngineSnapshot], None]] = []
        self._version = 0
        self.last_publish = 0.0
        self.snapshot = self._empty_snapshot()

    def add_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        self.listeners = [*self.listeners, callback]

    def remove_listener(self, callback: Callable[[EngineSnapshot], None]) -> None:
        self.listeners = [c for c in self.listeners if c is not callback]

    def publish(self, force: bool = False, running: bool = True) -> None:
        state = self.state
        if not (state.dirty or force):
            return
        now_mono = state.clock.monotonic()
        if not force and now_mono - self.last_publish < 1.0 / state.settings.snapshot_hz:
            return
        self.last_publish = now_mono
        state.dirty = False
        self._version += 1
        snapshot = self._build_snapshot(running)
        self.snapshot = snapshot
        for listener in self.listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener failed")

    def summary(self) -> str:
        trades = list(self.state.trades.values())
        strategies = {t.strategy for t in trades}
        exiting = sum(1 for t in trades if t.status is TradeStatus.EXITING)
        failed = sum(1 for t in trades if t.status is TradeStatus.EXIT_FAILED)
        text = f"monitoring {len(trades)} open trade(s) in {len(strategies)} strategy(ies)"
        if exiting:
            text += f", {exiting} exiting"
        if failed:
            text += f", {failed} EXIT_FAILED"
        if self._orders.live:
            text += f", {len(self._orders.live)} order(s) awaiting confirmation"
        return text

    def _empty_snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            version=0,
            ts=self.state.clock.time(),
            trades=(),
            strategies=(),
            system=SystemView(
                engine_running=False, feed_state=FeedState.DOWN, last_tick_age=None, stale_symbols=(), broker_state="UNKNOWN",
                broker_message="", db_state="OK", db_pending=0, server_mode="", ticks_processed=0, ticks_refused=0,
                simulated=self.state.settings.simulated,
            ),
            alerts=(),
        )

    def _build_snapshot(self, running: bool) -> EngineSnapshot:
        state = self.state
        now = state.clock.time()
        for runtime in state.strategies.values():
            runtime.track_extremes()
        trades = [self._trade_view(t) for t in state.trades.values()]
        trades.sort(key=lambda v: v.id)
        trades.extend(self._trade_view(t) for t in state.closed_today)
        strategies = tuple(self._strategy_view(r) for r in sorted(state.strategies.values(), key=lambda r: r.strategy.name))
        account_pnl = state.account_realised_pnl() + sum(v.unrealised_pnl for v in strategies)
        last_tick = max((b.ts for b in state.books.values() if b.ts), default=None)
        system = SystemView(
            engine_running=running and state.running,
            feed_state=state.feed_status.state,
            last_tick_age=None if last_tick is None else max(0.0, now - last_tick),
            stale_symbols=tuple(sorted(state.stale)),
            broker_state=state.broker_state,
            broker_message=state.broker_message,
            db_state=state.db_state,
            db_pending=state.db_pending,
            server_mode=state.server_mode,
            ticks_processed=state.ticks_processed,
            ticks_refused=state.tick_filter.refused_total,
            simulated=state.settings.simulated,
            entries_halted=state.entries_halted_since is not None,
            entries_halted_since=state.entries_halted_since,
            polled_symbols=state.feed_status.polled,
        )
        return EngineSnapshot(
            version=self._version,
            ts=now,
            trades=tuple(trades),
            strategies=strategies,
            system=system,
            alerts=self._journal.alerts.recent(state.settings.recent_alerts),
            account_pnl=account_pnl,
            orders=self._order_views(),
            positions=self._position_views(),
        )

    def _order_views(self) -> tuple[OrderView, ...]:
        views = []
        for live in self._orders.live.values():
            record = live.record
            symbol, exchange, _ = live.pos_key
            views.append(
                OrderView(
                    key=record.key, trade_id=record.trade_id, strategy=live.strategy, symbol=symbol, exchange=exchange,
                    purpose=record.purpose.value, action=record.action, quantity=record.quantity,
                    filled_quantity=record.filled_quantity, average_price=record.average_price, state=record.state.value,
                    reason=record.reason.value if record.reason else "", price_type=record.price_type.value,
                    price=record.price, order_id=record.order_id or "", message=record.message,
                )
            )
        views.sort(key=lambda v: (v.trade_id, v.key))
        return tuple(views)

    def _position_views(self) -> tuple[PositionView, ...]:
        held: dict[tuple[str, str, str], int] = {}
        for trade in self.state.trades.values():
            if trade.status in EXPOSED and trade.quantity > 0:
                key = (trade.symbol, trade.exchange, trade.product.value)
                held[key] = held.get(key, 0) + trade.quantity * trade.side.sign
        known = dict(self._positions.keys) if self._positions is not None else {}
        views = []
        for key in sorted(set(held) | {k for k, s in known.items() if s.net}):
            cached = known.get(key)
            views.append(
                PositionView(
                    symbol=key[0], exchange=key[1], product=str(key[2]),
                    broker_net=cached.net if cached is not None else None, tmtool_net=held.get(key, 0),
                    exits_in_flight=cached.exits_in_flight if cached is not None else 0,
                )
            )
        return tuple(views)

    def _trade_view(self, trade: Trade) -> TradeView:
        final = trade.status.is_final
        ltp = trade.last_price if final else self.state.price_of(trade)
        unrealised = 0.0 if final else trade.unrealised_pnl(ltp)
        pnl = trade.realised_pnl + unrealised
        basis = trade.entry_price * (trade.entry_quantity or trade.quantity)
        stop = trade.effective_stop
        distance = None
        if stop is not None and ltp > 0 and not final:
            distance = (ltp - stop) * trade.side.sign
        return TradeView(
            id=trade.id, strategy=trade.strategy, symbol=trade.symbol, exchange=trade.exchange, product=trade.product,
            side=trade.side, quantity=trade.quantity, entry_quantity=trade.entry_quantity, entry_price=trade.entry_price,
            ltp=ltp, stop_loss=trade.stop_loss, target=trade.target, trailing_stop=trade.trailing_stop,
            effective_stop=stop, trailing=trade.trailing, partial_levels=trade.partial_levels, pnl=pnl,
            unrealised_pnl=unrealised, realised_pnl=trade.realised_pnl, pnl_percent=(pnl / basis * 100.0) if basis else 0.0,
            distance_to_stop=distance, high_watermark=trade.high_watermark, low_watermark=trade.low_watermark,
            status=trade.status, paused=trade.paused, degraded=trade.degraded, exit_reason=trade.exit_reason,
            exit_price=trade.exit_price, entry_order_id=trade.entry_order_id, exit_order_ids=trade.exit_order_ids,
            awaiting_approval=self._orders.awaiting_approval(trade.id), entry_price_type=trade.entry_price_type,
            opened_at=trade.opened_at, closed_at=trade.closed_at, tick_size=trade.tick_size, lot_size=trade.lot_size,
            breakeven_after=trade.breakeven_after, breakeven_done=trade.breakeven_done, exit_wait=self._exit_wait(trade),
        )

    def _exit_wait(self, trade: Trade) -> str:
        if any(live.record.state is OrderState.UNKNOWN for live in self._orders.orders_of(trade.id)):
            return ExitWait.UNKNOWN_ORDER.value
        runtime = self.state.trade_runtimes.get(trade.id)
        return runtime.exit_wait.value if runtime is not None and runtime.exit_wait is not None else ""

    @staticmethod
    def _strategy_view(runtime: StrategyRuntime) -> StrategyView:
        strategy, state = runtime.strategy, runtime.state
        risk, funds = strategy.portfolio, strategy.allocated_funds
        stop = portfolio_rules.limit_rupees(risk.stop_loss, funds)
        target = portfolio_rules.limit_rupees(risk.target, funds)
        daily = portfolio_rules.limit_rupees(risk.daily_loss_limit, funds)
        total = state.realised_pnl + runtime.unrealised
        return StrategyView(
            name=strategy.name,
            strategy=strategy,
            realised_pnl=state.realised_pnl,
            unrealised_pnl=runtime.unrealised,
            total_pnl=total,
            pnl_series=tuple(runtime.pnl_series),
            open_positions=sum(1 for t in runtime.trades.values() if t.status.is_open),
            max_open_positions=strategy.max_open_positions,
            trades_today=state.trades_today,
            portfolio_stop=-stop if stop is not None else None,
            portfolio_target=target,
            trailing_lock=state.trailing_lock,
            trailing_armed=state.trailing_armed,
            peak_pnl=state.peak_pnl,
            daily_loss_used=max(0.0, -total),
            daily_loss_limit=daily,
            halted=state.halted,
            halt_reason=state.halt_reason,
            funds_used=sum(t.entry_price * t.quantity for t in runtime.trades.values() if t.status in EXPOSED),
            allocated_funds=funds,
        )
