"""The candle fill model, the simulator's history, ``--set`` parsing and ``tmtool replay`` end to end."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from tests.stack import API_KEY, running_stack
from tmtool.cli import main
from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST, trading_day
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import (
    AccountLimits,
    Distance,
    DistanceMode,
    Product,
    Side,
    Strategy,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)
from tmtool.openalgo.client import OpenAlgoClient
from tmtool.replay import report
from tmtool.replay.candles import tape_from_candles
from tmtool.replay.recorder import ParquetTickRecorder
from tmtool.replay.replay import replay
from tmtool.replay.settings import SettingError, apply_to_trade, parse_change, parse_sweep
from tmtool.replay.trades import LiveTrade
from tmtool.sim import Simulator

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=IST).timestamp()


def _live(side: Side, entry: float, stop: float | None, target: float | None, opened_at: float = T0 + 1) -> LiveTrade:
    trade = Trade(
        id=1, strategy="s", symbol="SBIN", exchange="NSE", product=Product.MIS, side=side, quantity=10, entry_price=entry,
        entry_quantity=10, stop_loss=stop, target=target, high_watermark=entry, low_watermark=entry, last_price=entry,
        opened_at=opened_at,
    )
    return LiveTrade(trade, opened_at, (), (), 0.0, None)


def _exits(live: LiveTrade, candles) -> list[tuple[str, float, float | None]]:
    result = replay([live], {}, AccountLimits(), tape_from_candles({("NSE", "SBIN"): candles}))
    return [(d.reason, d.tick_price, d.level) for d in result.trades[0].exits]


# ---------------------------------------------------------------------- the candle fill model


def test_a_candle_crossing_stop_and_target_counts_the_stop():
    candle = (T0 + 60, 800.0, 820.0, 780.0, 805.0)  # high above the target, low below the stop
    assert _exits(_live(Side.LONG, 800.0, 790.0, 815.0), [candle]) == [("STOP_LOSS", 780.0, 790.0)]
    assert _exits(_live(Side.SHORT, 800.0, 810.0, 785.0), [candle]) == [("STOP_LOSS", 820.0, 810.0)]


def test_a_gap_through_the_stop_fills_at_the_open():
    candles = [(T0 + 60, 800.0, 802.0, 799.0, 801.0), (T0 + 120, 770.0, 772.0, 765.0, 771.0)]
    assert _exits(_live(Side.LONG, 800.0, 790.0, 815.0), candles) == [("STOP_LOSS", 770.0, 790.0)]


def test_a_target_alone_fills_at_the_extreme_that_crossed_it():
    candles = [(T0 + 60, 800.0, 818.0, 796.0, 810.0)]
    assert _exits(_live(Side.LONG, 800.0, 790.0, 815.0), candles) == [("TARGET", 818.0, 815.0)]


def test_candle_outputs_are_labelled_approximate():
    live = _live(Side.LONG, 800.0, 790.0, 815.0)
    result = replay([live], {}, AccountLimits(), tape_from_candles({("NSE", "SBIN"): [(T0 + 60, 800.0, 818.0, 796.0, 810.0)]}))
    summaries = [report.summarise(result)]
    table = report.rich_table(summaries)
    assert "APPROXIMATE" in table.title and "gaps fill at the open" in str(table.caption)
    assert list(csv.DictReader(io.StringIO(report.to_csv(summaries))))[0]["approximate"] == "yes"
    payload = json.loads(report.to_json(summaries, [result]))
    assert payload["approximate"] is True and "candles" in payload["note"]


def test_the_simulator_serves_one_minute_history(tmp_path):
    clock = ManualClock(T0)
    sim = Simulator(api_key=API_KEY, tick_interval=None, clock=clock).start()
    client = OpenAlgoClient(sim.rest_url, API_KEY, clock=clock)
    try:
        for price in (801.0, 805.0, 797.0):
            clock.advance(10)
            sim.set_price("NSE", "SBIN", price)
        clock.advance(60)
        sim.set_price("NSE", "SBIN", 799.0)
        candles = client.history("SBIN", "NSE", "2026-12-07", "2026-12-07")
    finally:
        client.close()
        sim.stop()
    minute = T0 // 60 * 60
    assert candles == [(minute, 801.0, 805.0, 797.0, 797.0), (minute + 60, 799.0, 799.0, 799.0, 799.0)]


def test_a_trade_without_ticks_after_its_entry_is_not_replayed():
    candles = [(T0 - 600, 800.0, 802.0, 799.0, 801.0)]  # before the entry only
    result = replay([_live(Side.LONG, 800.0, 790.0, 815.0)], {}, AccountLimits(), tape_from_candles({("NSE", "SBIN"): candles}))
    assert result.trades == [] and result.skipped == [(1, "no NSE:SBIN ticks recorded after its entry")]
    assert report.summarise(result).skipped == 1


# ---------------------------------------------------------------------- settings


def test_changes_parse_with_scopes_and_refuse_nonsense():
    assert parse_change("trailing.distance=6").scope == ""
    assert parse_change("momentum:stop_loss=1%").scope == "momentum"
    assert parse_change("#12:target=none").scope == "#12"
    assert [c.value for c in parse_sweep("trailing.distance=2,4,6")] == ["2", "4", "6"]
    for bad in ("trailing.distance", "speed=3", "stop_loss=-1", "stop_loss=150%", "#x:target=3", "s:account.daily_loss_limit=5"):
        with pytest.raises(SettingError):
            parse_change(bad)


def test_a_changed_distance_is_measured_from_the_actual_entry():
    trade = _live(Side.SHORT, 1000.0, 1010.0, 980.0).start
    changed = apply_to_trade(trade, [parse_change("stop_loss=1%"), parse_change("trailing.distance=4"), parse_change("#2:target=none")])
    assert changed.stop_loss == 1010.0 and changed.target == 980.0  # #2 is another trade
    assert changed.trailing == TrailingSettings(Distance(4.0)) and changed.trailing_stop == 1004.0
    other = apply_to_trade(trade, [parse_change("s:stop_loss=2.5"), parse_change("#1:target=none")])
    assert other.stop_loss == 1002.5 and other.target is None
    assert Distance(1.0, DistanceMode.PERCENT).points(1000.0) == 10.0


# ---------------------------------------------------------------------- the command


def _config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "tmtool.toml"
    path.write_text(f'[database]\npath = "{tmp_path / "tmtool.db"}"\nbackups_to_keep = 0\n{extra}')
    return str(path)


def test_tmtool_replay_prints_live_replayed_and_swept_rows(tmp_path, capsys, monkeypatch):
    clock = ManualClock(T0, real_timers=True)
    recorder = ParquetTickRecorder(tmp_path / "tmtool-ticks", session="cli", batch_seconds=0.05)
    recorder.start(trading_day(T0))
    strategies = (Strategy("s", trade_risk=TradeRisk(stop_loss=Distance(10.0), trailing=TrailingSettings(Distance(4.0)))),)
    with running_stack(tmp_path, strategies=strategies, clock=clock, tick_recorder=recorder) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        clock.advance(1)
        trade_id = stack.create(CreateTrade("s", "SBIN", "NSE", Side.LONG, quantity=10))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        for price in (803.0, 806.0, 801.0):
            clock.advance(1)
            stack.tick("SBIN", price)
        stack.wait_status(trade_id, TradeStatus.CLOSED)  # trailing 4 from 806: out at 802 (tick 801)
        stack.engine.stop(timeout=5.0)
        recorder.stop()
    config = _config(tmp_path)
    assert main(["replay", "--config", config, "--day", "2026-12-07", "--sweep", "trailing.distance=2,8", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = {row["label"]: row for row in payload["settings"]}
    assert list(rows) == ["live", "replay as run", "trailing.distance=2", "trailing.distance=8"]
    assert payload["approximate"] is False
    assert rows["replay as run"]["total_pnl"] == rows["live"]["total_pnl"] == 10.0  # (801 - 800) x 10
    assert rows["trailing.distance=2"]["exits_by_reason"] == {"TRAILING_SL": 1}
    assert rows["trailing.distance=2"]["total_pnl"] == 10.0  # 806 - 2 = 804 first crossed by 801 as well
    assert rows["trailing.distance=8"]["exits_by_reason"] == {"END_OF_DATA": 1}
    assert main(["replay", "--config", config, "--day", "2026-12-07", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("setting,trades,total_pnl") and len(lines) == 3
    assert main(["replay", "--config", config, "--day", "2026-12-07", "--set", "bogus=1"]) == 2
    capsys.readouterr()
    monkeypatch.setenv("COLUMNS", "80")  # an ordinary terminal, or a pipe
    assert main(["replay", "--config", config, "--day", "2026-12-07", "--trades"]) == 0
    out = capsys.readouterr().out
    assert "…" not in out, out  # nothing cut: every value is read whole
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.count("TSL 10 @ 801.0") == 2 and out.count("(level 802.0)") == 2  # live and replayed, the same exit
    assert "#1 s SBIN LONG" in out and out.count("+10.00") >= 4  # the trade; P&L in both tables, live and replayed


def test_tmtool_replay_without_a_recording_uses_history_and_says_approximate(tmp_path, capsys):
    clock = ManualClock(T0, real_timers=True)
    strategies = (Strategy("s", trade_risk=TradeRisk(stop_loss=Distance(10.0))),)
    with running_stack(tmp_path, strategies=strategies, clock=clock) as stack:
        stack.sim.set_price("NSE", "SBIN", 800.0)
        clock.advance(1)
        trade_id = stack.create(CreateTrade("s", "SBIN", "NSE", Side.LONG, quantity=10))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        clock.advance(60)
        stack.tick("SBIN", 788.0)
        stack.wait_status(trade_id, TradeStatus.CLOSED)
        stack.engine.stop(timeout=5.0)
        config = _config(tmp_path, f'[openalgo]\nhost = "{stack.sim.rest_url}"\napi_key = "{API_KEY}"\n')
        assert main(["replay", "--config", config, "--day", "2026-12-07"]) == 0
        out = capsys.readouterr().out
    assert "APPROXIMATE" in out and "1-minute candles" in out
