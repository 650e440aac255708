"""One card per strategy: P&L, a sparkline, where P&L sits between stop and target, limits."""

from __future__ import annotations

import re
import zlib

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import HorizontalScroll, Vertical
from textual.widgets import Sparkline, Static

from tmtool.engine.snapshot import StrategyView
from tmtool.screens.formatting import (
    PLAIN_PALETTE,
    Palette,
    format_money,
    pnl_text,
    range_bar,
    same_text,
    usage_text,
)

BAR_WIDTH = 14


def card_id(strategy_name: str) -> str:
    """A widget id for a strategy name (ids allow letters, digits, ``-`` and ``_``)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", strategy_name)
    return f"card-{safe}-{zlib.crc32(strategy_name.encode()) % 100_000}"


def card_lines(view: StrategyView, palette: Palette, width: int | None = None) -> tuple[Text, Text, Text]:
    """The three text lines of a card (P&L; the stop/target bar; positions and loss limit).

    ``width`` is the card's inner width: the bar shrinks to fit it between its labels.
    """
    totals = Text.assemble(
        ("P&L ", "bold"),
        pnl_text(view.total_pnl, palette),
        (" booked ", palette.muted),
        pnl_text(view.realised_pnl, palette),
        (" open ", palette.muted),
        pnl_text(view.unrealised_pnl, palette),
    )
    stop_label = format_money(view.portfolio_stop, decimals=0) if view.portfolio_stop is not None else "–"
    target_label = format_money(view.portfolio_target, decimals=0) if view.portfolio_target is not None else "–"
    bar_width = BAR_WIDTH if width is None else max(4, min(BAR_WIDTH, width - len(stop_label) - len(target_label) - 2))
    bar = Text.assemble(
        (f"{stop_label} ", palette.loss),
        range_bar(view.total_pnl, view.portfolio_stop, view.portfolio_target, view.trailing_lock, bar_width, palette),
        (f" {target_label}", palette.gain),
    )
    if view.trailing_lock is not None:
        bar.append(f" lock {format_money(view.trailing_lock, decimals=0)}", style=palette.warning)
    maximum = "∞" if view.max_open_positions is None else str(view.max_open_positions)
    positions_style = (
        palette.warning
        if view.max_open_positions is not None and view.open_positions >= view.max_open_positions
        else ""
    )
    limits = Text.assemble(
        ("pos ", palette.muted),
        (f"{view.open_positions}/{maximum}", positions_style),
        ("  loss ", palette.muted),
        usage_text(view.daily_loss_used, view.daily_loss_limit, palette),
    )
    return totals, bar, limits


LINE_SELECTORS = (".card-totals", ".card-bar", ".card-limits")  # a card's text lines, top to bottom


class StrategyCard(Vertical):
    """The card of one strategy; ``update_view`` repaints only when the view changed."""

    def __init__(self, view: StrategyView, palette: Palette) -> None:
        super().__init__(id=card_id(view.name), classes="strategy-card")
        self.view = view
        self.palette = palette
        self.border_title = view.name

    def compose(self) -> ComposeResult:
        totals, bar, limits = card_lines(self.view, self.palette, self._inner_width())
        yield Static(totals, classes="card-totals", markup=False)
        yield Sparkline(list(self.view.pnl_series) or [0.0], classes="card-spark")
        yield Static(bar, classes="card-bar", markup=False)
        yield Static(limits, classes="card-limits", markup=False)

    def on_mount(self) -> None:
        self._apply_badge()

    def _inner_width(self) -> int | None:
        width = self.content_region.width
        return width if width > 0 else None

    def on_resize(self) -> None:
        self._show_lines()

    def update_view(self, view: StrategyView, palette: Palette) -> None:
        if view == self.view and palette == self.palette:
            return
        series_changed = view.pnl_series != self.view.pnl_series
        self.view, self.palette = view, palette
        self._show_lines()
        if series_changed:
            for sparkline in self.query(Sparkline):
                sparkline.data = list(view.pnl_series) or [0.0]
        self._apply_badge()

    def _show_lines(self) -> None:
        shown_lines = [self.query(selector).first(Static) if self.query(selector) else None for selector in LINE_SELECTORS]
        if None in shown_lines:
            # Mounted, but its lines are not yet: a frame landed in between.  Show this view once they are.
            if self.is_attached:
                self.call_after_refresh(self._show_lines)
            return
        lines = card_lines(self.view, self.palette, self._inner_width())
        for shown, line in zip(shown_lines, lines):
            if not same_text(shown.content, line):
                shown.update(line, layout=False)  # one line in a fixed-size card

    def _apply_badge(self) -> None:
        self.set_class(self.view.halted, "-halted")
        if self.view.halted:
            reason = f": {self.view.halt_reason}" if self.view.halt_reason else ""
            self.border_subtitle = f"HALTED{reason}"
        else:
            self.border_subtitle = ""


class StrategyCards(HorizontalScroll):
    """A row of strategy cards, reconciled by strategy name."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette: Palette = PLAIN_PALETTE
        self._cards: dict[str, StrategyCard] = {}
        self.can_focus = False

    def reconcile(self, views: tuple[StrategyView, ...]) -> None:
        wanted = {view.name: view for view in views}
        for name in [name for name in self._cards if name not in wanted]:
            self._cards.pop(name).remove()
        new_cards = []
        for name, view in wanted.items():
            card = self._cards.get(name)
            if card is None:
                card = StrategyCard(view, self.palette)
                self._cards[name] = card
                new_cards.append(card)
            elif card.is_mounted:
                card.update_view(view, self.palette)
            else:
                card.view = view
        if new_cards:
            self.mount_all(new_cards)

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        for card in self._cards.values():
            if card.is_mounted:
                card.update_view(card.view, palette)
