"""Daily buckets of one signal over 90 days, with O(1) rolling-window moments.

Each series keeps a ring of 90 integer day counts and, for every window length W in
``WINDOWS``, four running sums over the days whose *age* ``x = clock - day`` is below W:

    m0 = Σ y        m1 = Σ x·y        m2 = Σ x²·y        active = #{days with y > 0}

An event adds to one bucket and to the sums of every window holding its day: O(len(WINDOWS)).
When the clock advances one day every age grows by one, and the sums follow in O(1):

    Σ (x+1)·y = m1 + m0        Σ (x+1)²·y = m2 + 2·m1 + m0

after which the day that has just reached age W leaves window W. From the moments and the
fixed moments of x over 0..W-1, least squares gives level, slope and acceleration without
touching the buckets. Sums stay exact while daily counts stay below about 10^11.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

HORIZON = 90
WINDOWS: tuple[int, ...] = (14, 28, 30, 60, 90)
_STRIDE = 4  # m0, m1, m2, active per window
_W_INDEX = {w: i for i, w in enumerate(WINDOWS)}
assert WINDOWS == (14, 28, 30, 60, 90), "DailyBuckets.add is unrolled over these windows"


def _x_moments(w: int) -> tuple[float, float, float, float, float]:
    """Σ x^k for x = 0..w-1, k = 0..4."""
    xs = range(w)
    return (
        float(w),
        float(sum(xs)),
        float(sum(x * x for x in xs)),
        float(sum(x**3 for x in xs)),
        float(sum(x**4 for x in xs)),
    )


_MOMENTS = {w: _x_moments(w) for w in WINDOWS}
_MOMENTS.update({w - 1: _x_moments(w - 1) for w in WINDOWS})


@dataclass(frozen=True, slots=True)
class TrendFeatures:
    """Level, slope and acceleration of one signal over the last ``window`` days.

    ``slope`` and ``acceleration`` are per day, with time running forward (a fading
    signal has a negative slope); ``acceleration`` is the change of slope per day from a
    least-squares quadratic fit (negative when a decline speeds up).
    """

    window: int
    total: float
    level: float
    slope: float
    acceleration: float
    active_days: int


#: the widths a ring of counts takes, narrowest first, with the largest count each holds:
#: it widens when a count outgrows it (snapshots store counts at the same widths)
COUNT_WIDTHS = (("B", 0xFF), ("H", 0xFFFF), ("I", 0xFFFFFFFF), ("q", 2**63 - 1))


def narrowest_typecode(count: int) -> str:
    """The array typecode of the narrowest width that holds ``count`` ("q" past them all)."""
    return next((code for code, limit in COUNT_WIDTHS if count <= limit), "q")


_EMPTY_RING = array("B", [0]) * HORIZON
_EMPTY_SUMS = array("d", [0.0]) * (_STRIDE * len(WINDOWS))


class DailyBuckets:
    """A 90-day ring of daily counts for one signal, indexed by ``day % 90``.

    The ring is as narrow as its largest count allows (one byte a day to start with), and
    widens when a count outgrows it: most series count a few dozen a day."""

    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        # copies of exact-sized arrays: an array built from bytes holds spare room
        self.counts = _EMPTY_RING[:]
        # an array, not a list: a third of the memory (160 bytes, not a float object per
        # sum); its updates cost about 40 ns more per event
        self.sums = _EMPTY_SUMS[:]

    def add(self, age: int, day: int, amount: int) -> None:
        """Add ``amount`` to the bucket of ``day``, which is ``age`` days before the clock.

        Unrolled over ``WINDOWS`` = (14, 28, 30, 60, 90): this runs for every event.
        """
        if amount <= 0:
            return
        counts = self.counts
        slot = day % HORIZON
        active = 1.0 if counts[slot] == 0 else 0.0
        try:
            counts[slot] += amount
        except OverflowError:
            self._widen(counts[slot] + amount)
            self.counts[slot] += amount
        s = self.sums
        v = float(amount)
        if age == 0:
            # today, the commonest case: in every window, with no moment to add
            s[0] += v
            s[4] += v
            s[8] += v
            s[12] += v
            s[16] += v
            if active:
                s[3] += 1.0
                s[7] += 1.0
                s[11] += 1.0
                s[15] += 1.0
                s[19] += 1.0
            return
        xv = age * v
        x2v = age * xv
        if age < 14:
            s[0] += v
            s[1] += xv
            s[2] += x2v
            s[3] += active
        if age < 28:
            s[4] += v
            s[5] += xv
            s[6] += x2v
            s[7] += active
        if age < 30:
            s[8] += v
            s[9] += xv
            s[10] += x2v
            s[11] += active
        if age < 60:
            s[12] += v
            s[13] += xv
            s[14] += x2v
            s[15] += active
        s[16] += v
        s[17] += xv
        s[18] += x2v
        s[19] += active

    @classmethod
    def of_ring(cls, counts: array[int], clock: int) -> DailyBuckets:
        """Buckets holding ``counts`` (a ring of 90 days, slot ``day % 90``, ending at
        ``clock``), their window sums built in one pass over its days, today first (about
        a third of the time of adding the days one by one).

        The sums are sums of integers, so they equal those kept event by event exactly."""
        if len(counts) != HORIZON:
            raise ValueError(f"a ring holds {HORIZON} days, not {len(counts)}")
        buckets = cls.__new__(cls)  # no empty ring and sums to throw away
        buckets.counts = counts
        end = clock % HORIZON
        by_age = (counts[end::-1] + counts[:end:-1]).tolist()  # today first
        s: list[float] = []
        m0 = m1 = m2 = active = 0.0
        start = 0
        for w in WINDOWS:  # nested windows: each one's sums run on from the last one's
            for age in range(start, w):
                y = by_age[age]
                if y:
                    v = float(y)
                    m0 += v
                    m1 += age * v
                    m2 += age * age * v
                    active += 1.0
            s += (m0, m1, m2, active)
            start = w
        buckets.sums = array("d", s)
        return buckets

    def _widen(self, count: int) -> None:
        """Widen the ring to the narrowest width that holds ``count`` (past 2^63 - 1 the
        addition still overflows, as it always did)."""
        self.counts = array(narrowest_typecode(count), self.counts)

    def shift(self, new_clock: int, days: int) -> None:
        """Advance the clock by ``days`` (>= 1) to ``new_clock``, expiring what leaves."""
        if days >= HORIZON:
            self.clear()
            return
        counts = self.counts
        sums = self.sums
        for clock in range(new_clock - days + 1, new_clock + 1):
            i = 0
            for w in WINDOWS:
                m0 = sums[i]
                m1 = sums[i + 1]
                if m0:
                    sums[i + 2] += 2.0 * m1 + m0
                    sums[i + 1] = m1 + m0
                    # the day that is now exactly w days old leaves window w
                    leaving = counts[(clock - w) % HORIZON]
                    if leaving:
                        v = float(leaving)
                        sums[i] = m0 - v
                        sums[i + 1] -= w * v
                        sums[i + 2] -= w * w * v
                        sums[i + 3] -= 1.0
                i += _STRIDE
            # the ring slot of the day leaving the 90-day horizon becomes the new day
            counts[clock % HORIZON] = 0

    def clear(self) -> None:
        for i in range(HORIZON):
            self.counts[i] = 0
        for i in range(len(self.sums)):
            self.sums[i] = 0.0

    def is_empty(self) -> bool:
        return not any(self.counts)

    def total(self, window: int) -> float:
        """Sum of the last ``window`` days (a member of ``WINDOWS``)."""
        return self.sums[_W_INDEX[window] * _STRIDE]

    def active_days(self, window: int) -> int:
        return int(self.sums[_W_INDEX[window] * _STRIDE + 3])

    def day_count(self, clock: int, day: int) -> int:
        """The bucket of ``day``, 0 when it is outside the 90 days ending at ``clock``."""
        if not 0 <= clock - day < HORIZON:
            return 0
        return int(self.counts[day % HORIZON])

    def daily(self, clock: int, window: int = HORIZON) -> list[int]:
        """The last ``window`` days' counts, oldest first."""
        return self.daily_array(clock, window).tolist()

    def daily_array(self, clock: int, window: int = HORIZON) -> array[int]:
        """The same as an array as narrow as the ring (at most two slices of it)."""
        counts = self.counts
        start = (clock - window + 1) % HORIZON
        end = clock % HORIZON + 1
        if start < end:
            return counts[start:end]
        return counts[start:] + counts[:end]

    def trend(self, window: int, complete_to: int | None = None) -> TrendFeatures:
        """Least-squares level, slope and acceleration over the last ``window`` days.

        Given the clock as ``complete_to``, the fit leaves out today, which is still
        filling up, and covers the ``window - 1`` complete days ending yesterday: with
        ages x' = x - 1 there, Σy = m0 - y₀, Σx'·y = m1 - Σy, Σx'²·y = m2 - 2·m1 + Σy.
        """
        base = _W_INDEX[window] * _STRIDE
        m0, m1, m2, active = self.sums[base : base + 4]
        if complete_to is not None:
            today = float(self.counts[complete_to % HORIZON])
            m0 -= today
            m2 = m2 - 2.0 * m1 + m0
            m1 = m1 - m0
            active -= 1.0 if today else 0.0
            window -= 1
        n, s1, s2, s3, s4 = _MOMENTS[window]
        level = m0 / n
        # linear fit y = a + b·x over ages x; time runs opposite to age, so slope = -b
        denom1 = n * s2 - s1 * s1
        b = (n * m1 - s1 * m0) / denom1
        # quadratic fit y = a + b·x + c·x²: solve the 3x3 normal equations (Cramer's rule)
        det = n * (s2 * s4 - s3 * s3) - s1 * (s1 * s4 - s3 * s2) + s2 * (s1 * s3 - s2 * s2)
        det_c = n * (s2 * m2 - s3 * m1) - s1 * (s1 * m2 - s2 * m1) + m0 * (s1 * s3 - s2 * s2)
        c = det_c / det
        # d²y/dt² = d²y/dx² = 2c (the sign of x cancels in the second derivative)
        return TrendFeatures(
            window=window,
            total=m0,
            level=level,
            slope=-b,
            acceleration=2.0 * c,
            active_days=int(active),
        )


@dataclass(frozen=True, slots=True)
class Recovery:
    """Whether the deepest weekly dip of the last 90 days bounced back.

    A dip is a week below ``dip_ratio`` of the mean of the weeks before it; it has
    recovered when a later week reaches ``recover_ratio`` of that baseline.
    """

    dipped: bool
    dip_start_day: int | None
    baseline_per_week: float
    dip_per_week: float
    rebound_per_week: float
    recovered: bool
    days_since_dip: int | None


def recovery(
    buckets: DailyBuckets, clock: int, dip_ratio: float = 0.5, recover_ratio: float = 0.8
) -> Recovery:
    """Find the deepest weekly dip and whether it recovered. O(90): computed on demand."""
    days = buckets.daily(clock, 84)
    weeks = [float(sum(days[i : i + 7])) for i in range(0, 84, 7)]
    best: tuple[float, int, float] | None = None  # (ratio, week index, baseline)
    for i in range(1, len(weeks)):
        baseline = sum(weeks[:i]) / i
        if baseline <= 0:
            continue
        ratio = weeks[i] / baseline
        if ratio < dip_ratio and (best is None or ratio < best[0]):
            best = (ratio, i, baseline)
    if best is None:
        return Recovery(False, None, 0.0, 0.0, 0.0, True, None)
    _, i, baseline = best
    after = weeks[i + 1 :]
    rebound = max(after) if after else 0.0
    start_day = clock - 83 + 7 * i
    return Recovery(
        dipped=True,
        dip_start_day=start_day,
        baseline_per_week=baseline,
        dip_per_week=weeks[i],
        rebound_per_week=rebound,
        recovered=rebound >= recover_ratio * baseline,
        days_since_dip=clock - start_day,
    )
