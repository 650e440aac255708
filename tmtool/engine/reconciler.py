"""Keeping the engine true to the broker: positionbook reconciliation, fill attribution, the session.

* Reconciliation reads the positionbook at start, every ``reconcile_interval``
  and on command, takes it into the position cache (``positions``) and shrinks
  or closes trades the broker no longer holds (the arithmetic is the pure
  ``domain.reconcile``) — only once a second read at least ``absence_grace``
  after the first still shows it (a lagging positionbook may not show recent
  fills yet).  Keys that changed while the book was read, or that
  have exits in flight, are left alone.
* Fill attribution polls the tradebook (and the order book, whose strategy tags
  say whose each fill is): a strategy halted by its daily loss limit has fills
  opened outside tmtool closed (lockout); a strategy with ``adopt_fills`` has
  them adopted as trades.  Only OpenAlgo's analyzer (sandbox) order book reports
  the tags; against a live server a WARNING alert says so once.
* The broker session: an auth error anywhere marks it SESSION_EXPIRED (exits are
  parked), a ping probes it with backoff, and parked exits resume when it works.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace

from tmtool.domain.broker import BrokerError, Fill, OrderInfo, Position
from tmtool.domain.commands import Accepted, Denied
from tmtool.domain.models import AlertCategory, AlertPriority, ExitReason, Trade
from tmtool.domain.reconcile import PositionKey, position_key, reconcile_positions
from tmtool.engine.entries import EntryController
from tmtool.engine.executor import JobKind, JobResult
from tmtool.engine.exits import ExitController
from tmtool.engine.journal import Journal
from tmtool.engine.orders import OrderManager
from tmtool.engine.positions import PositionCache
from tmtool.engine.state import EngineState, StrategyRuntime
from tmtool.engine.tradebook_fills import tradebook_totals


class BrokerSession:
    """Whether the OpenAlgo session works; parks and resumes exits with it."""

    def __init__(self, state: EngineState, journal: Journal, exits: ExitController) -> None:
        self.state = state
        self._journal = journal
        self._exits = exits
        self._probe_step = 0

    def on_auth_error(self, message: str) -> None:
        state = self.state
        if state.broker_state == "SESSION_EXPIRED":
            return
        state.broker_state = "SESSION_EXPIRED"
        state.broker_message = message
        self._probe_step = 0
        self._journal.alert(
            AlertCategory.SYSTEM,
            AlertPriority.CRITICAL,
            "OpenAlgo session expired or API key refused: log in to OpenAlgo again. Exits are queued until it works.",
            key="broker-session",
        )
        state.schedule(state.settings.auth_probe_backoff[0], self._probe)

    def _probe(self) -> None:
        if self.state.broker_state != "SESSION_EXPIRED":
            return
        self.state.job(JobKind.PING, None, self.state.broker.ping)

    def on_ping(self, result: JobResult) -> None:
        if result.error is None:
            self.broker_ok()
            return
        if self.state.broker_state != "SESSION_EXPIRED":
            if result.error.kind == "auth":
                self.on_auth_error(result.error.message)
            return
        backoff = self.state.settings.auth_probe_backoff
        self._probe_step = min(self._probe_step + 1, len(backoff) - 1)
        self.state.schedule(backoff[self._probe_step], self._probe)

    def broker_ok(self) -> None:
        state = self.state
        was_expired = state.broker_state == "SESSION_EXPIRED"
        state.broker_state, state.broker_message = "OK", ""
        state.dirty = True
        if not was_expired:
            return
        self._journal.alert(AlertCategory.SYSTEM, AlertPriority.INFO, "OpenAlgo session is back: resuming queued exits", key="broker-session")
        self._exits.resume_parked()


class Reconciler:
    def __init__(
        self,
        state: EngineState,
        journal: Journal,
        positions: PositionCache,
        orders: OrderManager,
        exits: ExitController,
        entries: EntryController,
        session: BrokerSession,
    ) -> None:
        self.state = state
        self._journal = journal
        self._positions = positions
        self._orders = orders
        self._exits = exits
        self._entries = entries
        self._session = session
        # keys whose positionbook showed less than their trades hold: when first seen (a lagging book
        # may not show recent fills yet, so a trade shrinks or closes only when a read at least
        # ``absence_grace`` later still shows it)
        self._suspect: dict[PositionKey, tuple[float, int]] = {}  # key -> (first seen, the trades' quantity then)
        self._reversals: dict[PositionKey, int] = {}  # key -> the reversed net already flagged
        self.fills_seen: dict[str, int] | None = None  # tradebook order id -> quantity seen (None: no baseline)
        self._tradebook_busy = False
        self._order_tags: bool | None = None  # the server's order book reports strategy tags (None: not known yet)
        self._untagged_warned = False

    # ---------------------------------------------------------------- the positionbook

    def reconcile_at_start(self) -> None:
        state = self.state
        try:
            positions = state.broker.position_book()
        except BrokerError as exc:
            if exc.kind == "auth":
                self._session.on_auth_error(exc.message)
            else:
                self._journal.alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"could not read the positionbook at start ({exc.kind}): {exc.message}",
                    key="reconcile-error",
                )
            return
        state.broker_state, state.broker_message = "OK", ""
        self._apply_positions(positions, startup=True)

    def periodic_reconcile(self) -> None:
        state = self.state
        state.schedule(state.settings.reconcile_interval, self.periodic_reconcile)
        if state.broker_state != "SESSION_EXPIRED":
            state.job(JobKind.RECONCILE, (None, self._positions.generations(), 0), state.broker.position_book)

    def reconcile_now(self, future: Future) -> None:
        self.state.job(JobKind.RECONCILE, (future, self._positions.generations(), 0), self.state.broker.position_book)

    def on_reconcile(self, result: JobResult) -> None:
        future, generations, rounds = result.context
        if result.error is not None:
            if result.error.kind != "auth":
                self._journal.alert(
                    AlertCategory.SYSTEM,
                    AlertPriority.WARNING,
                    f"reconciliation failed ({result.error.kind}): {result.error.message}",
                    key="reconcile-error",
                )
            if future is not None:
                future.set_result(Denied("BROKER_ERROR", result.error.message))
            return
        if self.state.broker_state != "OK":
            self._session.broker_ok()
        found, changed_meanwhile = self._apply_positions(result.value, startup=False, generations=generations)
        if changed_meanwhile and rounds < 3:
            # A position changed while the book was read: those keys were skipped; read again.
            self.state.job(JobKind.RECONCILE, (future, self._positions.generations(), rounds + 1), self.state.broker.position_book)
            return
        if future is not None:
            future.set_result(Accepted(f"reconciled: {found} discrepancy(ies)"))

    def _apply_positions(
        self, positions: list[Position], startup: bool, generations: dict[PositionKey, int] | None = None
    ) -> tuple[int, bool]:
        """Take a positionbook read into the position cache and reconcile trades with it.

        Keys that changed since the read was requested (``generations``) are left
        alone: the read may predate those fills.  Keys with exits in flight are not
        reconciled (their fills may or may not be in the read); the cache takes the
        read only for keys with no order of ours live at all.  An entry of ours that
        filled unseen can only make the broker hold more, so it never shrinks a trade.
        """
        book: dict[PositionKey, int] = {}
        for position in positions:
            pos_key = (position.symbol, position.exchange, position.product)
            book[pos_key] = book.get(pos_key, 0) + int(position.quantity)
        generations = generations or {}
        keys = self._positions.keys
        changed = {k for k, key_state in keys.items() if generations and key_state.generation != generations.get(k, 0)}
        busy = changed | {k for k, key_state in keys.items() if key_state.exits_in_flight}
        for pos_key, key_state in keys.items():
            if pos_key not in changed and not key_state.live_orders:
                key_state.take_read(book.get(pos_key, 0))
        trades = self.state.trades
        discrepancies = reconcile_positions(list(trades.values()), book, busy)
        now = self.state.clock.time()
        grace = self.state.settings.absence_grace
        # a suspicion holds while each read shows the same trades short (trades changed: start again)
        shrinking = {d.key: d.managed_quantity for d in discrepancies if d.changes}
        self._suspect = {k: seen for k, seen in self._suspect.items() if shrinking.get(k) == seen[1]}
        confirm = False
        for discrepancy in discrepancies:
            kind = discrepancy.kind
            if discrepancy.changes:
                since, _ = self._suspect.setdefault(discrepancy.key, (now, discrepancy.managed_quantity))
                if now - since < grace:
                    confirm = True  # a lagging positionbook may not show recent fills yet: read again first
                    continue
                del self._suspect[discrepancy.key]
            priority = AlertPriority.INFO if kind == "LARGER" else AlertPriority.WARNING
            self._journal.alert(AlertCategory.SYSTEM, priority, ("at start: " if startup else "") + discrepancy.text,
                                key=f"reconcile-{kind}-{':'.join(discrepancy.key)}")
            for change in discrepancy.changes:
                trade = trades.get(change.trade_id)
                if trade is None:
                    continue
                if change.new_quantity == 0:
                    self._exits.close_externally(trade, f"broker net {discrepancy.broker_quantity} on reconciliation")
                else:
                    self._exits.shrink(trade, change.new_quantity, f"broker net {discrepancy.broker_quantity} on reconciliation")
        if confirm:
            self.state.schedule(grace, self._confirm)
        self._flag_reversals(book, busy)
        return len(discrepancies), bool(changed)

    def _flag_reversals(self, book: dict[PositionKey, int], busy: set[PositionKey]) -> None:
        """A CRITICAL alert for a position no open trade covers that stands opposite to the trade tmtool
        closed last on its key: most likely an exit racing a close made elsewhere (the broker's own
        app, another tool) sold what was already sold, and the reversed quantity is not managed.
        tmtool does not trade it itself (it cannot tell it from a position taken on purpose after
        its trade closed); it says so, once per net quantity."""
        covered = {position_key(trade) for trade in self.state.trades.values()}
        last_closed: dict[PositionKey, Trade] = {}
        for trade in self.state.closed_today:  # oldest first: the last one on each key wins
            last_closed[position_key(trade)] = trade
        for pos_key, net in book.items():
            trade = last_closed.get(pos_key)
            key_state = self._positions.keys.get(pos_key)
            reversed_here = (
                net != 0 and trade is not None and pos_key not in covered and pos_key not in busy
                and (key_state is None or not key_state.live_orders) and net * trade.side.sign < 0
                and trade.status.is_final
            )
            if not reversed_here:
                self._reversals.pop(pos_key, None)
                continue
            if self._reversals.get(pos_key) == net:
                continue
            self._reversals[pos_key] = net
            symbol, exchange, product = pos_key
            self._journal.alert(
                AlertCategory.SYSTEM,
                AlertPriority.CRITICAL,
                f"{exchange}:{symbol} {product}: the account holds {net:+d} that no open trade covers, opposite to "
                f"#{trade.id} {trade.side.value} that tmtool managed there ({trade.exit_reason.value if trade.exit_reason else 'closed'}); "
                "a close made elsewhere at the same time may have reversed the position. It is NOT managed: "
                "close it at the broker, or adopt it (adoptpositions) to manage it",
                key=f"reversal-{symbol}:{exchange}:{product}",
                trade=trade,
            )

    def _confirm(self) -> None:
        """Read the positionbook again for keys that showed less than their trades hold."""
        if self._suspect and self.state.broker_state != "SESSION_EXPIRED":
            self.state.job(JobKind.RECONCILE, (None, self._positions.generations(), 0), self.state.broker.position_book)

    # ---------------------------------------------------------------- the tradebook: lockout and adopted fills

    @staticmethod
    def _needs_order_tags(runtime: StrategyRuntime) -> bool:
        """A strategy whose lockout (daily loss limit) or fill adoption depends on order tags."""
        return runtime.strategy.portfolio.daily_loss_limit is not None or runtime.strategy.adopt_fills

    def read_fills_at_start(self) -> None:
        """Take the fills the tradebook holds at start as seen, before any command or tick is
        handled, when a strategy is locked out by its daily loss limit or adopts fills: any fill
        after this is new and judged.  (Taken at the first poll instead, a fill landing between
        start and that poll - a halted strategy's script buying again - counted as old and stayed
        held, unmanaged.)  A failed read leaves the baseline to the first poll."""
        if not any(self._needs_order_tags(r) for r in self.state.strategies.values()):
            return
        broker = self.state.broker
        mark = self._orders.order_book_mark()
        try:
            books = broker.trade_book(), broker.order_book()
        except BrokerError:
            return
        self.on_tradebook(JobResult(JobKind.TRADEBOOK, mark, value=books))

    def poll_tradebook(self) -> None:
        """Read the tradebook, and the order book whose strategy tags say whose each fill is."""
        state = self.state
        state.schedule(state.settings.adopt_fills_interval, self.poll_tradebook)
        strategies = state.strategies.values()
        watching = any(r.strategy.adopt_fills or r.state.halted for r in strategies)
        probing = self._order_tags is None and any(self._needs_order_tags(r) for r in strategies)
        if not watching and not probing and self.fills_seen is not None:
            return
        if self._tradebook_busy or state.broker_state == "SESSION_EXPIRED":
            return
        self._tradebook_busy = True
        broker = state.broker

        def read() -> tuple[list[Fill], list[OrderInfo]]:
            return broker.trade_book(), broker.order_book()

        state.job(JobKind.TRADEBOOK, self._orders.order_book_mark(), read)

    def _note_order_tags(self, orders: list[OrderInfo]) -> None:
        """Learn from an order book read whether the server reports strategy tags; warn once if not."""
        if not orders:
            return  # nothing to tell from
        self._order_tags = any(order.strategy for order in orders)
        if self._order_tags or self._untagged_warned:
            return
        names = sorted(r.strategy.name for r in self.state.strategies.values() if self._needs_order_tags(r))
        if not names:
            return
        self._untagged_warned = True
        self._journal.alert(
            AlertCategory.SYSTEM,
            AlertPriority.WARNING,
            "the OpenAlgo server's order book carries no strategy tags (live mode): positions opened outside tmtool "
            "cannot be attributed to a strategy, so a strategy halted by its daily loss limit is not locked out of "
            f"them and no fill is adopted ({', '.join(names)}); watch the broker yourself",
            key="untagged-orders",
        )

    def on_tradebook(self, result: JobResult) -> None:
        self._tradebook_busy = False
        if result.error is not None:
            return
        fills, orders = result.value
        self._orders.note_order_book(orders, result.context)
        self._note_order_tags(orders)
        tags = {order.order_id: order.strategy for order in orders if order.strategy}
        totals = tradebook_totals(fills)
        if self.fills_seen is None:
            self.fills_seen = {order_id: q for order_id, (q, _) in totals.items()}
            return
        first: dict[str, Fill] = {}
        for fill in fills:
            first.setdefault(fill.order_id, fill)
        if any(not live.record.order_id for live in self._orders.live.values()):
            return  # an order of ours may be filled but not yet known by id: look again next time
        known = self._orders.known_order_ids
        seen = self.fills_seen
        for order_id, (quantity, value) in totals.items():
            fill = first[order_id]
            if order_id in known:
                seen[order_id] = quantity
                continue
            new = quantity - seen.get(order_id, 0)
            if new <= 0:
                continue
            tag = fill.strategy or tags.get(order_id, "")  # the tradebook has no tags: the order book's say whose it is
            if tag != fill.strategy:
                fill = replace(fill, strategy=tag)
            runtime = self.state.strategies.get(fill.strategy)
            if runtime is None or not (runtime.state.halted or runtime.strategy.adopt_fills):
                seen[order_id] = quantity
                continue
            key_state = self._positions.keys.get((fill.symbol, fill.exchange, fill.product))
            if key_state is not None and key_state.live_orders:
                continue  # decide once our own orders on the key settle
            seen[order_id] = quantity
            self.state.job(JobKind.CLAIM_FILL, (fill, new, value / quantity if quantity else fill.average_price),
                           self.state.broker.open_position,
                           strategy=fill.strategy, symbol=fill.symbol, exchange=fill.exchange, product=fill.product)

    def on_claim_fill(self, result: JobResult) -> None:
        fill, quantity, price = result.context
        if result.error is not None:
            return
        net = int(result.value)
        pos_key = (fill.symbol, fill.exchange, fill.product)
        key_state = self._positions.key(pos_key)
        if key_state.live_orders:
            return
        key_state.take_read(net)
        unmanaged = net - self._entries.managed_quantity(pos_key)
        direction = 1 if fill.action.upper() == "BUY" else -1
        if unmanaged * direction <= 0:
            return  # the fill closed something (or is already managed): nothing new to claim
        claim = min(abs(unmanaged), quantity)
        runtime = self.state.strategies.get(fill.strategy)
        if runtime is None:
            return
        position = Position(fill.symbol, fill.exchange, fill.product, direction * claim, price)
        trade = self._entries.adopt_unmanaged(position, claim, fill.strategy, price)
        if trade is None:
            return
        if runtime.state.halted:
            self._journal.alert(
                AlertCategory.PORTFOLIO,
                AlertPriority.CRITICAL,
                f"strategy {fill.strategy} is locked out for today: closing a new {fill.action} {claim} {fill.symbol} (order {fill.order_id})",
                key=f"lockout-{fill.strategy}",
                strategy=fill.strategy,
            )
            self._exits.begin_exit(trade, ExitReason.LOCKOUT)
        else:
            self._journal.alert(
                AlertCategory.TRADE,
                AlertPriority.INFO,
                f"adopted fill {fill.order_id}: {fill.action} {claim} {fill.symbol} as trade #{trade.id} ({fill.strategy})",
                trade=trade,
            )
