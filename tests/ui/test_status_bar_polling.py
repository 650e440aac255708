"""The status bar says when prices are being polled over REST, in full and on an 80-column terminal."""

from __future__ import annotations

from dataclasses import replace

from tests.ui.fixtures import FIXED_NOW, seeded_snapshot
from tmtool.screens.formatting import PLAIN_PALETTE
from tmtool.screens.widgets.status_bar import PHASE_RUNNING, SIMULATOR_BADGE_NARROW, STATUS_PADDING, status_line


def _polled(*symbols: str):
    snapshot = seeded_snapshot()
    return replace(snapshot, system=replace(snapshot.system, polled_symbols=tuple(("NSE", s) for s in symbols)))


def test_no_badge_while_every_symbol_ticks():
    line = status_line(seeded_snapshot(), FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE)
    assert "REST" not in line.plain


def test_polled_symbols_show_a_badge_after_the_feed_state():
    snapshot = _polled("SBIN", "INFY")
    full = status_line(snapshot, FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE)
    assert full.plain.startswith("FEED LIVE") and "POLLING 2 over REST" in full.plain
    compact = status_line(snapshot, FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE, compact=True)
    assert "REST×2" in compact.plain and "P&L" in compact.plain
    assert compact.cell_len <= 80 - STATUS_PADDING - len(SIMULATOR_BADGE_NARROW)  # fits beside the simulator badge


def test_polling_and_the_panic_halt_together_fit_80_columns_against_a_real_server():
    snapshot = _polled("SBIN")
    snapshot = replace(snapshot, system=replace(snapshot.system, entries_halted=True))
    compact = status_line(snapshot, FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE, compact=True)
    assert compact.plain.startswith("HALTED") and "REST×1" in compact.plain
    assert compact.cell_len <= 80 - STATUS_PADDING  # beside the simulator badge the P&L's last cells are cut
