"""The live trades table: a virtual list over the whole book, keyed by trade id.

The book can hold ten thousand trades; only the rows in view are ever built.
Each frame takes one pass over the snapshot's trades to note which appeared,
went (or no longer pass the filter) and moved, re-sorts only when a sort value
or the set of rows changed, and keeps the cursor on the trade it was on.  Cells
are rendered only for the rows in view (and a few either side) whose trade
changed, only the lines whose cells changed are repainted, and a line is
assembled from its cells when painted (Textual's Line API: ``render_line``),
so a frame costs what is on screen, not what is in the book.  Column widths
are fixed, so nothing is ever measured.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable

from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tmtool.domain.models import Side, TradeStatus
from tmtool.engine.snapshot import TradeView
from tmtool.screens.formatting import (
    PLAIN_PALETTE,
    STATUS_LABELS,
    Palette,
    format_price,
    pnl_text,
)

# Column key, header, width.  The most important columns come first so they
# stay visible on an 80-column terminal (the status too: PAUSED, EXITING, EXIT
# FAIL must be seen): with their padding, the columns through Status take 79
# columns, so none is cut at 80; the rest scroll horizontally.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "#", 5),
    ("symbol", "Symbol", 10),
    ("side", "Side", 5),
    ("qty", "Qty", 5),
    ("ltp", "LTP", 10),
    ("pnl", "P&L", 10),
    ("stop", "Stop", 9),
    ("status", "Status", 9),
    ("dist", "To stop", 8),
    ("target", "Target", 10),
    ("trail", "Trail", 10),
    ("pnl_pct", "P&L %", 8),
    ("entry", "Entry", 10),
    ("strategy", "Strategy", 12),
    ("exchange", "Exch", 5),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
LEFT_ALIGNED = frozenset({"symbol", "side", "status", "strategy", "exchange", "id"})
HEADER_CELLS = [Text(label, justify="left" if key in LEFT_ALIGNED else "right") for key, label, _ in COLUMNS]
TABLE_WIDTH = sum(width + 2 for _, _, width in COLUMNS)  # a space either side of each cell
PADDING = Segment(" ")

# Rows just outside the view that are kept painted, so a small scroll shows fresh cells at once.
OFFSCREEN_MARGIN = 3

# How long (engine seconds) a moved stop or trail keeps its arrow.
LEVEL_MARK_SECONDS = 3.0

STATUS_FILTERS = ("OPEN", "ALL", "CLOSED")
SORT_COLUMNS: dict[str, Callable[[TradeView], object]] = {
    "id": lambda view: view.id,
    "symbol": lambda view: (view.symbol, view.id),
    "pnl": lambda view: (view.pnl, view.id),
    "to stop": lambda view: (
        view.distance_to_stop if view.distance_to_stop is not None else float("inf"),
        view.id,
    ),
    "strategy": lambda view: (view.strategy, view.id),
    "status": lambda view: (view.status.value, view.id),
}


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """Which trades the table shows."""

    text: str = ""
    status: str = "OPEN"  # one of STATUS_FILTERS
    strategy: str | None = None

    def matches(self, view: TradeView) -> bool:
        if self.status == "OPEN" and not view.status.is_open:
            return False
        if self.status == "CLOSED" and view.status.is_open:
            return False
        if self.strategy is not None and view.strategy != self.strategy:
            return False
        needle = self.text.strip().lower()
        if not needle:
            return True
        haystack = (
            f"{view.id} {view.symbol} {view.exchange} {view.strategy} {view.side.value} {view.status.value}"
        ).lower()
        return all(word in haystack for word in needle.split())

    def matcher(self) -> Callable[[TradeView], bool]:
        """``matches`` for one pass over a book: the plain status filters skip the text work."""
        if self.text.strip() or self.strategy is not None or self.status == "CLOSED":
            return self.matches
        if self.status == "OPEN":
            return lambda view: view.status.is_open
        return lambda view: True


@dataclass(frozen=True, slots=True)
class TradeOrder:
    column: str = "id"  # a key of SORT_COLUMNS
    reverse: bool = False

    def sort_key(self, view: TradeView) -> tuple:
        # Open trades always come before closed ones.
        return (view.status.is_final, SORT_COLUMNS[self.column](view))


class TradeIdCell:
    """The first cell of a row: the trade id (and the multi-select mark).

    It carries the id so sorting can rank rows without parsing text.
    """

    __slots__ = ("trade_id", "marked")

    def __init__(self, trade_id: int, marked: bool) -> None:
        self.trade_id = trade_id
        self.marked = marked

    def __rich__(self) -> Text:
        return Text(f"{'●' if self.marked else ' '}{self.trade_id}", style="bold" if self.marked else "")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TradeIdCell) and (other.trade_id, other.marked) == (self.trade_id, self.marked)

    def __hash__(self) -> int:
        return hash((self.trade_id, self.marked))


def cell_signature(cell: object) -> object:
    """What a cell looks like on screen: its text, style, alignment and spans (``Text ==`` ignores style)."""
    if isinstance(cell, Text):
        return (cell.plain, str(cell.style), cell.justify, tuple(cell.spans))
    return cell


def cell_segments(cell: object, width: int, console: Console) -> list[Segment]:
    """A cell painted into its column: aligned to ``width`` (cut if longer), a space either side."""
    text = cell.__rich__() if isinstance(cell, TradeIdCell) else cell
    assert isinstance(text, Text)
    justify = text.justify if text.justify in ("right", "center") else "left"
    if not text.spans and cell_len(text.plain) <= width:
        # The common case, without copying the text: its base style covers the padding too (as align does).
        plain = text.plain
        pad = width - cell_len(plain)
        if justify == "right":
            plain = " " * pad + plain
        elif justify == "center":
            plain = " " * (pad // 2) + plain + " " * (pad - pad // 2)
        else:
            plain = plain + " " * pad
        style = console.get_style(text.style) if isinstance(text.style, str) else text.style
        return [PADDING, Segment(plain, style), PADDING]
    text = text.copy()
    text.align(justify, width)
    text.end = ""
    return [PADDING, *text.render(console), PADDING]


@dataclass(slots=True)
class _RowState:
    view: TradeView  # the latest view: sorting and filtering use it
    shown: TradeView  # the view the row's cells were rendered from
    cells: dict[str, object]
    signatures: dict[str, object] = field(default_factory=dict)
    ltp_direction: int = 0  # +1 up, -1 down, 0 unknown
    moved_at: dict[str, tuple[float, int]] = field(default_factory=dict)  # column -> (ts, direction)
    inputs: tuple = ()  # per column, what its cell was rendered from (see TradesTable._cell_inputs)
    segments: dict[str, list[Segment]] = field(default_factory=dict)  # painted cells, by column
    stamp: int = 0  # changes whenever a shown cell does
    strip: Strip | None = None  # the row's painted line, for strip_key
    strip_key: tuple = ()

    def follow(self, view: TradeView, ts: float) -> None:
        """Take the newest view, noting which way the price and the levels moved.

        No whole-view comparison: a row out of view costs only this, and a row in
        view that did not change renders to the same cells and repaints nothing.
        """
        previous = self.view
        if previous is view:
            return
        self.view = view
        if previous.ltp and view.ltp and view.ltp != previous.ltp:
            self.ltp_direction = 1 if view.ltp > previous.ltp else -1
        for column, old, new in (
            ("stop", previous.effective_stop, view.effective_stop),
            ("target", previous.target, view.target),
            ("trail", previous.trailing_stop, view.trailing_stop),
        ):
            if old is not None and new is not None and old != new:
                self.moved_at[column] = (ts, 1 if new > old else -1)

    def expire_marks(self, ts: float) -> None:
        for column, (moved_ts, _) in list(self.moved_at.items()):
            if ts - moved_ts > LEVEL_MARK_SECONDS:
                del self.moved_at[column]

    @property
    def stale(self) -> bool:
        return self.shown is not self.view or bool(self.moved_at) or not self.cells


def trade_key(trade_id: int) -> str:
    return str(trade_id)


class TradesTable(ScrollView, can_focus=True):
    """Open (and today's closed) trades, one line per trade id, built only for the lines in view.

    The table keeps a light state per trade (its latest view and the marks of
    what moved) and the display order; a trade's cells are rendered only when
    its line is in view (or near it) and something on it changed, and its line
    is assembled only when painted.  The header stays on the first line; the
    rows scroll beneath it over the whole book.
    """

    # The keys with a description are listed in the help; the rest are the table's movement keys.
    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", show=False, id="toggle_mark"),
        Binding("enter", "select_cursor", show=False),
        Binding("up", "cursor_up", show=False),
        Binding("down", "cursor_down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("ctrl+home", "cursor_top", show=False),
        Binding("ctrl+end", "cursor_bottom", show=False),
        Binding("left", "scroll_left", show=False),
        Binding("right", "scroll_right", show=False),
        Binding("home", "first_column", show=False),
        Binding("end", "last_column", show=False),
    ]

    COMPONENT_CLASSES = {"trades-table--header", "trades-table--cursor"}

    DEFAULT_CSS = """
    TradesTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .trades-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .trades-table--header {
                background-tint: $foreground 5%;
            }
        }
        & > .trades-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .trades-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .trades-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class MarksChanged(Message):
        """The set of multi-selected trades changed."""

        def __init__(self, marked: frozenset[int]) -> None:
            super().__init__()
            self.marked = marked

    class RowSelected(Message):
        """Enter (or a click) chose the trade under the cursor."""

        def __init__(self, table: "TradesTable", trade_id: int) -> None:
            super().__init__()
            self.table = table
            self.trade_id = trade_id

        @property
        def control(self) -> "TradesTable":
            return self.table

    cursor_row: var[int] = var(0)  # the display index under the cursor (watchable)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.palette: Palette = PLAIN_PALETTE
        self.trade_filter = TradeFilter()
        self.trade_order = TradeOrder()
        self.marked: set[int] = set()
        self._rows: dict[int, _RowState] = {}
        self._row_order: list[int] = []
        self._row_index: dict[int, int] = {}
        self._cursor_trade: int | None = None
        self._last_views: tuple[TradeView, ...] = ()
        self._last_ts: float = 0.0
        self._next_stamp = itertools.count(1)
        self._header_strip: tuple[tuple, Strip] | None = None
        self._paint_styles: tuple = ()
        self._changed_rows: set[int] = set()  # display indices of lines to repaint
        self._batching = False  # inside a pass that repaints its changed lines once at the end
        self.virtual_size = Size(TABLE_WIDTH, 1)

    # ------------------------------------------------------------------ queries

    @property
    def row_count(self) -> int:
        return len(self._row_order)

    def selected_trade_id(self) -> int | None:
        """The trade under the cursor right now (capture this at key press)."""
        return self._cursor_trade if self._row_order else None

    def shown_trade_ids(self) -> list[int]:
        """Trade ids in display order."""
        return list(self._row_order)

    def marked_trade_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.marked))

    def get_row_index(self, row_key: str | int) -> int:
        """The display index of a trade's row (``KeyError`` when it is not shown)."""
        return self._row_index[int(row_key)]

    def get_cell(self, row_key: str | int, column_key: str) -> object:
        """A trade's cell as it is shown (rendered now if the row was out of view and stale)."""
        state = self._rows[int(row_key)]
        if state.stale:
            self._update_row(state, self._last_ts)
        return state.cells[column_key]

    @property
    def rows_in_view(self) -> int:
        return max(0, self.scrollable_content_region.height - 1)

    # ------------------------------------------------------------------ cursor and scrolling

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        """Put the cursor on the row at display index ``row`` (clamped), scrolling it into view."""
        if not self._row_order:
            self._cursor_trade, self.cursor_row = None, 0
            return
        row = max(0, min(row, len(self._row_order) - 1))
        previous = self.cursor_row
        self.cursor_row = row
        self._cursor_trade = self._row_order[row]
        if previous != row:
            self._refresh_rows(previous, row)
        if scroll:
            self._scroll_row_into_view(row)

    def _scroll_row_into_view(self, row: int) -> None:
        top = round(self.scroll_y)
        in_view = max(1, self.rows_in_view)
        if row < top:
            self.scroll_to(y=row, animate=False, force=True)
        elif row >= top + in_view:
            self.scroll_to(y=row - in_view + 1, animate=False, force=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        page = max(1, self.rows_in_view)
        self.scroll_to(y=max(0, round(self.scroll_y) - page), animate=False, force=True)
        self.move_cursor(row=self.cursor_row - page, scroll=False)
        self._scroll_row_into_view(self.cursor_row)

    def action_page_down(self) -> None:
        page = max(1, self.rows_in_view)
        self.scroll_to(y=round(self.scroll_y) + page, animate=False, force=True)
        self.move_cursor(row=self.cursor_row + page, scroll=False)
        self._scroll_row_into_view(self.cursor_row)

    def action_cursor_top(self) -> None:
        self.move_cursor(row=0)

    def action_cursor_bottom(self) -> None:
        self.move_cursor(row=len(self._row_order) - 1)

    def action_first_column(self) -> None:
        self.scroll_x = 0

    def action_last_column(self) -> None:
        self.scroll_x = self.max_scroll_x

    def action_select_cursor(self) -> None:
        trade_id = self.selected_trade_id()
        if trade_id is not None:
            self.post_message(self.RowSelected(self, trade_id))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return  # the header
        row = round(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._row_order):
            self.move_cursor(row=row)
            self.action_select_cursor()

    # ------------------------------------------------------------------ actions

    def action_toggle_mark(self) -> None:
        trade_id = self.selected_trade_id()
        if trade_id is None:
            return
        if trade_id in self.marked:
            self.marked.discard(trade_id)
        else:
            self.marked.add(trade_id)
        self._refresh_id_cell(trade_id)
        self.post_message(self.MarksChanged(frozenset(self.marked)))

    def clear_marks(self) -> None:
        marked, self.marked = self.marked, set()
        for trade_id in marked:
            self._refresh_id_cell(trade_id)
        self.post_message(self.MarksChanged(frozenset()))

    def set_filter(self, trade_filter: TradeFilter) -> None:
        self.trade_filter = trade_filter
        self.reconcile(self._last_views, self._last_ts)

    def set_order(self, trade_order: TradeOrder) -> None:
        self.trade_order = trade_order
        self.reconcile(self._last_views, self._last_ts, reorder=True)

    def set_palette(self, palette: Palette) -> None:
        """Re-colour every row (theme change)."""
        self.palette = palette
        for state in self._rows.values():
            state.cells, state.signatures, state.segments, state.inputs = {}, {}, {}, ()
        self.reconcile(self._last_views, self._last_ts)
        self.refresh()

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, views: Iterable[TradeView], ts: float, *, reorder: bool = False) -> None:
        """Bring the table in line with ``views`` (the snapshot's trades) at engine time ``ts``.

        One pass over the views notes what moved; rendering waits for the rows in view.
        """
        views = views if isinstance(views, tuple) else tuple(views)
        self._last_views, self._last_ts = views, ts
        matches = self.trade_filter.matcher()
        sort_key = self.trade_order.sort_key
        by_id = self.trade_order.column == "id"  # then only a status change can move a row
        rows = self._rows
        wanted: set[int] = set()
        added = False
        for view in views:
            if not matches(view):
                continue
            trade_id = view.id
            wanted.add(trade_id)
            state = rows.get(trade_id)
            if state is None:
                rows[trade_id] = _RowState(view=view, shown=view, cells={})
                added = True
            elif state.view is not view:
                previous = state.view
                state.follow(view, ts)
                if not reorder and (previous.status is not view.status if by_id else sort_key(previous) != sort_key(view)):
                    reorder = True
        gone = len(rows) != len(wanted)
        if gone:
            for trade_id in [trade_id for trade_id in rows if trade_id not in wanted]:
                del rows[trade_id]
        present = {view.id for view in views} if self.marked else set()
        if self.marked - present:
            self.marked &= present
            self.post_message(self.MarksChanged(frozenset(self.marked)))

        if added or reorder:
            self._set_order(self._sorted_ids())
        elif gone:
            self._set_order([trade_id for trade_id in self._row_order if trade_id in rows])
        self._paint_visible_rows()

    def _sorted_ids(self) -> list[int]:
        order = self.trade_order
        rows = self._rows
        desired = sorted(rows, key=lambda trade_id: order.sort_key(rows[trade_id].view))
        if order.reverse:
            open_ids = [trade_id for trade_id in desired if rows[trade_id].view.status.is_open]
            closed_ids = [trade_id for trade_id in desired if not rows[trade_id].view.status.is_open]
            desired = open_ids[::-1] + closed_ids[::-1]
        return desired

    def _set_order(self, order: list[int]) -> None:
        """Show the rows in ``order``, the cursor staying on its trade (or, if that went, on its line)."""
        if order == self._row_order:
            return
        self._row_order = order
        self._row_index = {trade_id: index for index, trade_id in enumerate(order)}
        self.virtual_size = Size(TABLE_WIDTH, len(order) + 1)
        if not order:
            self._cursor_trade, self.cursor_row = None, 0
        elif self._cursor_trade in self._row_index:
            self.cursor_row = self._row_index[self._cursor_trade]
        else:
            self.cursor_row = max(0, min(self.cursor_row, len(order) - 1))
            self._cursor_trade = order[self.cursor_row]
        self.refresh()

    def _visible_rows(self) -> range:
        """Display indices of the rows in view (plus a few either side)."""
        top = round(self.scroll_y)
        return range(max(0, top - OFFSCREEN_MARGIN), min(len(self._row_order), top + self.rows_in_view + OFFSCREEN_MARGIN))

    def _paint_visible_rows(self) -> None:
        """Render the cells of the rows in view that changed since they were last shown.

        Rows out of view keep their last cells until they scroll in; a busy feed
        changes every row every frame, and only the visible ones are worth the work.
        """
        ts = self._last_ts
        order, rows = self._row_order, self._rows
        self._batching = True
        try:
            for index in self._visible_rows():
                state = rows[order[index]]
                if state.stale:
                    self._update_row(state, ts)
        finally:
            self._batching = False
        self._refresh_changed_rows()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._paint_visible_rows()

    def on_resize(self) -> None:
        self._paint_visible_rows()

    def _update_row(self, state: _RowState, ts: float) -> None:
        """Re-render the cells whose inputs changed; repaint those whose look changed."""
        state.expire_marks(ts)
        inputs = self._cell_inputs(state)
        previous = state.inputs
        cells, signatures = state.cells, state.signatures
        row_key = trade_key(state.view.id)
        for position, column in enumerate(COLUMN_KEYS):
            if previous and previous[position] == inputs[position] and column in cells:
                continue
            cell = self._render_cell(column, state)
            signature = cell_signature(cell)
            if signatures.get(column) != signature:
                signatures[column] = signature
                self.update_cell(row_key, column, cell)
        state.inputs = inputs
        state.shown = state.view

    def _refresh_id_cell(self, trade_id: int) -> None:
        state = self._rows.get(trade_id)
        if state is None:
            return
        cell = TradeIdCell(trade_id, trade_id in self.marked)
        state.signatures["id"] = cell
        self.update_cell(trade_key(trade_id), "id", cell)

    def update_cell(self, row_key: str | int, column_key: str, value: object) -> None:
        """Replace one shown cell and repaint its line."""
        trade_id = int(row_key)
        if column_key not in COLUMN_KEYS:
            raise KeyError(f"the trades table has no column {column_key!r}")
        state = self._rows[trade_id]
        state.cells[column_key] = value
        state.segments.pop(column_key, None)
        state.stamp = next(self._next_stamp)
        index = self._row_index.get(trade_id)
        if index is not None:
            self._changed_rows.add(index)
            if not self._batching:
                self._refresh_changed_rows()

    def _refresh_rows(self, *indices: int) -> None:
        self._changed_rows.update(indices)
        self._refresh_changed_rows()

    def _refresh_changed_rows(self) -> None:
        """Repaint the changed lines that are in view, in one request (a frame changes many cells)."""
        if not self._changed_rows:
            return
        changed, self._changed_rows = self._changed_rows, set()
        top = round(self.scroll_y)
        width, height = self.size
        regions = [Region(0, index - top + 1, width, 1) for index in changed if 1 <= index - top + 1 < height]
        if regions:
            self.refresh(*regions)

    # ------------------------------------------------------------------ painting

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header_strip = None
        for state in self._rows.values():
            state.strip = None

    def render_lines(self, crop: Region) -> list[Strip]:
        base = self.rich_style
        cursor = self.get_component_rich_style("trades-table--cursor")
        header = self.get_component_rich_style("trades-table--header")
        cursor_post = Style.from_color(color=cursor.color)
        self._paint_styles = (base, base + cursor, cursor_post, header, self.has_focus)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width  # the widget's; the header's cells use their columns' widths
        if not self._paint_styles:
            self._paint_styles = (self.rich_style, self.rich_style, Style.null(), self.rich_style, self.has_focus)
        base, cursor_style, cursor_post, header_style, focused = self._paint_styles
        x = round(self.scroll_x)
        if y == 0:
            key = (header_style, focused)
            if self._header_strip is None or self._header_strip[0] != key:
                header = [cell_segments(text, width, self.app.console) for text, (_, _, width) in zip(HEADER_CELLS, COLUMNS)]
                self._header_strip = (key, self._row_strip(header, header_style, Style.null()))
            strip = self._header_strip[1]
            return strip.crop(x, x + width).adjust_cell_length(width, header_style)
        index = round(self.scroll_y) + y - 1
        if not 0 <= index < len(self._row_order):
            return Strip.blank(width, base)
        state = self._rows[self._row_order[index]]
        if state.stale:  # painted now: its line needs no second repaint
            self._batching = True
            try:
                self._update_row(state, self._last_ts)
            finally:
                self._batching = False
            self._changed_rows.discard(index)
        on_cursor = index == self.cursor_row
        key = (state.stamp, on_cursor, base, cursor_style, cursor_post, focused)
        if state.strip is None or state.strip_key != key:
            state.strip = self._row_strip(
                self._cell_segments(state), cursor_style if on_cursor else base, cursor_post if on_cursor else Style.null()
            )
            state.strip_key = key
        return state.strip.crop(x, x + width).adjust_cell_length(width, cursor_style if on_cursor else base)

    def _row_strip(self, segments_by_column: list[list[Segment]], pre_style: Style, post_style: Style) -> Strip:
        """One row's line across every column from its painted cells, under the row's style."""
        segments: list[Segment] = []
        for cell_segments in segments_by_column:
            segments.extend(cell_segments)
        return Strip(list(Segment.apply_style(segments, pre_style, post_style)), TABLE_WIDTH).simplify()

    def _cell_segments(self, state: _RowState) -> list[list[Segment]]:
        painted = state.segments
        cells = state.cells
        result = []
        for column, _, width in COLUMNS:
            segments = painted.get(column)
            if segments is None:
                segments = painted[column] = cell_segments(cells[column], width, self.app.console)
            result.append(segments)
        return result

    # ------------------------------------------------------------------ cells

    def _cell_inputs(self, state: _RowState) -> tuple:
        """Per column (in COLUMN_KEYS order), everything its cell is rendered from."""
        view = state.view
        final = view.status.is_final
        tick = view.tick_size
        moved = state.moved_at
        return (
            (view.id, view.id in self.marked),
            (view.symbol, final),
            (view.side, final),
            (view.quantity, view.entry_quantity, view.status.is_open),
            (view.ltp, tick, final, state.ltp_direction),
            (view.pnl,),
            (view.effective_stop, tick, final, moved.get("stop")),
            (view.status, view.paused, view.degraded, view.awaiting_approval),
            (view.distance_to_stop, view.ltp, tick, final),
            (view.target, tick, final, moved.get("target")),
            (view.trailing_stop, tick, final, moved.get("trail")),
            (view.pnl_percent,),
            (view.entry_price, tick, final),
            (view.strategy, final),
            (view.exchange, final),
        )

    def _render_cells(self, state: _RowState) -> dict[str, object]:
        return {column: self._render_cell(column, state) for column in COLUMN_KEYS}

    def _render_cell(self, column: str, state: _RowState) -> object:
        view = state.view
        palette = self.palette
        closed = view.status.is_final
        muted = palette.muted if closed else ""
        tick = view.tick_size

        def level(value: float | None) -> Text:
            text = Text(format_price(value, tick), justify="right", style=muted)
            moved = state.moved_at.get(column)
            if moved is not None:
                text = Text.assemble(("↑" if moved[1] > 0 else "↓", f"bold {palette.accent}"), text)
                text.justify = "right"
            return text

        if column == "id":
            return TradeIdCell(view.id, view.id in self.marked)
        if column == "symbol":
            return Text(view.symbol, style=f"bold {muted}".strip())
        if column == "side":
            return Text(view.side.value, style=muted or (palette.gain if view.side is Side.LONG else palette.loss))
        if column == "qty":
            return Text(str(view.quantity if view.status.is_open else view.entry_quantity), justify="right")
        if column == "ltp":
            ltp = Text(format_price(view.ltp, tick), justify="right", style=muted)
            if state.ltp_direction and not closed:
                arrow = ("▲ ", palette.gain) if state.ltp_direction > 0 else ("▼ ", palette.loss)
                ltp = Text.assemble(arrow, ltp)
                ltp.justify = "right"
            return ltp
        if column == "pnl":
            pnl = pnl_text(view.pnl, palette)
            pnl.justify = "right"
            return pnl
        if column == "stop":
            return level(view.effective_stop)
        if column == "dist":
            return self._distance_cell(view)
        if column == "target":
            return level(view.target)
        if column == "trail":
            return level(view.trailing_stop)
        if column == "pnl_pct":
            pnl_percent = pnl_text(view.pnl_percent, palette, percent=True)
            pnl_percent.justify = "right"
            return pnl_percent
        if column == "entry":
            return Text(format_price(view.entry_price, tick), justify="right", style=muted)
        if column == "status":
            return self._status_cell(view)
        if column == "strategy":
            return Text(view.strategy, style=muted)
        if column == "exchange":
            return Text(view.exchange, style=muted)
        raise KeyError(f"the trades table has no column {column!r}")

    def _distance_cell(self, view: TradeView) -> Text:
        distance = view.distance_to_stop
        if distance is None or view.status.is_final:
            return Text("–", justify="right", style=self.palette.muted)
        style = ""
        if distance <= 0:
            style = f"bold {self.palette.loss}"
        elif view.ltp and distance / view.ltp < 0.003:
            style = self.palette.warning
        return Text(format_price(distance, view.tick_size) if distance > 0 else f"{distance:.2f}", justify="right", style=style)

    def _status_cell(self, view: TradeView) -> Text:
        palette = self.palette
        if view.status is TradeStatus.ACTIVE and view.paused:
            return Text("PAUSED", style=palette.warning)
        if view.status is TradeStatus.ACTIVE and view.degraded:
            return Text("STALE", style=palette.warning)
        if view.awaiting_approval:
            return Text("APPROVAL", style=palette.warning)
        label = STATUS_LABELS.get(view.status, view.status.value)
        if view.status is TradeStatus.EXIT_FAILED:
            return Text(label, style=f"bold reverse {palette.loss}")
        if view.status in (TradeStatus.EXITING, TradeStatus.PENDING_ENTRY):
            return Text(label, style=palette.warning)
        if view.status.is_final:
            return Text(label, style=palette.muted)
        return Text(label)
