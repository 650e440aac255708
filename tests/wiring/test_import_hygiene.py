"""The engine, storage and headless paths must never load Textual."""

from __future__ import annotations

import subprocess
import sys

HEADLESS_MODULES = [
    "tmtool.cli",
    "tmtool.config",
    "tmtool.runtime",
    "tmtool.engine.engine",
    "tmtool.domain.rules",
    "tmtool.openalgo.client",
    "tmtool.openalgo.feed",
    "tmtool.storage",
    "tmtool.sim",
    "tmtool.api",
    "tmtool.alerts",
]


def test_headless_modules_do_not_import_textual():
    code = (
        "import importlib, sys\n"
        f"for name in {HEADLESS_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.') or m.startswith('tmtool.screens'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"headless import pulled in: {out.stdout.strip()}"


def _loaded_by_a_runtime(folder, build_options: str, then: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after building a demo runtime in ``folder``
    (``build_runtime``'s extra keyword arguments as source) and running the lines ``then``."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tmtool.config import parse_config\n"
        "from tmtool.runtime import build_runtime\n"
        f"folder = Path({str(folder)!r})\n"
        "config = parse_config({'database': {'path': str(folder / 'x.db'), 'backup_dir': str(folder / 'b')}}, {}, None, folder)\n"
        f"runtime = build_runtime(config, db_path=folder / 'x.db', demo=True{build_options})\n"
        f"{then}"
        f"print('loaded:' + ','.join(sorted(m for m in {modules!r} if m in sys.modules)))\n"
        "runtime.stop()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    (line,) = [line for line in out.stdout.splitlines() if line.startswith("loaded:")]
    return [name for name in line.removeprefix("loaded:").split(",") if name]


def test_a_runtime_without_the_control_api_does_not_load_it(tmp_path):
    """FastAPI and the pydantic models behind it took 0.3 s of every start-up (and ~1.5 s more to
    build the app): a runtime that serves no API must not load them."""
    loaded = _loaded_by_a_runtime(tmp_path, "", "runtime.start()\n", ("fastapi", "uvicorn", "tmtool.api.server"))
    assert loaded == [], f"a runtime without the API loaded: {loaded}"


def test_building_a_runtime_that_serves_the_api_and_records_loads_neither_fastapi_nor_pyarrow(tmp_path):
    """Start-up binds the control API's socket and prepares tick recording; FastAPI and uvicorn load
    on the API's own thread once monitoring runs, pyarrow and numpy only in the recording process
    (0.3 s and 0.15 s of imports, and about 40 MB each, that used to come before monitoring)."""
    loaded = _loaded_by_a_runtime(tmp_path, ", engine_socket=folder / 'engine.sock'",
                                  "assert runtime.api is not None and runtime.recorder is not None\n",
                                  ("fastapi", "uvicorn", "pyarrow", "numpy"))
    assert loaded == [], f"building the runtime loaded: {loaded}"
