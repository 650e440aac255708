"""Summaries of replay runs: total P&L, win rate, profit factor, max drawdown, exits by reason.

``summarise`` turns a ``ReplayResult`` into a ``Summary``; ``live_summary``
does the same for the trades as they closed live.  ``rich_table``,
``to_csv`` and ``to_json`` render a list of summaries (one row per setting).
An approximate run (from candles, not recorded ticks) says so in every output.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from rich import box
from rich.table import Table

from tmtool.replay.replay import ReplayResult
from tmtool.replay.trades import LiveTrade

APPROXIMATE_NOTE = "APPROXIMATE: replayed over 1-minute candles, not recorded ticks (gaps fill at the open; a candle crossing both stop and target counts the stop)"


@dataclass(frozen=True)
class Summary:
    label: str
    trades: int
    total_pnl: float
    win_rate: float  # 0..1; 0 with no trades
    profit_factor: float  # gross profit / gross loss; inf with no losing trade
    max_drawdown: float  # the deepest fall of the cumulative P&L from its peak (>= 0)
    exits_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    approximate: bool = False


def _stats(label: str, pnls_by_close: Sequence[float], reasons: Iterable[str], skipped: int, approximate: bool) -> Summary:
    wins = [p for p in pnls_by_close if p > 0]
    losses = [p for p in pnls_by_close if p < 0]
    gross_loss = -sum(losses)
    profit_factor = sum(wins) / gross_loss if gross_loss > 0 else (math.inf if wins else 0.0)
    peak = equity = drawdown = 0.0
    for pnl in pnls_by_close:
        equity += pnl
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return Summary(
        label=label,
        trades=len(pnls_by_close),
        total_pnl=round(sum(pnls_by_close), 2),
        win_rate=len(wins) / len(pnls_by_close) if pnls_by_close else 0.0,
        profit_factor=profit_factor,
        max_drawdown=round(drawdown, 2),
        exits_by_reason=dict(sorted(counts.items())),
        skipped=skipped,
        approximate=approximate,
    )


def summarise(result: ReplayResult) -> Summary:
    closed = sorted(result.trades, key=lambda t: (t.closed_at or math.inf, t.trade_id))
    reasons = [d.reason for t in result.trades for d in t.exits]
    return _stats(result.label, [t.pnl for t in closed], reasons, len(result.skipped), result.approximate)


def live_summary(live_trades: Sequence[LiveTrade]) -> Summary:
    """The day as it closed live (realised P&L of the fills; exits by the decided reason)."""
    closed = sorted(live_trades, key=lambda t: (t.closed_at or math.inf, t.start.id))
    reasons = [d.reason for t in live_trades for d in t.live_exits] + [
        o.reason for t in live_trades for o in t.outside if o.kind == "EXIT"
    ]
    return _stats("live", [t.live_pnl for t in closed], reasons, 0, False)


SHORT_REASONS = {
    "STOP_LOSS": "SL", "TRAILING_SL": "TSL", "TARGET": "TGT", "PARTIAL_TARGET": "PART",
    "PORTFOLIO_SL": "PF-SL", "PORTFOLIO_TARGET": "PF-TGT", "PORTFOLIO_TRAILING": "PF-LOCK", "DAILY_LOSS_LIMIT": "DAY-LOSS",
    "ACCOUNT_LOSS_LIMIT": "ACC-LOSS", "ACCOUNT_TARGET": "ACC-TGT", "SQUARE_OFF_TIME": "SQ-OFF", "MANUAL": "MAN",
    "PANIC": "PANIC", "END_OF_DATA": "OPEN",
}


_REASON_TEXT = {"END_OF_DATA": "still open after the last tick (marked at its price)"}


def _legend(reasons) -> str:
    """The caption naming each short exit reason a table shows."""
    return "exits: " + ", ".join(f"{SHORT_REASONS.get(r, r)}={_REASON_TEXT.get(r, r.lower())}" for r in sorted(reasons))


def _factor(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


_NUMBER_COLUMNS = ("trades", "P&L", "win", "PF", "max DD")


def rich_table(summaries: Sequence[Summary], title: str = "replay", width: int | None = None) -> Table:
    """The summaries as a table; ``width``: the terminal's, which the table then fits.

    The setting is what a row is about and the numbers are read as wholes, so in a narrow
    terminal (or a pipe: 80 columns) the numbers keep their width, a combination of settings
    wraps after its commas and the exits wrap between reasons: nothing is cut to "…"."""
    approximate = any(s.approximate for s in summaries)
    caption = _legend({r for s in summaries for r in s.exits_by_reason}) + ("\n" + APPROXIMATE_NOTE if approximate else "")
    rows = []
    for s in summaries:
        reasons = " ".join(f"{SHORT_REASONS.get(k, k)}:{v}" for k, v in s.exits_by_reason.items())
        if s.skipped:
            reasons += f"; {s.skipped} not replayed"
        rows.append((
            s.label + (" ~" if s.approximate else ""), str(s.trades), f"{s.total_pnl:+,.2f}", f"{s.win_rate:.0%}",
            _factor(s.profit_factor), f"{s.max_drawdown:,.2f}", reasons,
        ))
    setting_width, exits_width = _text_widths(rows, width)
    table = Table(title=title + (" (APPROXIMATE)" if approximate else ""), caption=caption, caption_justify="left",
                  box=box.SIMPLE_HEAD)  # no column rules: 8 more characters for the values
    table.add_column("setting", width=setting_width, overflow="fold")
    for name in _NUMBER_COLUMNS:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("exits", width=exits_width, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _text_widths(rows: list[tuple[str, ...]], width: int | None) -> tuple[int | None, int | None]:
    """Widths for the setting and exits columns so the table fits ``width`` (None: as wide as they need)."""
    if width is None or not rows:
        return None, None
    numbers = sum(max(len(name), *(len(row[i + 1]) for row in rows)) for i, name in enumerate(_NUMBER_COLUMNS))
    room = width - numbers - 22  # SIMPLE_HEAD: 2 edges, 7 columns padded by 1 a side, 6 gaps between them
    setting_whole = max(len("setting"), *(len(row[0]) for row in rows))
    setting_least = max(len("setting"), *(len(word) for row in rows for word in row[0].split()))
    exits_whole = max(len("exits"), *(len(row[-1]) for row in rows))
    exits_least = max(len("exits"), *(len(word) for row in rows for word in row[-1].split()))
    if setting_whole + exits_whole <= room or room - exits_least < len("setting"):
        return None, None  # it fits as it is, or nothing sensible does (rich folds as it must)
    # The setting takes what its longest single setting needs (a combination wraps after its commas),
    # more when the exits do not need it, never so much that an exit's word is cut; only a single
    # setting longer than that folds.
    setting = min(setting_whole, room - exits_least, max(setting_least, room - exits_whole))
    return setting, room - setting


def to_csv(summaries: Sequence[Summary]) -> str:
    reasons = sorted({r for s in summaries for r in s.exits_by_reason})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["setting", "trades", "total_pnl", "win_rate", "profit_factor", "max_drawdown", "skipped", "approximate"]
                    + [f"exits_{r}" for r in reasons])
    for s in summaries:
        writer.writerow(
            [s.label, s.trades, f"{s.total_pnl:.2f}", f"{s.win_rate:.4f}", _factor(s.profit_factor), f"{s.max_drawdown:.2f}",
             s.skipped, "yes" if s.approximate else "no"]
            + [s.exits_by_reason.get(r, 0) for r in reasons]
        )
    return out.getvalue()


def to_json(summaries: Sequence[Summary], results: Sequence[ReplayResult] = ()) -> str:
    approximate = any(s.approximate for s in summaries)
    payload: dict = {"approximate": approximate, "settings": []}
    if approximate:
        payload["note"] = APPROXIMATE_NOTE
    for s in summaries:
        row = asdict(s)
        row["profit_factor"] = None if math.isinf(s.profit_factor) else round(s.profit_factor, 4)
        payload["settings"].append(row)
    if results:
        payload["trades"] = {
            r.label: [
                {
                    "trade_id": t.trade_id, "strategy": t.strategy, "symbol": t.symbol, "side": t.side,
                    "entry_price": t.entry_price, "quantity": t.quantity, "pnl": round(t.pnl, 2), "live_pnl": round(t.live_pnl, 2),
                    "exits": [asdict(d) for d in t.exits],
                }
                for t in r.trades
            ]
            for r in results
        }
    return json.dumps(payload, indent=2)


def _exit_text(decisions) -> str:
    return "; ".join(
        f"{SHORT_REASONS.get(d.reason, d.reason)} {d.quantity} @ {d.tick_price if d.tick_price is not None else '-'}"
        + (f" (level {d.level})" if d.level is not None else "")
        for d in decisions
    ) or "-"


def trades_table(live_trades: Sequence[LiveTrade], result: ReplayResult) -> Table:
    """Every trade: its live exits and P&L against the replay's.

    Like the summary table it is read in 80-column terminals and pipes: the numbers keep their
    width, the trade and its exits wrap between words (reasons in the short names the caption
    spells out), and a word too long for its column folds; nothing is cut to "…"."""
    replayed = {t.trade_id: t for t in result.trades}
    skipped = dict(result.skipped)
    reasons = {d.reason for live in live_trades for d in live.live_exits} | {d.reason for d in result.decisions}
    table = Table(title=f"trades: live vs {result.label}" + (" (APPROXIMATE)" if result.approximate else ""),
                  caption=_legend(reasons) if reasons else None, caption_justify="left", box=box.SIMPLE_HEAD)
    # Five columns, so each exit's text keeps room to wrap between words at 80 columns: the trade in
    # one cell (it wraps between its parts), then live and replayed, each its exits and its P&L.
    table.add_column("trade", overflow="fold")
    for name in ("live exits", "P&L", "replayed exits", "P&L"):
        table.add_column(name, justify="right" if name == "P&L" else "left", no_wrap=name == "P&L", overflow="fold")
    for live in sorted(live_trades, key=lambda t: (t.opened_at, t.start.id)):
        trade = live.start
        outside = [o for o in live.outside if o.kind == "EXIT"]
        live_text = _exit_text(live.live_exits) + ("".join(f"; {o.reason}" for o in outside))
        mine = replayed.get(trade.id)
        table.add_row(
            f"#{trade.id} {trade.strategy} {trade.symbol} {trade.side.value} {trade.entry_quantity} @ {trade.entry_price}",
            live_text, f"{live.live_pnl:+,.2f}",
            _exit_text(mine.exits) if mine else f"not replayed: {skipped.get(trade.id, '')}",
            f"{mine.pnl:+,.2f}" if mine else "-",
        )
    return table
