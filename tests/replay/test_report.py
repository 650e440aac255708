"""The replay table as a trader reads it in an ordinary 80-column terminal (or a pipe)."""

from __future__ import annotations

from rich.console import Console

from tmtool.replay.report import Summary, rich_table


def _summary(label: str) -> Summary:
    return Summary(label, trades=11, total_pnl=1713.4, win_rate=0.82, profit_factor=3.42, max_drawdown=397.6,
                   exits_by_reason={"PARTIAL_TARGET": 1, "STOP_LOSS": 1, "TRAILING_SL": 10, "END_OF_DATA": 2})


def test_a_setting_longer_than_the_room_folds_and_the_others_stay_whole():
    labels = ["live", "trailing.distance=2", "momentum:portfolio.trailing_distance=1500"]
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table([_summary(label) for label in labels], width=80))
    text = console.export_text()
    assert "…" not in text and "trailing.distance=2" in text
    assert "momentum:portfolio" in text and "=1500" in text  # folded over two lines, nothing dropped
    assert text.count("+1,713.40") == len(labels) and text.count("TSL:10") == len(labels)
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_sweeps_settings_are_shown_whole_at_80_columns():
    """The setting is what a sweep row is about: narrower columns wrap, the setting never loses its value."""
    labels = ["live", "replay as run", "trailing.distance=2", "trailing.distance=8, breakeven_after=5",
              "portfolio.stop_loss=5000, trailing.distance=6"]
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table([_summary(label) for label in labels], title="tmtool replay 2026-12-07", width=80))
    text = console.export_text()
    assert "…" not in text
    for label in labels:
        for setting in label.split(", "):  # a combination may wrap after its commas
            assert setting in text, f"{setting!r} is not shown whole:\n{text}"
    for figure in ("+1,713.40", "82%", "3.42", "397.60", "TSL:10"):
        assert text.count(figure) == len(labels)
    assert max(len(line) for line in text.splitlines()) <= 80
