"""History → a closed trade's price path, live against its day replayed from the recorded ticks, over a
running engine on the simulator (the same replay ``tmtool replay --plot`` runs)."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.stack import running_stack
from tests.ui.helpers import notifications, until
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import Distance, ExitReason, Side, Strategy, TradeRisk, TradeStatus, TrailingSettings
from tmtool.replay.recorder import ParquetTickRecorder
from tmtool.screens.app import TmtoolApp
from tmtool.screens.history import HistoryScreen
from tmtool.screens.trade_path import TradePathScreen

SIZE = (120, 36)
TRAIL = Strategy("trail", trade_risk=TradeRisk(stop_loss=Distance(20.0), trailing=TrailingSettings(Distance(5.0))))


def _closed_trade(stack) -> int:
    stack.sim.set_price("NSE", "RELIANCE", 2500.0)
    trade_id = stack.create(CreateTrade("trail", "RELIANCE", "NSE", Side.LONG, quantity=10))
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    for price in (2503.0, 2508.0, 2502.5):  # the trail follows to 2503, then the price falls through it
        stack.tick("RELIANCE", price)
    assert stack.wait_status(trade_id, TradeStatus.CLOSED).exit_reason is ExitReason.TRAILING_SL
    assert stack.store.flush()
    return trade_id


async def _open_history_row(pilot, trade_id: int) -> None:
    await pilot.press("h")
    screen = await until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen) and pilot.app.screen, what="History")
    table = screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count > 0, what="the closed trade listed")
    table.move_cursor(row=table.get_row_index(str(trade_id)))
    await pilot.pause()


async def test_the_path_of_a_closed_trade_opens_from_history(tmp_path):
    recorder = ParquetTickRecorder(tmp_path / "ticks", session="desk")  # no writer thread: flushed by the test
    with running_stack(tmp_path, strategies=(TRAIL,), tick_recorder=recorder) as stack:
        trade_id = _closed_trade(stack)
        recorder.flush()
        app = TmtoolApp(stack.engine, config_path=None, clock=stack.clock, simulated=True, bell=False,
                        recordings=tmp_path / "ticks", account=stack.account)
        async with app.run_test(size=SIZE) as pilot:
            await _open_history_row(pilot, trade_id)
            await pilot.press("p")
            screen = await until(pilot, lambda: isinstance(app.screen, TradePathScreen) and app.screen, timeout=20,
                                 what="the trade path screen")
            path = screen.path
            assert f"#{trade_id}" in path.title and not path.approximate
            assert [reason for _, _, reason in path.live_exits] == ["TRAILING_SL"]
            assert [reason for _, _, reason in path.replay_exits] == ["TRAILING_SL"]  # replayed as it ran
            assert 2508.0 in path.prices
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="back in History")
    recorder.stop()


async def test_without_recorded_ticks_history_says_how_to_replay_from_candles(tmp_path):
    with running_stack(tmp_path, strategies=(TRAIL,)) as stack:
        trade_id = _closed_trade(stack)
        for recordings, words in ((None, "Ticks are not recorded"), (tmp_path / "empty", "--candles --plot")):
            app = TmtoolApp(stack.engine, config_path=None, clock=stack.clock, simulated=True, bell=False,
                            recordings=recordings)
            async with app.run_test(size=SIZE) as pilot:
                await _open_history_row(pilot, trade_id)
                await pilot.press("p")
                await until(pilot, lambda: any(words in m for m in notifications(pilot)), timeout=20, what=words)
                assert isinstance(app.screen, HistoryScreen)
