"""The paired-rounds statistics the masking benchmark judges by (bench/paired.py): the
order cancels a drift, and the interval says when a run cannot tell two modes apart."""

from __future__ import annotations

import random

import pytest

from bench.paired import abba, differences, paired, ratios


def test_abba_balances_first_and_second_and_cancels_a_linear_drift():
    orders = abba(8)
    assert sum(o == ("a", "b") for o in orders) == 4
    rounds = [mode for order in orders for mode in order]
    # Under a drift proportional to the round's position, both modes sum the same positions.
    assert sum(i for i, m in enumerate(rounds) if m == "a") == \
        sum(i for i, m in enumerate(rounds) if m == "b")


def test_a_drift_the_pairs_share_does_not_show_in_their_ratios():
    rng = random.Random(1)
    a, b = [], []
    for i, order in enumerate(abba(24)):
        for pos, mode in enumerate(order):
            speed = 500 + 20 * (2 * i + pos)  # the machine speeds up by half over the run
            cost = 1.0 if mode == "a" else 1.03  # b is 3% slower
            (a if mode == "a" else b).append(speed / cost * (1 + rng.gauss(0, 0.01)))
    p = paired(ratios(b, a))
    assert p.median == pytest.approx(1 / 1.03, abs=0.01)
    assert p.low < p.median < p.high and p.holds(1 / 1.03)
    assert not p.holds(0.95) and not p.holds(1.0)


def test_noise_larger_than_the_difference_gives_an_interval_that_holds_both():
    rng = random.Random(2)
    a = [500 * (1 + rng.gauss(0, 0.12)) for _ in range(6)]
    b = [500 * 0.98 * (1 + rng.gauss(0, 0.12)) for _ in range(6)]
    p = paired(ratios(b, a))
    assert p.holds(1.0) and p.holds(0.95)  # six noisy pairs decide nothing about 5%


def test_differences_and_a_stable_report():
    d = differences([10.0, 12.0, 11.0], [4.0, 5.0, 7.0])
    assert d == [6.0, 7.0, 4.0]
    assert paired(d) == paired(d)  # fixed seed: the same run reports the same interval
    assert paired([3.0]).median == 3.0
    with pytest.raises(ValueError):
        paired([])
