"""Each detector as a pure function over a daily history, with the evidence it returns."""

from __future__ import annotations

import pytest

from scoring.detectors import (
    DAYS,
    DETECTOR_DEFAULTS,
    _weeks,
    accelerating_decline,
    champion_silent,
    declining_series,
    multi_signal_decline,
    regime_change,
    signal_drop,
    weakening_rebounds,
)
from windows.account import AccountState
from windows.buckets import DailyBuckets
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

CLOCK = 20_600
P = DETECTOR_DEFAULTS


def weekly(*per_week: int) -> list[int]:
    """84 days from 12 weekly totals, each spread over its days (oldest week first)."""
    assert len(per_week) == 12
    days: list[int] = []
    for total in per_week:
        days += [total // 7 + (1 if i < total % 7 else 0) for i in range(7)]
    return days


def test_weekly_helper_round_trips() -> None:
    assert _weeks(weekly(*range(12))) == list(range(12))
    assert len(weekly(*[0] * 12)) == DAYS


def test_a_drop_that_recovers_within_two_weeks_is_only_monitored() -> None:
    days = weekly(20, 20, 20, 20, 20, 20, 20, 20, 5, 19, 20, 21)
    found = signal_drop(
        "logins",
        _weeks(days),
        days,
        CLOCK,
        P["single_drop"],
    )
    assert found is not None
    assert (found.detector, found.severity) == ("single_drop", "monitor")
    assert found.evidence["recovered"] is True and found.evidence["weeks_down"] == 1


def test_a_drop_with_no_recovery_after_three_weeks_is_yellow() -> None:
    days = weekly(20, 20, 20, 20, 20, 20, 20, 20, 20, 6, 5, 7)
    found = signal_drop(
        "logins",
        _weeks(days),
        days,
        CLOCK,
        P["single_drop"],
    )
    assert found is not None
    assert (found.detector, found.severity) == ("drop_no_recovery", "yellow")
    assert found.evidence["baseline_per_week"] == 20.0
    assert found.evidence["low_per_week"] == 5 and found.evidence["weeks_down"] == 3


def test_noise_and_old_recoveries_find_nothing() -> None:
    steady = weekly(20, 22, 19, 21, 18, 20, 23, 19, 21, 20, 18, 22)
    assert signal_drop("logins", _weeks(steady), steady, CLOCK, P["single_drop"]) is None
    long_ago = weekly(20, 20, 20, 20, 5, 20, 20, 20, 20, 20, 20, 20)
    assert signal_drop("logins", _weeks(long_ago), long_ago, CLOCK, P["single_drop"]) is None
    # bursty: a week at half the level is ordinary when days swing between 0 and 12
    bursty = [12, 0, 0, 0, 0, 0, 8] * 8 + [6, 0, 0, 0, 0, 0, 4] * 3 + [12, 0, 0, 0, 0, 0, 8]
    assert signal_drop("logins", _weeks(bursty), bursty, CLOCK, P["single_drop"]) is None


def test_repeated_drops_with_weaker_rebounds_are_found() -> None:
    days = weekly(30, 30, 30, 30, 8, 24, 24, 6, 16, 16, 4, 10)
    found = weakening_rebounds("value_actions", _weeks(days), days, CLOCK, P["weakening_rebounds"])
    assert found is not None and found.severity == "yellow"
    assert found.evidence["drop_lows"] == [8, 6, 4]
    assert found.evidence["rebound_peaks"] == [24, 16, 10]
    full = weekly(30, 30, 30, 30, 8, 30, 30, 6, 31, 30, 4, 30)
    rules = P["weakening_rebounds"]
    assert weakening_rebounds("value_actions", _weeks(full), full, CLOCK, rules) is None


def test_regime_change_needs_steady_activity_then_silence() -> None:
    sudden = weekly(28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 0, 0)
    found = regime_change("integration_messages", sudden, CLOCK, P["regime_change"])
    assert found is not None and found.severity == "red"
    assert found.evidence["zero_days"] == 14 and found.evidence["per_week_before"] == 28.0
    fading = weekly(28, 28, 28, 28, 28, 28, 28, 20, 10, 2, 0, 0)
    assert regime_change("integration_messages", fading, CLOCK, P["regime_change"]) is None
    short = weekly(28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28)[:-3] + [0, 0, 0]
    assert regime_change("integration_messages", short, CLOCK, P["regime_change"]) is None


def _buckets(daily: list[int]) -> DailyBuckets:
    b = DailyBuckets()
    for age, count in enumerate(reversed(daily)):
        b.add(age, CLOCK - age, count)
    return b


def test_accelerating_decline_is_a_fall_that_speeds_up() -> None:
    speeding = [20] * 30 + [
        round(20 - 0.02 * k * k) for k in range(30)
    ]  # 20, then ever faster down
    rules = P["accelerating_decline"]
    fast = (speeding + [5])[-84:]
    found = accelerating_decline("logins", fast, _buckets(fast), CLOCK, 90, rules)
    assert found is not None
    assert found.evidence["fortnight_totals"][0] > found.evidence["fortnight_totals"][2]
    assert found.evidence["slope_per_day"] < 0 and found.evidence["acceleration_per_day2"] < 0
    slowing = [round(4 + 16 * 0.93**d) for d in range(60)]  # falling, but ever more slowly
    slow = (slowing + [4])[-84:]
    assert accelerating_decline("logins", slow, _buckets(slow), CLOCK, 90, rules) is None
    young = accelerating_decline("logins", fast, _buckets(fast), CLOCK, 10, rules)
    assert young is None  # not a full window of history yet


def _champion(seen_days_ago: int) -> AccountState:
    s = AccountState()
    day = CLOCK - seen_days_ago
    s.apply(TelemetryEvent("c", "a", EventType.CHAMPION_CHANGED, day * MS_PER_DAY, 1, "chris", {}))
    s.advance_to(CLOCK)
    return s


def _fortnights(prior_per_day: int, last_per_day: int) -> list[int]:
    """84 days whose last complete fortnights run at the given rates, with some daily wobble."""
    wobble = [1, -1, 0, 2, -2, 1, -1]
    days = [prior_per_day + wobble[i % 7] for i in range(69)]
    days += [max(0, last_per_day + wobble[i % 7]) for i in range(14)]
    return days + [0]  # today, still filling up, is left out


def test_several_signals_declining_is_yellow_with_the_champion_and_red_without() -> None:
    p = P["multi_signal_decline"]
    dailies = {
        "logins": _fortnights(6, 2),
        "value_actions": _fortnights(5, 2),
        "api_calls": _fortnights(40, 39),
    }
    declining = declining_series(dailies, [], p)
    assert set(declining) == {"logins", "value_actions"}
    assert declining["logins"]["change_pct"] == pytest.approx(-66.7, abs=0.1)
    found = multi_signal_decline(_champion(2), declining, p)
    assert found is not None and found.severity == "yellow"
    assert found.evidence["champion"]["status"] == "responsive"
    silent = _champion(30)
    found = multi_signal_decline(silent, declining, p)
    assert found is not None and found.severity == "red"
    assert found.evidence["champion"]["days_silent"] == 30
    one = declining_series({"logins": _fortnights(6, 2), "value_actions": _fortnights(5, 5)}, [], p)
    assert multi_signal_decline(_champion(2), one, p) is None
    gone = champion_silent(silent, P["champion_silent"])
    assert gone is not None and gone.evidence["champion"] == "chris"


def test_findings_through_a_day_of_events_match_a_fresh_reading() -> None:
    """Incremental: an event of today updates only today's part of what the detectors read;
    the findings after each event equal those of a state read from scratch."""
    from scoring.detectors import DetectorSet
    from scoring.profile import load_profile
    from windows.snapshot import decode_state, encode_state

    detectors = DetectorSet(load_profile().detectors)
    state = AccountState()
    start = CLOCK - 83
    speeding = [20] * 24 + [round(20 - 0.004 * k * k) for k in range(59)]
    for offset, count in enumerate(speeding):
        day = start + offset
        ts = day * MS_PER_DAY + 3_600_000
        state.apply(TelemetryEvent("c", "a", EventType.CHAMPION_CHANGED, ts, 1, "chris", {}))
        if count:
            for etype in (EventType.LOGIN, EventType.VALUE_ACTION):
                event = TelemetryEvent(f"{etype}-{day}", "a", etype, ts, count, "ann", {})
                state.apply(event)
    state.advance_to(CLOCK)
    first = detectors.evaluate(state, None)
    assert {f.detector for f in first} >= {"accelerating_decline", "multi_signal_decline"}
    for hour in range(1, 12):
        ts = CLOCK * MS_PER_DAY + hour * 3_600_000
        etype = EventType.LOGIN if hour % 2 else EventType.VALUE_ACTION
        state.apply(TelemetryEvent(f"today-{hour}", "a", etype, ts, 3, "ann", {}))
        now = detectors.evaluate(state, etype, CLOCK)
        fresh = detectors.evaluate(decode_state(encode_state(state)), None)
        assert [(f.key, f.severity, f.evidence) for f in now] == [
            (f.key, f.severity, f.evidence) for f in fresh
        ]
