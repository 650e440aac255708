"""The help screen: every key binding, grouped by where it works."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NOTES = (
    "Panic exit asks for y, then Enter; the dialog opens on No.",
    "Actions on a trade use the trade under the cursor when the key was pressed; its id is in the dialog.",
    "Filter: type words (symbol, strategy, status, id) in the filter box; Enter or Esc returns to the table.",
    "Key bindings have ids and can be remapped with the app's keymap.",
)


class HelpModal(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close", id="help_close"),
        Binding("question_mark", "close", "Close", show=False, id="help_close_key"),
        Binding("q", "close", "Close", show=False, id="help_close_q"),
    ]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        """``groups``: (where, [(keys, what)])."""
        super().__init__(classes="help-modal")
        self.groups = groups

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("keys", style="bold", no_wrap=True, min_width=12)
        table.add_column("what")
        for where, rows in self.groups:
            table.add_row(Text(where, style="bold underline"), "")
            for keys, what in rows:
                table.add_row(keys, what)
        with Vertical(classes="dialog"):
            yield Static("Keys and what the screen shows", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(table, id="help-table")
                yield Static("\n".join(f"• {note}" for note in NOTES), id="help-notes", markup=False)
            yield Static("Esc closes", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
