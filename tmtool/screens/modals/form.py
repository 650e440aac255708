"""The keyboard plumbing every form dialog shares.

Enter in a field moves to the next one; the submit button (or the dialog's own
submit key) calls ``action_submit``; Esc or any other button cancels.
"""

from __future__ import annotations

from typing import TypeVar

from textual.screen import ModalScreen
from textual.widgets import Button, Input

ResultT = TypeVar("ResultT")


class FormModal(ModalScreen[ResultT]):
    SUBMIT_BUTTON = "save"  # id of the button that submits

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == self.SUBMIT_BUTTON:
            self.action_submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        raise NotImplementedError
