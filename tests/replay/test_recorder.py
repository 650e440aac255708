"""The tick recorder: batches off the engine thread, written by a process of its own, Parquet per
day, survives a kill, fails alone."""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import textwrap
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.clock import ManualClock
from tmtool.domain.calendar import IST, trading_day
from tmtool.domain.commands import CreateTrade
from tmtool.domain.models import AlertCategory, AlertPriority, Distance, Side, Strategy, Tick, TradeRisk, TradeStatus
from tmtool.replay.reader import read_day, segments
from tmtool.replay.recorder import (
    FRAME_CODE,
    FRAME_COUNT,
    FRAME_HEADER,
    ParquetTickRecorder,
    Refused,
    folder_size,
    prune,
    spawn_recording_process,
)
from tmtool.replay.segments import serve

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=IST).timestamp()
DAY = trading_day(T0)


def _put(recorder: ParquetTickRecorder, tick: Tick, accepted: bool) -> None:
    """What the engine does with a routed tick: ``record`` it when accepted, ``refuse`` it when not."""
    if accepted:
        recorder.record(tick)
    else:
        recorder.refuse(tick)


def _ticks(n: int, start: float = T0) -> list[Tick]:
    return [Tick("NSE", "SBIN" if i % 3 else "INFY", 800.0 + i * 0.05, start + i * 0.01) for i in range(n)]


def test_ticks_come_back_in_order_with_refusals_marked(tmp_path):
    recorder = ParquetTickRecorder(tmp_path, session="a", batch_rows=1000)
    ticks = _ticks(5000)
    for i, tick in enumerate(ticks):
        _put(recorder, tick, i % 10 != 0)
    recorder.flush()
    assert [p.suffix for p in segments(tmp_path, DAY)] == [".arrows"]  # written, still open
    recorder.stop()
    assert [p.suffix for p in segments(tmp_path, DAY)] == [".parquet"]
    tape = read_day(tmp_path, DAY)
    assert len(tape) == 5000
    assert tape.price.tolist() == [t.price for t in ticks]
    assert tape.accepted.tolist() == [i % 10 != 0 for i in range(5000)]
    assert [tape.keys[c] for c in tape.code[:3]] == [("NSE", "INFY"), ("NSE", "SBIN"), ("NSE", "SBIN")]


def test_a_clean_stop_leaves_one_parquet_file_per_day(tmp_path):
    recorder = ParquetTickRecorder(tmp_path, session="s", batch_seconds=0.01)
    recorder.start(DAY)
    midnight = datetime(2026, 12, 8, tzinfo=IST).timestamp()
    for tick in _ticks(100, start=midnight - 0.5):  # runs past midnight: two trading days
        recorder.record(tick)
    assert recorder.flush() and recorder.rows_written == 100
    recorder.stop()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["2026-12-07/s.parquet", "2026-12-08/s.parquet"]
    first = pq.read_table(tmp_path / "2026-12-07/s.parquet")
    second = pq.read_table(tmp_path / "2026-12-08/s.parquet")
    assert first.num_rows == 50 and second.num_rows == 50
    assert max(first.column("ts").to_pylist()) < datetime(2026, 12, 8, tzinfo=IST).timestamp()


def test_a_crashed_sessions_stream_is_compacted_at_the_next_start(tmp_path):
    first = ParquetTickRecorder(tmp_path, session="1")
    for tick in _ticks(300):
        first.record(tick)
    assert first.flush()  # written, never closed: as a machine that lost power leaves it
    os.kill(first.process_id, signal.SIGKILL)
    first._child.wait(30)
    assert [p.suffix for p in segments(tmp_path, DAY)] == [".arrows"]
    second = ParquetTickRecorder(tmp_path, session="2")
    second.start(DAY)
    second.stop()
    assert [p.name for p in segments(tmp_path, DAY)] == ["1.parquet"]
    assert len(read_day(tmp_path, DAY)) == 300


def test_a_day_of_several_sessions_reads_as_one_tape_in_time_order(tmp_path):
    morning = ParquetTickRecorder(tmp_path, session="100")
    for i in range(50):
        morning.record(Tick("NSE", "SBIN", 800.0 + i, T0 + 2 * i))
    morning.stop()  # stopped cleanly: Parquet
    afternoon = ParquetTickRecorder(tmp_path, session="200")
    for i in range(50):
        _put(afternoon, Tick("BSE", "TCS", 3500.0 + i, T0 + 2 * i + 1), i != 3)
    afternoon.flush()  # still running: a stream segment
    tape = read_day(tmp_path, DAY)
    assert [p.suffix for p in segments(tmp_path, DAY)] == [".parquet", ".arrows"]
    assert len(tape) == 100 and list(tape.ts) == sorted(tape.ts)
    assert set(tape.keys) == {("NSE", "SBIN"), ("BSE", "TCS")}
    ts, prices = tape.symbol_ticks("BSE", "TCS")
    assert len(ts) == 49 and 3503.0 not in prices.tolist()  # the refused tick is not a price


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tmtool.domain.calendar import trading_day
    from tmtool.domain.models import Tick
    from tmtool.replay.recorder import ParquetTickRecorder
    folder, t0 = Path(sys.argv[1]), float(sys.argv[2])
    recorder = ParquetTickRecorder(folder, session="killed", batch_seconds=0.01, batch_rows=500)
    recorder.start(trading_day(t0))
    i = 0
    announced = False
    while True:
        for _ in range(200):
            recorder.record(Tick("NSE", "SBIN", 100.0 + i * 0.05, t0 + i * 0.001))
            i += 1
        if not announced and recorder.rows_sent >= 5000 and recorder.flush():
            print(recorder.rows_written, recorder.process_id, flush=True)
            announced = True
        time.sleep(0.001)  # ok: paces the child's tick source (a feed), not a wait for a condition
    """
)


@pytest.mark.parametrize("killed", ["tmtool", "tmtool and the recording process"])
def test_a_sigkilled_sessions_ticks_are_kept_up_to_the_last_batch(tmp_path, killed):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(T0)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        written, recording_process = (int(word) for word in child.stdout.readline().split())
    finally:
        if killed != "tmtool":
            os.kill(recording_process, signal.SIGKILL)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    if killed == "tmtool":  # the recording process reads what was sent to its end, then compacts it
        wait_for(lambda: [p.suffix for p in segments(tmp_path, DAY)] == [".parquet"], 60, what="the segment compacted")
    else:  # nothing closed the stream: it is read up to its last complete batch
        assert [p.suffix for p in segments(tmp_path, DAY)] == [".arrows"]
    tape = read_day(tmp_path, DAY)
    assert len(tape) >= written
    # every row there is, in order, with nothing missing before the last complete batch
    assert tape.price.tolist() == pytest.approx([100.0 + i * 0.05 for i in range(len(tape))])


def _spawn_with_file_size_limit(limit: int):
    """A recording process whose files may not grow past ``limit`` bytes: a disk that fills, for real
    (its writes fail with EFBIG, "File too large")."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def spawn(folder: Path, session: str) -> subprocess.Popen:
        return spawn_recording_process(folder, session, preexec_fn=limit_files)

    return spawn


def test_a_full_disk_stops_recording_with_one_alert(tmp_path):
    alerts: list[str] = []
    # room for the stream's opening and its first batch of 100 ticks, not for the second
    recorder = ParquetTickRecorder(tmp_path, session="full", batch_rows=100, on_failure=alerts.append,
                                   spawn=_spawn_with_file_size_limit(5000))
    for tick in _ticks(1000):
        recorder.record(tick)
    assert not recorder.flush()
    assert len(alerts) == 1 and "File too large" in alerts[0] and alerts[0].startswith("tick recording stopped")
    for tick in _ticks(1000):  # recording is off: appends go nowhere, nothing piles up
        recorder.record(tick)
    assert not recorder.flush()
    assert recorder.backlog == 0 and len(alerts) == 1
    assert len(read_day(tmp_path, DAY)) == 100  # the batch written before the disk filled


def test_trading_goes_on_when_recording_fails(tmp_path):
    clock = ManualClock(T0, real_timers=True)
    stack_box: list = []

    def alert(message: str) -> None:
        stack_box[0].engine.report_external_alert(message, AlertPriority.WARNING, key="tick-recording")

    recorder = ParquetTickRecorder(tmp_path / "ticks", session="full", batch_seconds=0.01, batch_rows=1,
                                   on_failure=alert, spawn=_spawn_with_file_size_limit(200))  # no room for a batch
    strategies = (Strategy("s", trade_risk=TradeRisk(stop_loss=Distance(10.0))),)
    with running_stack(tmp_path, strategies=strategies, clock=clock, tick_recorder=recorder) as stack:
        stack_box.append(stack)
        recorder.start(DAY)
        stack.sim.set_price("NSE", "SBIN", 800.0)
        trade_id = stack.create(CreateTrade("s", "SBIN", "NSE", Side.LONG, quantity=5))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        for price in (801.0, 802.0, 799.0):
            clock.advance(1.0)
            stack.tick("SBIN", price)
        wait_for(lambda: recorder.failed, 10, what="recording failure")
        clock.advance(1.0)
        stack.tick("SBIN", 789.0)  # through the stop: the exit happens with recording off
        stack.wait_status(trade_id, TradeStatus.CLOSED)
        recorder.stop()
        stack.store.flush()
        recording_alerts = [a for a in stack.engine.alert_history(category=AlertCategory.SYSTEM.value) if "tick recording" in a.text]
        assert len(recording_alerts) == 1 and "File too large" in recording_alerts[0].text


def test_retention_removes_old_days_and_size_is_reported(tmp_path):
    for day in ("2026-11-01", "2026-11-30", "2026-12-07", "notes"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "x.parquet").write_bytes(b"1234")
    removed = prune(tmp_path, date(2026, 12, 7), retention_days=7)
    assert removed == ["2026-11-01", "2026-11-30"]
    assert folder_size(tmp_path) == (4, 1)  # one day folder left; "notes" is not a day


def test_refusals_are_marked_in_whichever_batch_they_land(tmp_path):
    recorder = ParquetTickRecorder(tmp_path, session="marks", batch_rows=2)
    first = [Tick("NSE", "TCS", 3500.0, T0), Tick("BSE", "TCS", 3501.5, T0 + 1), Tick("NSE", "INFY", 1500.0, T0 + 2)]
    for tick in first:
        recorder.record(tick)
    recorder.flush()  # no refusal yet: written without looking for one
    later = [(Tick("BSE", "TCS", 3502.0, T0 + 3), False), (Tick("NSE", "TCS", 3499.0, T0 + 4), True),
             (Tick("NSE", "INFY", 1501.0, T0 + 5), True)]
    for tick, accepted in later:
        _put(recorder, tick, accepted)
    recorder.flush()
    _put(recorder, Tick("NSE", "INFY", 1502.0, T0 + 6), False)  # a refusal as the only row of a drain
    recorder.flush()
    recorder.record(Tick("NSE", "INFY", 1503.0, T0 + 7))
    recorder.stop()
    table = pq.read_table(tmp_path / DAY.isoformat() / "marks.parquet")
    assert table.column("accepted").to_pylist() == [True, True, True, False, True, True, False, True]
    assert list(zip(table.column("exchange").to_pylist(), table.column("symbol").to_pylist()))[:4] == [
        ("NSE", "TCS"), ("BSE", "TCS"), ("NSE", "INFY"), ("BSE", "TCS")]
    assert table.column("price").to_pylist() == [3500.0, 3501.5, 1500.0, 3502.0, 3499.0, 1501.0, 1502.0, 1503.0]
    assert table.column("ts").to_pylist() == [T0 + i for i in range(8)]


def test_a_refusal_counted_before_the_drain_but_queued_after_it_is_still_marked(tmp_path):
    recorder = ParquetTickRecorder(tmp_path, session="race")
    recorder.record(Tick("NSE", "SBIN", 800.0, T0))
    recorder._refusals += 1  # the engine counted a refusal, then lost the processor before queuing it
    recorder.flush()
    recorder._rows.append(Refused(Tick("NSE", "SBIN", 801.0, T0 + 1)))  # ...and queued it after the drain read
    recorder.flush()
    recorder.stop()
    assert read_day(tmp_path, DAY).accepted.tolist() == [True, False]


class _EngineKeepsAppending(ParquetTickRecorder):
    """A recorder during whose sends the engine queues more ticks (as it does from its own thread)."""

    price = 900.0

    def _send_batch(self, rows, refusals):
        sent = super()._send_batch(rows, refusals)
        if self.price < 905.0:
            self.record(Tick("NSE", "SBIN", self.price, T0 + self.price))
            self.price += 1.0
        return sent


def test_ticks_queued_while_the_writer_sends_wait_for_the_next_drain(tmp_path):
    recorder = _EngineKeepsAppending(tmp_path, session="busy", batch_rows=1)
    for i in range(3):
        recorder.record(Tick("NSE", "SBIN", 800.0 + i, T0 + i))
    recorder.flush()
    assert recorder.rows_sent == 3 and recorder.backlog == 3  # the three queued during the sends stay
    recorder.flush()
    recorder.flush()
    recorder.stop()
    tape = read_day(tmp_path, DAY)
    assert tape.price.tolist() == [800.0, 801.0, 802.0, 900.0, 901.0, 902.0, 903.0, 904.0]


def test_the_engine_hands_every_routed_tick_over_with_its_books_key(tmp_path):
    clock = ManualClock(T0, real_timers=True)
    recorder = ParquetTickRecorder(tmp_path / "ticks", session="live", batch_seconds=0.01)
    strategies = (Strategy("s", trade_risk=TradeRisk(stop_loss=Distance(10.0))),)
    with running_stack(tmp_path, strategies=strategies, clock=clock, tick_recorder=recorder) as stack:
        recorder.start(DAY)
        stack.sim.set_price("NSE", "SBIN", 800.0)
        trade_id = stack.create(CreateTrade("s", "SBIN", "NSE", Side.LONG, quantity=5))
        stack.wait_status(trade_id, TradeStatus.ACTIVE)
        for price in (801.0, 802.5):
            clock.advance(1.0)
            stack.tick("SBIN", price)
        wait_for(lambda: {801.0, 802.5} <= set(read_day(tmp_path / "ticks", DAY).price.tolist()), 10,
                 what="the ticks recorded")
        recorder.stop()
    tape = read_day(tmp_path / "ticks", DAY)
    assert set(tape.keys) == {("NSE", "SBIN")} and tape.accepted.all()
    recorded = tape.price.tolist()
    assert recorded.index(801.0) < recorded.index(802.5)


def test_the_trading_process_never_loads_numpy_or_pyarrow(tmp_path):
    """The recording process holds them (about 40 MB and 0.15 s of imports); a fresh interpreter
    shows whether anything brought them back into the process that records."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from tmtool.domain.models import Tick
        from tmtool.replay.recorder import ParquetTickRecorder
        recorder = ParquetTickRecorder(Path({str(tmp_path)!r}), session="s")
        for i in range(500):
            tick = Tick("NSE", "SBIN" if i % 2 else "INFY", 800.0 + i, 1.7e9 + i)
            recorder.record(tick) if i % 5 else recorder.refuse(tick)
        assert recorder.flush(), recorder.failed
        recorder.stop()
        assert recorder.rows_written == 500 and not recorder.failed, recorder.failed
        print(sorted(name for name in ("numpy", "pyarrow", "pandas") if name in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    table = pq.read_table(next(tmp_path.rglob("*.parquet")))
    assert table.num_rows == 500 and table.column("accepted").to_pylist().count(False) == 100


PANDAS_CHECK = textwrap.dedent("""
    import sys
    from pathlib import Path
    from tmtool.replay import segments
    status = segments.main(sys.argv[1:])
    (Path(sys.argv[1]) / "pandas-loaded").write_text(str("pandas" in sys.modules))
    sys.exit(status)
""")


def test_the_recording_process_never_loads_pandas(tmp_path):
    """pyarrow imports pandas (when installed) on its first ``pa.array`` or ``to_numpy``: ~0.3 s of
    interpreter time on the first batch and tens of MB.  The recording process builds its arrays
    from buffers instead; run as tmtool runs it, it says whether anything brought pandas back."""

    def spawn_checked(folder: Path, session: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", PANDAS_CHECK, str(folder), session],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    recorder = ParquetTickRecorder(tmp_path, session="s", spawn=spawn_checked)
    for i, tick in enumerate(_ticks(500)):
        _put(recorder, tick, i % 5 != 0)
    assert recorder.flush()
    recorder.stop(timeout=60)
    assert (tmp_path / "pandas-loaded").read_text() == "False"
    assert len(read_day(tmp_path, DAY)) == 500


def _frame(kind: bytes, payload: bytes) -> bytes:
    return FRAME_HEADER.pack(kind, len(payload)) + payload


@pytest.mark.parametrize(
    "frames, reason",
    [
        (_frame(b"X", b""), "unknown frame kind b'X'"),
        (_frame(b"B", FRAME_COUNT.pack(3) + b"\0" * 20), "a batch of 3 ticks is 24 bytes, not 67"),
        (_frame(b"B", FRAME_COUNT.pack(1) + b"\0" * 21), "a batch names an instrument it was not told of"),
        (_frame(b"K", FRAME_CODE.pack(4) + b"NSE\0SBIN"), "instrument code 4 out of order (expected 0)"),
    ],
)
def test_the_recording_process_refuses_a_malformed_frame_and_says_why(tmp_path, frames, reason):
    answers = io.StringIO()
    status = serve(tmp_path, "bad", io.BytesIO(frames), answers)
    assert status == 1
    assert answers.getvalue().splitlines()[-1] == f"failed ValueError: {reason}"
