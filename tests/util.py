"""Test helpers shared by every test module."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.005, what: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds.

    This is a wait on a condition with a deadline, not a sleep standing in for one.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)  # ok: polling interval inside a deadline-bounded wait
