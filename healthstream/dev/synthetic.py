"""Synthetic customer telemetry for the demo, the tests and the benchmarks.

Accounts follow one of six trajectories (:class:`Trajectory`): they grow, hold steady,
fade slowly, go silent (active, then zero activity of every kind), lose their champion and
decline, or live on the API. Everything is drawn from seeded ``random.Random`` instances,
so a :class:`Scenario` always yields the same records, and :func:`generate` streams them
day by day in non-decreasing ``ts`` order (one day's records in memory at a time).

Volume at ``intensity=1.0``: an account sends about 4.7 events a day on average (about 5.9
on a weekday, 1.8 on a weekend day; logins and value actions are the largest shares), so 300
accounts over 120 days make about 170,000 records and 100,000 accounts over 10 days about
4.7 million. ``intensity`` scales the daily activity (logins, value actions, feature use, API
batches, integrations, support tickets) linearly; the cadenced events (facts, invoices,
meetings, emails, NPS) do not scale, so ``intensity=0.2`` gives about 1.4 events per account
and day (100,000 accounts x 10 days: about 1.4 million records).

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
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

Uniform = Callable[[], float]  # a bound ``random.Random.random``

_OPEN_MS = 8 * 3_600_000  # business hours are 08:00-18:00 UTC
_HOURS_MS = 10 * 3_600_000
_WEEKEND = 0.3  # share of weekday user activity that happens on a Saturday or Sunday
_NEVER = 1 << 30  # a day number after any scenario's end


class Trajectory(StrEnum):
    """How an account behaves over the scenario: the ground truth behind its events."""

    GROWING = "growing"
    STABLE = "stable"
    SLOW_DECLINE = "slow_decline"
    GOES_SILENT = "goes_silent"
    CHAMPION_LOSS = "champion_loss"
    API_DRIVEN = "api_driven"


# module-level aliases: much cheaper to look up than enum members in the per-day hot path
_GROWING = Trajectory.GROWING
_STABLE = Trajectory.STABLE
_SLOW_DECLINE = Trajectory.SLOW_DECLINE
_GOES_SILENT = Trajectory.GOES_SILENT
_CHAMPION_LOSS = Trajectory.CHAMPION_LOSS
_API_DRIVEN = Trajectory.API_DRIVEN

Mix = tuple[tuple[Trajectory, float], ...]

#: What ``Scenario.mix`` accepts: (trajectory or its name, share) pairs, or a mapping.
MixSpec = Mix | Sequence[tuple[Trajectory | str, float]] | Mapping[Trajectory | str, float]

DEFAULT_MIX: Mix = (
    (Trajectory.GROWING, 0.20),
    (Trajectory.STABLE, 0.35),
    (Trajectory.SLOW_DECLINE, 0.15),
    (Trajectory.GOES_SILENT, 0.10),
    (Trajectory.CHAMPION_LOSS, 0.10),
    (Trajectory.API_DRIVEN, 0.10),
)


def _normalise_mix(mix: MixSpec) -> Mix:
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
    normalised to a tuple of every trajectory with shares summing to 1 (see ``shares``).
    """

    accounts: int = 300
    days: int = 120
    start: date = date(2026, 1, 1)
    seed: int = 7
    mix: MixSpec = DEFAULT_MIX
    ticks: bool = True
    intensity: float = 1.0
    #: churners of ``slow_decline`` and ``champion_loss`` churn inside the span (from 0.35 D
    #: on) after a visible decline, and send nothing from their churn day, instead of
    #: churning at a renewal after it: a history to backtest and calibrate on
    churn_in_span: bool = False

    def __post_init__(self) -> None:
        if self.accounts < 0:
            raise ValueError(f"accounts must be >= 0: {self.accounts}")
        if self.days < 1:
            raise ValueError(f"days must be >= 1: {self.days}")
        if not math.isfinite(self.intensity) or self.intensity < 0:
            raise ValueError(f"intensity must be a finite number >= 0: {self.intensity}")
        object.__setattr__(self, "mix", _normalise_mix(self.mix))

    @property
    def shares(self) -> Mix:
        """Every trajectory with its share of the accounts (the normalised ``mix``)."""
        return self.mix  # type: ignore[return-value]  # normalised by __post_init__

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


_SEGMENT_SHARES = tuple((s, s.share) for s in _SEGMENTS)
_API_FIRST = ("api_keys", "integrations", "workflows")
_API_FEATURES = _API_FIRST + tuple(f for f in FEATURES if f not in _API_FIRST)


def _int(r: Uniform, lo: int, hi: int) -> int:
    """A uniform integer in [lo, hi] (hi >= lo) from the uniform draw ``r()``."""
    return lo + int(r() * (hi - lo + 1))


def _between(r: Uniform, lo: float, hi: float) -> float:
    return lo + (hi - lo) * r()


def _poisson(rand: Uniform, mean: float) -> int:
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


def _gauss01(rand: Uniform) -> float:
    """About a standard normal draw (Irwin-Hall with six uniforms: cheap, bounded by 4.3)."""
    return (rand() + rand() + rand() + rand() + rand() + rand() - 3.0) * 1.4142135623730951


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
        "bill_dom",
        "meeting_every",
        "meeting_offset",
        "nps_offset",
        "amount",
        "counter",
        "tickets",
        "flat",
    )

    def __init__(self, scenario: Scenario, index: int) -> None:
        r = _account_rng(scenario.seed, index).random
        # the first draw is the trajectory (``trajectory_of`` relies on it)
        self.trajectory: Trajectory = _pick(r(), scenario.shares)
        t = self.trajectory
        api = t is _API_DRIVEN
        seg: _Segment = _pick(r(), _SEGMENT_SHARES)
        self.id = scenario.account_id(index)
        self.segment = seg.name
        self.plan = seg.plans[int(r() * len(seg.plans))]
        self.seats = _int(r, *seg.seats)
        users = _int(r, *seg.users)
        if api:
            users = min(users, _int(r, 1, 4))
        elif t is _CHAMPION_LOSS:
            users = max(users, 2)
        self.users = users
        self.amount = self.seats * seg.price
        self.meeting_every = seg.meeting_every
        # meetings fall on a Tuesday, Wednesday or Thursday
        self.meeting_offset = _int(r, 1, 3) + 7 * int(r() * (seg.meeting_every // 7))
        self.nps_offset = int(r() * 90)
        self.bill_dom = _int(r, 1, 28)
        self._draw_usage(r, api)
        self._draw_course(r, scenario)
        self._draw_contract(r)
        self.counter = 0
        self.tickets = 0
        # constant levels (but for a dip; a silent account is simply not called any more)
        self.flat = t is _STABLE or t is _GOES_SILENT or api

    def _draw_usage(self, r: Callable[[], float], api: bool) -> None:
        """How much the account uses the product: sessions, features, API, integrations."""
        self.login_p = _between(r, 0.02, 0.05) if api else _between(r, 0.2, 0.4)
        sessions = _between(r, 1.5, 3.0) if api else _between(r, 0.5, 1.0)
        self.sessions = sessions * (1 + self.users / 8)
        self.actions = _between(r, 2.0, 8.0)  # value actions per session
        order = list(_API_FEATURES if api else FEATURES)
        for f in range(len(order) - 1):  # mostly in order of popularity
            if r() < 0.35:
                order[f], order[f + 1] = order[f + 1], order[f]
        self.features = tuple(order)
        self.feat_hi = _int(r, 3, 4) if api else _int(r, 3, 7)
        self.feat_lo = self.feat_hi
        if api:
            self.api_volume = _between(r, 8_000, 60_000)  # calls a day
            self.api_batches = 3.0
        elif r() < 0.35:
            self.api_volume = _between(r, 50, 800)
            self.api_batches = 0.8
        else:
            self.api_volume = 0.0
            self.api_batches = 0.0
        self.api_error = _between(r, 0.001, 0.01)
        self.slack = _between(r, 0.6, 1.2) if r() < 0.65 else 0.0
        self.jira = _between(r, 0.2, 0.4) if (r() < 0.5 or api) else 0.0

    def _draw_course(self, r: Callable[[], float], scenario: Scenario) -> None:
        """When and how the account's trajectory turns: decline, silence, recovery, dips."""
        t = self.trajectory
        days = scenario.days
        self.first_day = 0
        self.turn = _NEVER
        self.decline_days = 1
        self.floor = 1.0
        self.recover_day = _NEVER
        self.silent_day = _NEVER
        self.dip_start = self.dip_end = _NEVER
        self.churn_day: int | None = None
        if t is _GROWING:
            self.feat_lo = _int(r, 1, 3)
            self.feat_hi = _int(r, 5, 8)
            if days >= 28 and r() < 0.25:  # a new logo, onboarding during the scenario
                self.first_day = _int(r, 1, days // 4)
        elif t is _SLOW_DECLINE:
            self.turn = _int(r, int(days * 0.1), int(days * 0.4))
            if r() < 0.7:
                self.floor = _between(r, 0.08, 0.25)
                self.churn_day = days + _int(r, 0, 45)
            else:
                self.floor = _between(r, 0.5, 0.7)
            self.decline_days = max(1, days - self.turn)
        elif t is _GOES_SILENT:
            lo = max(1, (days + 1) // 2)  # in the second half, leaving some silence to see
            self.silent_day = _int(r, lo, max(lo, days - max(1, days // 10)))
            self.churn_day = self.silent_day
        elif t is _CHAMPION_LOSS:
            lo = max(1, int(days * 0.25))
            self.turn = _int(r, lo, max(lo, int(days * 0.6)))
            self.decline_days = _int(r, 21, 50)
            if r() < 0.7:
                self.floor = _between(r, 0.1, 0.3)
                self.churn_day = max(days + _int(r, 0, 20), self.turn + _int(r, 45, 90))
            else:
                self.floor = _between(r, 0.35, 0.55)
                self.recover_day = self.turn + _int(r, 14, 35)
        if scenario.churn_in_span and self.churn_day is not None and t is not _GOES_SILENT:
            self.churn_day = _int(r, int(days * 0.35), max(int(days * 0.35), days - 1))
            lead = _int(r, 40, 80) if t is _SLOW_DECLINE else _int(r, 45, 90)
            self.turn = max(1, self.churn_day - lead)
            self.decline_days = max(1, lead - _int(r, 0, 20))
            self.silent_day = self.churn_day
        if (t is _STABLE or t is _GROWING) and r() < 0.25:
            self.dip_start = _int(r, int(days * 0.3), int(days * 0.6))  # a week-long dip
            self.dip_end = self.dip_start + _int(r, 4, 9)

    def _draw_contract(self, r: Callable[[], float]) -> None:
        """Contract start and renewal, as day offsets from the scenario's start."""
        t = self.trajectory
        if self.first_day:
            self.contract_start = self.first_day
            self.renewal = self.first_day + 365
        elif self.churn_day is not None and t is not _GOES_SILENT:
            # the contract is not renewed: its renewal date is the churn date
            self.renewal = self.churn_day
            self.contract_start = self.churn_day - 365 * ((self.churn_day + 30) // 365 + 1)
        else:
            age = _int(r, 30, 1000)
            self.contract_start = -age
            self.renewal = -age + 365 * ((age + 14) // 365 + 1)

    # -- levels ---------------------------------------------------------------------------

    def levels(self, d: int, days: int) -> tuple[float, float, float]:
        """(usage multiplier, relationship health 0-1, share of users/features in use)."""
        t = self.trajectory
        if t is _GROWING:
            x = (d - self.first_day) / max(1, days - 1 - self.first_day)
            usage = 0.5 + 1.1 * x
            if self.dip_start <= d < self.dip_end:
                usage *= 0.35
            return usage, 1.0, 0.5 + 0.5 * x
        if t is _SLOW_DECLINE:
            if d < self.turn:
                return 1.0, 1.0, 1.0
            x = min(1.0, (d - self.turn) / self.decline_days)
            usage = 1.0 - (1.0 - self.floor) * x**1.3
            return usage, 0.2 + 0.8 * usage, 0.3 + 0.7 * usage
        if t is _CHAMPION_LOSS:
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

    def champion(self, d: int) -> int | None:
        """The champion's user number on day ``d`` (None between a departure and a successor)."""
        if d < self.turn or self.trajectory is not _CHAMPION_LOSS:
            return 0
        return 1 if d >= self.recover_day else None

    def facts(self, start: date) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "plan": self.plan,
            "seats": self.seats,
            "contract_start": (start + timedelta(days=self.contract_start)).isoformat(),
            "renewal_date": (start + timedelta(days=self.renewal)).isoformat(),
            "api_driven": self.trajectory is _API_DRIVEN,
        }


# One event of a day as a tuple, made into the contract's dict only when yielded:
# (ms into the day, account_id, event number, type, value, user number or None, attrs or None).
_Compact = tuple[int, str, int, str, float, "int | None", "dict[str, Any] | None"]
# An event due on a later day: (account, type, value, user number or None, attrs).
_Pending = tuple[_Account, str, float, "int | None", "dict[str, Any] | None"]


@dataclass(frozen=True, slots=True)
class _Day:
    """One account's day: its levels and who is still active."""

    d: int
    weekend: bool
    usage: float
    health: float
    breadth: float
    skip: int
    active: int


class _Days:
    """Draws each day's events for every account, from one generator shared in account order."""

    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.days = scenario.days
        self.k = scenario.intensity
        self.start = scenario.start
        self.rand = rng.random
        self.pending: dict[int, list[_Pending]] = {}

    def later(self, day: int, item: _Pending) -> None:
        if day < self.days:
            self.pending.setdefault(day, []).append(item)

    def run(self, accounts: list[_Account], d: int) -> list[_Compact]:
        """Day ``d``'s events in time order."""
        out: list[_Compact] = []
        today = self.start + timedelta(days=d)
        weekend = today.weekday() >= 5
        day_no = today.toordinal() - 1  # day_no % 7 is the weekday (0: Monday)
        account, dom = self.account, today.day
        for a in accounts:
            if a.first_day <= d < a.silent_day:
                account(a, d, weekend, dom, day_no, out)
        rand = self.rand
        for a, etype, value, user, attrs in self.pending.pop(d, ()):
            if d < a.silent_day:
                a.counter += 1
                aid = a.id
                ts = _OPEN_MS + int(rand() * _HOURS_MS)
                out.append((ts, aid, a.counter, etype, value, user, attrs))
        # Into time order: by the minute first, then each (small, cache-friendly) minute by
        # time of day (a small int, fast to compare), account id and number breaking ties.
        minutes: list[list[_Compact]] = [[] for _ in range(_HOURS_MS // 60_000)]
        for e in out:
            minutes[(e[0] - _OPEN_MS) // 60_000].append(e)
        out.clear()
        for minute in minutes:
            minute.sort()
            out += minute
        return out

    def account(
        self,
        a: _Account,
        d: int,
        weekend: bool,
        dom: int,
        day_no: int,
        out: list[_Compact],
    ) -> None:
        """Append account ``a``'s events of day ``d`` to ``out`` (unsorted)."""
        if a.flat and not a.dip_start <= d < a.dip_end:
            usage = health = breadth = 1.0
        else:
            usage, health, breadth = a.levels(d, self.days)
        # users still active; a departed champion (u0) no longer shows up
        skip = 1 if d >= a.turn and a.trajectory is _CHAMPION_LOSS else 0
        if breadth >= 1.0:
            active = a.users - skip
        else:
            active = max(1, math.ceil((a.users - skip) * breadth))
        day = _Day(d, weekend, usage, health, breadth, skip, active)
        self._opening(a, day, out)
        self._product_usage(a, day, out)
        self._support(a, day, out)
        self._commercial(a, day, dom, out)
        self._engagement(a, day, day_no, out)

    def _event(
        self,
        a: _Account,
        out: list[_Compact],
        etype: str,
        value: float,
        user: int | None,
        attrs: dict[str, Any] | None,
    ) -> None:
        """A rarer event of ``a``, at a random time of the day."""
        a.counter += 1
        out.append(
            (_OPEN_MS + int(self.rand() * _HOURS_MS), a.id, a.counter, etype, value, user, attrs)
        )

    def _opening(self, a: _Account, day: _Day, out: list[_Compact]) -> None:
        """The facts that open the account's history; the champion leaving or coming back."""
        d = day.d
        if d == a.first_day:
            n = a.counter
            out.append((_OPEN_MS, a.id, n + 1, "account_facts", 1, None, a.facts(self.start)))
            assigned = {"status": "assigned"}
            out.append((_OPEN_MS + 1, a.id, n + 2, "champion_changed", 1, 0, assigned))
            a.counter = n + 2
        if day.skip and d == a.turn:
            self._event(a, out, "champion_changed", 1, None, {"status": "departed"})
        elif d == a.recover_day:
            self._event(a, out, "champion_changed", 1, 1, {"status": "assigned"})

    def _product_usage(self, a: _Account, day: _Day, out: list[_Compact]) -> None:
        """The day's logins, value actions, features, API calls and integration activity."""
        rand = self.rand
        k = self.k
        hours_ms = _HOURS_MS
        aid = a.id
        n = a.counter
        trajectory = a.trajectory
        weekend, usage, health, breadth = day.weekend, day.usage, day.health, day.breadth
        skip, active = day.skip, day.active
        activity = usage * (_WEEKEND if weekend else 1.0) * k
        base = _OPEN_MS
        api = trajectory is _API_DRIVEN
        append = out.append
        # Product usage. The day's activity events are one Poisson draw over all streams,
        # each event then assigned to a stream in proportion to its rate: the same
        # distribution as independent Poisson streams, at a fraction of the cost.
        if trajectory is _GROWING:
            feats = a.feat_lo + (a.feat_hi - a.feat_lo) * min(1.0, breadth * 2.0 - 1.0)
            n_feats = max(1, round(feats))
        elif breadth >= 1.0:
            n_feats = a.feat_hi
        else:
            n_feats = max(1, round(a.feat_hi * breadth))
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
        # a Poisson draw of the day's count (Knuth's method; normal approximation above 30)
        if total > 30.0:
            count = max(0, int(total + math.sqrt(total) * _gauss01(rand) + 0.5))
        else:
            count = -1
            limit = math.exp(-total)
            p = 1.0
            while p > limit:
                count += 1
                p *= rand()
        for _ in range(count):
            u = rand() * total
            ts = base + int(rand() * hours_ms)
            n += 1
            if u < c_login:
                append((ts, aid, n, "login", 1, skip + int(rand() * active), None))
            elif u < c_value:
                user = None if api else skip + int(rand() * active)
                value = 1 + int(rand() * 2.0 * (a.actions - 1.0))
                append((ts, aid, n, "value_action", value, user, None))
            elif u < c_feature:
                user = skip + int(rand() * active)
                feature = {"feature": a.features[int(rand() * n_feats)]}
                append((ts, aid, n, "feature_used", 1, user, feature))
            elif u < c_api:
                per_batch = a.api_volume / a.api_batches * (1.0 if api else usage)
                calls = int(per_batch * (0.8 + 0.4 * rand()))
                error_rate = a.api_error + 0.06 * (1.0 - health)
                errors = {"errors": min(calls, _poisson(rand, calls * error_rate))}
                append((ts, aid, n, "api_calls", calls, None, errors))
            elif u < c_slack:
                value = 1 + int(rand() * 7)
                slack = {"integration": "slack"}
                append((ts, aid, n, "integration_message_sent", value, None, slack))
            elif u < c_created:
                value = 1 + int(rand() * 2.6)
                jira = {"integration": "jira"}
                append((ts, aid, n, "integration_ticket_created", value, None, jira))
            else:
                value = 1 + int(rand() * 2.6)
                jira = {"integration": "jira"}
                append((ts, aid, n, "integration_ticket_closed", value, None, jira))
        a.counter = n

    def _support(self, a: _Account, day: _Day, out: list[_Compact]) -> None:
        rand = self.rand
        d, weekend, health, skip, active = day.d, day.weekend, day.health, day.skip, day.active
        aid = a.id
        # support: more tickets, escalations, slower fixes and worse CSAT when unhealthy
        slow = 1.0 - health
        if not weekend and rand() < (0.015 + 0.05 * slow) * self.k:
            a.tickets += 1
            ticket = f"{aid}-T{a.tickets}"
            self._event(
                a,
                out,
                "support_ticket_opened",
                1,
                skip + int(rand() * active),
                {"ticket_id": ticket},
            )
            fix = 1 + int(rand() * (3 + 20 * slow))
            if rand() < 0.04 + 0.35 * slow:
                escalate = 1 + int(rand() * 2)
                escalated = {"ticket_id": ticket}
                self.later(d + escalate, (a, "support_ticket_escalated", 1, None, escalated))
                fix += escalate
            csat = min(5, max(1, round(1.6 + 3.2 * health + 0.7 * _gauss01(rand))))
            resolved = {"ticket_id": ticket, "csat": csat}
            self.later(d + fix, (a, "support_ticket_resolved", 1, None, resolved))

    def _commercial(self, a: _Account, day: _Day, dom: int, out: list[_Compact]) -> None:
        rand = self.rand
        d, slow = day.d, 1.0 - day.health
        # commercial: monthly invoices, paid later (or failing first) when unhealthy
        if dom == a.bill_dom:
            if rand() < 0.3 * slow:
                self._event(a, out, "payment_failed", 1, None, {"amount": a.amount})
                late = 3 + int(rand() * 25)
            elif slow > 0.1:
                late = int(slow * (5 + rand() * 40))
            else:
                late = 0 if rand() < 0.85 else 1 + int(rand() * 5)
            paid = {"days_late": late}
            if late == 0:
                self._event(a, out, "invoice_paid", a.amount, None, paid)
            else:
                self.later(d + late, (a, "invoice_paid", a.amount, None, paid))
        if d == a.renewal:  # renewed for a year (churners' renewal is their churn day)
            renewed = {"renewal_date": (self.start + timedelta(days=a.renewal + 365)).isoformat()}
            self._event(a, out, "account_facts", 1, None, renewed)

    def _engagement(self, a: _Account, day: _Day, day_no: int, out: list[_Compact]) -> None:
        rand = self.rand
        d, weekend, health, skip, active = day.d, day.weekend, day.health, day.skip, day.active
        slow = 1.0 - health
        # engagement with the CSM: meetings, email replies, NPS
        if (day_no - a.meeting_offset) % a.meeting_every == 0:
            if rand() < 0.15 + 0.77 * health:
                self._event(a, out, "meeting_attended", 1, a.champion(d), None)
            else:
                self._event(a, out, "meeting_missed", 1, None, None)
        if not weekend and rand() < 0.15 + 0.25 * health:
            hours = round(math.exp(1.3 + 3.2 * slow + 0.8 * _gauss01(rand)), 1)
            replier = a.champion(d)
            if replier is None:
                replier = skip + int(rand() * active)
            self._event(a, out, "email_replied", 1, replier, {"response_hours": hours})
        if (day_no - a.nps_offset) % 90 == 0 and rand() < 0.3 + 0.15 * health:
            score = min(10, max(0, round(2.0 + 6.8 * health + 1.2 * _gauss01(rand))))
            self._event(a, out, "nps_response", score, a.champion(d), None)


def _plans(scenario: Scenario) -> list[_Account]:
    return [_Account(scenario, i) for i in range(scenario.accounts)]


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """Every record of the scenario in non-decreasing ``ts`` order, streamed day by day.

    With ``scenario.ticks`` a ``{"type": "tick", "ts": ...}`` record opens every day after
    the first (at 00:00 UTC), before that day's events. Event ids are ``<account_id>-<n>``,
    ``n`` counting the account's events. Business hours (08:00-18:00 UTC) hold all events.
    """
    accounts = _plans(scenario)
    days = _Days(scenario, random.Random(f"healthstream:{scenario.seed}:events"))
    start_ms = scenario.start_ms
    for d in range(scenario.days):
        day_ms = start_ms + d * MS_PER_DAY
        if d and scenario.ticks:
            yield {"type": "tick", "ts": day_ms}
        for ms, aid, n, etype, value, user, attrs in days.run(accounts, d):
            ts = day_ms + ms
            if user is None:
                yield {
                    "event_id": f"{aid}-{n}",
                    "account_id": aid,
                    "type": etype,
                    "ts": ts,
                    "value": value,
                    "attrs": {} if attrs is None else attrs,
                }
            else:
                yield {
                    "event_id": f"{aid}-{n}",
                    "account_id": aid,
                    "type": etype,
                    "ts": ts,
                    "user_id": f"{aid}-u{user}",
                    "value": value,
                    "attrs": {} if attrs is None else attrs,
                }


def _index(scenario: Scenario, account_id: str) -> int:
    prefix, _, number = account_id.rpartition("-")
    if prefix != "acct" or not number.isdigit() or int(number) >= scenario.accounts:
        raise KeyError(f"{account_id!r} is not an account of this scenario")
    return int(number)


def trajectory_of(scenario: Scenario, account_id: str) -> Trajectory:
    """The trajectory an account of the scenario follows."""
    u = _account_rng(scenario.seed, _index(scenario, account_id)).random()
    trajectory: Trajectory = _pick(u, scenario.shares)
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
