"""Ctrl+E in History: the CSV goes to the user's data folder (not the working directory), a second
export gets a new name, and an existing file is replaced only after a second Enter."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import static_text, until
from tmtool.screens import history
from tmtool.screens.history import HistoryScreen
from tmtool.screens.modals.pickers import PathModal

SIZE = (100, 30)


async def _export(pilot, app) -> PathModal:
    await pilot.press("ctrl+e")
    return await until(pilot, lambda: isinstance(app.screen, PathModal) and app.screen)


async def test_exports_go_to_the_data_folder_and_never_overwrite_unasked(tmp_path, monkeypatch):
    exports = tmp_path / "data" / "exports"
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(history, "default_export_dir", lambda: exports)
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        screen = await until(pilot, lambda: isinstance(app.screen, HistoryScreen) and app.screen.report and app.screen)
        modal = await _export(pilot, app)
        first = Path(modal.query_one("#path", Input).value)
        assert first.parent == exports
        await pilot.press("enter")
        await until(pilot, lambda: first.exists(), what="the first export")
        await until(pilot, lambda: app.screen is screen)

        modal = await _export(pilot, app)
        second = Path(modal.query_one("#path", Input).value)
        assert second != first and second.parent == exports  # a new name, not the last export
        modal.query_one("#path", Input).value = str(first)  # the user names the old file on purpose
        first.write_text("kept\n")
        await pilot.press("enter")
        await pilot.pause()
        assert "exists" in static_text(pilot, "#form-error")
        assert first.read_text() == "kept\n" and app.screen is modal
        await pilot.press("enter")  # the second Enter replaces it
        await until(pilot, lambda: first.read_text() != "kept\n", what="the replaced export")
    assert list(workdir.iterdir()) == []
