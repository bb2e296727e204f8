"""Paired rounds: judging a small difference between two modes on a noisy machine.

A benchmark that compares mode A with mode B (masking on beside off, say) runs them in
pairs of back-to-back rounds, in ABBA order (A then B, B then A, ...): a drift of the
machine's speed over the run (another job starting, a table growing, autovacuum) moves
both rounds of a pair alike and cancels in their ratio, and which mode goes second
alternates. The figure is the median of the pairs' ratios, robust to a pair that a burst
of load hit; its spread is a bootstrap interval (pairs resampled with replacement), so a
reader sees whether the run can tell 5% from 0% at all.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass


def abba(pairs: int) -> list[tuple[str, str]]:
    """The order of the two modes ``"a"`` and ``"b"`` in each of ``pairs`` pairs: a b, b a,
    b a, a b, then again (each mode goes first as often; a linear drift of the machine
    cancels over every two pairs, a curved one over every four)."""
    return [("a", "b") if p % 4 in (0, 3) else ("b", "a") for p in range(pairs)]


@dataclass(frozen=True)
class Paired:
    """The median of paired values (ratios or differences) and its bootstrap interval."""

    median: float
    low: float
    high: float
    n: int

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies within the interval (the run cannot tell them apart)."""
        return self.low <= value <= self.high


def paired(values: list[float], *, level: float = 0.95, resamples: int = 4000,
           seed: int = 28) -> Paired:
    """The median of ``values`` (one per pair) and a percentile bootstrap interval of it at
    ``level`` (pairs drawn with replacement; a fixed seed, so a run's report is stable)."""
    if not values:
        raise ValueError("no pairs to summarise")
    rng = random.Random(seed)
    n = len(values)
    meds = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    lo = meds[int(tail * (resamples - 1))]
    hi = meds[int(round((1 - tail) * (resamples - 1)))]
    return Paired(statistics.median(values), lo, hi, n)


def ratios(a: list[float], b: list[float]) -> list[float]:
    """``a[i] / b[i]`` for each pair."""
    return [x / y for x, y in zip(a, b, strict=True)]


def differences(a: list[float], b: list[float]) -> list[float]:
    """``a[i] - b[i]`` for each pair."""
    return [x - y for x, y in zip(a, b, strict=True)]
