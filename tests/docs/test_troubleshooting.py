"""Every message the troubleshooting page is keyed by is one the program really prints."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_heading_quotes_a_message_in_the_source():
    page = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### `([^`]+)`", page, flags=re.M)
    assert len(headings) >= 10
    source = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tmtool").rglob("*.py"))
    missing = [message for message in headings if message not in source]
    assert missing == []
