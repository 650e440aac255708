"""Pure text helpers shared by the screens: numbers, prices, ages, times, bars.

Nothing here touches Textual or the engine's threads; every function is a pure
function of its arguments so the screens stay small and the helpers testable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from rich.text import Text
from textual.color import Color, ColorParseError

from tmtool.domain.calendar import to_ist
from tmtool.domain.models import DEFAULT_TICK_SIZE, TradeStatus

DASH = "–"

STATUS_LABELS = {
    TradeStatus.PENDING_ENTRY: "PENDING",
    TradeStatus.ACTIVE: "ACTIVE",
    TradeStatus.EXITING: "EXITING",
    TradeStatus.CLOSED: "CLOSED",
    TradeStatus.EXIT_FAILED: "EXIT FAIL",
    TradeStatus.CLOSED_EXTERNALLY: "EXTERNAL",
    TradeStatus.CANCELLED: "CANCELLED",
}


@dataclass(frozen=True, slots=True)
class Palette:
    """Colours taken from the running theme's variables (so light and dark themes both read well)."""

    gain: str
    loss: str
    warning: str
    muted: str
    accent: str

    @classmethod
    def from_theme_variables(cls, variables: dict[str, str]) -> "Palette":
        background = _parse(variables.get("background", ""), Color(0, 0, 0))

        def colour(name: str, fallback: str) -> str:
            # Theme colours may carry alpha; blend them onto the background for Rich.
            return (background + _parse(variables.get(name, fallback), Color.parse(fallback))).hex6

        return cls(
            gain=colour("success", "green"),
            loss=colour("error", "red"),
            warning=colour("warning", "yellow"),
            muted=colour("text-muted", "grey"),
            accent=colour("accent", "cyan"),
        )


def _parse(text: str, fallback: Color) -> Color:
    try:
        return Color.parse(text)
    except ColorParseError:
        return fallback


PLAIN_PALETTE = Palette(gain="green", loss="red", warning="yellow", muted="grey50", accent="cyan")


@lru_cache(maxsize=64)
def decimals_for_tick(tick_size: float) -> int:
    """How many decimals a price on this tick grid needs (0.05 -> 2, 0.0025 -> 4)."""
    if tick_size <= 0 or not math.isfinite(tick_size):
        return 2
    decimals = 0
    while decimals < 6 and abs(round(tick_size, decimals) - tick_size) > 1e-12:
        decimals += 1
    return max(2, decimals)


def format_price(value: float | None, tick_size: float = DEFAULT_TICK_SIZE) -> str:
    if value is None or not math.isfinite(value) or value == 0:
        return DASH
    return f"{value:,.{decimals_for_tick(tick_size)}f}"


def format_money(value: float | None, *, signed: bool = False, decimals: int = 2) -> str:
    """Rupees with thousands separators; ``signed`` adds a ``+`` to gains."""
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) < 0.005:
        value = 0.0
    text = f"{value:,.{decimals}f}"
    if signed and value > 0:
        text = "+" + text
    return text


def format_percent(value: float | None, *, signed: bool = True) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if abs(value) < 0.005:
        value = 0.0
    return f"{value:+.2f}%" if signed else f"{value:.2f}%"


def format_age(seconds: float | None) -> str:
    """A short age: 0.4s, 12s, 3m, 2h."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def format_clock(ts: float) -> str:
    """Wall-clock time in Asia/Kolkata, as traders read it."""
    return to_ist(ts).strftime("%H:%M:%S IST")


def format_timestamp(ts: float | None) -> str:
    if ts is None or not ts:
        return DASH
    return to_ist(ts).strftime("%Y-%m-%d %H:%M:%S")


def same_text(shown: object, new: Text) -> bool:
    """Whether ``shown`` already looks exactly like ``new`` (``Text ==`` ignores the base style)."""
    return (
        isinstance(shown, Text)
        and shown.plain == new.plain
        and shown.spans == new.spans
        and shown.style == new.style
        and shown.justify == new.justify
    )


def pnl_text(value: float | None, palette: Palette, *, percent: bool = False) -> Text:
    """A P&L figure coloured by its sign."""
    text = format_percent(value) if percent else format_money(value, signed=True)
    if value is None or abs(value) < 0.005:
        return Text(text)
    return Text(text, style=palette.gain if value > 0 else palette.loss)


def range_bar(
    pnl: float,
    stop: float | None,
    target: float | None,
    lock: float | None,
    width: int,
    palette: Palette,
) -> Text:
    """Where today's P&L sits between the portfolio stop and the target.

    ``●`` marks the P&L, ``┃`` the armed trailing lock.  With no stop the left
    end is the lower of zero and the P&L; with no target the right end is the
    higher of zero and the P&L, so the bar still shows the direction.
    """
    width = max(4, width)
    low = stop if stop is not None else min(0.0, pnl, lock if lock is not None else 0.0)
    high = target if target is not None else max(0.0, pnl, lock if lock is not None else 0.0)
    if high <= low:
        high = low + 1.0

    def position(value: float) -> int:
        fraction = (min(max(value, low), high) - low) / (high - low)
        return min(width - 1, max(0, round(fraction * (width - 1))))

    marker = position(pnl)
    lock_at = position(lock) if lock is not None else None
    zero_at = position(0.0)
    bar = Text()
    for index in range(width):
        if index == marker:
            bar.append("●", style=f"bold {palette.gain if pnl >= 0 else palette.loss}")
        elif index == lock_at:
            bar.append("┃", style=f"bold {palette.warning}")
        elif index == zero_at:
            bar.append("┊", style=palette.muted)
        elif index < marker:
            bar.append("━", style=palette.loss if pnl < 0 else palette.gain)
        else:
            bar.append("─", style=palette.muted)
    return bar


def usage_text(used: float, limit: float | None, palette: Palette) -> Text:
    """``used / limit`` coloured by how much of the limit is gone."""
    if limit is None or limit <= 0:
        return Text(f"{format_money(used, decimals=0)} / off", style=palette.muted)
    share = used / limit
    style = palette.loss if share >= 0.8 else palette.warning if share >= 0.5 else ""
    return Text(f"{format_money(used, decimals=0)} / {format_money(limit, decimals=0)}", style=style)
