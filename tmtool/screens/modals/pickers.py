"""Small choosers: a strategy, the fate of a deleted strategy's trades, a file path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, RadioButton, RadioSet, Select, Static
from textual.widgets.option_list import Option


class ChooseStrategyModal(ModalScreen[str | None]):
    """Pick one strategy from a list (enter picks, escape cancels)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choose_cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], selected: str | None = None) -> None:
        """``choices`` are (strategy name, label) pairs."""
        super().__init__(classes="picker-modal")
        self.title_text = title
        self.choices = choices
        self.selected = selected

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield OptionList(*(Option(label, id=name) for name, label in self.choices), id="choices")
            yield Static("Enter picks · Esc cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        names = [name for name, _ in self.choices]
        if self.selected in names:
            options.highlighted = names.index(self.selected)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True, slots=True)
class DeleteChoice:
    open_trades: str  # "refuse" | "exit" | "move"
    move_to: str | None = None


class DeleteStrategyModal(ModalScreen[DeleteChoice | None]):
    """Delete a strategy; with open trades choose: keep it, exit them, or move them."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="delete_cancel"),
        Binding("y", "confirm", "Delete", id="delete_confirm"),
    ]

    def __init__(self, name: str, open_trades: int, other_strategies: list[str]) -> None:
        super().__init__(classes="picker-modal")
        self.strategy_name = name
        self.open_trades = open_trades
        self.other_strategies = other_strategies

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Delete strategy '{self.strategy_name}'?", classes="dialog-title", markup=False)
            if self.open_trades:
                yield Static(f"It has {self.open_trades} open trade(s). What should happen to them?", markup=False)
                with RadioSet(id="fate"):
                    yield RadioButton("Refuse: keep the strategy while it has open trades", value=True, id="refuse")
                    yield RadioButton("Exit them now (reason STRATEGY_DELETED)", id="exit")
                    yield RadioButton("Move them to another strategy", id="move", disabled=not self.other_strategies)
                yield Select(
                    [(name, name) for name in self.other_strategies],
                    prompt="move to…",
                    id="move-to",
                    compact=True,
                    disabled=not self.other_strategies,
                )
            else:
                yield Static("It has no open trades.", markup=False)
            yield Static("", id="form-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("No (esc)", id="no", variant="primary", compact=True)
                yield Button("Delete (y)", id="yes", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "yes":
            self.action_confirm()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_confirm(self) -> None:
        if not self.open_trades:
            self.dismiss(DeleteChoice("refuse"))
            return
        pressed = self.query_one(RadioSet).pressed_button
        fate = pressed.id if pressed is not None and pressed.id else "refuse"
        if fate == "move":
            target = self.query_one("#move-to", Select).value
            if target is Select.NULL:
                self.query_one("#form-error", Static).update("Pick the strategy to move the trades to.")
                return
            self.dismiss(DeleteChoice("move", str(target)))
            return
        self.dismiss(DeleteChoice(fate))


class PathModal(ModalScreen[Path | None]):
    """Ask for a file path (prefilled); enter accepts, escape cancels.

    An existing file is replaced only after a second Enter on the same path;
    ``create_parent`` (the default's own folder) is created when missing.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="path_cancel")]

    def __init__(self, title: str, default: Path, *, create_parent: Path | None = None) -> None:
        super().__init__(classes="picker-modal")
        self.title_text = title
        self.default = default
        self.create_parent = create_parent
        self._overwrite_confirmed: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Input(str(self.default), id="path", compact=True)
            yield Static("", id="form-error", classes="form-error", markup=False)
            yield Static("Enter saves · Esc cancels", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = self.query_one("#form-error", Static)
        text = event.value.strip()
        if not text:
            error.update("A file path is needed.")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            error.update(f"{path} is a directory; name a file.")
            return
        if not path.parent.exists():
            if self.create_parent is not None and path.parent == self.create_parent:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as problem:
                    error.update(f"Could not create {path.parent}: {problem}")
                    return
            else:
                error.update(f"The directory {path.parent} does not exist.")
                return
        if path.exists() and self._overwrite_confirmed != path:
            self._overwrite_confirmed = path
            error.update(f"{path.name} exists: Enter again replaces it, or change the name.")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
