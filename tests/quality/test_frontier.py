"""The known-rate reference test: Page's CUSUM on hand-made counts, and its frontier."""

import numpy as np
import pytest

from quality.frontier import (
    FrontierSettings,
    Point,
    against_profile,
    detected_at,
    frontier,
    known_rate_cusum,
    needed_for,
    volume_frontier,
)
from quality.generator import GeneratorSettings

SMALL = GeneratorSettings(volumes=(5, 200))


def test_the_test_turns_on_after_a_fall_and_stays_off_while_usual() -> None:
    days = 60
    means = np.full((2, days), 10.0)
    counts = np.full((2, days), 10.0)
    counts[1, 40:] = 3.0  # the second account falls to 30% on day 40
    on = known_rate_cusum(counts, means, ratio=0.3, shape=3.0, threshold=5.0)
    assert not on[0].any()
    assert not on[1, :40].any()
    first = int(np.argmax(on[1]))
    assert 40 <= first <= 45 and on[1, first:].all()


def test_a_single_quiet_day_adds_evidence_that_usual_days_take_away() -> None:
    means = np.full((1, 6), 2.0)
    counts = np.array([[0.0, 0.0, 0.0, 4.0, 4.0, 4.0]])
    # three silent days at a mean of 2 pass a low threshold; three busy days clear it again
    on = known_rate_cusum(counts, means, ratio=0.3, shape=3.0, threshold=1.5)
    assert on[0, 2] and not on[0, 5]


def test_a_lower_threshold_detects_more_and_flags_steady_accounts_more() -> None:
    points = volume_frontier(SMALL, 5, FrontierSettings(accounts=60, thresholds=(2.0, 6.0)))
    loose, strict = points
    assert loose.detected_within_21d > strict.detected_within_21d
    assert loose.steady_onsets_per_100_account_months > strict.steady_onsets_per_100_account_months
    assert loose.steady_share_of_days_on > strict.steady_share_of_days_on


def test_a_large_volume_is_detected_at_few_false_onsets() -> None:
    points = volume_frontier(SMALL, 200, FrontierSettings(accounts=60, thresholds=(10.0,)))
    assert points[0].detected_within_21d >= 0.95
    assert points[0].steady_onsets_per_100_account_months <= 2.0


def test_reading_the_frontier() -> None:
    points = [Point(2.0, 40.0, 0.2, 0.95), Point(4.0, 10.0, 0.05, 0.7), Point(6.0, 2.0, 0.01, 0.3)]
    assert needed_for(points, 0.9) == 40.0
    assert needed_for(points, 0.99) is None
    assert detected_at(points, 12.0) == 0.7
    assert detected_at(points, 1.0) == 0.0


def test_the_profile_is_set_beside_the_reference_volume_by_volume() -> None:
    known = frontier(SMALL, FrontierSettings(accounts=20, thresholds=(3.0, 8.0)))
    assert set(known["by_volume"]) == {"5", "200"}
    profile = {
        "steady": {
            "by_volume": {
                "5": {"flag_onsets_per_100_account_months": 1000.0, "share_of_days_flagged": 0.1}
            }
        },
        "kinds": {"drop_30": {"by_volume": {"5": {"detected_within_21d": 0.5}}}},
    }
    rows = against_profile(known, profile)
    assert list(rows) == ["5"]  # the profile was not scored at 200 a week
    best = max(p["detected_within_21d"] for p in known["by_volume"]["5"]["points"])
    assert rows["5"]["known_rate_detected_at_those_onsets"] == best
    assert rows["5"]["profile_detected_within_21d"] == 0.5


@pytest.mark.parametrize("accounts", [0, -1])
def test_no_reference_is_run_for_no_accounts(accounts: int) -> None:
    from quality.run import parser, reference_from

    assert reference_from(parser().parse_args(["--reference-accounts", str(accounts)])) is None
