"""The level index decides exactly what evaluating every trade on every tick decides.

Two engines' tick paths (``Watch`` over a ``TradeIndex``, no sockets, no store) get the
same books: many trades per symbol with mixed settings (longs and shorts, alike and
unlike entries, stops, targets, continuous and step trailing in points and percent,
activation, breakeven, partial targets, paused trades).  One runs the real path: the
quiet band gates the tick and the book's level index hands out the trades the price
reaches, one evaluation per evaluation key.  The reference evaluates every trade with
``rules.evaluate_tick`` on every tick.  Over random price paths (touching levels
exactly now and then) both must record the same level changes, exits, partial exits
and paused-stop warnings in the same order, and leave every trade with the same levels.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tmtool.clock import ManualClock
from tmtool.domain import rules
from tmtool.domain.bands import near_band, quiet_band, trade_bands
from tmtool.domain.models import (
    AccountLimits,
    Distance,
    DistanceMode,
    PartialTarget,
    Product,
    Side,
    Tick,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
    level_event,
)
from tmtool.engine.books import TradeIndex
from tmtool.engine.journal import Journal
from tmtool.engine.positions import PositionCache
from tmtool.engine.settings import EngineSettings
from tmtool.engine.state import EngineState
from tmtool.engine.watch import Watch

SYMBOLS = ("AAA", "BBB")


class Anything:
    """Stands in for a collaborator the tick path only notifies: every call is accepted."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


class Decisions:
    """Records what the tick path decided, in order (the store's trade events and the exits)."""

    def __init__(self) -> None:
        self.log: list[tuple] = []
        self.index: TradeIndex | None = None

    # the store (trade events and alerts; everything else is accepted and dropped)
    def record_event(self, event) -> None:
        self.log.append(("event", event.trade_id, event.kind, event.field, event.old, event.new, event.price))

    def save_trade(self, trade, event=None) -> None:
        if event is not None:
            self.record_event(event)

    def save_ratchet(self, trade, ts, kind, field, old, new, price) -> None:
        self.record_event(level_event(trade, ts, kind, field, old, new, "", price))

    def save_alert(self, alert) -> None:
        self.log.append(("alert", alert.key, alert.text))

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None

    # the exit controller
    def begin_exit(self, trade: Trade, reason, trigger_price=None, price=None) -> None:
        self.log.append(("exit", trade.id, reason.value, trigger_price, price))
        trade.status = TradeStatus.EXITING
        self.index.rebuild_trade_book(trade)  # as the real exit does, while the book is being evaluated

    def send_partial_exit(self, trade: Trade, quantity: int, trigger_price: float) -> None:
        self.log.append(("partial", trade.id, quantity, trigger_price))
        trade.quantity -= quantity  # filled at once
        self.index.rebuild_trade_book(trade)


class EveryTradeWatch(Watch):
    """The reference: every trade of the book evaluated on every tick, no band, no index."""

    def evaluate_book(self, book, price, ts) -> None:
        changed = False
        for trade in tuple(book.trades):
            if trade.status is not TradeStatus.ACTIVE:
                continue
            if trade.paused:
                changed = self._watch_paused_stop(trade, price) or changed
                continue
            evaluation = rules.evaluate_tick(trade, price, ts)
            if evaluation is None:
                continue
            changed = True
            trade.last_price = price
            trade.high_watermark = evaluation.high_watermark
            trade.low_watermark = evaluation.low_watermark
            for change in evaluation.changes:
                self.apply_level_change(trade, change, price)
            if evaluation.exit is not None:
                self._on_exit_signal(trade, evaluation.exit)
        if changed:
            self._index.refresh_band(book)


def _world(trades: list[Trade], reference: bool) -> tuple[Watch, TradeIndex, Decisions, EngineState]:
    decisions = Decisions()
    settings_ = EngineSettings(tick_band_percent=99.0, trail_alerts="every")
    state = EngineState(
        store=decisions, broker=Anything(), feed=Anything(), clock=ManualClock(1_700_000_000.0),
        settings=settings_, account=AccountLimits(),
    )
    index = TradeIndex(state, PositionCache(state))
    decisions.index = index
    journal = Journal(state, sinks=())
    watch_class = EveryTradeWatch if reference else Watch
    watch = watch_class(state, journal, index, orders=Anything(), exits=decisions, risk=Anything())
    for trade in trades:
        index.add_trade(replace(trade))
    return watch, index, decisions, state


def _distance(rng: random.Random, points: float) -> Distance:
    if rng.random() < 0.5:
        return Distance(round(points * rng.choice((0.5, 1.0, 1.5)), 2))
    return Distance(round(points / 10.0 * rng.choice((0.5, 1.0, 1.5)), 2), DistanceMode.PERCENT)


def _risk(rng: random.Random) -> TradeRisk:
    trailing = None
    if rng.random() < 0.7:
        step = rng.random() < 0.3
        trailing = TrailingSettings(
            distance=_distance(rng, 15),
            activation=_distance(rng, 5) if rng.random() < 0.3 else None,
            step_trigger=_distance(rng, 6) if step else None,
            step_move=_distance(rng, 4) if step else None,
        )
    partials = ()
    if rng.random() < 0.3:
        partials = (PartialTarget(_distance(rng, 10), 0.25), PartialTarget(_distance(rng, 20), 0.25))
    return TradeRisk(
        stop_loss=_distance(rng, 20) if rng.random() < 0.8 else None,
        target=_distance(rng, 40) if rng.random() < 0.6 else None,
        trailing=trailing,
        breakeven_after=_distance(rng, 8) if rng.random() < 0.3 else None,
        partial_targets=partials,
    )


def _trades(rng: random.Random) -> list[Trade]:
    """Trades opened alike come in runs (one strategy's risk at one price), as they do live."""
    trades: list[Trade] = []
    for symbol in SYMBOLS:
        for _ in range(rng.randint(1, 5)):
            side = rng.choice((Side.LONG, Side.SHORT))
            entry = rng.choice((1000.0, 1000.0, 996.5, 1004.25))
            risk = _risk(rng)
            quantity = rng.choice((1, 4, 10))
            paused = rng.random() < 0.1
            for _ in range(rng.randint(1, 8)):
                levels = rules.initial_levels(side, entry, risk, 0.05, quantity)
                trade_id = len(trades) + 1
                trades.append(
                    Trade(
                        id=trade_id, strategy=f"s{trade_id % 3}", symbol=symbol, exchange="NSE", product=Product.MIS,
                        side=side, quantity=quantity, entry_price=entry, entry_quantity=quantity,
                        stop_loss=levels.stop_loss, target=levels.target, trailing=risk.trailing,
                        trailing_stop=levels.trailing_stop, partial_levels=levels.partial_levels,
                        breakeven_after=risk.breakeven_after, high_watermark=entry, low_watermark=entry,
                        last_price=entry, paused=paused, opened_at=1_700_000_000.0,
                    )
                )
    rng.shuffle(trades)  # a book's order is not its trades' ids
    return trades


def _levels_of(trade: Trade) -> list[float]:
    levels = [trade.stop_loss, trade.trailing_stop, trade.target, *(p.price for p in trade.partial_levels)]
    return [level for level in levels if level is not None]


def _prices(rng: random.Random, trades: list[Trade], count: int) -> list[tuple[str, float]]:
    """A random walk per symbol; now and then a price exactly at one of a trade's levels or watermarks."""
    prices = {symbol: 1000.0 for symbol in SYMBOLS}
    by_symbol = {symbol: [t for t in trades if t.symbol == symbol] for symbol in SYMBOLS}
    path = []
    for _ in range(count):
        symbol = rng.choice(SYMBOLS)
        if rng.random() < 0.15:
            trade = rng.choice(by_symbol[symbol])
            price = rng.choice(_levels_of(trade) or [trade.entry_price])
        else:
            price = round(prices[symbol] * (1.0 + rng.gauss(0.0, 0.004)), 2)
        prices[symbol] = price
        path.append((symbol, price))
    return path


def _state_of(trade: Trade) -> tuple:
    return (
        trade.id, trade.status, trade.quantity, trade.stop_loss, trade.trailing_stop, trade.target,
        trade.partial_levels, trade.breakeven_done, trade.high_watermark, trade.low_watermark,
        None if trade.paused else trade.last_price,  # a paused trade's last price follows the evaluated ticks only
    )


def _run_both(seed: int) -> list[tuple]:
    """Both tick paths over one seeded scenario; the decisions (equal in both) are returned."""
    rng = random.Random(seed)
    trades = _trades(rng)
    path = _prices(rng, trades, 400)
    indexed, indexed_books, indexed_log, indexed_state = _world(trades, reference=False)
    every, _, every_log, every_state = _world(trades, reference=True)
    for step, (symbol, price) in enumerate(path):
        ts = 1_700_000_000.0 + step
        indexed.process_tick(Tick("NSE", symbol, price, ts))
        book = every_state.books.get(("NSE", symbol))
        if book is not None:
            book.price = price
            every.evaluate_book(book, price, ts)
        assert indexed_log.log == every_log.log, f"tick {step}: {symbol} at {price}"
        indexed_book = indexed_state.books.get(("NSE", symbol))
        if indexed_book is not None:  # the book's bands are the intersections of its trades' own
            assert (indexed_book.lo, indexed_book.hi) == quiet_band(indexed_book.trades)
            assert (indexed_book.near_lo, indexed_book.near_hi) == near_band(indexed_book.trades)
    assert indexed_log.log == every_log.log
    assert sorted(map(_state_of, indexed_state.trades.values())) == sorted(map(_state_of, every_state.trades.values()))
    del indexed_books
    return every_log.log


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_indexed_evaluation_decides_what_evaluating_every_trade_decides(seed):
    _run_both(seed)


def test_the_scenarios_reach_every_kind_of_decision():
    """The comparison above is worth something only if its scenarios ratchet, exit and warn."""
    kinds: set[str] = set()
    for seed in range(12):
        for entry in _run_both(seed):
            kinds.add(entry[2] if entry[0] == "event" else entry[0])
            if entry[0] == "exit":
                kinds.add(entry[2])
            if entry[0] == "alert" and "paused trade's stop" in entry[2]:
                kinds.add("paused stop")
    assert {"TRAIL", "BREAKEVEN", "PARTIAL", "partial", "exit", "STOP_LOSS", "TARGET", "TRAILING_SL", "paused stop"} <= kinds, kinds


def test_trades_with_one_evaluation_key_get_one_evaluation():
    """What lets a book evaluate one of its alike trades per tick: the key holds every field read."""
    risk = TradeRisk(stop_loss=Distance(20), trailing=TrailingSettings(distance=Distance(1.0, DistanceMode.PERCENT)),
                     breakeven_after=Distance(5), partial_targets=(PartialTarget(Distance(12), 0.5),))
    levels = rules.initial_levels(Side.LONG, 1000.0, risk, 0.05, 4)
    a = Trade(id=1, strategy="s", symbol="AAA", exchange="NSE", product=Product.MIS, side=Side.LONG, quantity=4,
              entry_price=1000.0, stop_loss=levels.stop_loss, trailing=risk.trailing, trailing_stop=levels.trailing_stop,
              partial_levels=levels.partial_levels, breakeven_after=risk.breakeven_after, high_watermark=1000.0,
              low_watermark=1000.0)
    b = replace(a, id=2, strategy="t", symbol="BBB", last_price=990.0, note="other")
    assert rules.evaluation_key(a) == rules.evaluation_key(b)
    for price in (1006.0, 1012.0, 979.0, 1000.0):
        assert rules.evaluate_tick(a, price, 5.0) == rules.evaluate_tick(b, price, 5.0)
    assert rules.evaluation_key(replace(b, trailing_stop=991.0)) != rules.evaluation_key(a)


def test_inside_a_trade_band_its_evaluation_is_none_and_beyond_it_never():
    """Strictly inside: nothing changes.  Beyond either end (not at it: a price at a watermark moves nothing)
    something always does, so the index hands out every trade that needs evaluating."""
    rng = random.Random(3)
    for trade in _trades(rng):
        if trade.paused:
            continue
        lo, hi, _, _ = trade_bands(trade)
        for price in (lo, hi, *_levels_of(trade), trade.entry_price - 0.05, trade.entry_price + 0.05, lo - 0.05, hi + 0.05):
            if abs(price) == float("inf"):
                continue
            evaluation = rules.evaluate_tick(trade, price, 1.0)
            if lo < price < hi:
                assert evaluation is None, (trade, price)
            elif price < lo or price > hi:
                assert evaluation is not None, (trade, price)


class _ReadSpy:
    """A trade that notes which of its fields are read."""

    def __init__(self, trade: Trade, read: set[str]) -> None:
        object.__setattr__(self, "_trade", trade)
        object.__setattr__(self, "_read", read)

    def __getattr__(self, name: str):
        self._read.add(name)
        return getattr(self._trade, name)


def test_the_evaluation_key_holds_every_field_evaluate_tick_reads():
    read: set[str] = set()
    for trade in _trades(random.Random(5)):
        for price in (*_levels_of(trade), trade.entry_price, trade.entry_price * 1.03, trade.entry_price * 0.97):
            rules.evaluate_tick(_ReadSpy(trade, read), price, 1.0)  # type: ignore[arg-type]
            rules.evaluate_tick(_ReadSpy(replace(trade, breakeven_done=True), read), price, 1.0)  # type: ignore[arg-type]
    assert "breakeven_done" in read and "partial_levels" in read  # the scenarios reach the deep branches
    assert read <= set(rules.EVALUATION_FIELDS), read - set(rules.EVALUATION_FIELDS)


def test_the_evaluation_key_holds_every_field_an_unpaused_trades_bands_read():
    """What lets alike trades go back into the index as one group with one band (``update_alike``)."""
    read: set[str] = set()
    for trade in _trades(random.Random(5)):
        trade_bands(_ReadSpy(replace(trade, paused=False), read))  # type: ignore[arg-type]
    assert {"target", "partial_levels", "effective_stop"} <= read  # the spy saw the deep branches
    # ``effective_stop`` is worked out from the stop loss and trailing stop (and the side): all in the key
    assert read - {"effective_stop"} <= set(rules.EVALUATION_FIELDS), read - set(rules.EVALUATION_FIELDS)
    assert {"stop_loss", "trailing_stop", "side"} <= set(rules.EVALUATION_FIELDS)
