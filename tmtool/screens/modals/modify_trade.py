"""Modify the levels of one trade (the id captured when the key was pressed).

Fields start with the trade's current settings; the trade's partial targets
(done and pending) and its breakeven state are shown above them.  A field left
as it was is not sent (UNSET); a field emptied clears that level (None), with a
warning; every field is checked against the last price as it is typed.  Each
field's hint sits beside it (never as a grey placeholder that could pass for a
value).  Removing a live stop asks for confirmation first.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from tmtool.domain import validation
from tmtool.domain.commands import UNSET, ModifyTrade
from tmtool.domain.models import Side, TrailingSettings
from tmtool.engine.snapshot import TradeView
from tmtool.screens.formatting import format_price
from tmtool.screens.modals.confirm import ConfirmModal
from tmtool.screens.modals.form import FormModal
from tmtool.screens.forms import (
    FieldError,
    distance_text,
    optional_distance,
    optional_price,
    partial_targets,
)

CLEAR_WORD = "none"
FIELD_HINTS = {
    "stop": "price; empty removes it",
    "target": "price; empty removes it",
    "trail": "20 or 1.5%; empty: off",
    "activation": "trail after a move of, e.g. 10",
    "breakeven": "profit, e.g. 10 or 1%; empty: off",
    "partials": "new levels 20:0.5, 40:0.25; none: remove",
}


@dataclass(frozen=True, slots=True)
class _Parsed:
    command: ModifyTrade
    errors: dict[str, str]
    warnings: dict[str, str]


def _price_text(value: float | None, tick_size: float) -> str:
    return "" if value is None else format_price(value, tick_size).replace(",", "")


class ModifyTradeModal(FormModal[ModifyTrade | None]):
    """Edit stop / target / trailing / breakeven / partial targets of trade ``view.id``."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="modify_cancel"),
        Binding("ctrl+s", "submit", "Save", id="modify_submit", priority=True),
    ]
    FIELDS = ("stop", "target", "trail", "activation", "breakeven", "partials")

    def __init__(self, view: TradeView) -> None:
        super().__init__(classes="form-modal")
        self.view = view
        trailing = view.trailing
        self.initial = {
            "stop": _price_text(view.stop_loss, view.tick_size),
            "target": _price_text(view.target, view.tick_size),
            "trail": distance_text(trailing.distance) if trailing else "",
            "activation": distance_text(trailing.activation) if trailing else "",
            "breakeven": distance_text(view.breakeven_after),
            "partials": "",
        }

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(classes="dialog"):
            yield Static(f"Modify trade #{view.id}", classes="dialog-title", id="modify-title", markup=False)
            yield Static(
                f"{view.side.value} {view.quantity} {view.exchange}:{view.symbol} [{view.strategy}]  "
                f"entry {format_price(view.entry_price, view.tick_size)}  LTP {format_price(view.ltp, view.tick_size)}  "
                f"trail now {format_price(view.trailing_stop, view.tick_size)}",
                id="modify-trade",
                markup=False,
            )
            yield Static(self.levels_now(), id="modify-levels", markup=False)
            with Grid(classes="modify-grid"):
                for field_id, label in (
                    ("stop", "Stop"),
                    ("target", "Target"),
                    ("trail", "Trailing"),
                    ("activation", "Trail after"),
                    ("breakeven", "Breakeven"),
                    ("partials", "Partials"),
                ):
                    yield Label(label)
                    yield Input(self.initial[field_id], id=field_id, compact=True)
                    yield Static(FIELD_HINTS[field_id], id=f"{field_id}-message", classes="field-message", markup=False)
            yield Static("", id="form-error", classes="form-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (esc)", id="cancel", compact=True)
                yield Button("Save (ctrl+s)", id="save", variant="success", compact=True)

    def levels_now(self) -> str:
        """The trade's partial targets and breakeven as they stand."""
        view = self.view
        if view.partial_levels:
            partials = ", ".join(
                f"{format_price(level.price, view.tick_size)}×{level.quantity} {'done' if level.done else 'pending'}"
                for level in view.partial_levels
            )
        else:
            partials = "none"
        if view.breakeven_after is None:
            breakeven = "off"
        elif view.breakeven_done:
            breakeven = f"{distance_text(view.breakeven_after)}, done (stop at entry)"
        else:
            breakeven = f"{distance_text(view.breakeven_after)}, armed"
        return f"partials now: {partials} · breakeven: {breakeven}"

    def on_mount(self) -> None:
        self.query_one("#stop", Input).focus()

    def on_input_changed(self, _event: Input.Changed) -> None:
        self._show(self._parse())

    def action_submit(self) -> None:
        parsed = self._parse()
        self._show(parsed)
        if parsed.errors:
            self.query_one("#form-error", Static).update("Fix the fields marked above; nothing was sent.")
            return
        if parsed.command == ModifyTrade(self.view.id):
            self.query_one("#form-error", Static).update("Nothing changed.")
            return
        if parsed.command.stop_loss is None and self.view.stop_loss is not None:
            self._confirm_stop_removal(parsed.command)
            return
        self.dismiss(parsed.command)

    @work(exclusive=True, group="modify_confirm")
    async def _confirm_stop_removal(self, command: ModifyTrade) -> None:
        view = self.view
        remaining = format_price(view.trailing_stop, view.tick_size) if view.trailing_stop is not None else "none"
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"Remove the stop of trade #{view.id}?",
                [
                    f"{view.side.value} {view.quantity} {view.symbol}: stop {format_price(view.stop_loss, view.tick_size)} goes.",
                    f"Trailing stop left: {remaining}. Without a stop the loss is bounded only by the portfolio limits.",
                ],
                confirm_label="Remove stop",
            )
        )
        if confirmed:
            self.dismiss(command)
        else:
            self.query_one("#form-error", Static).update("The stop stays; nothing was sent.")

    # ------------------------------------------------------------------ parsing

    def _text(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value

    def _best_price(self) -> float:
        """The price a trailing distance is measured from: the best price seen (the entry before any)."""
        view = self.view
        best = view.high_watermark if view.side is Side.LONG else view.low_watermark
        return best if best > 0 else view.entry_price

    def _changed(self, field_id: str) -> bool:
        return self._text(field_id).strip() != self.initial[field_id].strip()

    def _parse(self) -> _Parsed:
        """Each field on its own, checked by the engine's own validation against the last price."""
        view = self.view
        errors: dict[str, str] = {}
        warnings: dict[str, str] = {}
        current = view.ltp if view.ltp > 0 else None
        values: dict[str, object] = {}
        for field_id in ("stop", "target"):
            if not self._changed(field_id):
                continue
            try:
                value = optional_price(self._text(field_id), field_id)
            except FieldError as error:
                errors[field_id] = str(error)
                continue
            if value is None:
                warnings[field_id] = f"the {field_id} will be removed"
            elif field_id == "stop":
                denial = validation.validate_stop(
                    view.side, value, view.entry_price, current, allow_profit_lock=current is not None
                )
                if denial is not None:
                    errors[field_id] = denial.message
            else:
                denial = validation.validate_target(view.side, value, view.entry_price, current)
                if denial is not None:
                    errors[field_id] = denial.message
            if field_id not in errors:
                values[field_id] = value

        trailing: object = UNSET
        if self._changed("trail") or self._changed("activation"):
            try:
                distance = optional_distance(self._text("trail"), "trailing distance")
                activation = optional_distance(self._text("activation"), "trail activation")
            except FieldError as error:
                errors["trail"] = str(error)
            else:
                if distance is None and activation is not None:
                    errors["activation"] = "an activation needs a trailing distance"
                elif distance is None:
                    trailing = None
                    warnings["trail"] = "trailing switches off (the current trailing stop stays)"
                else:
                    trailing = TrailingSettings(distance=distance, activation=activation)
                    denial = validation.validate_trailing(trailing)
                    if denial is not None:
                        errors["trail"] = denial.message
                    elif view.trailing is not None and distance.points(self._best_price()) > view.trailing.distance.points(
                        self._best_price()
                    ):
                        warnings["trail"] = "a wider distance never loosens the current trailing stop"

        breakeven: object = UNSET
        if self._changed("breakeven"):
            try:
                breakeven = optional_distance(self._text("breakeven"), "breakeven")
            except FieldError as error:
                errors["breakeven"] = str(error)
            else:
                if breakeven is None:
                    warnings["breakeven"] = "breakeven switches off (the stop stays where it is)"
                elif view.breakeven_done:
                    warnings["breakeven"] = "arms breakeven again: the stop moves to the entry once this far in profit"

        partials: object = UNSET
        partial_text = self._text("partials").strip()
        if partial_text.lower() == CLEAR_WORD:
            partials = ()
            warnings["partials"] = "pending partial targets will be removed"
        elif partial_text:
            try:
                partials = partial_targets(partial_text)
            except FieldError as error:
                errors["partials"] = str(error)

        command = ModifyTrade(
            trade_id=view.id,
            stop_loss=values.get("stop", UNSET),
            target=values.get("target", UNSET),
            trailing=trailing if "trail" not in errors else UNSET,
            partial_targets=partials,
            breakeven_after=breakeven if "breakeven" not in errors else UNSET,
        )
        return _Parsed(command, errors, warnings)

    def _show(self, parsed: _Parsed) -> None:
        for field_id in self.FIELDS:
            message = self.query_one(f"#{field_id}-message", Static)
            if field_id in parsed.errors:
                message.update(parsed.errors[field_id])
                message.set_class(True, "-error")
                message.set_class(False, "-warning")
            else:
                message.update(parsed.warnings.get(field_id, FIELD_HINTS[field_id]))
                message.set_class(False, "-error")
                message.set_class(field_id in parsed.warnings, "-warning")
        self.query_one("#form-error", Static).update("")
