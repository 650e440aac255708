"""Tick sanity filter: bad numbers, out-of-band jumps, confirmation, counting."""

from __future__ import annotations

import pytest

from tmtool.domain.ticks import (
    NOT_A_NUMBER,
    NOT_FINITE,
    NOT_POSITIVE,
    OUT_OF_BAND,
    UNCONFIRMED,
    TickFilter,
)

KEY = ("NSE", "RELIANCE")


@pytest.mark.parametrize(
    "price, reason",
    [
        (0, NOT_POSITIVE),
        (-2500.0, NOT_POSITIVE),
        (float("nan"), NOT_FINITE),
        (float("inf"), NOT_FINITE),
        ("2500", NOT_A_NUMBER),
        (None, NOT_A_NUMBER),
        (True, NOT_A_NUMBER),
    ],
)
def test_bad_prices_are_refused_counted_and_change_nothing(price, reason):
    ticks = TickFilter()
    assert ticks.accept(KEY, 2500.0)
    assert not ticks.accept(KEY, price)
    assert ticks.refused[reason] == 1 and ticks.refused_total == 1 and ticks.last_reason == reason
    assert ticks.last_price(KEY) == 2500.0


def test_moves_inside_the_band_are_accepted():
    ticks = TickFilter(band_percent=10.0)
    for price in (2500.0, 2750.0, 2500.0, 2250.0):  # each exactly 10% or less from the last
        assert ticks.accept(KEY, price)
    assert ticks.refused_total == 0 and ticks.last_price(KEY) == 2250.0


def test_a_jump_is_held_until_confirmed_by_the_next_ticks():
    ticks = TickFilter(band_percent=10.0, confirm_ticks=2)
    assert ticks.accept(KEY, 2500.0)
    assert not ticks.accept(KEY, 2000.0)  # -20%: held
    assert ticks.last_reason == OUT_OF_BAND
    assert not ticks.accept(KEY, 2010.0)  # first confirmation
    assert ticks.last_reason == UNCONFIRMED
    assert ticks.last_price(KEY) == 2500.0
    assert ticks.accept(KEY, 1995.0)  # second confirmation: the new level is accepted
    assert ticks.last_price(KEY) == 1995.0
    assert ticks.refused == {NOT_A_NUMBER: 0, NOT_FINITE: 0, NOT_POSITIVE: 0, OUT_OF_BAND: 1, UNCONFIRMED: 1}


def test_a_lone_spike_is_dropped_and_the_old_level_continues():
    ticks = TickFilter(band_percent=10.0, confirm_ticks=2)
    ticks.accept(KEY, 2500.0)
    assert not ticks.accept(KEY, 25000.0)  # a fat-finger print
    assert ticks.accept(KEY, 2501.0)  # back to normal: the spike is forgotten
    assert not ticks.accept(KEY, 2000.0)  # a new jump starts its own count
    assert not ticks.accept(KEY, 2001.0)
    assert ticks.accept(KEY, 2002.0)


def test_a_second_different_jump_restarts_the_count():
    ticks = TickFilter(band_percent=10.0, confirm_ticks=2)
    ticks.accept(KEY, 2500.0)
    assert not ticks.accept(KEY, 2000.0)
    assert not ticks.accept(KEY, 3500.0)  # out of band of both: a new candidate
    assert ticks.last_reason == OUT_OF_BAND
    assert not ticks.accept(KEY, 3510.0)
    assert ticks.accept(KEY, 3490.0)


def test_zero_confirmations_accepts_jumps_at_once():
    ticks = TickFilter(band_percent=5.0, confirm_ticks=0)
    ticks.accept(KEY, 100.0)
    assert ticks.accept(KEY, 150.0) and ticks.last_price(KEY) == 150.0


def test_instruments_are_independent_and_seed_sets_a_reference():
    ticks = TickFilter()
    ticks.seed(KEY, 2500.0)
    assert not ticks.accept(KEY, 1.0)  # the first tick is judged against the seed
    assert ticks.accept(("NSE", "SBIN"), 800.0)  # another instrument's first tick: no reference
    ticks.seed(KEY, float("nan"))  # ignored
    assert ticks.last_price(KEY) == 2500.0
    ticks.forget(KEY)
    assert ticks.last_price(KEY) is None and ticks.accept(KEY, 1.0)


def test_the_same_input_gives_the_same_verdicts():
    prices = [100.0, 101.0, 130.0, 131.0, 129.0, 50.0, 128.0, float("nan"), 127.5]

    def verdicts():
        ticks = TickFilter(band_percent=10.0, confirm_ticks=2)
        return [ticks.accept(KEY, p) for p in prices], ticks.refused

    assert verdicts() == verdicts()
    assert verdicts()[0] == [True, True, False, False, True, False, True, False, True]


@pytest.mark.parametrize("kwargs", [{"band_percent": 0}, {"band_percent": float("nan")}, {"confirm_ticks": -1},
                                    {"confirm_ticks": 1.5}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        TickFilter(**kwargs)
