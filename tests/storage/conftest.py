from __future__ import annotations

from pathlib import Path

import pytest

from tmtool.clock import ManualClock
from tmtool.storage import SqliteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tmtool.db"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_store(db_path: Path, clock: ManualClock):
    """Build started stores on ``db_path`` (or another path); every one is closed at the end."""
    stores: list[SqliteStore] = []

    def build(path: Path | None = None, **options: object) -> SqliteStore:
        options.setdefault("clock", clock)
        store = SqliteStore(path or db_path, **options)
        store.start()
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()
