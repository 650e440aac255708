"""Running many seeds: one run per seed, a summary with seeds/s and steps/s, replay commands for failures."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.simulation.harness import RunResult, Simulation
from tests.simulation.profiles import PROFILES


def run_seed(seed: int, profile: str, steps: int) -> RunResult:
    with Simulation(seed, PROFILES[profile]) as sim:
        return sim.run_random(steps)


@dataclass
class Batch:
    profile: str
    steps: int
    seeds: int = 0
    total_steps: int = 0  # every step run, the settling ones included
    seconds: float = 0.0
    failures: list[RunResult] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)  # summed over the runs: trades, orders, ticks, jobs, crashes

    def summary(self) -> str:
        rate = self.seeds / self.seconds if self.seconds else 0.0
        step_rate = self.total_steps / self.seconds if self.seconds else 0.0
        return (f"{self.profile}: {self.seeds} seeds x {self.steps} steps in {self.seconds:.1f} s "
                f"({rate:.1f} seeds/s, {step_rate:.0f} steps/s incl. settling); {len(self.failures)} failing\n  "
                + ", ".join(f"{v} {k}" for k, v in sorted(self.stats.items())))

    def failure_report(self) -> str:
        lines = []
        for result in self.failures:
            lines.append(f"seed {result.seed}: {result.violations[0]}")
            lines.append(f"    replay: {result.replay_command()}")
        return "\n".join(lines)


def run_batch(profile: str, seeds: range | list[int], steps: int) -> Batch:
    batch = Batch(profile, steps)
    started = time.perf_counter()
    for seed in seeds:
        result = run_seed(seed, profile, steps)
        batch.seeds += 1
        batch.total_steps += result.steps_run
        for key, value in result.stats.items():
            batch.stats[key] = batch.stats.get(key, 0) + value
        if not result.ok:
            batch.failures.append(result)
    batch.seconds = time.perf_counter() - started
    return batch
