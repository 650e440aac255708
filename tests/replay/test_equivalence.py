"""A live session over the real stack, recorded, replayed with its own settings: every exit decision again.

The session (simulator, SQLite store, REST client, WebSocket feed, engine)
covers trailing, breakeven, a partial target, a portfolio stop, a gap through a
stop, a refused outlier tick and a trade paused while its stop is crossed.  The wall clock is manual (timers run in real
time), so each tick's time is the time of the decision it causes.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.stack import running_stack
from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST, trading_day
from tmtool.domain.commands import Accepted, CreateTrade, PauseTrade, ResumeTrade
from tmtool.domain.models import (
    AccountLimits,
    Amount,
    Distance,
    PartialTarget,
    PortfolioRisk,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.replay.reader import read_day
from tmtool.replay.recorder import ParquetTickRecorder
from tmtool.replay.replay import replay
from tmtool.replay.settings import parse_change
from tmtool.replay.trades import live_trade

STRATEGIES = (
    Strategy(
        "alpha",
        trade_risk=TradeRisk(
            stop_loss=Distance(20.0),
            trailing=TrailingSettings(Distance(5.0)),
            breakeven_after=Distance(4.0),
            partial_targets=(PartialTarget(Distance(8.0), 0.5),),
        ),
    ),
    Strategy("beta", trade_risk=TradeRisk(stop_loss=Distance(50.0)), portfolio=PortfolioRisk(stop_loss=Amount(300.0))),
    Strategy("gamma", trade_risk=TradeRisk(stop_loss=Distance(10.0), target=Distance(30.0))),
)
START = datetime(2026, 12, 7, 10, 0, tzinfo=IST)


def _session(tmp_path):
    """Run the live session; returns (live trades, tape, trade ids by name)."""
    clock = ManualClock(START, real_timers=True)
    recorder = ParquetTickRecorder(tmp_path / "ticks", session="live", batch_seconds=0.05)
    recorder.start(trading_day(clock.time()))
    ids = {}
    with running_stack(tmp_path, strategies=STRATEGIES, clock=clock, tick_recorder=recorder) as stack:

        def tick(symbol: str, price: float) -> None:
            clock.advance(1.0)
            stack.tick(symbol, price)

        def enter(name: str, strategy: str, symbol: str, price: float) -> int:
            stack.sim.set_price("NSE", symbol, price)
            clock.advance(1.0)
            trade_id = stack.create(CreateTrade(strategy, symbol, "NSE", Side.LONG, quantity=10))
            stack.wait_status(trade_id, TradeStatus.ACTIVE)
            ids[name] = trade_id
            return trade_id

        # alpha: trailing 5, breakeven after 4, half out at +8; then the trailing stop at +7.
        enter("alpha", "alpha", "RELIANCE", 2500.0)
        for price in (2502.0, 2505.0, 2509.0):
            tick("RELIANCE", price)
        stack.wait_trade(ids["alpha"], lambda t: t.quantity == 5)  # the partial exit filled at 2509
        tick("RELIANCE", 2512.0)
        tick("RELIANCE", 2506.0)
        stack.wait_status(ids["alpha"], TradeStatus.CLOSED)

        # beta: a per-trade stop far away, a portfolio stop of 300 rupees.
        enter("beta", "beta", "INFY", 1500.0)
        for price in (1490.0, 1475.0, 1469.0):
            tick("INFY", price)
        stack.wait_status(ids["beta"], TradeStatus.CLOSED)

        # gamma: an outlier tick refused by the tick filter (it would have hit the stop), then a gap through the stop.
        enter("gamma", "gamma", "SBIN", 800.0)
        tick("SBIN", 803.0)
        clock.advance(1.0)
        stack.sim.set_price("NSE", "SBIN", 640.0)  # 20% away: refused, waits for confirmation
        tick("SBIN", 804.0)
        tick("SBIN", 775.0)
        stack.wait_status(ids["gamma"], TradeStatus.CLOSED)

        # delta: paused, its stop crossed while paused (not acted on), then resumed: it exits at the resume, on the last price.
        enter("delta", "gamma", "TCS", 3500.0)
        clock.advance(1.0)
        assert isinstance(stack.submit(PauseTrade(ids["delta"])), Accepted)
        tick("TCS", 3488.0)  # below its stop, 3490
        tick("TCS", 3487.5)
        clock.advance(1.0)
        assert isinstance(stack.submit(ResumeTrade(ids["delta"])), Accepted)
        stack.wait_status(ids["delta"], TradeStatus.CLOSED)
        stack.engine.stop(timeout=5.0)
        stack.store.flush()
        recorder.stop()
        live = []
        for trade_id in ids.values():
            trade = next(t for t in stack.store.closed_trades() if t.id == trade_id)
            live.append(live_trade(trade, stack.store.trade_events(trade_id)))
    tape = read_day(tmp_path / "ticks", trading_day(START.timestamp()))
    return live, tape, ids


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return _session(tmp_path_factory.mktemp("replay-live"))


def test_the_refused_tick_is_recorded_and_marked(session):
    _, tape, _ = session
    ts, prices = tape.symbol_ticks("NSE", "SBIN")
    assert 640.0 not in prices.tolist()
    sbin = tape.keys.index(("NSE", "SBIN"))
    refused = tape.price[(tape.code == sbin) & ~tape.accepted].tolist()
    assert refused == [640.0]


def test_replay_as_run_reproduces_every_live_exit_decision(session):
    live, tape, ids = session
    result = replay(live, {s.name: s for s in STRATEGIES}, AccountLimits(), tape)
    live_keys = sorted(d.key() for t in live for d in t.live_exits)
    replay_keys = sorted(d.key() for d in result.decisions)
    assert replay_keys == live_keys
    by_trade = {t.trade_id: [(d.reason, d.tick_price, d.level, d.quantity) for d in t.exits] for t in result.trades}
    assert by_trade[ids["alpha"]] == [("PARTIAL_TARGET", 2509.0, 2508.0, 5), ("TRAILING_SL", 2506.0, 2507.0, 5)]
    assert by_trade[ids["beta"]] == [("PORTFOLIO_SL", 1469.0, None, 10)]
    assert by_trade[ids["gamma"]] == [("STOP_LOSS", 775.0, 790.0, 10)]
    assert by_trade[ids["delta"]] == [("STOP_LOSS", 3487.5, 3490.0, 10)]  # at the resume, not while paused
    # every level the rules moved live (trailing ratchets, breakeven), moved the same on the same tick
    for live_trade_ in live:
        replayed = next(t for t in result.trades if t.trade_id == live_trade_.start.id)
        assert replayed.levels[3:] == list(live_trade_.levels[3:])  # after the three levels set at the fill
    alpha = next(t for t in result.trades if t.trade_id == ids["alpha"])
    assert ("stop_loss", 2500.0) in [(name, level) for _, name, level in alpha.levels]  # breakeven at +5
    # the sim fills market exits at the tick's price: the replay's P&L is the live P&L
    assert {t.trade_id: round(t.pnl, 2) for t in result.trades} == {t.start.id: round(t.live_pnl, 2) for t in live}


def test_a_wider_trail_changes_only_the_trailing_exit(session):
    live, tape, ids = session
    result = replay(live, {s.name: s for s in STRATEGIES}, AccountLimits(), tape, [parse_change("alpha:trailing.distance=8")])
    by_trade = {t.trade_id: [(d.reason, d.tick_price, d.level) for d in t.exits] for t in result.trades}
    # Trail 8 from the best price 2512 is 2504: the fall to 2506 no longer exits; the trade is marked at the
    # last tick.  The breakeven stop (2500) and the partial target are untouched.
    assert by_trade[ids["alpha"]] == [("PARTIAL_TARGET", 2509.0, 2508.0), ("END_OF_DATA", 2506.0, None)]
    assert by_trade[ids["beta"]] == [("PORTFOLIO_SL", 1469.0, None)]
    assert by_trade[ids["gamma"]] == [("STOP_LOSS", 775.0, 790.0)]


def test_a_looser_portfolio_stop_keeps_beta_in(session):
    live, tape, ids = session
    result = replay(live, {s.name: s for s in STRATEGIES}, AccountLimits(), tape, [parse_change("beta:portfolio.stop_loss=400")])
    by_trade = {t.trade_id: [d.reason for d in t.exits] for t in result.trades}
    assert by_trade == {ids["alpha"]: ["PARTIAL_TARGET", "TRAILING_SL"], ids["beta"]: ["END_OF_DATA"], ids["gamma"]: ["STOP_LOSS"],
                        ids["delta"]: ["STOP_LOSS"]}


def test_slippage_moves_fills_against_the_trade(session):
    live, tape, ids = session
    result = replay(live, {s.name: s for s in STRATEGIES}, AccountLimits(), tape, slippage_ticks=2)
    gamma = next(t for t in result.trades if t.trade_id == ids["gamma"])
    assert gamma.exits[0].fill_price == pytest.approx(775.0 - 2 * 0.05)
    assert gamma.pnl == pytest.approx((774.9 - 800.0) * 10)
