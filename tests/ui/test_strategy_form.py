"""The strategy form's preview is never computed from input that fails validation."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import static_text, until
from tests.ui.test_small_terminal import strategy_form

SIZE = (120, 40)


@pytest.mark.parametrize(
    ("field", "good", "bad", "message"),
    [
        ("stop", "5%", "5%0.4%", "trade stop: '5%0.4' is not a number"),
        ("max_open", "2", "2.5", "max open: must be a whole number"),
    ],
)
async def test_invalid_input_shows_no_preview(field, good, bad, message):
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=SIZE) as pilot:
        await strategy_form(pilot)
        form = app.screen
        form.query_one(f"#{field}", Input).value = good
        await until(pilot, lambda: "LONG at" in static_text(pilot, "#preview"), what="a preview")
        form.query_one(f"#{field}", Input).value = bad
        await pilot.pause()
        assert message in static_text(pilot, "#form-error")
        assert "LONG at" not in static_text(pilot, "#preview")
        assert "stop" not in static_text(pilot, "#preview")
