"""The synthetic telemetry generator: deterministic, ordered, valid, and true to its story."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from healthstream.dev.synthetic import (
    DEFAULT_MIX,
    FEATURES,
    Scenario,
    Trajectory,
    churn_labels,
    generate,
    trajectory_of,
    write_jsonl,
)
from windows.telemetry import COUNT_TYPES, MS_PER_DAY, EventType

SMALL = Scenario(accounts=60, days=40, seed=3)
STORY = Scenario(accounts=240, days=90, seed=5)
KEYS = {"event_id", "account_id", "type", "ts", "user_id", "value", "attrs"}
TYPES = {t.value for t in EventType} - {EventType.TICK.value}


@cache
def records(scenario: Scenario) -> tuple[dict[str, Any], ...]:
    return tuple(generate(scenario))


@cache
def by_account(scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records(scenario):
        if r["type"] != "tick":
            out[r["account_id"]].append(r)
    return out


def day_of(scenario: Scenario, record: dict[str, Any]) -> int:
    """The scenario day (0 = ``scenario.start``) of a record."""
    return int(record["ts"] - scenario.start_ms) // MS_PER_DAY


def accounts_of(scenario: Scenario, trajectory: Trajectory) -> list[str]:
    ids = (scenario.account_id(i) for i in range(scenario.accounts))
    return [a for a in ids if trajectory_of(scenario, a) is trajectory]


def digest(scenario: Scenario) -> str:
    h = hashlib.sha256()
    for r in generate(scenario):
        h.update(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


# -- determinism --------------------------------------------------------------------------


def test_same_seed_same_records_other_seed_other_records() -> None:
    assert list(generate(SMALL)) == list(records(SMALL))
    other = Scenario(accounts=SMALL.accounts, days=SMALL.days, seed=4)
    assert list(generate(other)) != list(records(SMALL))
    assert churn_labels(SMALL) == churn_labels(SMALL)


def test_records_do_not_depend_on_the_process_hash_seed() -> None:
    scenario = Scenario(accounts=20, days=15, seed=11)
    code = (
        "import hashlib, orjson\n"
        "from healthstream.dev.synthetic import Scenario, generate\n"
        "h = hashlib.sha256()\n"
        "for r in generate(Scenario(accounts=20, days=15, seed=11)):\n"
        "    h.update(orjson.dumps(r, option=orjson.OPT_SORT_KEYS))\n"
        "print(h.hexdigest())\n"
    )
    root = Path(__file__).parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)},
        check=True,
    )
    assert done.stdout.strip() == digest(scenario)


def test_generation_is_streamed_day_by_day() -> None:
    # about a billion records in all: only possible if they are not built up front
    huge = Scenario(accounts=2_000, days=100_000)
    first_day = list(itertools.islice(generate(huge), 2_000))
    assert first_day[-1]["ts"] < huge.start_ms + MS_PER_DAY


# -- order, ticks and the contract --------------------------------------------------------


def test_ts_never_decreases_and_a_tick_opens_every_day_after_the_first() -> None:
    rs = records(SMALL)
    ts = [r["ts"] for r in rs]
    assert ts == sorted(ts)
    ticks = [i for i, r in enumerate(rs) if r["type"] == "tick"]
    assert [rs[i] for i in ticks] == [
        {"type": "tick", "ts": SMALL.start_ms + d * MS_PER_DAY} for d in range(1, SMALL.days)
    ]
    for i in ticks:  # the last record of the day before, then the tick, then the new day
        assert rs[i - 1]["ts"] < rs[i]["ts"]
        assert day_of(SMALL, rs[i + 1]) == day_of(SMALL, rs[i])
    assert day_of(SMALL, rs[0]) == 0 and day_of(SMALL, rs[-1]) == SMALL.days - 1


def test_no_ticks_when_asked() -> None:
    quiet = Scenario(accounts=10, days=20, seed=3, ticks=False)
    rs = list(generate(quiet))
    assert rs and all(r["type"] != "tick" for r in rs)


def test_every_record_follows_the_event_contract() -> None:
    rs = [r for r in records(SMALL) if r["type"] != "tick"]
    assert len({r["event_id"] for r in rs}) == len(rs)
    for r in rs:
        assert set(r) <= KEYS and KEYS - {"user_id"} <= set(r), r
        assert r["type"] in TYPES, r
        assert isinstance(r["event_id"], str) and r["event_id"]
        assert r["account_id"].startswith("acct-") and r["event_id"].startswith(r["account_id"])
        assert isinstance(r["ts"], int)
        assert isinstance(r["attrs"], dict)
        value = r["value"]
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value)
        if "user_id" in r:
            assert isinstance(r["user_id"], str)
            assert r["user_id"].startswith(r["account_id"] + "-u")
        if r["type"] in COUNT_TYPES:
            assert isinstance(value, int) and value >= 0, r
        check_attrs(r)
    # a CSM's manual override is a person's decision, not telemetry the generator simulates
    rare = {"support_ticket_escalated", "payment_failed", "manual_override"}
    assert {r["type"] for r in rs} >= TYPES - rare


def check_attrs(r: dict[str, Any]) -> None:
    kind, attrs, value = r["type"], r["attrs"], r["value"]
    if kind == "feature_used":
        assert attrs["feature"] in FEATURES and "user_id" in r
    elif kind == "login":
        assert "user_id" in r
    elif kind == "api_calls":
        assert isinstance(attrs["errors"], int) and 0 <= attrs["errors"] <= value
    elif kind.startswith("integration_"):
        expected = "slack" if kind == "integration_message_sent" else "jira"
        assert attrs["integration"] == expected
    elif kind.startswith("support_ticket_"):
        assert attrs["ticket_id"].startswith(r["account_id"])
        if kind == "support_ticket_resolved":
            assert attrs["csat"] in (1, 2, 3, 4, 5)
    elif kind == "invoice_paid":
        assert isinstance(attrs["days_late"], int) and attrs["days_late"] >= 0
    elif kind == "email_replied":
        assert isinstance(attrs["response_hours"], float) and attrs["response_hours"] >= 0
    elif kind == "nps_response":
        assert isinstance(value, int) and 0 <= value <= 10
    elif kind == "champion_changed":
        assert attrs["status"] in ("assigned", "departed")
        assert ("user_id" in r) == (attrs["status"] == "assigned")
    elif kind == "account_facts" and len(attrs) > 1:
        assert attrs["segment"] in ("enterprise", "smb", "startup")
        assert isinstance(attrs["plan"], str) and isinstance(attrs["api_driven"], bool)
        assert isinstance(attrs["seats"], int) and attrs["seats"] > 0
        assert date.fromisoformat(attrs["contract_start"]) < date.fromisoformat(
            attrs["renewal_date"]
        )


def test_each_account_opens_with_its_facts_and_champion() -> None:
    for account, events in by_account(SMALL).items():
        facts, champion = events[0], events[1]
        assert facts["type"] == "account_facts" and len(facts["attrs"]) == 6
        assert date.fromisoformat(facts["attrs"]["renewal_date"]) > SMALL.start
        assert champion["type"] == "champion_changed"
        assert champion["attrs"] == {"status": "assigned"}
        assert champion["user_id"] == f"{account}-u0"
        users = {e["user_id"] for e in events if "user_id" in e}
        assert 1 <= len(users) <= 20
        api = trajectory_of(SMALL, account) is Trajectory.API_DRIVEN
        assert facts["attrs"]["api_driven"] is api
    assert len(by_account(SMALL)) == SMALL.accounts


def test_write_jsonl_writes_every_record_as_a_line(tmp_path: Path) -> None:
    scenario = Scenario(accounts=8, days=12, seed=2)
    buffer = io.BytesIO()
    n = write_jsonl(scenario, buffer)
    lines = buffer.getvalue().splitlines()
    assert n == len(lines) == len(list(generate(scenario)))
    assert [orjson.loads(line) for line in lines] == list(generate(scenario))
    assert write_jsonl(scenario, tmp_path / "s.jsonl") == n
    assert (tmp_path / "s.jsonl").read_bytes() == buffer.getvalue()


# -- the trajectories ---------------------------------------------------------------------


def test_silent_accounts_have_no_events_of_any_kind_from_their_silent_day() -> None:
    labels = churn_labels(STORY)
    silent = accounts_of(STORY, Trajectory.GOES_SILENT)
    assert len(silent) >= 10
    for account in silent:
        went_quiet = labels[account]
        assert went_quiet is not None
        quiet_day = (went_quiet - STORY.start).days
        assert STORY.days // 2 <= quiet_day < STORY.days
        days = [day_of(STORY, e) for e in by_account(STORY)[account]]
        assert max(days) < quiet_day
        assert sum(1 for d in days if d >= quiet_day - 7) >= 5  # active right up to it


def test_growing_accounts_do_more_at_the_end_than_in_their_first_two_weeks() -> None:
    growing = accounts_of(STORY, Trajectory.GROWING)
    assert len(growing) >= 20
    grew = 0
    for account in growing:
        events = by_account(STORY)[account]
        born = day_of(STORY, events[0])
        actions = [(day_of(STORY, e), e["value"]) for e in events if e["type"] == "value_action"]
        early = sum(v for d, v in actions if d < born + 14)
        late = sum(v for d, v in actions if d >= STORY.days - 14)
        grew += late > early
    assert grew >= 0.9 * len(growing)


def test_champion_loss_accounts_lose_the_champion_then_fade() -> None:
    lost = accounts_of(STORY, Trajectory.CHAMPION_LOSS)
    assert len(lost) >= 10
    before = after = 0.0
    for account in lost:
        events = by_account(STORY)[account]
        departed = [e for e in events if e["attrs"].get("status") == "departed"]
        assert len(departed) == 1
        gone = day_of(STORY, departed[0])
        champion = f"{account}-u0"
        assert all(e.get("user_id") != champion for e in events if day_of(STORY, e) >= gone)
        for e in events:
            if e["type"] == "value_action":
                d = day_of(STORY, e)
                before += e["value"] if gone - 14 <= d < gone else 0
                after += e["value"] if gone + 21 <= d < gone + 35 else 0
    assert after < 0.75 * before


def test_slow_decline_accounts_fade_gradually() -> None:
    fading = accounts_of(STORY, Trajectory.SLOW_DECLINE)
    assert len(fading) >= 10
    month: defaultdict[int, int] = defaultdict(int)
    for account in fading:
        for e in by_account(STORY)[account]:
            if e["type"] == "value_action":
                month[day_of(STORY, e) // 30] += e["value"]
    assert month[0] > month[1] > month[2] > 0


def test_api_driven_accounts_call_the_api_and_rarely_log_in() -> None:
    api = accounts_of(SMALL, Trajectory.API_DRIVEN)
    others = [a for a in by_account(SMALL) if a not in api]
    assert api and others

    def per_account(accounts: list[str], kind: str) -> float:
        total = sum(e["value"] for a in accounts for e in by_account(SMALL)[a] if e["type"] == kind)
        return float(total) / len(accounts)

    assert per_account(api, "login") < 0.2 * per_account(others, "login")
    assert per_account(api, "api_calls") > 20 * per_account(others, "api_calls")
    for account in api:  # steady: calls on (nearly) every day
        days = {day_of(SMALL, e) for e in by_account(SMALL)[account] if e["type"] == "api_calls"}
        assert len(days) >= 0.8 * SMALL.days


def test_churn_labels_match_the_trajectories() -> None:
    labels = churn_labels(STORY)
    assert set(labels) == {STORY.account_id(i) for i in range(STORY.accounts)}
    churned: Counter[Trajectory] = Counter()
    for account, when in labels.items():
        trajectory = trajectory_of(STORY, account)
        if trajectory in (Trajectory.GROWING, Trajectory.STABLE, Trajectory.API_DRIVEN):
            assert when is None
        elif trajectory is Trajectory.GOES_SILENT:
            assert when is not None and when < STORY.end
        elif when is not None:
            assert when >= STORY.end  # near or after the end: no events contradict it
            churned[trajectory] += 1
    for trajectory in (Trajectory.SLOW_DECLINE, Trajectory.CHAMPION_LOSS):
        share = churned[trajectory] / len(accounts_of(STORY, trajectory))
        assert 0.4 <= share < 1.0  # most of them, not all


def test_the_mix_is_respected() -> None:
    scenario = Scenario(accounts=4000, days=1)
    counts = Counter(trajectory_of(scenario, scenario.account_id(i)) for i in range(4000))
    for trajectory, share in DEFAULT_MIX:
        assert abs(counts[trajectory] / 4000 - share) < 0.03
    only = Scenario(accounts=50, days=1, mix={"goes_silent": 3, Trajectory.GROWING: 1})
    assert dict(only.shares)[Trajectory.GOES_SILENT] == 0.75
    assert only.mix == only.shares  # normalised in place
    kinds = {trajectory_of(only, only.account_id(i)) for i in range(50)}
    assert kinds == {Trajectory.GOES_SILENT, Trajectory.GROWING}
    with pytest.raises(KeyError):
        trajectory_of(only, "acct-00050")
    with pytest.raises(ValueError):
        Scenario(mix={"stable": 0})


def test_intensity_scales_the_daily_activity() -> None:
    def activity(intensity: float) -> int:
        scenario = Scenario(accounts=40, days=30, seed=9, intensity=intensity)
        return sum(1 for r in generate(scenario) if r["type"] in COUNT_TYPES)

    full, fifth = activity(1.0), activity(0.2)
    assert 0.14 * full < fifth < 0.26 * full
    per_account_day = len(records(STORY)) / (STORY.accounts * STORY.days)
    assert 3.0 <= per_account_day <= 6.0
