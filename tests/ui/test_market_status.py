"""The status bar always shows the IST clock with the exchange session, and `?` explains every
badge the status bar, the cards and the table can show (no bare abbreviations)."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import pytest

from tests.ui.fixtures import FIXED_NOW, EngineDouble, seeded_snapshot, snapshot_app
from tests.ui.helpers import until
from tests.ui.test_snapshots import settle
from tmtool.config import parse_config
from tmtool.domain.models import FeedState
from tmtool.screens.formatting import PLAIN_PALETTE, STATUS_LABELS
from tmtool.screens.legend import CARDS, LEGEND, STATUS_BAR, TABLE
from tmtool.screens.modals.help import HelpModal
from tmtool.screens.widgets.status_bar import PHASE_RUNNING, status_line
from tmtool.screens.widgets.strategy_cards import card_lines

WORD = re.compile(r"[A-Za-z][A-Za-z_-]*[A-Za-z]|[A-Z]")


def legend_words(entries) -> set[str]:
    return {word for badge, _ in entries for word in WORD.findall(badge)}


def system_states():
    system = seeded_snapshot().system
    for feed in FeedState:
        for broker in ("OK", "ERROR", "SESSION_EXPIRED", "UNKNOWN"):
            for mode in ("", "live", "analyze", "semi_auto"):
                for db_state in ("OK", "MEMORY_ONLY"):
                    for halted in (False, True):
                        yield dataclasses.replace(
                            system, feed_state=feed, broker_state=broker, server_mode=mode, db_state=db_state,
                            entries_halted=halted,
                        )


def test_every_status_bar_word_is_in_the_legend():
    known = legend_words(STATUS_BAR)
    snapshot = seeded_snapshot()
    for system in system_states():
        shown = dataclasses.replace(snapshot, system=system)
        for compact in (False, True):
            text = status_line(shown, FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE, compact=compact).plain
            unknown = set(WORD.findall(text)) - known
            assert not unknown, (text, unknown)


def test_every_card_and_table_label_is_in_the_legend():
    known = legend_words(CARDS) | legend_words(TABLE)
    for view in seeded_snapshot().strategies:
        for line in card_lines(dataclasses.replace(view, halted=True), PLAIN_PALETTE):
            assert not set(WORD.findall(line.plain)) - known, line.plain
    for label in list(STATUS_LABELS.values()) + ["PAUSED", "STALE", "APPROVAL", "HALTED"]:
        assert set(WORD.findall(label)) <= known | legend_words(CARDS), label


def test_the_clock_shows_ist_and_the_session():
    text = status_line(seeded_snapshot(), FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE).plain
    assert "11:15:30 IST NSE OPEN" in text
    compact = status_line(seeded_snapshot(), FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE, compact=True).plain
    assert "11:15 OPEN" in compact
    holiday = status_line(seeded_snapshot(), FIXED_NOW, PHASE_RUNNING, PLAIN_PALETTE, holidays={date(2026, 1, 5)}).plain
    assert "NSE HOLIDAY" in holiday


def test_holidays_come_from_the_config(tmp_path):
    config = parse_config({"market": {"holidays": ["2026-01-26"]}}, {}, None, tmp_path)
    assert config.market_holidays == frozenset({date(2026, 1, 26)})


async def test_help_lists_the_legend():
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpModal))
        groups = dict(app.screen.groups)
        for where, entries in LEGEND:
            assert groups[f"What it shows: {where}"] == list(entries)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)])
async def test_the_session_is_on_screen(size):
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        top = "".join(segment.text for segment in app.screen._compositor.render_strips()[0])
        assert "OPEN" in top and ("11:15" in top)
