"""Synthetic telemetry with realistic day-to-day statistics and one known change per account.

A series' daily count is gamma-Poisson: ``Poisson(rate x calendar x busy x noise)``, where
``calendar`` is 1 on a weekday, ``weekend_factor`` on a Saturday or Sunday and
``holiday_factor`` on a public holiday; ``busy`` is the account's slow multiplicative AR(1)
(busy and quiet weeks, shared by its series); ``noise`` is gamma with mean 1, drawn per day
and series, so counts are overdispersed as real usage is. Everything but usage stays healthy:
facts at the start, a champion who logs in, invoices paid on time, tickets resolved with a
good CSAT, quick email replies, monthly meetings, a good NPS each quarter.

Each account is of one :class:`Kind`: what happens to it on its change day, after
``history_days`` of ordinary life. Change days are spread over a week so that every weekday
starts a change equally often. Records come out in non-decreasing ``ts`` order with a tick at
00:00 and at 12:00 UTC of every day; all of it is reproducible from the seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import numpy as np

from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

__all__ = [
    "CHANGE_KINDS",
    "CORE_FEATURES",
    "LASTING_KINDS",
    "AccountPlan",
    "Dataset",
    "GeneratorSettings",
    "Kind",
    "account_records",
    "generate",
    "plan_accounts",
    "users_for",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


class Kind(StrEnum):
    """What happens to an account's usage on its change day."""

    STEADY = "steady"
    #: value actions fall to 30% and stay there
    DROP_30 = "drop_30"
    #: value actions fall to 10% and stay there
    DROP_10 = "drop_10"
    #: value actions fall to 20% for 10 days, then come back in full
    DIP_10D = "dip_10d"
    #: no event of any kind from the change day on
    SILENCE = "silence"
    #: value actions fade linearly to 20% over 90 days, then stay there
    SLOW_FADE = "slow_fade"
    #: value actions, other users' logins and integration messages fall to 35%; the
    #: champion keeps logging in as before
    MULTI_DECLINE_RESPONSIVE = "multi_decline_responsive"
    #: the same decline, and the champion is never seen again
    MULTI_DECLINE_SILENT = "multi_decline_silent"


CHANGE_KINDS = tuple(k for k in Kind if k is not Kind.STEADY)
#: the kinds whose change lasts: an account of these should still be flagged weeks later
LASTING_KINDS = tuple(k for k in CHANGE_KINDS if k is not Kind.DIP_10D)
CORE_FEATURES = ("dashboards", "reports", "alerts", "workflows", "integrations")
#: public holidays as (month, day): New Year, late May, July 4, early September,
#: Thanksgiving and the day after, Christmas Eve to Boxing Day, New Year's Eve
HOLIDAYS = frozenset(
    {(1, 1), (5, 26), (7, 4), (9, 1), (11, 27), (11, 28), (12, 24), (12, 25), (12, 26), (12, 31)}
)
SEGMENTS = {"enterprise": "enterprise", "smb": "growth", "startup": "starter"}
_OPEN_MS = 8 * 3_600_000  # business hours are 08:00-18:00 UTC
_HOURS_MS = 10 * 3_600_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything the synthetic population depends on; the same settings give the same records."""

    seed: int = 7
    start: date = date(2025, 1, 1)
    #: days of ordinary life before the earliest change day
    history_days: int = 150
    #: days observed after the latest change day: 16 weeks and a week more
    follow_days: int = 16 * 7 + 7
    #: change days are ``history_days + i % change_spread``: one of each weekday
    change_spread: int = 7
    #: value actions per week of an ordinary week, one population of accounts per volume
    volumes: tuple[int, ...] = (2, 5, 15, 50, 200, 1000)
    steady_per_volume: int = 30
    changed_per_volume: int = 20
    kinds: tuple[Kind, ...] = CHANGE_KINDS
    weekend_factor: float = 0.3
    holiday_factor: float = 0.1
    #: shape of the daily gamma noise (mean 1, variance 1 / shape)
    noise_shape: float = 3.0
    #: standard deviation and daily persistence of the log busy factor
    busy_sd: float = 0.15
    busy_persistence: float = 0.9
    #: chance that a user logs in on an ordinary weekday
    login_probability: float = 0.6
    max_users: int = 10
    #: records per series and day at most; each carries its share of the day's count
    max_events_per_day: int = 3
    #: uses per week of each core feature at most (fewer on small accounts)
    feature_uses_per_week: float = 3.0

    @property
    def days(self) -> int:
        """Days generated: up to ``follow_days`` after the latest change day."""
        return self.history_days + self.change_spread + self.follow_days

    @property
    def start_day(self) -> int:
        """The first day as a day number (days since 1970-01-01)."""
        return self.start.toordinal() - _EPOCH_ORDINAL

    def as_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["start"] = self.start.isoformat()
        settings["kinds"] = [str(k) for k in self.kinds]
        settings["volumes"] = list(self.volumes)
        settings["days"] = self.days
        return settings


@dataclass(frozen=True)
class AccountPlan:
    """One account's ground truth: its kind, volume, change day and users."""

    index: int
    account_id: str
    kind: Kind
    volume: int
    #: day index (0 = ``start``) on which the kind's change begins; a reference for steady ones
    change_day: int
    users: tuple[str, ...]

    @property
    def champion(self) -> str:
        return self.users[0]


@dataclass(frozen=True)
class Dataset:
    """The population and its records, ticks included, in ``ts`` order."""

    settings: GeneratorSettings
    accounts: tuple[AccountPlan, ...]
    records: list[TelemetryEvent] = field(repr=False)

    def day_ms(self, day: int) -> int:
        """Epoch milliseconds of 00:00 UTC of day index ``day``."""
        return (self.settings.start_day + day) * MS_PER_DAY


@dataclass(frozen=True)
class UsageShape:
    """Multipliers of an account's ordinary usage, per day, and when it stops altogether."""

    value_actions: FloatArray
    #: logins of every user but the champion
    logins: FloatArray
    integration_messages: FloatArray
    champion_present: FloatArray
    #: the last day index on which the account sends anything
    last_day: int


def users_for(volume: int, max_users: int) -> int:
    """Users grow with the log of volume: 1 at 2 a week, ``max_users`` at 1000 a week."""
    scale = math.log(max(volume, 2) / 2) / math.log(500)
    return max(1, min(max_users, round(1 + (max_users - 1) * scale)))


def plan_accounts(settings: GeneratorSettings) -> tuple[AccountPlan, ...]:
    """Steady accounts and changed accounts of every kind, for every volume."""
    plans: list[AccountPlan] = []
    for volume in settings.volumes:
        cells = [(Kind.STEADY, settings.steady_per_volume)]
        cells += [(kind, settings.changed_per_volume) for kind in settings.kinds]
        for kind, count in cells:
            for i in range(count):
                account_id = f"{kind}-v{volume}-{i:02d}"
                users = users_for(volume, settings.max_users)
                plans.append(
                    AccountPlan(
                        index=len(plans),
                        account_id=account_id,
                        kind=kind,
                        volume=volume,
                        change_day=settings.history_days + i % settings.change_spread,
                        users=tuple(f"{account_id}-u{u}" for u in range(users)),
                    )
                )
    return tuple(plans)


def usage_shape(kind: Kind, days: int, change_day: int) -> UsageShape:
    """The multipliers that make ``kind`` happen on ``change_day``."""
    after = np.arange(days) >= change_day
    ones = np.ones(days)
    value, logins, integrations, champion = ones.copy(), ones, ones, ones
    last_day = days - 1
    if kind is Kind.DROP_30:
        value[after] = 0.3
    elif kind is Kind.DROP_10:
        value[after] = 0.1
    elif kind is Kind.DIP_10D:
        value[change_day : change_day + 10] = 0.2
    elif kind is Kind.SILENCE:
        last_day = change_day - 1
    elif kind is Kind.SLOW_FADE:
        elapsed = np.clip(np.arange(days) - change_day, 0, 90)
        value = 1.0 - 0.8 * elapsed / 90
    elif kind in (Kind.MULTI_DECLINE_RESPONSIVE, Kind.MULTI_DECLINE_SILENT):
        value = np.where(after, 0.35, 1.0)
        logins = integrations = value
        if kind is Kind.MULTI_DECLINE_SILENT:
            champion = np.where(after, 0.0, 1.0)
    return UsageShape(value, logins, integrations, champion, last_day)


def calendar_factors(settings: GeneratorSettings) -> FloatArray:
    """Per day: 1 on a weekday, lower on a weekend day, lowest on a public holiday."""
    factors = np.ones(settings.days)
    for d in range(settings.days):
        day = settings.start + timedelta(days=d)
        if (day.month, day.day) in HOLIDAYS:
            factors[d] = settings.holiday_factor
        elif day.weekday() >= 5:
            factors[d] = settings.weekend_factor
    return factors


def busy_factors(rng: np.random.Generator, settings: GeneratorSettings) -> FloatArray:
    """The account's busy/quiet factor: exp of a stationary AR(1), with mean 1.

    ``x[d] = phi x[d-1] + sqrt(1 - phi^2) sd e[d]`` keeps the stationary sd at ``sd``."""
    phi, sd = settings.busy_persistence, settings.busy_sd
    shocks = rng.normal(0.0, sd * math.sqrt(1 - phi * phi), settings.days)
    log_busy = np.empty(settings.days)
    level = rng.normal(0.0, sd)
    for d, shock in enumerate(shocks):
        level = phi * level + shock
        log_busy[d] = level
    return np.exp(log_busy - sd * sd / 2)


def gamma_poisson(rng: np.random.Generator, mean: FloatArray, shape: float) -> IntArray:
    """Daily counts: Poisson around ``mean`` times a gamma noise of mean 1 per day."""
    noise = rng.gamma(shape, 1.0 / shape, mean.size)
    counts: IntArray = rng.poisson(mean * noise)
    return counts


class AccountLog:
    """An account's records by day index: unique ids, times within business hours."""

    def __init__(
        self,
        plan: AccountPlan,
        settings: GeneratorSettings,
        rng: np.random.Generator,
        last_day: int,
    ) -> None:
        self.plan = plan
        self.rng = rng
        self.last_day = last_day
        self.start_day = settings.start_day
        self.days: list[list[TelemetryEvent]] = [[] for _ in range(settings.days)]
        self.count = 0

    def add(
        self,
        day: int,
        etype: EventType,
        value: float = 1.0,
        user_id: str | None = None,
        attrs: dict[str, Any] | None = None,
        at_ms: int | None = None,
    ) -> None:
        """One record on day index ``day`` (none once the account has gone silent)."""
        if day > self.last_day or day >= len(self.days):
            return
        offset = int(self.rng.integers(1, _HOURS_MS)) if at_ms is None else at_ms
        ts_ms = (self.start_day + day) * MS_PER_DAY + _OPEN_MS + offset
        self.count += 1
        event_id = f"{self.plan.account_id}:{self.count}"
        self.days[day].append(
            TelemetryEvent(
                event_id, self.plan.account_id, etype, ts_ms, value, user_id, attrs or {}
            )
        )

    def add_counts(self, etype: EventType, counts: IntArray, most: int) -> None:
        """A day's count as up to ``most`` records, each carrying at least 1 of it."""
        for day in np.flatnonzero(counts):
            total = int(counts[day])
            parts = min(total, most)
            shares = 1 + self.rng.multinomial(total - parts, [1.0 / parts] * parts)
            for share in shares:
                self.add(int(day), etype, float(share))


def weekday_share(settings: GeneratorSettings) -> float:
    """An ordinary weekday's share of a week's usage (a weekend day has less)."""
    return 1.0 / (5 + 2 * settings.weekend_factor)


def value_actions_per_day(
    settings: GeneratorSettings, volume: int, activity: FloatArray
) -> FloatArray:
    """The mean of each day's value actions, for ``volume`` a week and the day's activity."""
    rate: FloatArray = volume * weekday_share(settings) * activity
    return rate


def account_records(plan: AccountPlan, settings: GeneratorSettings) -> list[list[TelemetryEvent]]:
    """The account's records by day index, each day's in no particular order."""
    rng = np.random.default_rng((settings.seed, plan.index))
    shape = usage_shape(plan.kind, settings.days, plan.change_day)
    activity = calendar_factors(settings) * busy_factors(rng, settings)
    log = AccountLog(plan, settings, rng, shape.last_day)
    _add_facts(log, settings)
    per_weekday = weekday_share(settings)
    most, k = settings.max_events_per_day, settings.noise_shape
    value_rate = value_actions_per_day(settings, plan.volume, activity)
    log.add_counts(
        EventType.VALUE_ACTION, gamma_poisson(rng, value_rate * shape.value_actions, k), most
    )
    log.add_counts(
        EventType.INTEGRATION_MESSAGE_SENT,
        gamma_poisson(rng, value_rate / 2 * shape.integration_messages, k),
        most,
    )
    _add_logins(log, settings, activity, shape)
    feature_rate = min(settings.feature_uses_per_week, plan.volume / 15) * per_weekday
    for feature in CORE_FEATURES:
        counts = gamma_poisson(rng, feature_rate * activity, k)
        for day in np.flatnonzero(counts):
            log.add(
                int(day), EventType.FEATURE_USED, float(counts[day]), attrs={"feature": feature}
            )
    return log.days


def _add_logins(
    log: AccountLog, settings: GeneratorSettings, activity: FloatArray, shape: UsageShape
) -> None:
    """One login per user and day the user is active."""
    for n, user in enumerate(log.plan.users):
        presence = shape.champion_present if n == 0 else shape.logins
        chance = np.minimum(1.0, settings.login_probability * activity * presence)
        for day in np.flatnonzero(log.rng.random(settings.days) < chance):
            log.add(int(day), EventType.LOGIN, 1.0, user_id=user)


def _add_facts(log: AccountLog, settings: GeneratorSettings) -> None:
    """Facts at the start and the healthy cadence of everything that is not usage."""
    plan, rng, days = log.plan, log.rng, settings.days
    segment = str(rng.choice(list(SEGMENTS)))
    contract_start = settings.start - timedelta(days=int(rng.integers(365, 1100)))
    renewal = settings.start + timedelta(days=days + int(rng.integers(400, 700)))
    facts = {
        "segment": segment,
        "plan": SEGMENTS[segment],
        "seats": len(plan.users) * int(rng.integers(1, 4)) + 2,
        "contract_start": contract_start.isoformat(),
        "renewal_date": renewal.isoformat(),
    }
    log.add(0, EventType.ACCOUNT_FACTS, attrs=facts, at_ms=0)
    log.add(
        0, EventType.CHAMPION_CHANGED, user_id=plan.champion, attrs={"status": "assigned"}, at_ms=1
    )
    billing_day, meeting_day = (int(d) for d in rng.integers(1, 29, 2))
    nps_offset = int(rng.integers(0, 91))
    open_chance = rng.random(days)
    reply_chance = rng.random(days)
    for d in range(days):
        day = settings.start + timedelta(days=d)
        if day.day == billing_day:
            amount = 50.0 * len(plan.users)
            log.add(d, EventType.INVOICE_PAID, amount, attrs={"days_late": 0, "invoice_id": f"{d}"})
        if day.day == meeting_day:
            log.add(d, EventType.MEETING_ATTENDED)
        if (d - nps_offset) % 91 == 0:
            log.add(d, EventType.NPS_RESPONSE, float(rng.integers(8, 11)))
        if day.weekday() >= 5:
            continue
        if open_chance[d] < 1 / 30:
            _add_ticket(log, d)
        if reply_chance[d] < 0.1:
            hours = round(float(rng.uniform(4, 12)), 1)
            log.add(d, EventType.EMAIL_REPLIED, attrs={"response_hours": hours})


def _add_ticket(log: AccountLog, day: int) -> None:
    """A support ticket, resolved one to three days later with a CSAT of 4 or 5."""
    ticket = {"ticket_id": f"{log.plan.account_id}-t{day}"}
    log.add(day, EventType.SUPPORT_TICKET_OPENED, attrs=ticket)
    resolved = day + int(log.rng.integers(1, 4))
    csat = int(log.rng.integers(4, 6))
    log.add(resolved, EventType.SUPPORT_TICKET_RESOLVED, attrs={**ticket, "csat": csat})


def generate(settings: GeneratorSettings) -> Dataset:
    """Every account's records merged day by day, with the day's two ticks, in ``ts`` order."""
    plans = plan_accounts(settings)
    days: list[list[TelemetryEvent]] = [[] for _ in range(settings.days)]
    for plan in plans:
        for d, events in enumerate(account_records(plan, settings)):
            days[d].extend(events)
    records: list[TelemetryEvent] = []
    for d, events in enumerate(days):
        midnight = (settings.start_day + d) * MS_PER_DAY
        events.append(TelemetryEvent("", "", EventType.TICK, midnight))
        events.append(TelemetryEvent("", "", EventType.TICK, midnight + MS_PER_DAY // 2))
        events.sort(key=_ts)
        records.extend(events)
    return Dataset(settings, plans, records)


def _ts(event: TelemetryEvent) -> int:
    return event.ts_ms
