"""The state of one account: daily buckets per signal plus the facts that are not series."""

from __future__ import annotations

from datetime import date
from enum import IntEnum
from hashlib import blake2b
from typing import Any

from windows.buckets import HORIZON, DailyBuckets
from windows.telemetry import EventType, TelemetryEvent

NO_DAY = -1
#: a score not given yet (an account's last score before its first, a signal without data)
NO_SCORE = -1
MAX_OPEN_TICKETS = 32
MAX_FEATURES = 32
MAX_USERS = 16
#: the days over which users count as active (what reads ``AccountState.users``)
ACTIVE_USER_DAYS = 30
#: weight of the newest observation in the running averages of CSAT and reply time
EMA_ALPHA = 0.3


class Series(IntEnum):
    """The signals kept as 90 days of daily buckets."""

    LOGINS = 0
    VALUE_ACTIONS = 1
    FEATURE_USES = 2
    API_CALLS = 3
    API_ERRORS = 4
    INTEGRATION_CREATED = 5
    INTEGRATION_CLOSED = 6
    INTEGRATION_MESSAGES = 7
    SUPPORT_OPENED = 8
    ESCALATIONS = 9
    MEETINGS_ATTENDED = 10
    MEETINGS_MISSED = 11
    EMAIL_REPLIES = 12
    PAYMENT_FAILURES = 13
    #: money or seats that count events stood for (``attrs.amount``), in whole units
    AMOUNTS = 14


SERIES_BY_NAME: dict[str, Series] = {s.name.lower(): s for s in Series}

_COUNTED: dict[EventType, Series] = {
    EventType.LOGIN: Series.LOGINS,
    EventType.VALUE_ACTION: Series.VALUE_ACTIONS,
    EventType.FEATURE_USED: Series.FEATURE_USES,
    EventType.API_CALLS: Series.API_CALLS,
    EventType.INTEGRATION_TICKET_CREATED: Series.INTEGRATION_CREATED,
    EventType.INTEGRATION_TICKET_CLOSED: Series.INTEGRATION_CLOSED,
    EventType.INTEGRATION_MESSAGE_SENT: Series.INTEGRATION_MESSAGES,
}
_ONE_EACH: dict[EventType, Series] = {
    EventType.SUPPORT_TICKET_OPENED: Series.SUPPORT_OPENED,
    EventType.SUPPORT_TICKET_ESCALATED: Series.ESCALATIONS,
    EventType.MEETING_ATTENDED: Series.MEETINGS_ATTENDED,
    EventType.MEETING_MISSED: Series.MEETINGS_MISSED,
    EventType.EMAIL_REPLIED: Series.EMAIL_REPLIES,
    EventType.PAYMENT_FAILED: Series.PAYMENT_FAILURES,
}


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: the series whose counts are use of the product: a day with any of them is an active day
USE_SERIES = frozenset(_COUNTED.values())


#: which event types feed each series (for knowing what an event can change)
EVENT_TYPES_OF_SERIES: dict[Series, frozenset[EventType]] = {
    series: frozenset(t for t, s in (_COUNTED | _ONE_EACH).items() if s is series)
    for series in Series
}
EVENT_TYPES_OF_SERIES[Series.API_ERRORS] = frozenset({EventType.API_CALLS})
EVENT_TYPES_OF_SERIES[Series.AMOUNTS] = frozenset(_COUNTED)


def date_to_day(text: str) -> int:
    """Day number of an ISO date ("2026-03-01"); a timestamp's date part is used."""
    return date.fromisoformat(text[:10]).toordinal() - _EPOCH_ORDINAL


#: the series whose weeks before the 84-day view are kept (``AccountState.long_weeks``):
#: the product's use, where a decline can last months
LONG_SERIES = frozenset(
    {
        Series.LOGINS,
        Series.VALUE_ACTIONS,
        Series.FEATURE_USES,
        Series.API_CALLS,
        Series.INTEGRATION_CREATED,
        Series.INTEGRATION_CLOSED,
        Series.INTEGRATION_MESSAGES,
    }
)
#: the detectors' view: the 84 complete days ending yesterday
VIEW_DAYS = 84
#: how many weeks the long history averages over, at most (its half-life: about 18 weeks)
LONG_WEEKS = 26
#: day 0 (1970-01-01) was a Thursday: weeks run Monday to Sunday
WEEK_OFFSET = 3


def fold_week(record: list[float], total: float) -> None:
    """Add a complete week's total to a long history [_, mean, variance, weeks, _]: an
    average of all weeks while there are fewer than ``LONG_WEEKS``, then exponentially
    weighted, so that it follows a level that moves over many months."""
    weeks = record[3] + 1.0
    weight = 1.0 / min(weeks, LONG_WEEKS)
    delta = total - record[1]
    # rounded: short in a snapshot, and the same whichever way the state was built
    record[1] = round(record[1] + weight * delta, 2)
    record[2] = round((1.0 - weight) * (record[2] + weight * delta * delta), 1)
    record[3] = weeks
    record[4] = 0.0  # whole weeks from here on


def _ema(old: float, new: float, count: int) -> float:
    return new if count == 0 else old + EMA_ALPHA * (new - old)


def _bounded_put(table: dict[str, int], key: str, day: int, limit: int) -> None:
    """Remember ``key`` at ``day``; past ``limit`` entries forget the stalest one."""
    if table.get(key, NO_DAY) < day:
        table[key] = day
    if len(table) > limit:
        stalest = min(table, key=lambda k: (table[k], k))
        del table[stalest]


#: caches recomputed from the rest of the state: never stored in a snapshot
DERIVED_SLOTS = (
    "signal_cache",
    "cache_clock",
    "card",
    "card_clock",
    "decline_cache",
    "daily_clock",
    "finding_cache",
)


def event_id_hash(event_id: str) -> bytes:
    """The 8 bytes an account remembers an event id by: its BLAKE2b digest of 8 bytes.

    Two different ids among an account's latest 32 share a hash with a chance of about
    32 / 2^64 per new event: a resend is told from a new event by its id, not by chance."""
    return blake2b(event_id.encode(), digest_size=8).digest()


class AccountState:
    """Everything the model knows about one account, advanced by events and ticks.

    ``clock`` is the account's current day: the latest day of any of its events or of a
    tick it has seen. Windows end at the clock, so a silent account's windows still roll.
    """

    __slots__ = (
        "clock",
        "first_day",
        "last_event_day",
        "series",
        "log_partition",
        "log_offset",
        "recent_ids",
        "segment",
        "plan",
        "seats",
        "contract_start_day",
        "renewal_day",
        "api_driven",
        "champion_user",
        "champion_departed",
        "champion_last_seen_day",
        "nps",
        "nps_day",
        "csat_avg",
        "csat_count",
        "email_hours_avg",
        "email_count",
        "last_days_late",
        "last_paid_day",
        "open_tickets",
        "escalated_open",
        "features",
        "features_before",
        "users",
        "now_ms",
        "manual_override",
        "seq",
        "last_score",
        "last_zone",
        "last_signal_scores",
        "active_overrides",
        "active_findings",
        "peak_score",
        "peak_day",
        "critical_armed",
        "watch",
        "watch_day",
        "held_findings",
        "last_failed_day",
        "episode_day",
        "calm_since",
        "seen_series",
        "use_days",
        "first_use_day",
        "last_use_day",
        "longest_silence",
        "resting",
        "long_weeks",
        *DERIVED_SLOTS,
    )

    def __init__(self) -> None:
        self.clock = NO_DAY
        self.first_day = NO_DAY
        self.last_event_day = NO_DAY
        self.series: list[DailyBuckets | None] = [None] * len(Series)
        #: the input log position (partition, offset) of the last record applied: a record at
        #: or before it is already in this state (read again after a restart, say)
        self.log_partition = -1
        self.log_offset = -1
        #: the 8-byte hashes of the latest event ids applied, oldest first, end to end (see
        #: ``remember``): a quarter of the memory of a list of integers, and searched in C
        self.recent_ids = bytearray()
        self._init_facts()
        self._init_emission_memory()
        self._init_derived()

    def _init_facts(self) -> None:
        """What the account's events have said about it: contract, people, support, usage."""
        self.segment: str | None = None
        self.plan: str | None = None
        self.seats = 0
        self.contract_start_day = NO_DAY
        self.renewal_day = NO_DAY
        self.api_driven = False
        self.champion_user: str | None = None
        self.champion_departed = False
        self.champion_last_seen_day = NO_DAY
        self.nps = -1.0
        self.nps_day = NO_DAY
        self.csat_avg = 0.0
        self.csat_count = 0
        self.email_hours_avg = 0.0
        self.email_count = 0
        self.last_days_late = -1
        self.last_paid_day = NO_DAY
        self.open_tickets: dict[str, int] = {}
        self.escalated_open: list[str] = []
        self.features: dict[str, int] = {}
        #: per feature used today, the day of its use before today (NO_DAY: none known), so
        #: that adoption can be read over complete days
        self.features_before: dict[str, int] = {}
        self.users: dict[str, int] = {}
        #: the latest event or tick time seen, in ms: what a manual override expires against
        self.now_ms = 0
        #: a CSM's governed override in force: score, reason, author, override_id, set_ms,
        #: expires_ms (see ``apply``); None when there is none
        self.manual_override: dict[str, Any] | None = None

    def _init_emission_memory(self) -> None:
        """What the engine last emitted and what it watches, so that emission decisions
        survive a restart."""
        self.seq = 0
        self.last_score = NO_SCORE
        self.last_zone = ""
        self.last_signal_scores: list[int] = []
        #: names of the overrides in force at the last evaluation, and the keys of the
        #: detector findings then active: their changes are what gets emitted
        self.active_overrides: list[str] = []
        self.active_findings: list[str] = []
        #: the score's usual level (a moving average) and the day it last moved, for the
        #: score-drop alert
        self.peak_score = -1.0
        self.peak_day = NO_DAY
        #: whether entering the critical zone will alert (re-armed above a hysteresis band)
        self.critical_armed = True
        #: per watched series, the drop being followed (see scoring.detectors), and the
        #: clock at which the records last advanced: once a day
        self.watch: dict[str, list[float]] = {}
        self.watch_day = NO_DAY
        #: findings held on for a while after their condition lapsed (see scoring.detectors):
        #: key → [held through this day, detector, severity, series, evidence]
        self.held_findings: dict[str, list[Any]] = {}
        #: the latest failed payment: it counts until an invoice is paid after it
        self.last_failed_day = NO_DAY
        #: the day the account's alert episode opened (NO_DAY: none open) and since when it
        #: has been calm (healthy, nothing yellow or red), which closes it
        self.episode_day = NO_DAY
        self.calm_since = NO_DAY
        #: a bit per ``Series`` the account has ever had a count in: a signal whose data
        #: the account never produced is "no data", not zero (kept for life: the buckets
        #: forget after 90 days)
        self.seen_series = 0
        #: the account's cadence over its whole life, beyond the 90-day windows: distinct
        #: days with any use (logins, value actions, features, API, integrations), the
        #: first and last of them, and the longest silent stretch between two of them
        self.use_days = 0
        self.first_use_day = NO_DAY
        self.last_use_day = NO_DAY
        self.longest_silence = 0
        #: what ended lately and stays ended through a day, so that nothing turns off and on
        #: again within 24 hours: findings (a drop's stages as one; see scoring.detectors)
        #: and zones just left (``zone:NAME``) → the last day each rests
        self.resting: dict[str, int] = {}
        #: per series (its index, as text), the usual weekly total of the weeks older than
        #: the detectors' 84-day view, what a decline lasting months is judged against:
        #: [this week's total so far, the mean, variance and number of the weeks folded,
        #: the first day held] (see ``fold_week``)
        self.long_weeks: dict[str, list[float]] = {}

    def _init_derived(self) -> None:
        # derived, never stored: signal points as of ``cache_clock`` (see scoring.model),
        # the scorecard chosen for the account, and per-series daily counts and findings
        # as of ``daily_clock`` (see scoring.detectors)
        self.signal_cache: list[float | None] | None = None
        self.cache_clock = NO_DAY
        self.card: Any = None
        self.card_clock = NO_DAY
        #: the day's multi_signal_decline entries of the watched series that decline, by index
        self.decline_cache: dict[int, Any] = {}
        self.daily_clock = NO_DAY
        #: the watched series' findings of the day by index, then the declining series
        self.finding_cache: list[Any] = []

    # -- time ---------------------------------------------------------------------------

    def advance_to(self, day: int) -> bool:
        """Roll every window forward to ``day``. Returns whether the clock moved."""
        if self.clock == NO_DAY or day <= self.clock:
            return False
        days = day - self.clock
        for index, buckets in enumerate(self.series):
            if buckets is not None:
                if index in LONG_SERIES:
                    self._keep_leaving_days(index, buckets, day)
                buckets.shift(day, days)
        self.clock = day
        if self.features_before:
            # read only for a feature used on the clock's day, and none is yet on the new one
            self.features_before = {}
        return True

    def _keep_leaving_days(self, index: int, buckets: DailyBuckets, day: int) -> None:
        """Fold the days that leave the 84-day view as the clock moves to ``day`` into the
        series' long history, a whole week (Monday to Sunday, UTC) at a time."""
        first = self.clock - VIEW_DAYS
        last = day - VIEW_DAYS - 1  # the last day that is out of the view at ``day``
        if last < first or last < self.first_day:
            return  # nothing leaves, or only days before the account's first
        key = str(index)
        record = self.long_weeks.get(key)
        first = max(first, last - 7 * LONG_WEEKS)  # a long jump: older days say nothing
        if record is None:
            # the first day it holds: a week that began before it is not whole
            record = self.long_weeks[key] = [0.0, 0.0, 0.0, 0.0, float(min(first, self.first_day))]
        counts = buckets.counts
        clock = self.clock
        for leaving in range(first, last + 1):
            if leaving <= clock:
                record[0] += counts[leaving % HORIZON]
            if (leaving + WEEK_OFFSET) % 7 == 6:
                if leaving - 6 >= max(self.first_day, record[4]):
                    fold_week(record, record[0])
                record[0] = 0.0

    # -- events ---------------------------------------------------------------------------

    def apply(self, event: TelemetryEvent) -> bool:
        """Fold one event into the state. Returns False for an event older than 90 days."""
        day = event.ts_ms // 86_400_000
        if self.clock == NO_DAY:
            self.clock = day
            self.first_day = day
        elif day > self.clock:
            self.advance_to(day)
        age = self.clock - day
        if age >= HORIZON:
            return False
        if day < self.first_day:
            self.first_day = day
        if day > self.last_event_day:
            self.last_event_day = day
        etype = event.type
        series = _COUNTED.get(etype)
        if series is not None:
            self._count(series, age, day, int(event.value))
            amount = event.attrs.get("amount")
            if amount:
                # summed in whole units: a trend of revenue or seats, not of cents
                self._count(Series.AMOUNTS, age, day, round(amount))
            if etype is EventType.API_CALLS:
                errors = event.attrs.get("errors", 0)
                if errors:
                    self._count(Series.API_ERRORS, age, day, int(errors))
            elif etype is EventType.FEATURE_USED:
                feature = event.attrs.get("feature")
                if isinstance(feature, str):
                    last = self.features.get(feature, NO_DAY)
                    if day > last:
                        self.features_before[feature] = last
                    _bounded_put(self.features, feature, day, MAX_FEATURES)
                    if len(self.features_before) > MAX_FEATURES:
                        kept = self.features
                        self.features_before = {
                            f: d for f, d in self.features_before.items() if f in kept
                        }
        else:
            series = _ONE_EACH.get(etype)
            if series is not None:
                self._count(series, age, day, 1)
            self._apply_fact(event, day)
        if event.ts_ms > self.now_ms:
            self.now_ms = event.ts_ms
        user = event.user_id
        if user is not None:
            _bounded_put(self.users, user, day, MAX_USERS)
            if user == self.champion_user and day > self.champion_last_seen_day:
                self.champion_last_seen_day = day
        return True

    def is_repeat(self, event: TelemetryEvent) -> bool:
        """Whether folding ``event`` in would only add to today's count of a series already
        counted today: an event of today, of a counted type, by no user or one already
        active within ``ACTIVE_USER_DAYS`` who is not the champion, of a feature already
        used today, with no amount or errors for a series not yet counted today. Such an
        event changes no complete day, no day of use, no count of active users, no
        feature's or champion's last day, and no fact."""
        series = _COUNTED.get(event.type)
        if series is None:
            return False
        day = event.ts_ms // 86_400_000
        if day != self.clock or not self._counted_today(series):
            return False
        user = event.user_id
        if user is not None:
            last = self.users.get(user, NO_DAY)
            # a user's first event today moves their last day, which only the count of users
            # active within the window reads (and the champion's own)
            if last != day and (last <= day - ACTIVE_USER_DAYS or user == self.champion_user):
                return False
        attrs = event.attrs
        if not attrs:
            return True
        if attrs.get("amount") and not self._counted_today(Series.AMOUNTS):
            return False
        if event.type is EventType.API_CALLS:
            return not attrs.get("errors") or self._counted_today(Series.API_ERRORS)
        if event.type is EventType.FEATURE_USED:
            feature = attrs.get("feature")
            return not isinstance(feature, str) or self.features.get(feature) == day
        return True

    def _counted_today(self, series: Series) -> bool:
        """Whether ``series`` has a count on the clock's day (always within the ring)."""
        buckets = self.series[series]
        return buckets is not None and buckets.counts[self.clock % HORIZON] > 0

    def _count(self, series: Series, age: int, day: int, amount: int) -> None:
        if amount <= 0:
            return
        buckets = self.series[series]
        if buckets is None:
            buckets = self.series[series] = DailyBuckets()
        self.seen_series |= 1 << series
        if series in USE_SERIES and day != self.last_use_day:
            self._note_use(age, day)
        buckets.add(age, day, amount)

    def _note_use(self, age: int, day: int) -> None:
        """Count ``day`` as a day of use, once: called before its count is added."""
        last = self.last_use_day
        if last == NO_DAY:
            self.first_use_day = day
        elif day > last:
            self.longest_silence = max(self.longest_silence, day - last - 1)
        elif day < self.first_use_day:
            self.longest_silence = max(self.longest_silence, self.first_use_day - day - 1)
            self.first_use_day = day
        elif any(
            b is not None and b.day_count(self.clock, day)
            for i, b in enumerate(self.series)
            if i in USE_SERIES
        ):
            return  # a late event on a day already counted
        self.use_days += 1
        if day > last:
            self.last_use_day = day

    def has_seen(self, series: Series) -> bool:
        """Whether the account ever had a count in ``series`` (however long ago)."""
        return bool(self.seen_series >> series & 1)

    def _apply_fact(self, event: TelemetryEvent, day: int) -> None:
        etype = event.type
        attrs = event.attrs
        if etype is EventType.SUPPORT_TICKET_OPENED:
            ticket = str(attrs.get("ticket_id", event.event_id))
            _bounded_put(self.open_tickets, ticket, day, MAX_OPEN_TICKETS)
        elif etype is EventType.SUPPORT_TICKET_ESCALATED:
            ticket = str(attrs.get("ticket_id", ""))
            if ticket in self.open_tickets and ticket not in self.escalated_open:
                self.escalated_open.append(ticket)
        elif etype is EventType.SUPPORT_TICKET_RESOLVED:
            ticket = str(attrs.get("ticket_id", ""))
            self.open_tickets.pop(ticket, None)
            if ticket in self.escalated_open:
                self.escalated_open.remove(ticket)
            csat = attrs.get("csat")
            if isinstance(csat, int | float):
                self.csat_avg = _ema(self.csat_avg, float(csat), self.csat_count)
                self.csat_count += 1
        elif etype is EventType.EMAIL_REPLIED:
            hours = attrs.get("response_hours")
            if isinstance(hours, int | float):
                self.email_hours_avg = _ema(self.email_hours_avg, float(hours), self.email_count)
                self.email_count += 1
        elif etype is EventType.INVOICE_PAID:
            if day >= self.last_paid_day:
                self.last_paid_day = day
                self.last_days_late = int(attrs.get("days_late", 0))
        elif etype is EventType.PAYMENT_FAILED:
            self.last_failed_day = max(self.last_failed_day, day)
        elif etype is EventType.NPS_RESPONSE:
            if day >= self.nps_day:
                self.nps_day = day
                self.nps = float(event.value)
        elif etype is EventType.CHAMPION_CHANGED:
            if attrs.get("status") == "departed":
                self.champion_departed = True
            else:
                self.champion_departed = False
                self.champion_user = event.user_id
                self.champion_last_seen_day = day
        elif etype is EventType.ACCOUNT_FACTS:
            self._apply_account_facts(attrs)
            self.card = None
        elif etype is EventType.MANUAL_OVERRIDE:
            self._apply_manual_override(event)

    def _apply_manual_override(self, event: TelemetryEvent) -> None:
        attrs = event.attrs
        if attrs.get("action", "set") == "clear":
            wanted = attrs.get("override_id")
            current = self.manual_override
            if current is not None and (wanted is None or wanted == current.get("override_id")):
                self.manual_override = None
            return
        self.manual_override = {
            "score": int(round(float(attrs["score"]))),
            "reason": str(attrs["reason"]),
            "author": attrs.get("author") or event.user_id,
            "override_id": attrs.get("override_id") or event.event_id,
            "set_ms": event.ts_ms,
            "expires_ms": int(attrs["expires_at_ms"]),
        }

    def _apply_account_facts(self, attrs: dict[str, Any]) -> None:
        if "segment" in attrs:
            self.segment = str(attrs["segment"])
        if "plan" in attrs:
            self.plan = str(attrs["plan"])
        if "seats" in attrs:
            self.seats = int(attrs["seats"])
        if "api_driven" in attrs:
            self.api_driven = bool(attrs["api_driven"])
        if "contract_start" in attrs:
            self.contract_start_day = date_to_day(str(attrs["contract_start"]))
        if "renewal_date" in attrs:
            self.renewal_day = date_to_day(str(attrs["renewal_date"]))

    # -- idempotence ------------------------------------------------------------------------

    def already_applied(self, partition: int, offset: int) -> bool:
        return partition == self.log_partition and offset <= self.log_offset

    def seen(self, id_hash: bytes) -> bool:
        """Whether an event id with this ``event_id_hash`` is among the latest remembered."""
        ids = self.recent_ids
        at = ids.find(id_hash)
        while at >= 0:
            if not at & 7:
                return True
            at = ids.find(id_hash, at + 1)  # a match across two hashes is no match
        return False

    def remember(self, id_hash: bytes, limit: int) -> None:
        """Keep the id's hash among the latest ``limit``; the oldest is forgotten past the bound."""
        ids = self.recent_ids
        ids += id_hash
        if len(ids) > 8 * limit:
            del ids[: len(ids) - 8 * limit]

    # -- reading ----------------------------------------------------------------------------

    def buckets(self, series: Series) -> DailyBuckets | None:
        return self.series[series]

    def total(self, series: Series, window: int) -> float:
        buckets = self.series[series]
        return 0.0 if buckets is None else buckets.total(window)

    def active_days(self, series: Series, window: int) -> int:
        buckets = self.series[series]
        return 0 if buckets is None else buckets.active_days(window)

    def complete_total(self, series: Series, window: int) -> float:
        """The total of the ``window`` complete days ending yesterday."""
        buckets = self.series[series]
        if buckets is None:
            return 0.0
        clock = self.clock
        return (
            buckets.total(window)
            - buckets.day_count(clock, clock)
            + buckets.day_count(clock, clock - window)
        )

    def complete_active_days(self, series: Series, window: int) -> int:
        """Active days among the ``window`` complete days ending yesterday."""
        buckets = self.series[series]
        if buckets is None:
            return 0
        clock = self.clock
        today = 1 if buckets.day_count(clock, clock) else 0
        leaving = 1 if buckets.day_count(clock, clock - window) else 0
        return buckets.active_days(window) - today + leaving

    def usual_gap(self, prior_days: float) -> float:
        """Days per active day over the account's life, counting ``prior_days`` of no use
        before the first (so that one active day is not read as a daily habit)."""
        if self.use_days == 0:
            return float("inf")
        return (self.clock - self.first_use_day + 1 + prior_days) / self.use_days

    def days_silent(self) -> int:
        """Complete days since the last day of use (0 when used today or yesterday)."""
        if self.last_use_day == NO_DAY:
            return self.tenure_days
        return max(0, self.clock - 1 - self.last_use_day)

    @property
    def tenure_days(self) -> int:
        """Days since the account's first event."""
        return 0 if self.first_day == NO_DAY else self.clock - self.first_day

    @property
    def onboarding_days(self) -> int:
        """Days since the contract started, or since the first event when no start is known."""
        start = self.contract_start_day if self.contract_start_day != NO_DAY else self.first_day
        return 0 if start == NO_DAY else self.clock - start
