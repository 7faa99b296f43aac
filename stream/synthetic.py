"""Synthetic but realistic telemetry: accounts that grow, hold steady, fade, go silent,
lose their champion, or live on the API. Deterministic for a seed; streamed day by day.

At intensity 1.0 an active account sends about three events a day, so 300 accounts over
120 days make roughly 100,000 events.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson

MS_PER_DAY = 86_400_000
_EPOCH = date(1970, 1, 1)
FEATURES = (
    "dashboards",
    "reports",
    "alerts",
    "workflows",
    "integrations",
    "exports",
    "sso",
    "api_keys",
)


class Trajectory(StrEnum):
    GROWING = "growing"
    STABLE = "stable"
    SLOW_DECLINE = "slow_decline"
    GOES_SILENT = "goes_silent"
    CHAMPION_LOSS = "champion_loss"
    API_DRIVEN = "api_driven"


DEFAULT_MIX: tuple[tuple[Trajectory, float], ...] = (
    (Trajectory.GROWING, 0.20),
    (Trajectory.STABLE, 0.35),
    (Trajectory.SLOW_DECLINE, 0.15),
    (Trajectory.GOES_SILENT, 0.10),
    (Trajectory.CHAMPION_LOSS, 0.10),
    (Trajectory.API_DRIVEN, 0.10),
)
SEGMENTS = (("enterprise", 0.2, (50, 400)), ("smb", 0.5, (8, 60)), ("startup", 0.3, (2, 15)))


@dataclass(frozen=True)
class Scenario:
    accounts: int = 300
    days: int = 120
    start: date = date(2026, 1, 1)
    seed: int = 7
    mix: tuple[tuple[Trajectory, float], ...] = DEFAULT_MIX
    ticks: bool = True
    intensity: float = 1.0

    def account_id(self, index: int) -> str:
        return f"acct-{index:05d}"


@dataclass
class AccountPlan:
    """Who an account is and what will happen to it; drawn once per account."""

    account_id: str
    trajectory: Trajectory
    segment: str
    plan: str
    seats: int
    users: list[str]
    activity: float  # value actions per day at full intensity
    api_per_day: int
    turn_day: int  # when a decline starts, the account goes silent, or the champion leaves
    renewal: date
    churned_at: date | None
    # mutable generation state
    counter: int = 0
    open_tickets: list[tuple[str, int]] = field(default_factory=list)


def _plan(scenario: Scenario, index: int) -> AccountPlan:
    rng = random.Random(f"{scenario.seed}:plan:{index}")
    pick = rng.random()
    trajectory = scenario.mix[-1][0]
    for t, share in scenario.mix:
        if pick < share:
            trajectory = t
            break
        pick -= share
    pick = rng.random()
    segment, seat_range = SEGMENTS[-1][0], SEGMENTS[-1][2]
    for name, share, seats in SEGMENTS:
        if pick < share:
            segment, seat_range = name, seats
            break
        pick -= share
    seats = rng.randint(*seat_range)
    account_id = scenario.account_id(index)
    users = [f"{account_id}-u{k}" for k in range(max(1, min(12, seats // 4 + 1)))]
    days = scenario.days
    if trajectory is Trajectory.GOES_SILENT:
        turn = rng.randint(int(days * 0.45), int(days * 0.75))
    elif trajectory is Trajectory.CHAMPION_LOSS:
        turn = rng.randint(int(days * 0.3), int(days * 0.6))
    else:
        turn = rng.randint(int(days * 0.2), int(days * 0.4))
    end = scenario.start + timedelta(days=days)
    churned: date | None = None
    if trajectory is Trajectory.GOES_SILENT:
        churned = scenario.start + timedelta(days=turn)
    elif trajectory is Trajectory.CHAMPION_LOSS and rng.random() < 0.7:
        churned = scenario.start + timedelta(days=turn + rng.randint(30, 75))
    elif trajectory is Trajectory.SLOW_DECLINE and rng.random() < 0.7:
        churned = end + timedelta(days=rng.randint(0, 60))
    return AccountPlan(
        account_id=account_id,
        trajectory=trajectory,
        segment=segment,
        plan=rng.choice(("starter", "growth", "enterprise")) if segment != "startup" else "starter",
        seats=seats,
        users=users,
        activity=rng.uniform(2, 12),
        api_per_day=rng.randint(200, 3000) if trajectory is Trajectory.API_DRIVEN else 0,
        turn_day=turn,
        renewal=scenario.start + timedelta(days=rng.randint(60, 360)),
        churned_at=churned,
    )


def _intensity(p: AccountPlan, day: int, days: int) -> float:
    """How active the account is on ``day`` (1.0 = its usual self)."""
    t = p.trajectory
    if t is Trajectory.GROWING:
        return 0.6 + 0.9 * day / days
    if t is Trajectory.SLOW_DECLINE:
        if day < p.turn_day:
            return 1.0
        return max(0.15, 1.0 - 0.85 * (day - p.turn_day) / max(1, days - p.turn_day))
    if t is Trajectory.GOES_SILENT:
        return 1.0 if day < p.turn_day else 0.0
    if t is Trajectory.CHAMPION_LOSS:
        return 1.0 if day < p.turn_day else max(0.25, 1.0 - (day - p.turn_day) / 40)
    return 1.0


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, mean**0.5)))
    n, limit, prod = 0, 2.718281828459045 ** (-mean), rng.random()
    while prod > limit:
        n += 1
        prod *= rng.random()
    return n


def _day_events(
    scenario: Scenario, p: AccountPlan, day: int, rng: random.Random
) -> list[dict[str, Any]]:
    f = _intensity(p, day, scenario.days)
    if f <= 0:
        return []
    k = scenario.intensity
    declining = f < 0.7
    base_ms = (scenario.start - _EPOCH).days * MS_PER_DAY + day * MS_PER_DAY
    out: list[dict[str, Any]] = []

    def emit(etype: str, value: float = 1, user: str | None = None, **attrs: Any) -> None:
        p.counter += 1
        record: dict[str, Any] = {
            "event_id": f"{p.account_id}-{p.counter}",
            "account_id": p.account_id,
            "type": etype,
            "ts": base_ms + rng.randrange(8 * 3_600_000, 18 * 3_600_000),
            "value": value,
            "attrs": attrs,
        }
        if user is not None:
            record["user_id"] = user
        out.append(record)

    if day == 0:
        emit(
            "account_facts",
            segment=p.segment,
            plan=p.plan,
            seats=p.seats,
            contract_start=scenario.start.isoformat(),
            renewal_date=p.renewal.isoformat(),
            api_driven=p.trajectory is Trajectory.API_DRIVEN,
        )
        emit("champion_changed", user=p.users[0], status="assigned")
    if p.trajectory is Trajectory.CHAMPION_LOSS and day == p.turn_day:
        emit("champion_changed", status="departed")
    api = p.trajectory is Trajectory.API_DRIVEN
    login_p = (0.04 if api else 0.22) * f * k
    for user in p.users:
        if rng.random() < login_p:
            emit("login", 1, user)
    actions = _poisson(rng, p.activity * f * k)
    if actions:
        emit("value_action", actions, rng.choice(p.users))
    for feature in FEATURES:
        if rng.random() < 0.09 * f * k * (1.0 if feature in FEATURES[:5] else 0.4):
            emit("feature_used", 1, rng.choice(p.users), feature=feature)
    if api or rng.random() < 0.15 * k:
        calls = _poisson(rng, (p.api_per_day or 40) * f)
        if calls:
            errors = _poisson(rng, calls * (0.05 if declining else 0.005))
            emit("api_calls", calls, errors=min(errors, calls))
    if rng.random() < 0.25 * f * k:
        emit("integration_message_sent", 1 + _poisson(rng, 4 * f), integration="slack")
    if rng.random() < 0.1 * f * k:
        emit("integration_ticket_created", 1, integration="jira")
        if rng.random() < (0.5 if declining else 0.9):
            emit("integration_ticket_closed", 1, integration="jira")
    # support: more tickets, more escalations and worse CSAT when declining
    if rng.random() < (0.05 if declining else 0.02):
        ticket = f"{p.account_id}-t{p.counter}"
        emit("support_ticket_opened", ticket_id=ticket)
        p.open_tickets.append((ticket, day + rng.randint(1, 20 if declining else 6)))
        if declining and rng.random() < 0.3:
            emit("support_ticket_escalated", ticket_id=ticket)
    still_open = []
    for ticket, due in p.open_tickets:
        if due <= day:
            csat = rng.randint(1, 3) if declining else rng.randint(4, 5)
            emit("support_ticket_resolved", ticket_id=ticket, csat=csat)
        else:
            still_open.append((ticket, due))
    p.open_tickets = still_open
    if day % 30 == 15:
        if declining and rng.random() < 0.2:
            emit("payment_failed")
        else:
            emit("invoice_paid", 1, days_late=rng.randint(5, 40) if declining else 0)
    if day % 14 == 7:
        attended = rng.random() < (0.45 if declining else 0.9)
        emit("meeting_attended" if attended else "meeting_missed")
    if day % 5 == 2 and rng.random() < f:
        hours = rng.uniform(30, 120) if declining else rng.uniform(1, 20)
        emit("email_replied", user=p.users[0], response_hours=round(hours, 1))
    if day % 60 == 45:
        emit("nps_response", rng.randint(2, 6) if declining else rng.randint(7, 10))
    return out


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """All records in non-decreasing ``ts`` order, with a tick at the start of each new day."""
    plans = [_plan(scenario, i) for i in range(scenario.accounts)]
    rng = random.Random(f"{scenario.seed}:events")
    base_ms = (scenario.start - _EPOCH).days * MS_PER_DAY
    for day in range(scenario.days):
        if day and scenario.ticks:
            yield {"type": "tick", "ts": base_ms + day * MS_PER_DAY}
        todays: list[dict[str, Any]] = []
        for p in plans:
            todays.extend(_day_events(scenario, p, day, rng))
        todays.sort(key=lambda r: r["ts"])
        yield from todays


def trajectory_of(scenario: Scenario, account_id: str) -> Trajectory:
    return _plan(scenario, int(account_id.rsplit("-", 1)[1])).trajectory


def churn_labels(scenario: Scenario) -> dict[str, date | None]:
    """When each account churns (None: it does not), consistent with ``generate``."""
    return {scenario.account_id(i): _plan(scenario, i).churned_at for i in range(scenario.accounts)}


def write_jsonl(scenario: Scenario, target: str | Path | IO[bytes]) -> int:
    """Write the scenario as JSONL; returns the number of records."""
    if isinstance(target, str | Path):
        with open(target, "wb") as f:
            return write_jsonl(scenario, f)
    n = 0
    for record in generate(scenario):
        target.write(orjson.dumps(record) + b"\n")
        n += 1
    return n
