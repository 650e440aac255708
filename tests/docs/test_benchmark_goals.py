"""How `make bench` judges its figures: the goals' texts and tests, and the median over repeated runs."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import (
    ENGINE_GOALS,
    LATENCY_GOALS,
    RUNS,
    Goal,
    aggregate,
    figure,
    markdown,
    median_of_runs,
    repeat,
)


def test_a_minimum_is_met_at_the_limit_and_above():
    goal = Goal.minimum(400_000, "ticks/s")
    assert goal.text == "≥ 400,000 ticks/s"
    assert goal.met(400_000) and goal.met(400_001)
    assert not goal.met(399_999)


def test_a_ceiling_is_met_only_strictly_below_it():
    goal = Goal.below(5.0, "ms")
    assert goal.text == "< 5 ms"
    assert goal.met(4.999)
    assert not goal.met(5.0) and not goal.met(8.5)


def test_a_missing_value_never_meets_a_goal():
    assert not Goal.below(5.0, "ms").met(None)
    assert not Goal.minimum(1.0).met(None)


def test_a_figure_with_a_goal_shows_target_and_status_and_one_without_shows_neither():
    judged = figure("engine", "engine throughput, 10,000 trades", 93_631, "ticks/s", ENGINE_GOALS[10_000], "s", "c")
    assert (judged.target, judged.met, judged.status) == ("≥ 100,000 ticks/s", False, "MISSED")
    shown = figure("engine", "engine throughput, 10 trades", 1_800_000, "ticks/s", None, "s", "c")
    assert (shown.target, shown.met, shown.status) == ("", None, "—")


def test_every_size_and_latency_case_the_brief_names_has_a_goal():
    assert ENGINE_GOALS[1_000].text == "≥ 400,000 ticks/s" and ENGINE_GOALS[10_000].text == "≥ 100,000 ticks/s"
    assert {kind: goal.text for kind, goal in LATENCY_GOALS.items()} == {
        "headless": "< 5 ms", "tui": "< 20 ms", "attached": "< 20 ms"}


def test_the_median_of_the_runs_p99s_ignores_one_noisy_run():
    runs = [{"p99_ms": 4.1}, {"p99_ms": 48.0}, {"p99_ms": 4.6}]
    assert median_of_runs(runs, "p99_ms") == 4.6
    assert LATENCY_GOALS["headless"].met(median_of_runs(runs, "p99_ms"))
    assert median_of_runs([{"p99_ms": 9.0}, {"p99_ms": 4.0}, {"p99_ms": 9.5}], "p99_ms") == 9.0


def test_aggregate_keeps_each_runs_values_beside_the_medians():
    runs = [{"p99_ms": 3.0, "max_ms": 9.0, "samples": 100}, {"p99_ms": 1.0, "max_ms": 2.0, "samples": 100},
            {"p99_ms": 2.0, "max_ms": 4.0, "samples": 100}]
    result = aggregate(runs, ("p99_ms", "max_ms"))
    assert result["p99_ms"] == 2.0 and result["max_ms"] == 4.0
    assert result["runs"] == [{"p99_ms": 3.0, "max_ms": 9.0}, {"p99_ms": 1.0, "max_ms": 2.0},
                              {"p99_ms": 2.0, "max_ms": 4.0}]


def test_no_runs_has_no_median():
    with pytest.raises(ValueError):
        median_of_runs([], "p99_ms")


def test_repeat_measures_independently_the_number_of_times_asked():
    calls = iter(range(10))
    assert repeat(lambda: {"n": next(calls)}) == [{"n": 0}, {"n": 1}, {"n": 2}][:RUNS]


def test_the_page_says_figures_are_medians_of_runs_and_lists_what_was_missed():
    figures = [figure("latency", "tick→exit order, headless, sim separate: p99", 8.5, "ms", LATENCY_GOALS["headless"],
                      "100 stop crossings per run", "python -m benchmarks.bench_latency")]
    info = {"cpu": "cpu", "cores": 2, "memory_gb": 1.0, "os": "os", "python": "3.11", "sqlite": "3", "textual": "8"}
    page = markdown(figures, info, "2026-12-07T10:00:00+00:00", 300.0)
    assert "| tick→exit order, headless, sim separate: p99 | 8.5 ms | < 5 ms | MISSED | [1] |" in page
    assert f"median of {RUNS} runs" in page
    assert "Missed in this run: tick→exit order, headless, sim separate: p99." in page
