"""The one-line status bar: the panic halt, feed (and REST polling), broker, database, market clock, engine, simulator badge."""

from __future__ import annotations

from datetime import date
from typing import Collection

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from tmtool.domain.calendar import MarketSession, market_session
from tmtool.domain.models import FeedState
from tmtool.engine.snapshot import EngineSnapshot
from tmtool.screens.formatting import Palette, format_age, format_clock, format_money, same_text

MARKET_EXCHANGE = "NSE"  # the session the status bar shows
SIMULATOR_BADGE = " SIMULATOR: no real orders "
SIMULATOR_BADGE_NARROW = " SIMULATOR "
NARROW_WIDTH = 100
STATUS_PADDING = 2  # the status text's left and right padding

# Engine phases the app reports before and after the engine runs.
PHASE_STARTING = "starting…"
PHASE_RUNNING = "running"
PHASE_STOPPED = "stopped"


def market_clock(now: float, palette: Palette, holidays: Collection[date] = (), *, compact: bool = False) -> Text:
    """The IST clock and the NSE session: ``11:15:30 IST NSE OPEN`` (compact: ``11:15 OPEN``)."""
    session = market_session(MARKET_EXCHANGE, now, holidays)
    style = {
        MarketSession.OPEN: palette.gain,
        MarketSession.CLOSING: palette.warning,
        MarketSession.PRE_OPEN: palette.warning,
    }.get(session, palette.muted)
    clock = format_clock(now)[:5] if compact else format_clock(now)
    return Text.assemble(clock, " ", ("" if compact else f"{MARKET_EXCHANGE} ", ""), (session.value, style))


def status_line(
    snapshot: EngineSnapshot | None,
    now: float,
    phase: str,
    palette: Palette,
    *,
    compact: bool = False,
    holidays: Collection[date] = (),
) -> Text:
    """The status text for ``snapshot`` seen at ``now`` (injected clock, epoch seconds).

    ``compact`` (narrow terminals) drops the spaces around the separators and
    the time zone, so everything down to the account P&L fits in 80 columns.
    The clock is always IST, with the exchange session beside it.
    After a panic, HALTED (new entries are halted until re-armed) leads the
    line; in the compact form the tick age gives way to it.
    """
    separator = ("│" if compact else " │ ", palette.muted)
    clock = market_clock(now, palette, holidays, compact=compact)
    if snapshot is None or phase == PHASE_STARTING:
        return Text.assemble(("ENGINE ", "bold"), (PHASE_STARTING.upper(), palette.warning), separator, clock)
    system = snapshot.system
    feed_style = {
        FeedState.LIVE: palette.gain,
        FeedState.POLLING: palette.warning,
        FeedState.RECONNECTING: palette.warning,
        FeedState.DOWN: f"bold {palette.loss}",
    }[system.feed_state]
    age = None
    if system.last_tick_age is not None:
        age = system.last_tick_age + max(0.0, now - snapshot.ts)
    broker_style = palette.gain if system.broker_state == "OK" else f"bold {palette.loss}"
    if system.db_state == "OK":
        database = Text("OK", style=palette.gain)
    else:
        database = Text(f"MEMORY-ONLY ({system.db_pending} pending)", style=f"bold {palette.loss}")
    engine_running = system.engine_running and phase == PHASE_RUNNING
    halted = system.entries_halted
    polled = len(system.polled_symbols)
    polling = (f" REST×{polled}" if compact else f" POLLING {polled} over REST", f"bold {palette.warning}")
    if compact and (halted or polled):  # the tick age gives way so the line still fits 80 columns
        freshness = Text.assemble(polling) if polled else Text("")
    else:
        freshness = Text.assemble(f" {format_age(age)}", polling if polled else "")
    line = Text.assemble(
        *((("HALTED", f"bold reverse {palette.loss}"), separator) if halted else ()),
        ("FEED ", "bold"),
        (system.feed_state.value, feed_style),
        freshness,
        separator,
        ("BROKER ", "bold"),
        (system.broker_state.replace("_", "-"), broker_style),
        (f" ({system.server_mode.upper()})" if system.server_mode and system.server_mode != "live" else "", palette.warning),
        separator,
        ("DB ", "bold"),
        database,
        separator,
        ("ENGINE ", "bold"),
        ("OK" if engine_running else phase.upper(), palette.gain if engine_running else palette.loss),
        separator,
        clock,
        separator,
        ("P&L ", "bold"),
        (format_money(snapshot.account_pnl, signed=True), _sign_style(snapshot.account_pnl, palette)),
    )
    return line


def _sign_style(value: float, palette: Palette) -> str:
    if value > 0.005:
        return palette.gain
    if value < -0.005:
        return palette.loss
    return ""


class StatusBar(Horizontal):
    """Status text on the left, the simulator badge on the right."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._last_text: Text | None = None
        self._badge_label = SIMULATOR_BADGE

    def compose(self) -> ComposeResult:
        yield Static(id="status-text", markup=False)
        yield Static(SIMULATOR_BADGE, id="simulator-badge", markup=False)

    def on_mount(self) -> None:
        self.query_one("#simulator-badge").display = False
        fill = getattr(self.app, "refresh_status", None)
        if fill is not None:
            fill()  # a screen opened between two polls shows its status at once, not on the next poll

    def show(self, full: Text, compact: Text, simulated: bool) -> None:
        """Show ``full``, or ``compact`` when ``full`` does not fit; repaint only on a change."""
        if not self.children:
            return  # not composed yet: it fills itself in when mounted
        badge = self.query_one("#simulator-badge", Static)
        if badge.display != simulated:
            badge.display = simulated
        width = self.size.width
        label = SIMULATOR_BADGE_NARROW if width < NARROW_WIDTH else SIMULATOR_BADGE
        if simulated and label != self._badge_label:
            self._badge_label = label
            badge.update(label)
        room = width - STATUS_PADDING - (len(label) if simulated else 0)
        text = full if full.cell_len <= room else compact
        if not same_text(self._last_text, text):
            self._last_text = text
            self.query_one("#status-text", Static).update(text, layout=False)  # one line, fixed width
