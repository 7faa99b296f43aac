"""The synthetic telemetry generator."""

from collections import Counter

import orjson

from stream.codec import decode_event
from stream.synthetic import Scenario, Trajectory, churn_labels, generate, trajectory_of
from windows.telemetry import COUNT_TYPES, MS_PER_DAY, EventType

SMALL = Scenario(accounts=60, days=40, seed=3)


def test_deterministic_for_a_seed() -> None:
    assert list(generate(SMALL)) == list(generate(SMALL))
    other = Scenario(accounts=60, days=40, seed=4)
    assert list(generate(other)) != list(generate(SMALL))


def test_records_follow_the_contract_in_time_order_with_daily_ticks() -> None:
    records = list(generate(SMALL))
    ts = [r["ts"] for r in records]
    assert ts == sorted(ts)
    ticks = [r for r in records if r["type"] == "tick"]
    assert len(ticks) == SMALL.days - 1
    assert all(t["ts"] % MS_PER_DAY == 0 for t in ticks)
    ids = [r["event_id"] for r in records if r["type"] != "tick"]
    assert len(ids) == len(set(ids))
    for r in records:
        event = decode_event(orjson.dumps(r))  # every record is valid input
        if event.type in COUNT_TYPES:
            assert event.value >= 0 and event.value == int(event.value)


def test_silent_accounts_stop_and_growing_accounts_grow() -> None:
    scenario = Scenario(accounts=200, days=90, seed=5)
    records = [r for r in generate(scenario) if r["type"] != "tick"]
    labels = churn_labels(scenario)
    by_account: dict[str, list[dict]] = {}
    for r in records:
        by_account.setdefault(r["account_id"], []).append(r)
    start_ms = records[0]["ts"] // MS_PER_DAY * MS_PER_DAY
    silent = [a for a in by_account if trajectory_of(scenario, a) is Trajectory.GOES_SILENT]
    assert silent
    for account in silent:
        went_quiet = labels[account]
        assert went_quiet is not None
        last = max(r["ts"] for r in by_account[account])
        assert last < (went_quiet.toordinal() - 719163) * MS_PER_DAY
    growing = [a for a in by_account if trajectory_of(scenario, a) is Trajectory.GROWING]
    early = late = 0
    for account in growing:
        for r in by_account[account]:
            if r["type"] != EventType.VALUE_ACTION:
                continue
            day = (r["ts"] - start_ms) // MS_PER_DAY
            early += r["value"] if day < 14 else 0
            late += r["value"] if day >= scenario.days - 14 else 0
    assert late > 1.5 * early


def test_mix_is_roughly_respected() -> None:
    scenario = Scenario(accounts=2000, days=1)
    counts = Counter(trajectory_of(scenario, scenario.account_id(i)) for i in range(2000))
    for trajectory, share in scenario.mix:
        assert abs(counts[trajectory] / 2000 - share) < 0.04
