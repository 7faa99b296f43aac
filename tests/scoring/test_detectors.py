"""Each detector on hand-made daily series, read day by day as the engine reads them."""

from __future__ import annotations

import random

import pytest

from scoring.detectors import (
    DETECTOR_DEFAULTS,
    DetectorSet,
    Finding,
    SeriesDay,
    accelerating_decline,
    champion_silent,
    multi_signal_decline,
    regime_change,
    series_decline,
    weakening_rebounds,
)
from scoring.profile import load_profile
from windows.account import AccountState
from windows.account import Series as SERIES
from windows.buckets import DailyBuckets
from windows.days import iso_day
from windows.snapshot import decode_state, encode_state
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

CLOCK = 20_600
P = DETECTOR_DEFAULTS
START = 20_300


def day_of(days: list[int]) -> SeriesDay:
    """The 84 complete days ending yesterday, all within the account's history."""
    assert len(days) == 84
    return SeriesDay(list(days), 0)


def weekly(*per_week: int) -> list[int]:
    """84 days from 12 weekly totals, each spread over its days (oldest week first)."""
    assert len(per_week) == 12
    days: list[int] = []
    for total in per_week:
        days += [total // 7 + (1 if i < total % 7 else 0) for i in range(7)]
    return days


class Series:
    """One account fed one series day by day; the detectors read it at each midnight tick
    and after each day's events, as the engine does."""

    def __init__(self, series: EventType = EventType.VALUE_ACTION) -> None:
        self.detectors = DetectorSet(load_profile().detectors)
        self.state = AccountState()
        self.etype = series
        self.day = START
        self.n = 0
        self.state.apply(self._event(EventType.ACCOUNT_FACTS, 1, {"segment": "smb"}))

    def _event(self, etype: EventType, value: int, attrs: dict[str, object]) -> TelemetryEvent:
        self.n += 1
        ts = self.day * MS_PER_DAY + 9 * 3_600_000 + self.n
        return TelemetryEvent(f"e{self.n}", "a", etype, ts, value, "ann", attrs)

    def midnight(self) -> list[Finding]:
        self.state.advance_to(self.day)
        return self.detectors.evaluate(self.state, None)

    def live(self, counts: list[int]) -> list[list[Finding]]:
        """Each day: the midnight tick, then the day's count; the findings after both."""
        out = []
        for count in counts:
            self.midnight()
            if count:
                self.state.apply(self._event(self.etype, count, {}))
            out.append(self.detectors.evaluate(self.state, self.etype, self.day))
            self.day += 1
        return out


def keys(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.detector, f.severity) for f in findings}


def noisy(per_week: float, days: int, seed: int, shape: float = 3.0) -> list[int]:
    """Gamma-Poisson daily counts with quieter weekends: what real usage looks like."""
    rng = random.Random(seed)
    out = []
    for d in range(days):
        weekday = 0.3 if d % 7 in (5, 6) else 1.0
        rate = per_week / (5 + 2 * 0.3) * weekday * rng.gammavariate(shape, 1 / shape)
        count, p = 0, rng.random()
        threshold = 2.718281828 ** (-rate)
        while p > threshold:  # Knuth's Poisson sampler; rates here stay small enough
            count += 1
            p *= rng.random()
        out.append(count)
    return out


@pytest.mark.parametrize("per_week", [3, 15, 60, 300])
def test_steady_noisy_usage_is_rarely_yellow_and_never_red_at_any_volume(per_week: int) -> None:
    """Eight steady accounts, 240 days each (about 63 account-months): a yellow finding at
    most twice (the detectors' stated rate is a few per 100 account-months), never red."""
    yellow_onsets = 0
    for seed in range(8):
        before: set[str] = set()
        for day in Series().live(noisy(per_week, 240, seed)):
            assert all(f.severity != "red" for f in day), (per_week, seed)
            now = {f.key for f in day if f.severity == "yellow"}
            yellow_onsets += len(now - before)
            before = now
    assert yellow_onsets <= 2


def test_today_is_not_a_silent_day() -> None:
    """At the midnight tick today holds nothing yet: that must read as no day at all."""
    acct = Series()
    acct.live([30] * 60)
    evening = acct.detectors.evaluate(acct.state, None)
    assert evening == []
    assert acct.midnight() == []  # 00:00: today is empty, nothing fires
    # six complete silent days and an empty today: not yet the 7 days of a regime change
    acct.live([0] * 6)
    assert "regime_change" not in {f.detector for f in acct.midnight()}
    acct.live([0])
    change = [f for f in acct.midnight() if f.detector == "regime_change"]
    assert change and change[0].evidence["zero_days"] == 7
    assert change[0].evidence["last_active_day"] == iso_day(START + 59)


def test_a_sparse_series_quiet_for_a_week_is_not_a_regime_change() -> None:
    sparse = [1 if d % 2 == 0 else 0 for d in range(70)]  # about 3.5 a week
    acct = Series(EventType.INTEGRATION_MESSAGE_SENT)
    acct.live(sparse + [0] * 9)
    assert not [f for f in acct.midnight() if f.detector == "regime_change"]
    busy = Series(EventType.INTEGRATION_MESSAGE_SENT)
    busy.live([15] * 70 + [0] * 7)
    assert [f.severity for f in busy.midnight() if f.detector == "regime_change"] == ["red"]


def test_a_drop_that_lasts_20_weeks_stays_a_drop_with_no_recovery() -> None:
    acct = Series()
    before = noisy(40, 120, seed=7)
    acct.live(before)
    usual = sum(before[-56:]) / 8
    after = acct.live(noisy(4, 140, seed=8))  # to 10%, for 20 weeks
    first = next(i for i, day in enumerate(after) if ("drop_no_recovery", "yellow") in keys(day))
    assert first <= 21
    assert all(("drop_no_recovery", "yellow") in keys(day) for day in after[first:])
    drop = next(f for f in after[-1] if f.detector == "drop_no_recovery")
    assert drop.evidence["usual_per_week"] == pytest.approx(usual, rel=0.3)
    assert drop.evidence["days_down"] >= 140
    assert drop.evidence["change_pct"] < -70
    assert drop.evidence["drop_start"] <= "2026-01-15"


def test_the_weeks_that_leave_the_view_keep_the_usual_level_in_the_state() -> None:
    acct = Series()
    acct.live([2] * 7 * 20)  # 14 a week, for 20 weeks
    mean, variance, weeks = acct.state.long_weeks[str(int(SERIES.VALUE_ACTIONS))][1:4]
    # the weeks older than the 84-day view, whole weeks only (Monday to Sunday)
    assert mean == 14.0 and variance == 0.0
    assert 6 <= weeks <= 8
    again = decode_state(encode_state(acct.state))
    assert again.long_weeks == acct.state.long_weeks


def test_a_sparse_drop_that_lasts_months_is_judged_against_the_weeks_before_the_view() -> None:
    # 2 value actions a week for 40 weeks, then 0.4 a week: a month of that says little,
    # two months against the level before the 84-day view say enough
    flagged_at_8_weeks = 0
    for seed in range(10):
        acct = Series()
        acct.live(noisy(2, 280, seed=seed))
        after = acct.live(noisy(0.4, 140, seed=100 + seed))
        flagged = [("drop_no_recovery", "yellow") in keys(day) for day in after]
        flagged_at_8_weeks += flagged[56]
        assert flagged[-1], seed  # still flagged after 20 weeks
        if flagged[56]:
            drop = next(f for f in after[56] if f.detector == "drop_no_recovery")
            assert drop.evidence["usual_per_week"] >= 1.5  # the level before, not the new low
    assert flagged_at_8_weeks >= 7


def test_a_sparse_steady_series_starts_no_drop_in_the_long_view() -> None:
    # a drop the long view starts has lasted 56 days or more when it is first seen
    long_onsets = 0
    for seed in range(10):
        acct = Series()
        days = acct.live(noisy(2, 420, seed=200 + seed))
        seen: set[str] = set()
        for findings in days:
            for f in findings:
                if f.detector in ("single_drop", "drop_no_recovery"):
                    start = f.evidence["drop_start"]
                    if start not in seen and f.evidence["days_down"] >= 56:
                        long_onsets += 1
                    seen.add(start)
    assert long_onsets <= 1


def test_a_dip_that_recovers_within_two_weeks_is_only_monitored() -> None:
    acct = Series()
    acct.live(noisy(200, 120, seed=3))
    days = acct.live(noisy(20, 10, seed=4) + noisy(200, 40, seed=5))
    seen = {k for day in days for k in keys(day)}
    assert ("single_drop", "monitor") in seen
    assert {sev for _, sev in seen} == {"monitor"}
    recovered = [f for day in days for f in day if f.evidence.get("recovered")]
    assert recovered and recovered[-1].evidence["days_down"] <= 21
    assert days[-1] == []  # shown for two weeks once recovered, then gone


def test_a_drop_record_survives_a_snapshot() -> None:
    acct = Series()
    acct.live(noisy(40, 120, seed=1) + noisy(4, 30, seed=2))
    restored = decode_state(encode_state(acct.state))
    assert restored.watch == acct.state.watch and restored.watch
    fresh = acct.detectors.evaluate(restored, None)
    now = acct.detectors.evaluate(acct.state, None)
    assert [(f.key, f.evidence) for f in fresh] == [(f.key, f.evidence) for f in now]


def test_accelerating_decline_is_a_clear_fall_that_speeds_up() -> None:
    buckets = DailyBuckets()
    speeding = [20] * 42 + [20] * 14 + [14] * 14 + [4] * 14
    found = accelerating_decline(
        "logins", day_of(speeding), buckets, CLOCK, P["accelerating_decline"]
    )
    assert found is not None and found.severity == "yellow"
    assert found.evidence["fortnight_totals"] == [280, 196, 56]
    # two noisy fortnight steps at small counts (82 -> 74 -> 49) are not acceleration
    small = [0] * 42 + _spread(82, 14) + _spread(74, 14) + _spread(49, 14)
    assert (
        accelerating_decline("logins", day_of(small), buckets, CLOCK, P["accelerating_decline"])
        is None
    )


def _spread(total: int, days: int) -> list[int]:
    return [total // days + (1 if i < total % days else 0) for i in range(days)]


def test_repeated_drops_with_weaker_rebounds_are_found() -> None:
    days = weekly(70, 70, 70, 70, 20, 60, 60, 15, 45, 45, 10, 30)
    found = weakening_rebounds("logins", day_of(days), CLOCK, P["weakening_rebounds"])
    assert found is not None and found.severity == "yellow"
    assert found.evidence["drop_lows"] == [20, 15, 10]
    # the same shape at three events a week: ordinary noise
    quiet = weekly(3, 3, 3, 3, 1, 3, 3, 1, 2, 2, 0, 2)
    assert weakening_rebounds("logins", day_of(quiet), CLOCK, P["weakening_rebounds"]) is None


def _champion(days_silent: int) -> AccountState:
    state = AccountState()
    state.champion_user = "chris"
    state.clock = CLOCK
    state.champion_last_seen_day = CLOCK - days_silent
    return state


def test_several_signals_declining_is_yellow_with_the_champion_and_red_without() -> None:
    p = P["multi_signal_decline"]
    falling = day_of([10] * 70 + [3] * 14)
    steady = day_of(_spread(70 * 40, 70) + [40] * 14)
    assert series_decline(steady, p) is None
    entry = series_decline(falling, p)
    assert entry is not None and entry["change_pct"] == pytest.approx(-70, abs=0.1)
    declining = {"logins": entry, "value_actions": entry}
    found = multi_signal_decline(_champion(2), declining, p)
    assert found is not None and found.severity == "yellow"
    assert found.evidence["champion"]["status"] == "responsive"
    silent = _champion(30)
    found = multi_signal_decline(silent, declining, p)
    assert found is not None and found.severity == "red"
    assert found.evidence["champion"]["days_silent"] == 30
    assert multi_signal_decline(_champion(2), {"logins": entry}, p) is None
    gone = champion_silent(silent, P["champion_silent"])
    assert gone is not None and gone.evidence["champion"] == "chris"
    # a 70% fall at two events a week is within noise
    assert series_decline(day_of(weekly(*[2] * 10, 1, 0)), p) is None


def test_regime_change_reads_the_four_steady_weeks_before_the_silence() -> None:
    p = P["regime_change"]
    found = regime_change("api_calls", day_of([0] * 40 + [50] * 34 + [0] * 10), CLOCK, p)
    assert found is not None and found.evidence["zero_days"] == 10
    assert found.evidence["per_week_before"] == 350.0
    fading = [0] * 46 + [50] * 7 + [30] * 7 + [20] * 7 + [5] * 7 + [0] * 10
    assert regime_change("api_calls", day_of(fading), CLOCK, p) is None


def test_findings_through_a_day_of_events_match_a_fresh_reading() -> None:
    """Today's events change nothing the series detectors read; a late event of an earlier
    day does, and the findings after it equal those of a state read from scratch."""
    acct = Series()
    acct.live(noisy(50, 100, seed=11) + noisy(5, 25, seed=12))
    state = acct.state
    acct.midnight()
    before = acct.detectors.evaluate(state, None)
    for hour in range(1, 6):
        ts = acct.day * MS_PER_DAY + hour * 3_600_000
        event = TelemetryEvent(f"today-{hour}", "a", EventType.VALUE_ACTION, ts, 9, "ann", {})
        state.apply(event)
        now = acct.detectors.evaluate(state, EventType.VALUE_ACTION, acct.day)
        assert [(f.key, f.evidence) for f in now] == [(f.key, f.evidence) for f in before]
    late = TelemetryEvent(
        "late", "a", EventType.VALUE_ACTION, (acct.day - 1) * MS_PER_DAY, 40, "ann", {}
    )
    state.apply(late)
    now = acct.detectors.evaluate(state, EventType.VALUE_ACTION, acct.day - 1)
    fresh = acct.detectors.evaluate(decode_state(encode_state(state)), None)
    assert [(f.key, f.evidence) for f in now] == [(f.key, f.evidence) for f in fresh]


def test_a_drop_first_seen_three_weeks_in_is_no_recovery_at_once() -> None:
    # at 2 a week, a drop read first over its longest window (4 weeks: the noise hid it
    # before) has lasted three weeks already: yellow from the first reading, not monitor
    # for a night
    acct = Series()
    acct.live(noisy(2, 120, seed=1))
    days = acct.live(noisy(0.6, 60, seed=101))  # to 30% of 2 a week
    drops = [
        (i, f.detector) for i, day in enumerate(days) for f in day if f.series == "value_actions"
    ]
    assert drops, "the drop to 10% was found"
    first_day = drops[0][0]
    first = {d for i, d in drops if i == first_day}
    later = {d for i, d in drops if i == first_day + 1}
    assert not (first == {"single_drop"} and later == {"drop_no_recovery"})


def test_a_finding_read_afresh_survives_a_quiet_reading_and_the_day_after() -> None:
    detectors = DetectorSet(load_profile().detectors)
    state = AccountState()
    state.apply(TelemetryEvent("x", "a", EventType.VALUE_ACTION, START * MS_PER_DAY, 1))
    finding = Finding("weakening_rebounds", "yellow", "value_actions", {"rebounds": [0.5]})
    detectors._hold(state, [finding])  # read on day START
    for later in (1, 2):
        state.advance_to(START + later)
        held: list[Finding] = []
        detectors._hold(state, held)  # not read again on the next two days: still on
        assert [f.key for f in held] == [finding.key], later
    state.advance_to(START + 3)
    gone: list[Finding] = []
    detectors._hold(state, gone)
    assert gone == []


def test_a_finding_that_turned_off_stays_off_through_the_next_day() -> None:
    detectors = DetectorSet(load_profile().detectors)
    state = AccountState()
    state.apply(TelemetryEvent("x", "a", EventType.VALUE_ACTION, START * MS_PER_DAY, 1))
    wavering = "weakening_rebounds:logins"
    # emitted on, then off today; a drop growing from its first stage to its second has
    # not turned off
    detectors.turned_off(
        state,
        [wavering, "single_drop:value_actions"],
        ["drop_no_recovery:value_actions"],
    )
    assert state.resting == {wavering: START + 1}
    evidence = {"rebounds": [0.5]}
    for day, shown in ((START, False), (START + 1, False), (START + 2, True)):
        state.advance_to(day)
        # read afresh again each day: the condition is back at once
        state.held_findings[wavering] = [
            day + 2,
            "weakening_rebounds",
            "yellow",
            "logins",
            evidence,
        ]
        found = detectors.evaluate(state, None)
        assert (wavering in [f.key for f in found]) is shown, day
    # the rest is part of the state: a restarted worker keeps it
    assert decode_state(encode_state(state)).resting == state.resting
