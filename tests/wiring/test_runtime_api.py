"""Monitoring does not wait for the control API: the runtime binds its listeners, starts the engine
and returns; the API's application is built and served on its own thread."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.util import wait_for
from tmtool.api import app as app_module  # the server thread imports build_app from here when it builds
from tmtool.config import parse_config
from tmtool.runtime import build_runtime


def test_monitoring_starts_without_waiting_for_the_control_api(tmp_path: Path, monkeypatch):
    release, built = threading.Event(), threading.Event()
    real_build = app_module.build_app

    def held_build(*args, **kwargs):
        release.wait(10)
        built.set()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(app_module, "build_app", held_build)
    config = parse_config({"database": {"path": str(tmp_path / "x.db"), "backup_dir": str(tmp_path / "b")}}, {}, None, tmp_path)
    socket_path = tmp_path / "engine.sock"
    runtime = build_runtime(config, db_path=tmp_path / "x.db", demo=True, engine_socket=socket_path)
    try:
        runtime.start()
        assert not built.is_set()  # start returned with the application still being built
        assert runtime.engine.running
        assert socket_path.exists()  # bound: an attaching client's connection waits in the backlog
        release.set()
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://tmtool", timeout=30.0) as client:
            health = wait_for(lambda: client.get("/api/v1/health"), 30, what="the control API's answer")
            assert health.status_code == 200, health.text
    finally:
        release.set()
        runtime.stop()
