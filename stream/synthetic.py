"""Synthetic customer telemetry for the demo, the tests and the benchmarks.

Accounts follow one of six trajectories (:class:`Trajectory`): they grow, hold steady,
fade slowly, go silent (active, then zero activity of every kind), lose their champion and
decline, or live on the API. Everything is drawn from seeded ``random.Random`` instances,
so a :class:`Scenario` always yields the same records, and :func:`generate` streams them
day by day in non-decreasing ``ts`` order (one day's records in memory at a time).

Volume at ``intensity=1.0``: an active account sends about 4.5 events a day on average
(about 5.5 on a weekday, 2 on a weekend day; logins are the largest share), so 300 accounts
over 120 days make about 150,000 records and 100,000 accounts over 10 days about 4.5
million. ``intensity`` scales the daily activity (logins, value actions, feature use, API
batches, integrations, support tickets) linearly; the cadenced events (invoices, meetings,
emails, NPS, facts) do not scale, so ``intensity=0.2`` gives about 1.2 events per account
per day (100,000 accounts x 10 days is then about 1.2 million records).

What the trajectories look like (``D`` = ``Scenario.days``):

- ``growing``: usage ramps from 0.5x to 1.6x, more users and features over time; a quarter
  of them are new logos that onboard during the first quarter of the span.
- ``stable``: steady usage; a quarter of them have a one-week dip that recovers.
- ``slow_decline``: from a day in [0.1 D, 0.4 D] usage, users and features fade; support
  tickets grow, CSAT falls, invoices are paid later. 70% churn in [D, D + 45].
- ``goes_silent``: healthy until a day in the second half, then nothing at all (churn = that
  day).
- ``champion_loss``: ``champion_changed`` ``departed`` in [0.25 D, 0.6 D]; meetings are
  missed and emails answered slowly at once, usage declines over 3-7 weeks. 70% churn
  after the end; the others get a new champion 2-5 weeks later and recover.
- ``api_driven``: few logins, steady heavy ``api_calls``; ``account_facts.api_driven`` true.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from windows.telemetry import MS_PER_DAY

__all__ = [
    "DEFAULT_MIX",
    "FEATURES",
    "Scenario",
    "Trajectory",
    "churn_labels",
    "generate",
    "trajectory_of",
    "write_jsonl",
]

#: The product's features, most widely adopted first (the first five are the default
#: scoring profile's core features).
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

_OPEN_MS = 8 * 3_600_000  # business hours are 08:00-18:00 UTC
_HOURS_MS = 10 * 3_600_000
_WEEKEND = 0.3  # share of weekday user activity that happens on a Saturday or Sunday
_NEVER = 1 << 30  # a day number after any scenario's end
_BY_TS = itemgetter("ts")


class Trajectory(StrEnum):
    """How an account behaves over the scenario: the ground truth behind its events."""

    GROWING = "growing"
    STABLE = "stable"
    SLOW_DECLINE = "slow_decline"
    GOES_SILENT = "goes_silent"
    CHAMPION_LOSS = "champion_loss"
    API_DRIVEN = "api_driven"


Mix = tuple[tuple[Trajectory, float], ...]

DEFAULT_MIX: Mix = (
    (Trajectory.GROWING, 0.20),
    (Trajectory.STABLE, 0.35),
    (Trajectory.SLOW_DECLINE, 0.15),
    (Trajectory.GOES_SILENT, 0.10),
    (Trajectory.CHAMPION_LOSS, 0.10),
    (Trajectory.API_DRIVEN, 0.10),
)


def _normalise_mix(mix: Mapping[Any, float] | Sequence[tuple[Any, float]]) -> Mix:
    """Every trajectory with its share, shares summing to 1."""
    pairs = mix.items() if isinstance(mix, Mapping) else mix
    shares = dict.fromkeys(Trajectory, 0.0)
    for name, share in pairs:
        if not math.isfinite(share) or share < 0:
            raise ValueError(f"the share of {name!r} must be a finite number >= 0: {share!r}")
        shares[Trajectory(name)] += float(share)
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("the mix needs at least one trajectory with a positive share")
    return tuple((t, shares[t] / total) for t in Trajectory)


@dataclass(frozen=True)
class Scenario:
    """What to generate: how many accounts, over which days, from which seed.

    ``mix`` may be given as a mapping or pairs of trajectory (or its name) and share; it is
    normalised to a tuple of every trajectory with shares summing to 1.
    """

    accounts: int = 300
    days: int = 120
    start: date = date(2026, 1, 1)
    seed: int = 7
    mix: Mix = DEFAULT_MIX
    ticks: bool = True
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.accounts < 0:
            raise ValueError(f"accounts must be >= 0: {self.accounts}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1: {self.days}")
        if not math.isfinite(self.intensity) or self.intensity < 0:
            raise ValueError(f"intensity must be a finite number >= 0: {self.intensity}")
        object.__setattr__(self, "mix", _normalise_mix(self.mix))

    def account_id(self, index: int) -> str:
        """The id of the ``index``-th account, e.g. ``acct-00042``."""
        return f"acct-{index:05d}"

    @property
    def start_ms(self) -> int:
        """The scenario's first day at 00:00 UTC, in epoch milliseconds."""
        return (self.start - date(1970, 1, 1)).days * MS_PER_DAY

    @property
    def end(self) -> date:
        """The first day after the scenario."""
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float
    seats: tuple[int, int]
    users: tuple[int, int]  # tracked product users (1-20)
    plans: tuple[str, ...]
    price: int  # per seat and month
    meeting_every: int  # days between CSM meetings (a multiple of 7)


_SEGMENTS = (
    _Segment("enterprise", 0.2, (150, 2500), (8, 20), ("enterprise",), 45, 7),
    _Segment("smb", 0.5, (15, 150), (3, 12), ("business", "pro"), 30, 14),
    _Segment("startup", 0.3, (3, 25), (1, 6), ("starter", "pro"), 20, 28),
)


def _pick(u: float, shares: Sequence[tuple[Any, float]]) -> Any:
    for item, share in shares:
        if u < share:
            return item
        u -= share
    return next(item for item, share in reversed(shares) if share > 0)


def _poisson(rand: Any, mean: float) -> int:
    """A Poisson draw (normal approximation above a mean of 30)."""
    if mean <= 0.0:
        return 0
    if mean > 30.0:
        return max(0, int(mean + math.sqrt(mean) * _gauss01(rand) + 0.5))
    n = 0
    limit = math.exp(-mean)
    p = rand()
    while p > limit:
        n += 1
        p *= rand()
    return n


def _gauss01(rand: Any) -> float:
    # Irwin-Hall: close enough to a standard normal for counts, and cheap
    return rand() + rand() + rand() + rand() + rand() + rand() - 3.0


def _account_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"healthstream:{seed}:{index}")


class _Account:
    """One account's fixed traits and plan, drawn once from its own seeded generator."""

    __slots__ = (
        "id",
        "trajectory",
        "segment",
        "plan",
        "seats",
        "users",
        "login_p",
        "sessions",
        "actions",
        "features",
        "feat_lo",
        "feat_hi",
        "api_volume",
        "api_batches",
        "api_error",
        "slack",
        "jira",
        "first_day",
        "turn",
        "decline_days",
        "floor",
        "recover_day",
        "silent_day",
        "dip_start",
        "dip_end",
        "churn_day",
        "contract_start",
        "renewal",
        "renewal_day",
        "bill_dom",
        "meeting_every",
        "meeting_offset",
        "nps_offset",
        "amount",
        "counter",
        "tickets",
    )

    def __init__(self, scenario: Scenario, index: int) -> None:
        rng = _account_rng(scenario.seed, index)
        # the first draw is the trajectory (``trajectory_of`` relies on it)
        self.trajectory: Trajectory = _pick(rng.random(), scenario.mix)
        t = self.trajectory
        days = scenario.days
        seg: _Segment = _pick(rng.random(), [(s, s.share) for s in _SEGMENTS])
        self.id = scenario.account_id(index)
        self.segment = seg.name
        self.plan = rng.choice(seg.plans)
        self.seats = rng.randint(*seg.seats)
        users = rng.randint(*seg.users)
        if t is Trajectory.API_DRIVEN:
            users = min(users, rng.randint(1, 4))
        elif t is Trajectory.CHAMPION_LOSS:
            users = max(users, 2)
        self.users = users
        self.amount = self.seats * seg.price
        self.meeting_every = seg.meeting_every
        # meetings fall on a Tuesday, Wednesday or Thursday
        self.meeting_offset = rng.randint(1, 3) + 7 * rng.randrange(seg.meeting_every // 7)
        self.nps_offset = rng.randrange(90)
        self.bill_dom = rng.randint(1, 28)

        api = t is Trajectory.API_DRIVEN
        self.login_p = rng.uniform(0.02, 0.05) if api else rng.uniform(0.2, 0.4)
        self.sessions = (rng.uniform(1.5, 3.0) if api else rng.uniform(0.5, 1.0)) * (1 + users / 8)
        self.actions = rng.uniform(2.0, 8.0)  # value actions per session
        order = sorted(FEATURES, key=lambda f: FEATURES.index(f) + rng.uniform(0, 4))
        if api:
            order = ["api_keys", "integrations", "workflows"] + [
                f for f in order if f not in ("api_keys", "integrations", "workflows")
            ]
        self.features = tuple(order)
        self.feat_hi = rng.randint(3, 7) if not api else rng.randint(3, 4)
        self.feat_lo = self.feat_hi
        if api:
            self.api_volume = rng.uniform(8_000, 60_000)  # calls a day
            self.api_batches = 3.0
        elif rng.random() < 0.35:
            self.api_volume = rng.uniform(50, 800)
            self.api_batches = 0.8
        else:
            self.api_volume = 0.0
            self.api_batches = 0.0
        self.api_error = rng.uniform(0.001, 0.01)
        self.slack = rng.uniform(0.6, 1.2) if rng.random() < 0.65 else 0.0
        self.jira = rng.uniform(0.2, 0.4) if (api or rng.random() < 0.5) else 0.0

        self.first_day = 0
        self.turn = _NEVER
        self.decline_days = 1
        self.floor = 1.0
        self.recover_day = _NEVER
        self.silent_day = _NEVER
        self.dip_start = self.dip_end = _NEVER
        self.churn_day: int | None = None
        if t is Trajectory.GROWING:
            self.feat_lo = rng.randint(1, 3)
            self.feat_hi = rng.randint(max(5, self.feat_lo), 8)
            if days >= 28 and rng.random() < 0.25:
                self.first_day = rng.randint(1, days // 4)
        elif t is Trajectory.SLOW_DECLINE:
            self.turn = rng.randint(int(days * 0.1), max(int(days * 0.1), int(days * 0.4)))
            if rng.random() < 0.7:
                self.floor = rng.uniform(0.08, 0.25)
                self.churn_day = days + rng.randint(0, 45)
            else:
                self.floor = rng.uniform(0.5, 0.7)
            self.decline_days = max(1, days - self.turn)
        elif t is Trajectory.GOES_SILENT:
            lo = max(1, (days + 1) // 2)
            self.silent_day = rng.randint(lo, max(lo, days - max(1, days // 10)))
            self.churn_day = self.silent_day
        elif t is Trajectory.CHAMPION_LOSS:
            self.turn = rng.randint(int(days * 0.25), max(int(days * 0.25), int(days * 0.6)))
            self.decline_days = rng.randint(21, 50)
            if rng.random() < 0.7:
                self.floor = rng.uniform(0.1, 0.3)
                self.churn_day = max(days + rng.randint(0, 20), self.turn + rng.randint(45, 90))
            else:
                self.floor = rng.uniform(0.35, 0.55)
                self.recover_day = self.turn + rng.randint(14, 35)
        if t in (Trajectory.STABLE, Trajectory.GROWING) and rng.random() < 0.25:
            self.dip_start = rng.randint(int(days * 0.3), max(int(days * 0.3), int(days * 0.6)))
            self.dip_end = self.dip_start + rng.randint(4, 9)

        start = scenario.start
        if self.first_day:
            self.contract_start = start + timedelta(days=self.first_day)
            self.renewal = self.contract_start + timedelta(days=365)
        elif self.churn_day is not None and t is not Trajectory.GOES_SILENT:
            # the contract is not renewed: its renewal date is the churn date
            self.renewal = start + timedelta(days=self.churn_day)
            years = (self.churn_day + 30) // 365 + 1 + rng.randint(0, 1)
            self.contract_start = self.renewal - timedelta(days=365 * years)
        else:
            age = rng.randint(30, 1000)
            self.contract_start = start - timedelta(days=age)
            self.renewal = self.contract_start + timedelta(days=365 * ((age + 14) // 365 + 1))
        self.renewal_day = (self.renewal - start).days
        self.counter = 0
        self.tickets = 0

    # -- levels ---------------------------------------------------------------------------

    def levels(self, d: int, days: int) -> tuple[float, float, float]:
        """(usage multiplier, relationship health 0-1, share of users/features still active)."""
        t = self.trajectory
        if t is Trajectory.GROWING:
            x = (d - self.first_day) / max(1, days - 1 - self.first_day)
            usage = 0.5 + 1.1 * x
            if self.dip_start <= d < self.dip_end:
                usage *= 0.35
            return usage, 1.0, 0.5 + 0.5 * x
        if t is Trajectory.SLOW_DECLINE:
            if d < self.turn:
                return 1.0, 1.0, 1.0
            x = min(1.0, (d - self.turn) / self.decline_days)
            usage = 1.0 - (1.0 - self.floor) * x**1.3
            return usage, 0.2 + 0.8 * usage, 0.3 + 0.7 * usage
        if t is Trajectory.CHAMPION_LOSS:
            if d < self.turn:
                return 1.0, 1.0, 1.0
            x = min(1.0, (d - self.turn) / self.decline_days)
            usage = 1.0 - (1.0 - self.floor) * x
            if d >= self.recover_day:
                back = min(1.0, (d - self.recover_day) / 20)
                usage += (0.9 - usage) * back
                return usage, 0.4 + 0.5 * back, 0.4 + 0.5 * usage
            return usage, min(0.35, usage), 0.4 + 0.5 * usage
        if self.dip_start <= d < self.dip_end:
            return 0.35, 1.0, 1.0
        return 1.0, 1.0, 1.0

    def user(self, j: int) -> str:
        return f"{self.id}-u{j}"

    def champion(self, d: int) -> str | None:
        """The champion's user id on day ``d`` (None between a departure and a successor)."""
        if d < self.turn or self.trajectory is not Trajectory.CHAMPION_LOSS:
            return self.user(0)
        return self.user(1) if d >= self.recover_day else None

    def facts(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "plan": self.plan,
            "seats": self.seats,
            "contract_start": self.contract_start.isoformat(),
            "renewal_date": self.renewal.isoformat(),
            "api_driven": self.trajectory is Trajectory.API_DRIVEN,
        }


# a pending event: (account, type, value, user_id, attrs)
_Pending = tuple[_Account, str, float, "str | None", dict[str, Any]]


class _Day:
    """Builds one day's records for every account (one shared generator, account order)."""

    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.days = scenario.days
        self.k = scenario.intensity
        self.start = scenario.start
        self.rand = rng.random
        self.rng = rng
        self.pending: dict[int, list[_Pending]] = {}

    def later(self, day: int, item: _Pending) -> None:
        if day < self.days:
            self.pending.setdefault(day, []).append(item)

    def run(self, accounts: list[_Account], d: int, day_ms: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        today = self.start + timedelta(days=d)
        weekend = today.weekday() >= 5
        day_no = today.toordinal() - 1  # day_no % 7 is the weekday (0: Monday)
        for a in accounts:
            if a.first_day <= d < a.silent_day:
                self.account(a, d, day_ms, weekend, today.day, day_no, out)
        rand = self.rand
        for a, etype, value, user, attrs in self.pending.pop(d, ()):
            if d < a.silent_day:
                a.counter += 1
                record = {
                    "event_id": f"{a.id}-{a.counter}",
                    "account_id": a.id,
                    "type": etype,
                    "ts": day_ms + _OPEN_MS + int(rand() * _HOURS_MS),
                    "value": value,
                    "attrs": attrs,
                }
                if user is not None:
                    record["user_id"] = user
                out.append(record)
        out.sort(key=_BY_TS)
        return out

    def account(
        self,
        a: _Account,
        d: int,
        day_ms: int,
        weekend: bool,
        dom: int,
        day_no: int,
        out: list[dict[str, Any]],
    ) -> None:
        """Append account ``a``'s records of day ``d`` to ``out`` (unsorted)."""
        rand = self.rand
        k = self.k
        aid = a.id
        n = a.counter
        usage, health, breadth = a.levels(d, self.days)
        activity = usage * (_WEEKEND if weekend else 1.0) * k
        # users still active; a departed champion (u0) no longer shows up
        lost = a.trajectory is Trajectory.CHAMPION_LOSS and d >= a.turn
        skip = 1 if lost else 0
        active = max(1, math.ceil((a.users - skip) * min(1.0, breadth)))
        base = day_ms + _OPEN_MS
        api = a.trajectory is Trajectory.API_DRIVEN

        def emit(
            etype: str,
            value: float = 1,
            user: str | None = None,
            attrs: dict[str, Any] | None = None,
        ) -> None:
            nonlocal n
            n += 1
            record: dict[str, Any] = {
                "event_id": f"{aid}-{n}",
                "account_id": aid,
                "type": etype,
                "ts": base + int(rand() * _HOURS_MS),
                "value": value,
                "attrs": {} if attrs is None else attrs,
            }
            if user is not None:
                record["user_id"] = user
            out.append(record)

        if d == a.first_day:
            emit("account_facts", 1, None, a.facts())
            emit("champion_changed", 1, f"{aid}-u0", {"status": "assigned"})
            out[-2]["ts"] = base  # the facts open the account's history
            out[-1]["ts"] = base + 1
        if lost and d == a.turn:
            emit("champion_changed", 1, None, {"status": "departed"})
        elif d == a.recover_day:
            emit("champion_changed", 1, f"{aid}-u1", {"status": "assigned"})

        # Product usage. The day's activity events are one Poisson draw over all streams,
        # each event then assigned to a stream in proportion to its rate: the same
        # distribution as independent Poisson streams, at a fraction of the cost.
        if a.trajectory is Trajectory.GROWING:
            feats = a.feat_lo + (a.feat_hi - a.feat_lo) * min(1.0, breadth * 2.0 - 1.0)
        else:
            feats = a.feat_hi * breadth
        n_feats = max(1, round(feats))
        c_login = active * a.login_p * activity
        c_value = c_login + a.sessions * activity
        c_feature = c_value + n_feats * 0.15 * activity
        if api:
            c_api = c_feature + a.api_batches * (0.85 if weekend else 1.0) * k
        else:
            c_api = c_feature + a.api_batches * activity
        c_slack = c_api + a.slack * activity
        c_created = c_slack + a.jira * activity
        total = c_created + a.jira * (0.3 + 0.6 * health) * activity
        per_batch = a.api_volume / a.api_batches * (1.0 if api else usage) if a.api_volume else 0
        error_rate = a.api_error + 0.06 * (1.0 - health)
        for _ in range(_poisson(rand, total)):
            u = rand() * total
            user: str | None = None
            if u < c_login:
                etype, value, attrs = "login", 1, {}
                user = f"{aid}-u{skip + int(rand() * active)}"
            elif u < c_value:
                etype, value, attrs = "value_action", 1 + int(rand() * 2.0 * (a.actions - 1)), {}
                if not api:
                    user = f"{aid}-u{skip + int(rand() * active)}"
            elif u < c_feature:
                etype, value = "feature_used", 1
                attrs = {"feature": a.features[int(rand() * n_feats)]}
                user = f"{aid}-u{skip + int(rand() * active)}"
            elif u < c_api:
                etype, value = "api_calls", int(per_batch * (0.8 + 0.4 * rand()))
                attrs = {"errors": min(value, _poisson(rand, value * error_rate))}
            elif u < c_slack:
                etype, value = "integration_message_sent", 1 + int(rand() * 7)
                attrs = {"integration": "slack"}
            elif u < c_created:
                etype, value = "integration_ticket_created", 1 + int(rand() * 2.6)
                attrs = {"integration": "jira"}
            else:
                etype, value = "integration_ticket_closed", 1 + int(rand() * 2.6)
                attrs = {"integration": "jira"}
            n += 1
            record: dict[str, Any] = {
                "event_id": f"{aid}-{n}",
                "account_id": aid,
                "type": etype,
                "ts": base + int(rand() * _HOURS_MS),
                "value": value,
                "attrs": attrs,
            }
            if user is not None:
                record["user_id"] = user
            out.append(record)

        # support: more tickets, escalations, slower fixes and worse CSAT when unhealthy
        slow = 1.0 - health
        if not weekend and rand() < (0.015 + 0.05 * slow) * k:
            a.tickets += 1
            ticket = f"{aid}-T{a.tickets}"
            opener = f"{aid}-u{skip + int(rand() * active)}"
            emit("support_ticket_opened", 1, opener, {"ticket_id": ticket})
            fix = 1 + int(rand() * (3 + 20 * slow))
            if rand() < 0.04 + 0.35 * slow:
                escalate = 1 + int(rand() * 2)
                self.later(
                    d + escalate, (a, "support_ticket_escalated", 1, None, {"ticket_id": ticket})
                )
                fix += escalate
            csat = min(5, max(1, round(1.6 + 3.2 * health + 0.7 * _gauss01(rand))))
            resolved = {"ticket_id": ticket, "csat": csat}
            self.later(d + fix, (a, "support_ticket_resolved", 1, None, resolved))

        # commercial: monthly invoices, paid later (or failing first) when unhealthy
        if dom == a.bill_dom:
            if rand() < 0.3 * slow:
                emit("payment_failed", 1, None, {"amount": a.amount})
                late = 3 + int(rand() * 25)
            elif slow > 0.1:
                late = int(slow * (5 + rand() * 40))
            else:
                late = 0 if rand() < 0.85 else 1 + int(rand() * 5)
            if late == 0:
                emit("invoice_paid", a.amount, None, {"days_late": 0})
            else:
                self.later(d + late, (a, "invoice_paid", a.amount, None, {"days_late": late}))
        if d == a.renewal_day and a.churn_day is None:
            renewed = {"renewal_date": (a.renewal + timedelta(days=365)).isoformat()}
            emit("account_facts", 1, None, renewed)

        # engagement with the CSM: meetings, email replies, NPS
        if (day_no - a.meeting_offset) % a.meeting_every == 0:
            if rand() < 0.15 + 0.77 * health:
                emit("meeting_attended", 1, a.champion(d))
            else:
                emit("meeting_missed")
        if not weekend and rand() < 0.15 + 0.25 * health:
            hours = math.exp(1.3 + 3.2 * slow + 0.8 * _gauss01(rand))
            replier = a.champion(d) or f"{aid}-u{skip + int(rand() * active)}"
            emit("email_replied", 1, replier, {"response_hours": round(hours, 1)})
        if (day_no - a.nps_offset) % 90 == 0 and rand() < 0.3 + 0.15 * health:
            score = min(10, max(0, round(2.0 + 6.8 * health + 1.2 * _gauss01(rand))))
            emit("nps_response", score, a.champion(d))
        a.counter = n


def _plans(scenario: Scenario) -> list[_Account]:
    return [_Account(scenario, i) for i in range(scenario.accounts)]


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """Every record of the scenario in non-decreasing ``ts`` order, streamed day by day.

    With ``scenario.ticks`` a ``{"type": "tick", "ts": ...}`` record opens every day after
    the first (at 00:00 UTC), before that day's events.
    """
    accounts = _plans(scenario)
    builder = _Day(scenario, random.Random(f"healthstream:{scenario.seed}:events"))
    start_ms = scenario.start_ms
    for d in range(scenario.days):
        day_ms = start_ms + d * MS_PER_DAY
        if d and scenario.ticks:
            yield {"type": "tick", "ts": day_ms}
        yield from builder.run(accounts, d, day_ms)


def _index(scenario: Scenario, account_id: str) -> int:
    prefix, _, number = account_id.rpartition("-")
    if prefix != "acct" or not number.isdigit() or int(number) >= scenario.accounts:
        raise KeyError(f"{account_id!r} is not an account of this scenario")
    return int(number)


def trajectory_of(scenario: Scenario, account_id: str) -> Trajectory:
    """The trajectory an account of the scenario follows."""
    u = _account_rng(scenario.seed, _index(scenario, account_id)).random()
    trajectory: Trajectory = _pick(u, scenario.mix)
    return trajectory


def churn_labels(scenario: Scenario) -> dict[str, date | None]:
    """Every account's churn date (None: it does not churn), consistent with ``generate``.

    A ``goes_silent`` account churns on the day it goes silent; most ``slow_decline`` and
    ``champion_loss`` accounts churn at their renewal, at or after the scenario's end.
    """
    start = scenario.start
    return {
        a.id: None if a.churn_day is None else start + timedelta(days=a.churn_day)
        for a in _plans(scenario)
    }


def write_jsonl(scenario: Scenario, target: str | Path | IO[bytes]) -> int:
    """Write the scenario as JSON lines to a path or binary file; returns the record count."""
    if isinstance(target, str | Path):
        with open(target, "wb") as f:
            return write_jsonl(scenario, f)
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    n = 0
    chunk: list[bytes] = []
    for record in generate(scenario):
        chunk.append(dumps(record, option=newline))
        if len(chunk) >= 8192:
            target.write(b"".join(chunk))
            n += len(chunk)
            chunk.clear()
    target.write(b"".join(chunk))
    return n + len(chunk)
