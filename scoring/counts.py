"""How surprising a count is, given an account's own history of that count.

Telemetry counts are overdispersed: a week's total varies far more than a Poisson count of
the same mean would (busy and quiet weeks, holidays, a team away). A count is therefore
judged against a negative-binomial reference whose mean and extra variance come from the
account's own complete weeks:

    a week's total  W ~ mean μ, variance μ + c·μ²        (c: the squared extra CV)

so that a drop must be unlikely *for this account* before anything is said, whatever its
volume. At a few events a week the bounds are wide (a zero week is ordinary); at thousands
they are set by ``c``, never narrower than ``min_dispersion`` allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_SQRT2 = math.sqrt(2.0)


def lower_tail(observed: float, mean: float, variance: float) -> float:
    """P(T ≤ observed) for a count T of this mean and variance: negative binomial when the
    variance exceeds the mean, else Poisson.

    The negative-binomial CDF is the upper tail of an F distribution,
    P(T ≤ t) = P(F(2(t+1), 2r) ≥ mean/(t+1)) with r = mean²/(variance − mean), computed with
    Paulson's cube-root normal approximation: O(1), within about 0.005 of the exact value
    for the small tail probabilities the detectors use (with r → ∞ it is the Wilson-Hilferty
    approximation of the Poisson CDF)."""
    if mean <= 0.0:
        return 1.0
    if observed < 1.0:
        return zero_chance(mean, variance)
    t1 = math.floor(observed) + 1.0
    a = 2.0 / (9.0 * 2.0 * t1)
    extra = variance - mean
    b = 2.0 / (9.0 * 2.0 * mean * mean / extra) if extra > 1e-9 * mean else 0.0
    f = (mean / t1) ** (1.0 / 3.0)
    z = ((1.0 - b) * f - (1.0 - a)) / math.sqrt(b * f * f + a)
    return 0.5 * math.erfc(z / _SQRT2)


def zero_chance(mean: float, variance: float) -> float:
    """P(T = 0) for the same count: how likely a silence of that length is by chance."""
    if mean <= 0.0:
        return 1.0
    extra = variance - mean
    if extra <= 1e-9 * mean:
        return math.exp(-mean)
    r = mean * mean / extra
    return math.exp(-r * math.log1p(mean / r))


@dataclass(frozen=True, slots=True)
class Reference:
    """An account's usual level of one series, from ``weeks`` complete weekly totals.

    ``dispersion`` is c above: the sample's extra variance shrunk towards ``prior`` (a few
    weeks say little about spread) and never below ``floor``."""

    per_week: float
    dispersion: float
    weeks: int

    @classmethod
    def of_weeks(cls, totals: list[int], prior: float, floor: float) -> Reference | None:
        n = len(totals)
        if n < 2:
            return None
        mean = sum(totals) / n
        if mean <= 0.0:
            return None
        var = sum((x - mean) ** 2 for x in totals) / (n - 1)
        return cls.of_moments(mean, var, n, prior, floor)

    @classmethod
    def of_moments(
        cls, mean: float, variance: float, weeks: int, prior: float, floor: float
    ) -> Reference:
        """From the mean and variance of ``weeks`` weekly totals (``mean`` > 0)."""
        sample = max(0.0, (variance - mean) / (mean * mean))
        shrunk = (weeks * sample + 4.0 * prior) / (weeks + 4.0)
        return cls(mean, max(shrunk, floor), weeks)

    def expected(self, days: int) -> tuple[float, float]:
        """Mean and variance of a total over ``days`` days, were the account as usual.

        Busy and quiet spells last for weeks, so a month's total varies, relative to its
        mean, more than four independent weeks would: the extra relative variance shrinks
        with the square root of the window, not with the window. The reference's own
        uncertainty (an average of ``weeks`` noisy weeks) widens the bounds, most for short
        histories."""
        mean = self.per_week * days / 7.0
        c = self.dispersion
        noise = mean + c * mean * mean * math.sqrt(7.0 / max(days, 7))
        known = mean * mean * (1.0 / self.per_week + c) / self.weeks
        return mean, noise + known

    def chance_of_at_most(self, observed: float, days: int) -> float:
        mean, variance = self.expected(days)
        return lower_tail(observed, mean, variance)

    def chance_of_silence(self, days: int) -> float:
        mean, variance = self.expected(days)
        return zero_chance(mean, variance)
