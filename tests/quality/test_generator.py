"""The synthetic population: realistic counts, healthy facts, the changes it promises, order."""

from collections import Counter
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from quality.generator import (
    AccountPlan,
    GeneratorSettings,
    Kind,
    account_records,
    generate,
    plan_accounts,
    users_for,
)
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

#: 52 weeks of steady life, starting on a Monday
YEAR = GeneratorSettings(start=date(2024, 12, 30), history_days=357, change_spread=7, follow_days=0)
SMALL = GeneratorSettings(
    volumes=(5, 200), steady_per_volume=1, changed_per_volume=1, history_days=40, follow_days=20
)


def plan(kind: Kind, volume: int, index: int = 0, change_day: int = 0) -> AccountPlan:
    users = users_for(volume, 10)
    return AccountPlan(
        index, f"a{index}", kind, volume, change_day, tuple(f"a{index}-u{u}" for u in range(users))
    )


def daily_totals(days: list[list[TelemetryEvent]], etype: EventType) -> np.ndarray:
    return np.array([sum(e.value for e in day if e.type is etype) for day in days])


def value_actions(volume: int, accounts: int = 6) -> np.ndarray:
    """Daily value-action totals, one row per steady account over the year."""
    rows = [
        daily_totals(account_records(plan(Kind.STEADY, volume, i), YEAR), EventType.VALUE_ACTION)
        for i in range(accounts)
    ]
    return np.array(rows)


def test_weekly_totals_average_the_volume_and_are_overdispersed() -> None:
    weekly = value_actions(200).reshape(6, 52, 7).sum(axis=2)
    assert 180 <= weekly.mean() <= 210
    # a Poisson count's variance equals its mean; real usage varies far more
    assert weekly.var(axis=1).mean() > 3 * weekly.mean()


def test_weekend_days_and_holidays_are_quieter() -> None:
    daily = value_actions(1000, accounts=3)
    days = [YEAR.start + timedelta(days=d) for d in range(YEAR.days)]
    weekend = np.array([d.weekday() >= 5 for d in days])
    holiday = np.array([(d.month, d.day) in {(7, 4), (9, 1), (12, 25)} for d in days])
    weekday = ~weekend & ~holiday
    assert daily[:, weekend].mean() < 0.45 * daily[:, weekday].mean()
    assert daily[:, holiday].mean() < 0.2 * daily[:, weekday].mean()


def test_a_day_carries_its_count_in_a_few_records() -> None:
    days = account_records(plan(Kind.STEADY, 1000), YEAR)
    per_day = [sum(e.type is EventType.VALUE_ACTION for e in day) for day in days]
    assert max(per_day) <= YEAR.max_events_per_day
    assert all(e.value >= 1 for day in days for e in day if e.type is EventType.VALUE_ACTION)


def test_users_log_in_at_most_once_a_day_and_the_champion_is_one_of_them() -> None:
    account = plan(Kind.STEADY, 200)
    days = account_records(account, YEAR)
    for day in days:
        logins = Counter(e.user_id for e in day if e.type is EventType.LOGIN)
        assert set(logins) <= set(account.users)
        assert max(logins.values(), default=1) == 1
    champion_days = sum(any(e.user_id == account.champion for e in day) for day in days)
    assert champion_days > 100
    assert 1 <= users_for(2, 10) < users_for(50, 10) < users_for(1000, 10) == 10


def test_the_facts_keep_the_account_healthy_and_out_of_onboarding() -> None:
    days = account_records(plan(Kind.STEADY, 50), YEAR)
    first = sorted(days[0], key=lambda e: e.ts_ms)[:2]
    assert [e.type for e in first] == [EventType.ACCOUNT_FACTS, EventType.CHAMPION_CHANGED]
    facts = first[0].attrs
    assert date.fromisoformat(facts["contract_start"]) < YEAR.start - timedelta(days=300)
    end = YEAR.start + timedelta(days=YEAR.days)
    assert date.fromisoformat(facts["renewal_date"]) > end + timedelta(days=365)
    events = [e for day in days for e in day]
    invoices = [e for e in events if e.type is EventType.INVOICE_PAID]
    assert len(invoices) == 12 and all(e.attrs["days_late"] == 0 for e in invoices)
    assert all(e.attrs["csat"] >= 4 for e in events if e.type is EventType.SUPPORT_TICKET_RESOLVED)
    assert sum(e.type is EventType.MEETING_ATTENDED for e in events) == 12


CHANGE = 100
FOLLOW = replace(YEAR, history_days=CHANGE, follow_days=150, change_spread=1)


def daily(kind: Kind, etype: EventType, accounts: int = 8) -> np.ndarray:
    """Daily totals of accounts of volume 1000 whose change comes on day ``CHANGE``."""
    rows = [
        daily_totals(account_records(plan(kind, 1000, i, CHANGE), FOLLOW), etype)
        for i in range(accounts)
    ]
    return np.array(rows)


@pytest.mark.parametrize(
    ("kind", "etype", "low", "high"),
    [
        (Kind.STEADY, EventType.VALUE_ACTION, 0.8, 1.25),
        (Kind.DROP_30, EventType.VALUE_ACTION, 0.22, 0.4),
        (Kind.DROP_30, EventType.LOGIN, 0.8, 1.25),
        (Kind.DROP_10, EventType.VALUE_ACTION, 0.06, 0.14),
        (Kind.MULTI_DECLINE_RESPONSIVE, EventType.INTEGRATION_MESSAGE_SENT, 0.25, 0.45),
        (Kind.SILENCE, EventType.LOGIN, 0.0, 0.0),
    ],
)
def test_a_change_does_what_its_kind_says(
    kind: Kind, etype: EventType, low: float, high: float
) -> None:
    counts = daily(kind, etype)
    before, after = counts[:, CHANGE - 56 : CHANGE].mean(), counts[:, CHANGE : CHANGE + 56].mean()
    assert low <= after / before <= high


def test_a_dip_comes_back_and_a_fade_reaches_a_fifth() -> None:
    dip = daily(Kind.DIP_10D, EventType.VALUE_ACTION)
    before = dip[:, CHANGE - 28 : CHANGE].mean()
    assert dip[:, CHANGE : CHANGE + 10].mean() < 0.35 * before
    assert dip[:, CHANGE + 14 : CHANGE + 42].mean() > 0.8 * before
    fade = daily(Kind.SLOW_FADE, EventType.VALUE_ACTION)
    before = fade[:, CHANGE - 56 : CHANGE].mean()
    assert 0.4 <= fade[:, CHANGE + 35 : CHANGE + 56].mean() / before <= 0.8
    assert 0.12 <= fade[:, CHANGE + 91 : CHANGE + 147].mean() / before <= 0.3


def test_silence_stops_every_record_and_the_silent_champion_vanishes() -> None:
    silent = account_records(plan(Kind.SILENCE, 200, 0, CHANGE), FOLLOW)
    assert all(not day for day in silent[CHANGE:])
    for kind, seen in ((Kind.MULTI_DECLINE_SILENT, False), (Kind.MULTI_DECLINE_RESPONSIVE, True)):
        account = plan(kind, 200, 0, CHANGE)
        days = account_records(account, FOLLOW)
        after = [e for day in days[CHANGE:] for e in day if e.user_id == account.champion]
        assert bool(after) is seen
        assert any(e.type is EventType.LOGIN for day in days[CHANGE:] for e in day)


def test_records_are_in_time_order_with_two_ticks_a_day_and_unique_ids() -> None:
    dataset = generate(SMALL)
    records = dataset.records
    assert all(a.ts_ms <= b.ts_ms for a, b in zip(records, records[1:], strict=False))
    ticks = [e.ts_ms for e in records if e.type is EventType.TICK]
    start = SMALL.start_day * MS_PER_DAY
    assert ticks == [start + d * MS_PER_DAY // 2 for d in range(2 * SMALL.days)]
    ids = [e.event_id for e in records if e.type is not EventType.TICK]
    assert len(ids) == len(set(ids))
    assert {e.account_id for e in records if e.account_id} == {
        p.account_id for p in dataset.accounts
    }


def test_the_same_seed_gives_the_same_records() -> None:
    assert generate(SMALL).records == generate(SMALL).records
    assert generate(SMALL).records != generate(replace(SMALL, seed=8)).records


def test_the_population_has_every_kind_at_every_volume_with_spread_change_days() -> None:
    plans = plan_accounts(replace(SMALL, changed_per_volume=7))
    cells = Counter((p.kind, p.volume) for p in plans)
    assert set(cells) == {(k, v) for k in Kind for v in SMALL.volumes}
    drops = [p.change_day for p in plans if p.kind is Kind.DROP_30 and p.volume == 5]
    assert sorted(drops) == [SMALL.history_days + i for i in range(7)]
    assert SMALL.days == SMALL.history_days + SMALL.change_spread + SMALL.follow_days
