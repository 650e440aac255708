"""docs/configuration.md names exactly the keys config.example.toml documents (its commented
examples switched on), so the reference and the example file cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_config import uncommented_example

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"


def key_name(path: str) -> str:
    """``engine.instruments."NSE:RELIANCE"`` -> ``engine.instruments.<EXCHANGE:SYMBOL>``."""
    return re.sub(r'"[^"]*:[^"]*"|\b[A-Z]+:[A-Z0-9_-]+\b', "<EXCHANGE:SYMBOL>", path.strip())


def _walk(value: object, prefix: str, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            name = key_name(f'"{key}"' if ":" in key else key)
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(item, dict) and not (prefix.endswith("freeze_quantities") or path.endswith("freeze_quantities")):
                _walk(item, path, found)
            elif isinstance(item, list) and item and all(isinstance(element, dict) for element in item):
                for element in item:
                    _walk(element, path, found)
            elif path not in found:
                found.append(path)


def example_keys() -> list[str]:
    found: list[str] = []
    _walk(uncommented_example(), "", found)
    return found


def documented_keys() -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", REFERENCE.read_text(encoding="utf-8"), flags=re.M))


def test_every_example_key_is_in_the_reference():
    missing = [key for key in example_keys() if key not in documented_keys()]
    assert missing == []


def test_the_reference_names_no_key_the_example_lacks():
    assert documented_keys() - set(example_keys()) == set()


def test_every_key_has_an_explanation():
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]*) \| ([^|]*) \|$", REFERENCE.read_text(encoding="utf-8"), flags=re.M)
    unexplained = [key for key, _, what in rows if not what.strip()]
    assert unexplained == []
