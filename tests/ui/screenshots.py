"""`make screenshots`: the app exports its own SVG screenshots for the README and the docs.

The app runs over the seeded engine double with the fixed clock (as in the snapshot
tests), so the pictures are reproducible and show every part filled in:

    python -m tests.ui.screenshots docs/screenshots
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from textual.widgets import Input

from tests.ui.fixtures import EngineDouble, snapshot_app
from tests.ui.helpers import until
from tests.ui.test_snapshots import settle
from tmtool.screens.modals.confirm import PanicModal
from tmtool.screens.strategies import StrategiesScreen, StrategyFormModal

SIZE = (100, 30)


async def _dashboard(pilot) -> None:
    await settle(pilot)


async def _panic(pilot) -> None:
    await settle(pilot)
    await pilot.press("f9")
    await until(pilot, lambda: isinstance(pilot.app.screen, PanicModal))
    await settle(pilot)


async def _strategy_editor(pilot) -> None:
    await pilot.press("t")
    await until(pilot, lambda: isinstance(pilot.app.screen, StrategiesScreen) and pilot.app.screen.views)
    await pilot.press("e")
    form = await until(pilot, lambda: isinstance(pilot.app.screen, StrategyFormModal) and pilot.app.screen)
    form.query_one("#daily_loss", Input).value = "800"
    await settle(pilot)


SHOTS = {
    "dashboard": _dashboard,
    "panic": _panic,
    "strategy-editor": _strategy_editor,
}


async def take(name: str, folder: Path) -> Path:
    app = snapshot_app(EngineDouble())
    async with app.run_test(size=SIZE) as pilot:
        await SHOTS[name](pilot)
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(folder)))


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        print(asyncio.run(take(name, folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
