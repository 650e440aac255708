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
