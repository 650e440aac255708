"""The random simulation runs: the must-pass profiles over a few hundred seeds, reproducibility, the
replay command, and checks that each invariant does catch what it is meant to catch.

``make soak`` runs the same profiles over thousands of seeds (``python -m tests.simulation``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.simulation.harness import EXCHANGE, Simulation
from tests.simulation.profiles import CI_PROFILES, PROFILES
from tests.simulation.runner import run_batch, run_seed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS_PER_PROFILE = 75
STEPS = 400


@pytest.mark.parametrize("profile", CI_PROFILES)
def test_profile_holds_every_invariant(profile: str) -> None:
    batch = run_batch(profile, range(SEEDS_PER_PROFILE), STEPS)
    assert not batch.failures, f"{batch.summary()}\n{batch.failure_report()}"


def test_a_seed_replays_bit_for_bit() -> None:
    first = run_seed(11, "faults", 200)
    again = run_seed(11, "faults", 200)
    other = run_seed(12, "faults", 200)
    assert first.trace == again.trace
    assert first.trace_hash == again.trace_hash
    assert other.trace_hash != first.trace_hash


def test_the_replay_command_reproduces_the_run_in_a_new_process() -> None:
    """Another process (its own string-hash seed, fresh imports) walks the same trace."""
    expected = run_seed(5, "crash", 250)
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-m", "tests.simulation", "--seed", "5", "--steps", "250", "--profile", "crash"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"hash {expected.trace_hash[:16]}" in out.stdout


def test_a_failing_seed_prints_its_replay_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.simulation.__main__ import main
    from tmtool.engine.watch import Watch

    monkeypatch.setattr(Watch, "process_tick", lambda self, tick: None)  # an engine that ignores every price
    assert main(["--seed", "2", "--steps", "400", "--profile", "calm"]) == 1
    out = capsys.readouterr().out
    assert "[stop-acted]" in out
    assert "replay: python -m tests.simulation --seed 2 --steps 400 --profile calm -v" in out


# --------------------------------------------------------------------------- the invariants catch what they should


def test_a_stop_the_engine_ignores_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulation(1, PROFILES["calm"], symbols=1) as sim:
        future = sim.create("SIMA", 4)
        sim.drain(2.0)
        trade = sim.trade(future.result().trade_id)
        assert sim.engine is not None
        monkeypatch.setattr(sim.engine._watch, "process_tick", lambda tick: None)  # the loop hands ticks to the watch
        crossing = trade.stop_loss - 1.0 if trade.side.value == "LONG" else trade.stop_loss + 1.0
        sim.tick("SIMA", crossing)
        assert [v.invariant for v in sim.violations] == ["stop-acted"]


def test_a_trade_the_store_loses_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulation(1, PROFILES["calm"], symbols=1) as sim:
        future = sim.create("SIMA", 4)
        sim.drain(2.0)
        sim.commit()
        real_load = sim.store.load

        def load_without_trades():  # type: ignore[no-untyped-def]
            state = real_load()
            return type(state)(**{**{f: getattr(state, f) for f in state.__dataclass_fields__}, "open_trades": ()})

        monkeypatch.setattr(sim.store, "load", load_without_trades)
        sim.crash()
        assert "durable-survives" in {v.invariant for v in sim.violations}
        sim.settle(10.0)
        assert "no-trade-lost" in {v.invariant for v in sim.violations}
        assert future.result().trade_id is not None


def test_an_exit_sent_twice_is_reported() -> None:
    with Simulation(1, PROFILES["calm"], symbols=1) as sim:
        future = sim.create("SIMA", 4)
        sim.drain(2.0)
        trade = sim.trade(future.result().trade_id)
        for _ in range(2):  # what a double exit looks like at the broker
            sim.broker.tag = (trade.id, "EXIT")
            sim.broker.place_order(strategy=trade.strategy, symbol="SIMA", exchange=EXCHANGE,
                                   action=trade.side.exit_action, quantity=4, product="MIS")
        sim.advance(0.1)
        assert {v.invariant for v in sim.violations} == {"one-exit", "reduce-only"}
