"""The real engine publishing into the dispatcher: alerts reach a webhook; acknowledging sends nothing."""

from __future__ import annotations

import contextlib

from tmtool.alerts import AlertDispatcher, AlertsConfig
from tmtool.clock import SystemClock
from tmtool.domain.commands import Accepted, AcknowledgeAlerts
from tmtool.engine.engine import Engine
from tmtool.sim import Simulator

from tests.stack import API_KEY, FAST_SETTINGS, build_engine
from tests.util import wait_for


def test_engine_alerts_reach_the_webhook_and_acknowledgement_is_stored_not_resent(tmp_path, http_receiver):
    hook = http_receiver()
    clock = SystemClock()
    reports: list[tuple[str, str]] = []
    config = AlertsConfig.from_table({"webhook": {"url": f"{hook.base_url}/hook", "min_priority": "INFO"}}, environ={})
    dispatcher = AlertDispatcher(config, clock=clock, report_failure=lambda channel, message: reports.append((channel, message)))
    sim = Simulator(api_key=API_KEY, tick_interval=None, clock=clock)
    sim.start()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(sim.stop)
        store, broker, feed, _ = build_engine(sim, tmp_path / "tmtool.db", clock=clock)
        cleanup.callback(broker.close)
        cleanup.callback(store.close)
        engine = Engine(store=store, broker=broker, feed=feed, clock=clock, settings=FAST_SETTINGS, alert_sinks=(dispatcher,))
        dispatcher.start()
        cleanup.callback(dispatcher.stop, 5.0)
        store.start()
        engine.start()
        cleanup.callback(engine.stop, 5.0)

        started = wait_for(lambda: [r.json() for r in hook.received() if "tmtool started" in r.json()["text"]],
                           what="the engine's start-up alert at the webhook")[0]  # fmt: skip
        assert (started["category"], started["priority"]) == ("SYSTEM", "INFO")
        assert started["message"].startswith("tmtool INFO SYSTEM: tmtool started")

        result = engine.submit(AcknowledgeAlerts((started["id"],))).result(timeout=10)
        assert isinstance(result, Accepted)
        assert store.flush(timeout=5.0)
        [stored] = [a for a in store.alerts() if a.id == started["id"]]
        assert stored.acknowledged
    # The engine's stop raised a new alert (the acknowledged one no longer folds it), and the
    # dispatcher drained it at stop: it is queued behind anything the acknowledgement might have sent.
    received = [r.json() for r in hook.received()]
    assert "tmtool stopping" in received[-1]["text"] and received[-1]["id"] != started["id"]
    ids = [a["id"] for a in received]
    assert ids.count(started["id"]) == 1
    assert reports == []
