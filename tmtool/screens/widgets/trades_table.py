"""The live trades table: keyed by trade id and reconciled, never rebuilt.

Each frame adds the trades that appeared, removes the ones that went (or no
longer pass the filter), updates only the cells whose rendered text changed,
re-sorts only when the order changed, and puts the cursor back on the trade it
was on.  Column widths are fixed, so no update ever asks for a re-measure.

Painting is where a busy feed costs: the stock table forgets every rendered
cell and repaints the whole widget on any cell update.  Here a cell update
stamps just that cell, only the visible rows that changed are marked for
repaint (once per frame), and rendered cells are cached by their stamp, so a
frame renders only the cells whose text changed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowKey

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

# Rendered cells kept: every visible cell a few times over (cursor on/off, two row positions).
RENDERED_CELL_CACHE = 8192

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


@dataclass(slots=True)
class _RowState:
    view: TradeView  # the latest view: sorting and filtering use it
    shown: TradeView  # the view the row's cells were rendered from
    cells: dict[str, object]
    signatures: dict[str, object] = field(default_factory=dict)
    ltp_direction: int = 0  # +1 up, -1 down, 0 unknown
    moved_at: dict[str, tuple[float, int]] = field(default_factory=dict)  # column -> (ts, direction)

    def follow(self, view: TradeView, ts: float) -> None:
        """Take the newest view, noting which way the price and the levels moved."""
        previous = self.view
        if previous is view or previous == view:
            return  # keep the object already shown, so the row stays clean
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


class TradesTable(DataTable):
    """Open (and today's closed) trades, one row per trade id."""

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", show=False, id="toggle_mark"),
    ]

    class MarksChanged(Message):
        """The set of multi-selected trades changed."""

        def __init__(self, marked: frozenset[int]) -> None:
            super().__init__()
            self.marked = marked

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.palette: Palette = PLAIN_PALETTE
        self.trade_filter = TradeFilter()
        self.trade_order = TradeOrder()
        self.marked: set[int] = set()
        self._rows: dict[int, _RowState] = {}
        self._row_order: list[int] = []
        self._last_views: tuple[TradeView, ...] = ()
        self._last_ts: float = 0.0
        # Rendered cells keyed by a stamp that changes whenever that cell's content does.
        self._cell_stamps: dict[tuple[RowKey, ColumnKey], int] = {}
        self._next_stamp = itertools.count(1)
        self._rendered_cells: LRUCache[tuple, list] = LRUCache(RENDERED_CELL_CACHE)
        self._changed_rows: set[RowKey] = set()
        self._batching = False

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            justify = "left" if key in ("symbol", "side", "status", "strategy", "exchange", "id") else "right"
            self.add_column(Text(label, justify=justify), width=width, key=key)

    # ------------------------------------------------------------------ queries

    def selected_trade_id(self) -> int | None:
        """The trade under the cursor right now (capture this at key press)."""
        if self.row_count == 0:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except CellDoesNotExist:
            return None
        return int(row_key.value) if row_key.value is not None else None

    def shown_trade_ids(self) -> list[int]:
        """Trade ids in display order."""
        return list(self._row_order)

    def marked_trade_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.marked))

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
        self.reconcile(self._last_views, self._last_ts)

    def set_palette(self, palette: Palette) -> None:
        """Re-colour every row (theme change)."""
        self.palette = palette
        for state in self._rows.values():
            state.cells = {}
        self.reconcile(self._last_views, self._last_ts)

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, views: Iterable[TradeView], ts: float) -> None:
        """Bring the table in line with ``views`` (the snapshot's trades) at engine time ``ts``."""
        views = tuple(views)
        self._last_views, self._last_ts = views, ts
        present = {view.id for view in views}
        if self.marked - present:
            self.marked &= present
            self.post_message(self.MarksChanged(frozenset(self.marked)))
        wanted = {view.id: view for view in views if self.trade_filter.matches(view)}
        cursor_trade = self.selected_trade_id()

        self._batching = True
        try:
            for trade_id in [trade_id for trade_id in self._rows if trade_id not in wanted]:
                self.remove_row(trade_key(trade_id))
                del self._rows[trade_id]
                self._row_order.remove(trade_id)

            for trade_id, view in wanted.items():
                state = self._rows.get(trade_id)
                if state is None:
                    state = _RowState(view=view, shown=view, cells={})
                    self._rows[trade_id] = state
                    cells = self._render_cells(state)
                    state.cells = cells
                    state.signatures = {key: cell_signature(cell) for key, cell in cells.items()}
                    self.add_row(*(cells[key] for key in COLUMN_KEYS), key=trade_key(trade_id))
                    self._row_order.append(trade_id)
                else:
                    state.follow(view, ts)
            self._apply_order()
            self._paint_visible_rows()
        finally:
            self._batching = False
        self._repaint_changed_rows()

        if cursor_trade is not None and cursor_trade in self._rows:
            index = self.get_row_index(trade_key(cursor_trade))
            if index != self.cursor_row:
                self.move_cursor(row=index, scroll=False)

    def _visible_trade_ids(self) -> list[int]:
        """The trades whose rows are in view (plus a few rows either side)."""
        first = max(0, self.scroll_offset.y - OFFSCREEN_MARGIN)
        rows_in_view = self.size.height - (self.header_height if self.show_header else 0)
        return self._row_order[first : self.scroll_offset.y + rows_in_view + OFFSCREEN_MARGIN]

    def _paint_visible_rows(self) -> None:
        """Render the cells of the rows in view that changed since they were last shown.

        Rows out of view keep their last cells until they scroll in; a busy feed
        changes every row every frame, and only the visible ones are worth the work.
        """
        ts = self._last_ts
        for trade_id in self._visible_trade_ids():
            state = self._rows[trade_id]
            if state.stale:
                self._update_row(state, ts)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._paint_visible_rows()

    def on_resize(self) -> None:
        self._paint_visible_rows()

    def _apply_order(self) -> None:
        order = self.trade_order
        desired = sorted(self._rows, key=lambda trade_id: order.sort_key(self._rows[trade_id].view))
        if order.reverse:
            open_ids = [trade_id for trade_id in desired if self._rows[trade_id].view.status.is_open]
            closed_ids = [trade_id for trade_id in desired if not self._rows[trade_id].view.status.is_open]
            desired = open_ids[::-1] + closed_ids[::-1]
        if desired == self._row_order:
            return
        rank = {trade_id: index for index, trade_id in enumerate(desired)}
        self.sort("id", key=lambda cell: rank[cell.trade_id])
        self._row_order = desired

    def _update_row(self, state: _RowState, ts: float) -> None:
        state.expire_marks(ts)
        cells = self._render_cells(state)
        row_key = trade_key(state.view.id)
        signatures = {}
        for key in COLUMN_KEYS:
            signature = signatures[key] = cell_signature(cells[key])
            if state.signatures.get(key) != signature:
                self.update_cell(row_key, key, cells[key])
        state.cells, state.signatures = cells, signatures
        state.shown = state.view

    def _refresh_id_cell(self, trade_id: int) -> None:
        state = self._rows.get(trade_id)
        if state is None:
            return
        cell = TradeIdCell(trade_id, trade_id in self.marked)
        state.cells["id"], state.signatures["id"] = cell, cell
        self.update_cell(trade_key(trade_id), "id", cell)

    # ------------------------------------------------------------------ painting

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: object,
        *,
        update_width: bool = False,
    ) -> None:
        """Replace one cell and repaint only its row (the stock table repaints everything).

        Inside ``reconcile`` the repaint waits for the end of the frame, so a row
        with several changed cells is painted once.
        """
        if update_width:
            raise ValueError("the trades table has fixed column widths; update_width is not supported")
        row_key = RowKey(row_key) if isinstance(row_key, str) else row_key
        column_key = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        if row_key not in self._row_locations or column_key not in self._column_locations:
            raise CellDoesNotExist(f"No cell exists for row_key={row_key!r}, column_key={column_key!r}.")
        self._data[row_key][column_key] = value
        self._cell_stamps[(row_key, column_key)] = next(self._next_stamp)
        self._changed_rows.add(row_key)
        if not self._batching:
            self._repaint_changed_rows()

    def add_row(self, *cells: object, height: int | None = 1, key: str | None = None, label: object = None) -> RowKey:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        for column_key in self._column_locations:
            self._cell_stamps[(row_key, column_key)] = next(self._next_stamp)
        return row_key

    def remove_row(self, row_key: RowKey | str) -> None:
        row_key = RowKey(row_key) if isinstance(row_key, str) else row_key
        super().remove_row(row_key)
        for column_key in self._column_locations:
            self._cell_stamps.pop((row_key, column_key), None)
        self._changed_rows.discard(row_key)

    def _repaint_changed_rows(self) -> None:
        """Mark the visible rows whose cells changed for repaint; rows out of view just wait."""
        if not self._changed_rows:
            return
        changed, self._changed_rows = self._changed_rows, set()
        self._update_count += 1  # the stock row and line caches must not serve the old text
        header = self.header_height if self.show_header else 0
        scroll_y = self.scroll_offset.y
        width, height = self.size
        regions = []
        for row_key in changed:
            index = self._row_locations.get(row_key)
            if index is None:
                continue
            y = header + index - scroll_y
            if header <= y < height:
                regions.append(Region(0, y, width, 1))
        if regions:
            self.refresh(*regions)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list:
        """A cell's rendered lines, from the cache while the cell's stamp is unchanged."""
        stamp = None
        if row_index >= 0 and column_index >= 0:
            row_key = self._row_locations.get_key(row_index)
            column_key = self._column_locations.get_key(column_index)
            stamp = self._cell_stamps.get((row_key, column_key))
        if stamp is None:  # the header, or a cell this table did not stamp
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (
            stamp,
            row_index,  # the rendered segments carry the row index for mouse clicks
            column_index,
            base_style,
            width,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            self._pseudo_class_state,
        )
        lines = self._rendered_cells.get(cache_key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            self._rendered_cells[cache_key] = lines
        return lines

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._rendered_cells.clear()

    def notify_style_update(self) -> None:
        self._rendered_cells.clear()
        super().notify_style_update()

    # ------------------------------------------------------------------ cells

    def _render_cells(self, state: _RowState) -> dict[str, object]:
        view = state.view
        palette = self.palette
        closed = view.status.is_final
        muted = palette.muted if closed else ""
        tick = view.tick_size

        def level(column: str, value: float | None) -> Text:
            text = Text(format_price(value, tick), justify="right", style=muted)
            moved = state.moved_at.get(column)
            if moved is not None:
                text = Text.assemble(("↑" if moved[1] > 0 else "↓", f"bold {palette.accent}"), text)
                text.justify = "right"
            return text

        ltp = Text(format_price(view.ltp, tick), justify="right", style=muted)
        if state.ltp_direction and not closed:
            arrow = ("▲ ", palette.gain) if state.ltp_direction > 0 else ("▼ ", palette.loss)
            ltp = Text.assemble(arrow, ltp)
            ltp.justify = "right"

        pnl = pnl_text(view.pnl, palette)
        pnl.justify = "right"
        pnl_percent = pnl_text(view.pnl_percent, palette, percent=True)
        pnl_percent.justify = "right"

        return {
            "id": TradeIdCell(view.id, view.id in self.marked),
            "symbol": Text(view.symbol, style=f"bold {muted}".strip()),
            "side": Text(view.side.value, style=muted or (palette.gain if view.side is Side.LONG else palette.loss)),
            "qty": Text(str(view.quantity if view.status.is_open else view.entry_quantity), justify="right"),
            "ltp": ltp,
            "pnl": pnl,
            "stop": level("stop", view.effective_stop),
            "dist": self._distance_cell(view),
            "target": level("target", view.target),
            "trail": level("trail", view.trailing_stop),
            "pnl_pct": pnl_percent,
            "entry": Text(format_price(view.entry_price, tick), justify="right", style=muted),
            "status": self._status_cell(view),
            "strategy": Text(view.strategy, style=muted),
            "exchange": Text(view.exchange, style=muted),
        }

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
