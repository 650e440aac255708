"""`make screenshots` writes the README's pictures from the app itself."""

from __future__ import annotations

from pathlib import Path

from tests.ui.screenshots import SHOTS, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_screenshots_are_exported_by_the_app(tmp_path):
    assert main([str(tmp_path)]) == 0
    for name in SHOTS:
        svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.startswith("<svg")
    assert "PANIC" in (tmp_path / "panic.svg").read_text(encoding="utf-8")


def test_the_readme_shows_them_and_make_regenerates_them():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in SHOTS:
        assert f"docs/screenshots/{name}.svg" in readme
        assert (ROOT / "docs" / "screenshots" / f"{name}.svg").is_file()
    assert "screenshots:" in (ROOT / "Makefile").read_text(encoding="utf-8")
