"""A trade's path, live against replayed: the data and the screen that charts it."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from textual_plotext import PlotextPlot
from textual.widgets import Static

from tmtool.domain.calendar import IST
from tmtool.domain.models import AccountLimits, Distance, Product, Side, Trade, TradeStatus, TrailingSettings
from tmtool.replay.path import step_series, trade_path
from tmtool.replay.reader import TickTape
from tmtool.replay.replay import replay
from tmtool.replay.settings import parse_change
from tmtool.replay.trades import ExitDecision, LiveTrade
from tmtool.screens.trade_path import TradePathApp

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=IST).timestamp()
PRICES = [100.0, 102.0, 104.0, 103.0, 101.5, 100.0]


def _day() -> tuple[LiveTrade, TickTape]:
    tape = TickTape(
        np.array([T0 + 10 * (i + 1) for i in range(len(PRICES))]), np.array(PRICES), np.ones(len(PRICES), bool),
        np.zeros(len(PRICES), np.int32), (("NSE", "SBIN"),),
    )
    trade = Trade(
        id=7, strategy="s", symbol="SBIN", exchange="NSE", product=Product.MIS, side=Side.LONG, quantity=0,
        entry_price=100.0, status=TradeStatus.CLOSED, entry_quantity=10, stop_loss=97.0,
        trailing=TrailingSettings(Distance(2.0)), trailing_stop=98.0, opened_at=T0 + 5, closed_at=T0 + 50,
    )
    start = Trade(**{**{f: getattr(trade, f) for f in trade.__slots__}, "status": TradeStatus.ACTIVE, "quantity": 10,
                     "high_watermark": 100.0, "low_watermark": 100.0, "last_price": 100.0, "closed_at": None})
    live = LiveTrade(
        start, T0 + 5, (ExitDecision(7, T0 + 50, "TRAILING_SL", 101.5, 102.0, 10),), (), 15.0, T0 + 50,
        levels=((T0 + 5, "stop_loss", 97.0), (T0 + 5, "target", None), (T0 + 5, "trailing_stop", 98.0),
                (T0 + 20, "trailing_stop", 100.0), (T0 + 30, "trailing_stop", 102.0)),
    )
    return live, tape


def test_the_path_holds_prices_levels_and_both_runs_exits():
    live, tape = _day()
    result = replay([live], {}, AccountLimits(), tape, [parse_change("trailing.distance=3")], label="trail 3")
    path = trade_path(live, result.trades[0], tape, "trail 3")
    assert path.times[0] == 0.0 and path.prices[0] == 100.0  # the entry, before the first tick
    assert path.prices[1:] == PRICES[: len(path.prices) - 1]
    assert path.live_exits == [(45.0, 101.5, "TRAILING_SL")]
    assert path.replay_exits == [(55.0, 100.0, "TRAILING_SL")]  # trail 3 from 104 is 101: the 100.0 tick
    assert path.replay_levels["trailing_stop"][0] == (0.0, 97.0) and path.replay_levels["trailing_stop"][-1][1] == 101.0
    xs, ys = step_series(path.live_levels["trailing_stop"], 45.0)
    assert (xs, ys) == ([0.0, 15.0, 15.0, 25.0, 25.0, 45.0], [98.0, 98.0, 100.0, 100.0, 102.0, 102.0])


async def test_the_screen_charts_the_path_with_a_legend():
    live, tape = _day()
    result = replay([live], {}, AccountLimits(), tape)
    app = TradePathApp(trade_path(live, result.trades[0], tape, "as run"))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.query_one(PlotextPlot).size.height > 0
        legend = str(screen.query_one("#trade-path-legend", Static).render())
        assert legend == "live exits: TRAILING_SL at 101.5 (+45s)\nreplayed exits: TRAILING_SL at 101.5 (+45s)"
