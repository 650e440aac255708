"""Confirmation dialogs.  Destructive ones start with the focus on "No" and need an explicit key."""

from __future__ import annotations

from typing import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tmtool.engine.snapshot import TradeView
from tmtool.screens.formatting import format_money, format_price


def trade_line(view: TradeView) -> str:
    """One trade as a dialog line: id, side, quantity, symbol, LTP, P&L, strategy."""
    return (
        f"#{view.id:<5}{view.side.value:<6}{view.quantity:>6} {view.symbol:<12}"
        f"LTP {format_price(view.ltp, view.tick_size):>10}  P&L {format_money(view.pnl, signed=True):>11}  "
        f"{view.strategy}"
    )

class ConfirmModal(ModalScreen[bool]):
    """Yes/No.  Focus starts on "No"; "y" (or the Yes button) confirms, escape or "n" refuses."""

    BINDINGS = [
        Binding("escape", "refuse", "No", id="confirm_no"),
        Binding("n", "refuse", "No", show=False, id="confirm_no_key"),
        Binding("y", "confirm", "Yes", id="confirm_yes"),
    ]

    def __init__(self, title: str, lines: Iterable[str | Text], *, confirm_label: str = "Yes") -> None:
        super().__init__(classes="confirm-modal")
        self.title_text = title
        self.lines = [line if isinstance(line, Text) else Text(line) for line in lines]
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            with VerticalScroll(classes="dialog-body"):
                yield Static(Text("\n").join(self.lines), id="confirm-lines", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (esc)", id="no", variant="primary", compact=True)
                yield Button(f"{self.confirm_label} (y)", id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_refuse(self) -> None:
        self.dismiss(False)


class PanicModal(ModalScreen[bool]):
    """Close everything.  "y" arms the button (and moves focus to it); enter then fires it.

    Two deliberate key presses, never one: the button stays disabled until armed,
    and the dialog opens with the focus on "No".
    """

    BINDINGS = [
        Binding("escape", "refuse", "Cancel", id="panic_cancel"),
        Binding("n", "refuse", "Cancel", show=False, id="panic_cancel_key"),
        Binding("y", "arm", "Arm", id="panic_arm"),
    ]
    SHOWN_TRADES = 12

    def __init__(self, open_trades: tuple[TradeView, ...]) -> None:
        super().__init__(classes="panic-modal")
        self.open_trades = open_trades
        self.armed = False

    def compose(self) -> ComposeResult:
        count = len(self.open_trades)
        strategies = sorted({view.strategy for view in self.open_trades})
        with Vertical(classes="dialog"):
            yield Static("PANIC: EXIT ALL OPEN TRADES", classes="dialog-title", markup=False)
            summary = (
                f"{count} open trade(s) in {len(strategies)} strateg{'y' if len(strategies) == 1 else 'ies'} "
                "will be closed at market, all at once, and new entries halted until you re-arm (F10):"
                if count
                else "No open trades right now; the engine will still exit everything and halt new entries until you re-arm (F10)."
            )
            yield Static(summary, id="panic-summary", markup=False)
            lines = [trade_line(view) for view in self.open_trades[: self.SHOWN_TRADES]]
            if count > self.SHOWN_TRADES:
                lines.append(f"… and {count - self.SHOWN_TRADES} more")
            with VerticalScroll(classes="dialog-body"):
                yield Static("\n".join(lines), id="panic-trades", markup=False)
            yield Static("Press y to arm, then Enter to close everything. Esc cancels.", id="panic-hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (esc)", id="no", variant="primary", compact=True)
                yield Button("CLOSE ALL (y, enter)", id="yes", variant="error", disabled=True, compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_arm(self) -> None:
        self.armed = True
        button = self.query_one("#yes", Button)
        button.disabled = False
        button.focus()
        self.query_one("#panic-hint", Static).update("ARMED: press Enter to close everything, Esc to cancel.")
        self.add_class("-armed")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes" and self.armed)

    def action_refuse(self) -> None:
        self.dismiss(False)
