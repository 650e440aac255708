"""The attached desk's EngineHandle against an in-process engine and API server on a Unix socket."""

from __future__ import annotations

import tempfile
from dataclasses import replace
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.stack import running_stack
from tests.util import wait_for
from tmtool.api import ApiServer
from tmtool.api.bodies import CreateTradeBody, UpdateTradeBody
from tmtool.api.client import RemoteEngine, command_as_verb
from tmtool.domain.commands import (
    Accepted,
    CreateTrade,
    Denied,
    ExitAll,
    ExitTrades,
    ModifyTrade,
    DeleteStrategy,
    Rearm,
    SaveStrategy,
)
from tmtool.domain.models import (
    Amount,
    Distance,
    DistanceMode,
    PartialTarget,
    PortfolioRisk,
    Side,
    Strategy,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
)

STRATEGIES = (Strategy("api", trade_risk=TradeRisk(stop_loss=Distance(10), target=Distance(20))),)


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[object, ApiServer, RemoteEngine]]:
    with running_stack(tmp_path, strategies=STRATEGIES) as stack, tempfile.TemporaryDirectory(prefix="tmt", dir="/tmp") as folder:
        server = ApiServer(stack.engine, port=None, unix_path=Path(folder) / "engine.sock")
        server.start()
        remote = RemoteEngine(server.unix_path)
        remote.connect()
        try:
            yield stack, server, remote
        finally:
            remote.close()
            server.stop()


def test_commands_become_bodies_the_api_accepts():
    trailing = TrailingSettings(Distance(1.5, DistanceMode.PERCENT), activation=Distance(0.5, DistanceMode.PERCENT))
    create = CreateTrade(
        "api", "SBIN", "NSE", Side.SHORT, quantity=3, stop_loss=810.0, trailing=trailing,
        partial_targets=(PartialTarget(Distance(5), 0.5),), breakeven_after=None, note="from the desk",
    )
    verb, body = command_as_verb(create)
    assert verb == "createtrade"
    accepted = CreateTradeBody.model_validate(body)
    assert (accepted.action, accepted.quantity, accepted.breakeven_after) == ("SELL", 3, None)
    assert "breakeven_after" in accepted.model_fields_set
    verb, body = command_as_verb(ModifyTrade(7, stop_loss=None, trailing=None))
    assert verb == "updatetrade" and body == {"trade_id": 7, "stop_loss": None, "trailing": None}
    UpdateTradeBody.model_validate(body)
    assert command_as_verb(ExitAll(panic=True)) == ("exitall", {"panic": True})  # the desk's kill switch
    assert command_as_verb(ExitAll(strategy="api")) == ("exitall", {"strategy": "api"})
    assert command_as_verb(Rearm()) == ("rearm", {})


def test_the_remote_engine_reads_and_commands_like_the_real_one(served):
    stack, _server, remote = served
    stack.sim.set_price("NSE", "SBIN", 800.0)
    result = remote.submit(CreateTrade("api", "SBIN", "NSE", Side.LONG, quantity=2)).result(15)
    assert isinstance(result, Accepted) and result.trade_id is not None
    stack.wait_status(result.trade_id, TradeStatus.ACTIVE)
    def streamed_active():
        view = remote.snapshot().trade(result.trade_id)
        return view if view is not None and view.status is TradeStatus.ACTIVE else None

    view = wait_for(streamed_active, what="the active trade in the streamed snapshot")
    assert (view.quantity, view.stop_loss) == (2, 790.0)
    assert remote.instrument("NSE", "SBIN") == stack.engine.instrument("NSE", "SBIN")
    exits = remote.submit(ExitTrades((result.trade_id, 999_999))).result(15)
    assert isinstance(exits, Accepted) and exits.trade_ids == (result.trade_id,)
    stack.wait_status(result.trade_id, TradeStatus.CLOSED)
    assert stack.store.flush()  # history and the audit log are read from the database: the exit committed first
    assert [t.id for t in remote.closed_trades()] == [t.id for t in stack.engine.closed_trades()]
    assert remote.trade_events(result.trade_id) == stack.engine.trade_events(result.trade_id)


def test_the_attached_desk_saves_and_deletes_strategies(served):
    stack, _server, remote = served
    careful = Strategy(
        "careful",
        trade_risk=TradeRisk(stop_loss=Distance(1.0, DistanceMode.PERCENT), trailing=TrailingSettings(Distance(4), activation=Distance(5))),
        portfolio=PortfolioRisk(daily_loss_limit=Amount(3000)),
        max_open_positions=2,
    )
    saved = remote.submit(SaveStrategy(careful)).result(15)
    assert isinstance(saved, Accepted), saved
    view = wait_for(lambda: next((s for s in remote.snapshot().strategies if s.name == "careful"), None), what="the strategy streamed")
    assert view.strategy == careful == next(s for s in stack.engine.snapshot().strategies if s.name == "careful").strategy

    wrong = remote.submit(SaveStrategy(replace(careful, max_open_positions=0))).result(15)
    assert isinstance(wrong, Denied) and wrong.code == "INVALID_STRATEGY" and "max_open_positions" in wrong.message
    assert next(s for s in stack.engine.snapshot().strategies if s.name == "careful").strategy == careful  # untouched

    stack.sim.set_price("NSE", "SBIN", 800.0)
    trade_id = remote.submit(CreateTrade("careful", "SBIN", "NSE", Side.LONG, quantity=1)).result(15).trade_id
    stack.wait_status(trade_id, TradeStatus.ACTIVE)
    kept = remote.submit(DeleteStrategy("careful")).result(15)
    assert isinstance(kept, Denied) and kept.code == "HAS_OPEN_TRADES"
    moved = remote.submit(DeleteStrategy("careful", open_trades="move", move_to="api")).result(15)
    assert isinstance(moved, Accepted), moved
    assert stack.wait_trade(trade_id, lambda t: t.strategy == "api").status is TradeStatus.ACTIVE
    wait_for(lambda: "careful" not in {s.name for s in remote.snapshot().strategies}, what="the deletion streamed")


def test_a_lost_engine_shows_as_not_running(served):
    stack, server, remote = served
    assert remote.snapshot().system.engine_running
    server.stop()
    wait_for(lambda: not remote.snapshot().system.engine_running, what="the lost engine shown as stopped")
    assert stack.engine.running  # only the API went away


def test_the_stream_outlives_the_request_head_deadline(tmp_path, caplog):
    with running_stack(tmp_path, strategies=STRATEGIES) as stack, tempfile.TemporaryDirectory(prefix="tmt", dir="/tmp") as folder:
        server = ApiServer(stack.engine, port=None, unix_path=Path(folder) / "engine.sock", request_timeout=0.2)
        server.start()
        remote = RemoteEngine(server.unix_path)
        try:
            remote.connect()
            stack.sim.set_price("NSE", "SBIN", 800.0)
            trade_id = stack.create(CreateTrade("api", "SBIN", "NSE", Side.LONG, quantity=1))
            stack.wait_status(trade_id, TradeStatus.ACTIVE)
            started = time.monotonic()
            wait_for(lambda: time.monotonic() - started > 5 * 0.2, what="well past the head deadline")  # the timeout under test
            stack.tick("SBIN", 803.5)
            wait_for(lambda: remote.snapshot().trade(trade_id).ltp == 803.5, what="the new price streamed")
            assert remote.connected.is_set()
            assert not [r for r in caplog.records if "stream_lost" in r.getMessage()]
        finally:
            remote.close()
            server.stop()
