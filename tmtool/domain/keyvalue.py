"""``key=value`` log lines: one value quoted only when it must be, and a line from named fields.

Headless logs are read by people and by grep/awk alike: every field is
``key=value``, a value with a space, quote or ``=`` is double-quoted with
backslash escapes, and a missing value (None) leaves its key out.
"""

from __future__ import annotations

_NEEDS_QUOTES = frozenset(' "\'=\n\t\\')


def log_value(value: object) -> str:
    """One value of a ``key=value`` line: bare when it has no space or quote, else double-quoted."""
    text = str(value)
    if text and not any(character in _NEEDS_QUOTES for character in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def key_values(**fields: object) -> str:
    """``event=alert trade=12 text="..."`` from keyword fields in order; None values are left out."""
    return " ".join(f"{key}={log_value(value)}" for key, value in fields.items() if value is not None)
