"""What a detector that knew each account's usual rate could do, volume by volume.

The detectors must estimate an account's usual level from its own noisy weeks. A reference
that is told the level instead shows how much of a miss is the detectors' and how much is
the counts': Page's CUSUM test for a fall of the value actions to ``ratio`` of their usual
daily mean, with that mean known exactly (the volume, the weekday and the holiday factor of
the generator; only the busy spells and the daily noise are unknown to it). For independent
days, a known fall and a known rate, no test has a shorter worst-case delay at the same
rate of false alarms (Lorden 1971, Moustakides 1986); the busy spells make the days
dependent, so it is a reference, not a bound.

The counts are drawn by the generator's own functions, for many more accounts than the
replay scores (it costs only arrays). For each threshold of the test the frontier gives
its onsets on steady accounts per 100 account-months (from ``WARMUP_DAYS``, as for the
profiles) and the share of ``drop_30`` accounts it flags within ``DETECTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quality.generator import (
    GeneratorSettings,
    Kind,
    busy_factors,
    calendar_factors,
    gamma_poisson,
    usage_shape,
    value_actions_per_day,
)
from quality.measure import ACCOUNT_MONTH_DAYS, DETECTION_DAYS, WARMUP_DAYS

__all__ = ["FrontierSettings", "Point", "frontier", "known_rate_cusum", "volume_frontier"]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True)
class FrontierSettings:
    """How many accounts the reference test is run on, and at which thresholds."""

    accounts: int = 400
    #: the fall the test looks for: the drop_30 accounts' own
    ratio: float = 0.3
    thresholds: tuple[float, ...] = tuple(x / 2 for x in range(2, 25))


@dataclass(frozen=True)
class Point:
    """The reference test at one threshold."""

    threshold: float
    steady_onsets_per_100_account_months: float
    steady_share_of_days_on: float
    detected_within_21d: float

    def as_dict(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "steady_onsets_per_100_account_months": self.steady_onsets_per_100_account_months,
            "steady_share_of_days_on": self.steady_share_of_days_on,
            "detected_within_21d": self.detected_within_21d,
        }


def known_rate_cusum(
    counts: FloatArray, means: FloatArray, ratio: float, shape: float, threshold: float
) -> BoolArray:
    """Per account and complete day: whether Page's test for a fall to ``ratio`` is on.

    A day's count is negative binomial around its mean m (Poisson around m times a gamma
    factor of shape r), so the log-likelihood ratio of the fall is
    ``x·ln(ratio·(r + m)/(r + ratio·m)) + r·ln((r + m)/(r + ratio·m))``. The test sums it
    since the last time the sum was no evidence at all, ``S = max(0, S + llr)``, and is on
    while ``S > threshold``. ``counts`` and ``means`` are (accounts, days)."""
    level = np.zeros(counts.shape[0])
    on = np.zeros(counts.shape, dtype=bool)
    for day in range(counts.shape[1]):
        m = means[:, day]
        odds = (shape + m) / (shape + ratio * m)
        llr = counts[:, day] * np.log(ratio * odds) + shape * np.log(odds)
        level = np.maximum(0.0, level + llr)
        on[:, day] = level > threshold
    return on


def _draws(
    settings: GeneratorSettings, volume: int, kind: Kind, accounts: int, seed: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Value actions per account and day, their known usual mean, and the change days."""
    rng = np.random.default_rng((settings.seed, seed, volume))
    days = settings.days
    calendar = calendar_factors(settings)
    usual = value_actions_per_day(settings, volume, calendar)
    counts = np.empty((accounts, days))
    change_days = settings.history_days + np.arange(accounts) % settings.change_spread
    for i, change_day in enumerate(change_days):
        shape = usage_shape(kind, days, int(change_day))
        activity = calendar * busy_factors(rng, settings)
        rate = value_actions_per_day(settings, volume, activity) * shape.value_actions
        counts[i] = gamma_poisson(rng, rate, settings.noise_shape)
    return counts, np.broadcast_to(usual, counts.shape), change_days.astype(float)


def _onsets_per_100_months(on: BoolArray) -> float:
    watched = on[:, WARMUP_DAYS - 1 :]
    onsets = int(np.count_nonzero(watched[:, 1:] & ~watched[:, :-1]))
    months = float(on.shape[0] * (on.shape[1] - WARMUP_DAYS)) / ACCOUNT_MONTH_DAYS
    return round(100.0 * onsets / months, 2)


def _share_on(on: BoolArray) -> float:
    return round(float(np.mean(on[:, WARMUP_DAYS:])), 4)


def _detected(on: BoolArray, change_days: FloatArray) -> float:
    day = np.arange(on.shape[1])
    start = change_days[:, None]
    window = (day >= start) & (day < start + DETECTION_DAYS)
    return round(float(np.mean(np.any(on & window, axis=1))), 3)


def volume_frontier(
    settings: GeneratorSettings, volume: int, frontier_settings: FrontierSettings
) -> list[Point]:
    """The reference test at every threshold, on steady and drop_30 accounts of ``volume``."""
    n, ratio = frontier_settings.accounts, frontier_settings.ratio
    steady = _draws(settings, volume, Kind.STEADY, n, 1)
    drops = _draws(settings, volume, Kind.DROP_30, n, 2)
    points = []
    for h in frontier_settings.thresholds:
        quiet = known_rate_cusum(steady[0], steady[1], ratio, settings.noise_shape, h)
        fallen = known_rate_cusum(drops[0], drops[1], ratio, settings.noise_shape, h)
        onsets, share_on = _onsets_per_100_months(quiet), _share_on(quiet)
        points.append(Point(h, onsets, share_on, _detected(fallen, drops[2])))
    return points


def needed_for(points: Sequence[Point], share: float) -> float | None:
    """The fewest steady onsets at which the reference detects at least ``share``."""
    rates = [
        p.steady_onsets_per_100_account_months for p in points if p.detected_within_21d >= share
    ]
    return min(rates) if rates else None


def detected_at(points: Sequence[Point], onsets: float) -> float:
    """The most the reference detects with no more steady onsets than ``onsets``."""
    shares = [
        p.detected_within_21d for p in points if p.steady_onsets_per_100_account_months <= onsets
    ]
    return max(shares, default=0.0)


def frontier(
    settings: GeneratorSettings, frontier_settings: FrontierSettings | None = None
) -> dict[str, Any]:
    """The reference test's figures for every volume of the population, as results.json has them."""
    chosen = frontier_settings or FrontierSettings()
    by_volume = {}
    for volume in settings.volumes:
        points = volume_frontier(settings, volume, chosen)
        by_volume[str(volume)] = {
            "onsets_for_90_percent": needed_for(points, 0.9),
            "points": [p.as_dict() for p in points],
        }
    return {"accounts": chosen.accounts, "ratio": chosen.ratio, "by_volume": by_volume}


def against_profile(known: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """Per volume: how often the profile starts flagging a steady account and how many
    drop_30 accounts it flags within 21 days, beside what the reference detects starting to
    flag no more often, and how often it must start to detect 90%."""
    rows = {}
    drop = profile["kinds"].get(str(Kind.DROP_30))
    for volume, cut in known["by_volume"].items():
        steady = profile["steady"]["by_volume"].get(volume)
        if steady is None or drop is None or volume not in drop["by_volume"]:
            continue
        points = [Point(**p) for p in cut["points"]]
        onsets = float(steady["flag_onsets_per_100_account_months"])
        rows[volume] = {
            "profile_flag_onsets": onsets,
            "profile_share_of_days_flagged": steady["share_of_days_flagged"],
            "profile_detected_within_21d": drop["by_volume"][volume]["detected_within_21d"],
            "known_rate_detected_at_those_onsets": detected_at(points, onsets),
            "known_rate_onsets_for_90_percent": cut["onsets_for_90_percent"],
        }
    return rows
