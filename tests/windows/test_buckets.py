"""Window arithmetic of DailyBuckets against hand-computed and brute-force values."""

import random
from array import array

import numpy as np
import pytest

from windows.buckets import HORIZON, WINDOWS, DailyBuckets, recovery


def fill(counts_by_day: dict[int, int], clock: int) -> DailyBuckets:
    b = DailyBuckets()
    for day, count in sorted(counts_by_day.items()):
        b.add(clock - day, day, count)
    return b


def test_hand_computed_linear_series() -> None:
    # 14 days with y = 1, 2, ..., 14 (oldest to newest): slope exactly +1/day, no curvature
    clock = 1000
    b = fill({clock - 13 + i: i + 1 for i in range(14)}, clock)
    t = b.trend(14)
    assert t.total == 105
    assert t.level == pytest.approx(7.5)
    assert t.slope == pytest.approx(1.0)
    assert t.acceleration == pytest.approx(0.0, abs=1e-9)
    assert t.active_days == 14


def test_hand_computed_quadratic_series_has_acceleration() -> None:
    # y = t² over t = 0..13: second derivative 2, rising
    clock = 500
    b = fill({clock - 13 + t: t * t for t in range(14)}, clock)
    t = b.trend(14)
    assert t.acceleration == pytest.approx(2.0)
    assert t.slope > 0


def test_declining_signal_has_negative_slope() -> None:
    clock = 200
    b = fill({clock - 29 + i: 30 - i for i in range(30)}, clock)
    assert b.trend(30).slope == pytest.approx(-1.0)


def brute(counts: dict[int, int], clock: int, w: int) -> tuple[float, float, float, int]:
    ys = np.array([counts.get(d, 0) for d in range(clock - w + 1, clock + 1)], dtype=float)
    t = np.arange(w, dtype=float)
    slope = np.polyfit(t, ys, 1)[0]
    accel = 2 * np.polyfit(t, ys, 2)[0]
    return ys.sum(), slope, accel, int((ys > 0).sum())


@pytest.mark.parametrize("seed", range(5))
def test_incremental_updates_match_brute_force_after_shifts_and_late_events(seed: int) -> None:
    rng = random.Random(seed)
    b = DailyBuckets()
    truth: dict[int, int] = {}
    clock = 10_000
    for _ in range(400):
        if rng.random() < 0.3:
            step = rng.choice([1, 1, 2, 5, 17])
            b.shift(clock + step, step)
            clock += step
        day = clock - rng.randrange(0, HORIZON)  # out-of-order events land in their own day
        amount = rng.randrange(0, 50)
        b.add(clock - day, day, amount)
        truth[day] = truth.get(day, 0) + amount
    truth = {d: c for d, c in truth.items() if clock - d < HORIZON}
    for w in WINDOWS:
        total, slope, accel, active = brute(truth, clock, w)
        t = b.trend(w)
        assert t.total == total
        assert t.slope == pytest.approx(slope, abs=1e-9)
        assert t.acceleration == pytest.approx(accel, abs=1e-9)
        assert t.active_days == active
    assert b.daily(clock, 30) == [truth.get(d, 0) for d in range(clock - 29, clock + 1)]


def test_the_ring_widens_as_counts_outgrow_it_and_stays_exact() -> None:
    clock = 10_000
    b = DailyBuckets()
    assert b.counts.typecode == "B" and b.counts.itemsize == 1  # 90 bytes to start with
    truth: dict[int, int] = {}
    for day, amount, width in [
        (clock - 3, 200, "B"),
        (clock - 3, 100, "H"),  # 300 outgrows a byte
        (clock, 70_000, "I"),
        (clock - 80, 2**33, "q"),
        (clock - 1, 255, "q"),  # never narrows again
    ]:
        b.add(clock - day, day, amount)
        truth[day] = truth.get(day, 0) + amount
        assert b.counts.typecode == width
    assert b.daily(clock) == [truth.get(d, 0) for d in range(clock - 89, clock + 1)]
    for w in WINDOWS:
        total, slope, accel, active = brute(truth, clock, w)
        t = b.trend(w)
        assert (t.total, t.active_days) == (total, active)
        assert t.slope == pytest.approx(slope, rel=1e-9)
        assert t.acceleration == pytest.approx(accel, rel=1e-9, abs=1e-9)
    with pytest.raises(OverflowError):
        b.add(0, clock, 2**63)  # past what any ring holds, as before


@pytest.mark.parametrize("seed,clock", [(0, 20_000), (1, 20_069), (2, 20_070)])
def test_buckets_built_from_a_ring_equal_those_kept_event_by_event(seed: int, clock: int) -> None:
    assert {20_069 % HORIZON, 20_070 % HORIZON} == {HORIZON - 1, 0}  # both ends of the ring
    rng = random.Random(seed)
    kept = DailyBuckets()
    for _ in range(300):
        age = rng.randrange(HORIZON)
        kept.add(age, clock - age, rng.choice([1, 3, 40, 900, 70_000]))
    built = DailyBuckets.of_ring(array(kept.counts.typecode, kept.counts), clock)
    assert list(built.sums) == list(kept.sums)  # exact: sums of integers
    assert [built.trend(w) for w in WINDOWS] == [kept.trend(w) for w in WINDOWS]
    with pytest.raises(ValueError):
        DailyBuckets.of_ring(array("B", bytes(89)), clock)


def test_shift_past_horizon_forgets_everything() -> None:
    b = fill({100: 5, 101: 7}, 101)
    b.shift(101 + HORIZON, HORIZON)
    assert b.is_empty()
    assert all(b.total(w) == 0 for w in WINDOWS)


def test_recovery_detects_dip_and_rebound() -> None:
    clock = 1000
    days = {}
    for i in range(84):
        day = clock - 83 + i
        week = i // 7
        days[day] = 1 if week == 6 else 10  # one bad week in the middle
    b = fill(days, clock)
    r = recovery(b, clock)
    assert r.dipped and r.recovered
    assert r.dip_start_day == clock - 83 + 42
    assert r.dip_per_week == 7


def test_recovery_reports_no_recovery_when_depressed() -> None:
    clock = 1000
    days = {clock - 83 + i: (10 if i < 56 else 2) for i in range(84)}
    r = recovery(fill(days, clock), clock)
    assert r.dipped and not r.recovered
