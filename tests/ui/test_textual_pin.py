"""The trades table overrides DataTable internals (``_data``, ``_update_count``, ``_render_cell``,
``_row_locations``, ...), which Textual may change in any release: the project pins one exact
Textual version, and this test fails the moment another one is installed or declared."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def declared_pin(requirement_lines: list[str]) -> str:
    [line] = [line for line in requirement_lines if line.split("==")[0].split(">")[0].split("<")[0].strip() == "textual"]
    name, separator, pinned = line.partition("==")
    assert separator, f"textual is not pinned exactly: {line!r}"
    return pinned.strip()


def test_pyproject_and_constraints_pin_the_same_exact_textual():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    constraints = [line.split("#")[0].strip() for line in (ROOT / "constraints.txt").read_text().splitlines()]
    assert declared_pin(dependencies) == declared_pin([line for line in constraints if line])


def test_the_installed_textual_is_the_pinned_one():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert version("textual") == declared_pin(dependencies), (
        "the trades table was written against the pinned Textual's DataTable internals; "
        "re-check tmtool/screens/widgets/trades_table.py before moving the pin"
    )
