"""Detectors: patterns in a signal's history, each returned with the evidence it rests on.

The series detectors read the 84 complete days of one series that end yesterday, as 12
weeks; today, still filling up, is never read, so a finding cannot switch on at midnight
and off again when the day's first events arrive. A count is judged against the account's
own usual level with a test made for overdispersed counts (``scoring.counts``): a
parameter, ``alpha``, sets how often a steady account is flagged, whatever its volume.

A drop is followed from its onset to its recovery in a small record on the account
(``AccountState.watch``) that keeps the usual level from before the drop, so a decline that
lasts is judged against where the account was, not against its own new low, for as long as
it lasts. The account detectors read several series and the champion. Each finding has a
severity from the response framework: ``monitor`` (note it), ``yellow`` (reach out) or
``red`` (act now).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.counts import Reference
from windows.account import EVENT_TYPES_OF_SERIES, NO_DAY, SERIES_BY_NAME, AccountState
from windows.buckets import DailyBuckets
from windows.days import iso_day
from windows.telemetry import EventType

Params = Mapping[str, Any]
DAYS = 84
WEEKS = DAYS // 7
SEVERITIES = ("monitor", "yellow", "red")
SEVERITY_RANK = {"monitor": 1, "yellow": 2, "red": 3}
#: the findings of a drop record, which has its own hysteresis
_FOLLOWED = frozenset({"single_drop", "drop_no_recovery"})
#: a finding read afresh each day stays on through this many days after its last reading,
#: so that one quiet day neither turns it off nor, the day after, on again
HOLD_DAYS = 2
#: a finding that turns off stays off through the next day, so none turns off and on again
#: within 24 hours however its evidence wavers (the least time off, as ``HOLD_DAYS`` is
#: the least time on)
REST_DAYS = 1
#: where ``finding_cache`` keeps the declining series (the series' own findings use 0..n-1;
#: ``()`` there: not read yet)
_DECLINING = -1


#: the keys of findings and of resting drops made so far: a few dozen strings shared by
#: every account's memory of its findings
_KEYS: dict[tuple[str, str | None], str] = {}
_RESTING: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector firing: what, how serious, on which series, and why."""

    detector: str
    severity: str
    series: str | None
    evidence: dict[str, Any]

    @property
    def key(self) -> str:
        """``detector`` or ``detector:series``: one string for every account, not one each."""
        key = _KEYS.get((self.detector, self.series))
        if key is None:
            key = self.detector if self.series is None else f"{self.detector}:{self.series}"
            _KEYS[(self.detector, self.series)] = key
        return key

    def as_output(self, action: str) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "severity": self.severity,
            "series": self.series,
            "evidence": self.evidence,
            "action": action,
        }


def _resting_key(key: str) -> str:
    """A finding's key with a drop's two stages as one: a drop growing more severe has not
    turned off."""
    rest = _RESTING.get(key)
    if rest is None:
        detector, _, series = key.partition(":")
        rest = _RESTING[key] = f"drop:{series}" if detector in _FOLLOWED else key
    return rest


def _weeks(daily: Sequence[int]) -> list[int]:
    return [sum(daily[i : i + 7]) for i in range(0, DAYS, 7)]


#: the fields of a series' drop record (``AccountState.watch``): when the drop began, the
#: usual level it is judged against, frozen at its onset, and how far it has gone
_START, _PER_WEEK, _DISPERSION, _WEEKS_KNOWN, _NO_RECOVERY, _RECOVERED, _SILENT = range(7)


class SeriesDay:
    """One watched series as the detectors read it on one day: its 84 complete days
    ending yesterday (today, still filling up, is never read) and their 12 weeks.

    ``known`` is the index of the first of those days within the account's history:
    the days before it are not zeros, they are unknown."""

    __slots__ = ("days", "weeks", "known")

    def __init__(self, days: Sequence[int], known: int) -> None:
        self.days = days
        self.weeks = _weeks(days)
        self.known = known

    def reference(self, first_week: int, end_week: int, p: Params) -> Reference | None:
        """The usual level from the complete weeks ``first_week``..``end_week - 1`` that lie
        within the account's history."""
        first = max(first_week, -(-self.known // 7))
        if end_week - first < p["min_baseline_weeks"]:
            return None
        ref = Reference.of_weeks(
            self.weeks[first:end_week], p["dispersion_prior"], p["min_dispersion"]
        )
        return ref if ref is not None and ref.per_week >= p["min_per_week"] else None

    def last(self, days: int) -> int:
        return sum(self.days[DAYS - days :])

    def down(self, days: int, per_week: float, p: Params) -> bool:
        """Whether the last ``days`` complete days, and the last week among them, are at most
        ``dip_ratio`` of ``per_week``: what every drop reading asks first."""
        dip = float(p["dip_ratio"]) * per_week
        return self.last(7) <= dip and self.last(days) <= dip * days / 7


def _day_start(clock: int, index: int) -> str:
    return iso_day(clock - DAYS + index)


# -- series detectors ---------------------------------------------------------------------


def regime_change(name: str, day: SeriesDay, clock: int, p: Params) -> Finding | None:
    """Active → zero: at least ``zero_days`` silent complete days after four steadily active
    weeks, a silence that long being less likely than ``alpha`` at the usual level."""
    daily = day.days
    zeros = 0
    for count in reversed(daily):
        if count:
            break
        zeros += 1
    end = DAYS - zeros
    if zeros < p["zero_days"] or end - 28 < day.known:
        return None
    before = daily[end - 28 : end]
    weekly = [sum(before[i : i + 7]) for i in range(0, 28, 7)]
    ref = Reference.of_weeks(weekly, p["dispersion_prior"], p["min_dispersion"])
    active = sum(1 for c in before if c)
    if ref is None or active < p["min_active_days"]:
        return None
    if min(weekly) < p["steady_ratio"] * ref.per_week:
        return None  # it was already fading: a drop, not a sudden change
    chance = ref.chance_of_silence(zeros)
    if chance >= p["alpha"]:
        return None  # a series this sparse goes quiet that long by chance
    return Finding(
        "regime_change",
        p["severity"],
        name,
        {
            "last_active_day": iso_day(clock - 1 - zeros),
            "zero_days": zeros,
            "per_week_before": round(ref.per_week, 1),
            "active_days_in_4_weeks_before": active,
            "chance_by_noise": _chance(chance),
        },
    )


def _chance(value: float) -> float:
    return float(f"{value:.2g}")


def drop_onset(day: SeriesDay, p: Params, since: int = DAYS) -> tuple[int, Reference, float] | None:
    """A drop in progress: the last 7, 14, 21 or 28 complete days (none of them more than
    ``since`` days back) at most ``dip_ratio`` of the usual level of the 8 weeks before
    them, the last week too, and less likely than ``alpha`` by noise.

    Returns how many days it has lasted (the most telling window), the usual level, and
    that window's chance."""
    ref = day.reference(0, WEEKS - 4, p)
    if ref is None:
        return None
    return _most_telling(day, ref, (7, 14, 21, 28), min(since, DAYS), p["alpha"], p)


def _most_telling(
    day: SeriesDay, ref: Reference, windows: Sequence[int], since: int, alpha: float, p: Params
) -> tuple[int, Reference, float] | None:
    """The window (of those within ``since`` days and the known history) whose count is
    down and least likely by noise, if less likely than ``alpha``."""
    best: tuple[int, Reference, float] | None = None
    for window in windows:
        if window > since or DAYS - window < day.known:
            break
        if not day.down(window, ref.per_week, p):
            continue
        chance = ref.chance_of_at_most(day.last(window), window)
        if chance < alpha and (best is None or chance < best[2]):
            best = (window, ref, chance)
    return best


def long_reference(record: list[float] | None, p: Params) -> Reference | None:
    """The usual level of a series from its weeks older than the 84-day view
    (``AccountState.long_weeks``), once it holds ``min_long_weeks`` of them."""
    if record is None or record[3] < p["min_long_weeks"]:
        return None
    mean, variance, weeks = record[1], record[2], int(record[3])
    if mean < p["min_per_week"]:
        return None
    return Reference.of_moments(mean, variance, weeks, p["dispersion_prior"], p["min_dispersion"])


def long_onset(
    day: SeriesDay, ref: Reference, p: Params, since: int
) -> tuple[int, Reference, float] | None:
    """A drop that has lasted months: the last 8 or 12 weeks (and the last week) at most
    ``dip_ratio`` of the level before them and less likely than ``long_alpha`` by noise. At a
    few events a week a month says too little; two or three say enough, judged against
    the weeks before the view, which the drop has not touched."""
    return _most_telling(day, ref, p["long_windows"], since, p["long_alpha"], p)


def _recovery_window(per_week: float, down: int, p: Params) -> int:
    """Long enough to expect ``recovery_events`` at the usual level (1-4 weeks), within the
    drop: a week back at a few events a week proves little."""
    weeks = min(4, max(1, math.ceil(p["recovery_events"] / per_week)))
    return int(min(7 * weeks, max(7, down)))


def follow_drop(record: list[float], day: SeriesDay, clock: int, p: Params) -> None:
    """Advance one day of a drop in progress: recovered, or held long enough without recovery."""
    start, per_week = int(record[_START]), record[_PER_WEEK]
    down = clock - start
    window = _recovery_window(per_week, down, p)
    usual = per_week * window / 7
    if down >= 7 and day.last(window) >= p["recover_ratio"] * usual:
        if day.last(7) >= 0.5 * p["recover_ratio"] * per_week:
            record[_RECOVERED] = clock
            record[_NO_RECOVERY] = 0
            return
    if not record[_NO_RECOVERY]:
        mark_no_recovery(record, day, p)


def mark_no_recovery(record: list[float], day: SeriesDay, p: Params) -> None:
    """No recovery after three weeks: the last three weeks, the last one too, are down."""
    held = p["no_recovery_days"]
    per_week = record[_PER_WEEK]
    if not day.down(held, per_week, p):
        return
    ref = Reference(per_week, record[_DISPERSION], int(record[_WEEKS_KNOWN]))
    if ref.chance_of_at_most(day.last(held), held) < p["hold_alpha"]:
        record[_NO_RECOVERY] = 1


def advance_watch(
    record: list[float] | None,
    day: SeriesDay,
    clock: int,
    regime: bool,
    p: Params,
    long_ref: Reference | None = None,
) -> list[float] | None:
    """The drop record of one series after today's reading (None: nothing to follow)."""
    if record is not None and record[_RECOVERED] == NO_DAY:
        follow_drop(record, day, clock, p)
        if regime:
            record[_SILENT] = 1
        return record
    since = DAYS
    if record is not None:
        since = clock - int(record[_RECOVERED])
        if since > p["recent_days"]:
            record = None
    onset = drop_onset(day, p, since)  # not the recovered drop again
    if onset is None and long_ref is not None:
        onset = long_onset(day, long_ref, p, since)
    if onset is None:
        return record
    window, ref, _ = onset
    record = [clock - window, ref.per_week, ref.dispersion, ref.weeks, 0, NO_DAY, int(regime)]
    # a drop first seen over its longest window may have lasted three weeks already: it is
    # drop_no_recovery from the start, not a monitor finding that turns yellow overnight
    mark_no_recovery(record, day, p)
    return record


def drop_finding(
    name: str, record: list[float], day: SeriesDay, clock: int, p: Params
) -> Finding | None:
    """What a series' drop record says today: ``single_drop`` (monitor) while young or once
    recovered, ``drop_no_recovery`` (yellow) once it has lasted ``no_recovery_days``."""
    start, per_week = int(record[_START]), record[_PER_WEEK]
    down = clock - start
    recent = min(max(down, 7), 28)
    evidence: dict[str, Any] = {
        "drop_start": iso_day(start),
        "usual_per_week": round(per_week, 1),
        "per_week_since": round(7 * day.last(recent) / recent, 1),
        "change_pct": round(100 * (day.last(recent) / (per_week * recent / 7) - 1), 1),
        "days_down": down,
        "recovered": record[_RECOVERED] != NO_DAY,
    }
    if record[_RECOVERED] != NO_DAY:
        evidence["days_down"] = int(record[_RECOVERED]) - start
        evidence["recovered_on"] = iso_day(int(record[_RECOVERED]))
        return Finding("single_drop", p["severity"], name, evidence)
    if record[_NO_RECOVERY]:
        return Finding("drop_no_recovery", p["no_recovery_severity"], name, evidence)
    return Finding("single_drop", p["severity"], name, evidence)


def silence_held(name: str, record: list[float], day: SeriesDay, clock: int) -> Finding | None:
    """A regime change that has outlasted the detectors' 12-week view: still red while the
    series stays at zero."""
    start = int(record[_START])
    if not record[_SILENT] or record[_RECOVERED] != NO_DAY or day.last(min(clock - start, DAYS)):
        return None
    return Finding(
        "regime_change",
        "red",
        name,
        {
            "silent_since": iso_day(start),
            "zero_days": clock - start,
            "per_week_before": round(record[_PER_WEEK], 1),
        },
    )


def weakening_rebounds(name: str, day: SeriesDay, clock: int, p: Params) -> Finding | None:
    """Repeated drops, each rebound weaker than the level before it. A drop is a week below
    ``dip_ratio`` of the first four weeks' level and less likely than ``alpha`` by noise."""
    ref = day.reference(0, 4, p)
    if ref is None:
        return None
    weeks = day.weeks
    base = ref.per_week
    dip = p["dip_ratio"] * base
    troughs = [
        i
        for i in range(4, WEEKS)
        if weeks[i] < dip
        and weeks[i] <= weeks[i - 1]
        and (i == WEEKS - 1 or weeks[i] < weeks[i + 1])
    ]
    if len(troughs) < 2:
        return None
    troughs = [i for i in troughs if ref.chance_of_at_most(weeks[i], 7) < p["alpha"]]
    if len(troughs) < 2:
        return None
    levels = [base]
    for k in range(len(troughs) - 1):
        rebound = max(weeks[troughs[k] + 1 : troughs[k + 1]])
        if rebound < dip:
            return None  # never left the dip: one long drop, not repeated ones
        levels.append(float(rebound))
    if troughs[-1] < WEEKS - 1:
        levels.append(float(max(weeks[troughs[-1] + 1 :])))
    weaker = p["weaker_ratio"]
    if any(later > weaker * earlier for earlier, later in zip(levels, levels[1:], strict=False)):
        return None
    return Finding(
        "weakening_rebounds",
        p["severity"],
        name,
        {
            "baseline_per_week": round(base, 1),
            "drop_week_starts": [_day_start(clock, 7 * t) for t in troughs],
            "drop_lows": [weeks[t] for t in troughs],
            "rebound_peaks": [round(v, 1) for v in levels[1:]],
        },
    )


def accelerating_decline(
    name: str, day: SeriesDay, buckets: DailyBuckets, clock: int, p: Params
) -> Finding | None:
    """A decline that speeds up: over the last three complete fortnights each total is
    lower than the one before, the second fall is the larger and clear of noise, and the
    whole fall is at least ``min_decline`` of the first fortnight and less likely than
    ``alpha`` by noise.

    Fortnight totals rather than the sign of a fitted curvature: daily counts are noisy,
    and a quadratic's sign flips on noise; the fitted slope and acceleration are evidence."""
    if day.known > DAYS - 42:
        return None
    daily = day.days
    f1, f2, f3 = sum(daily[-42:-28]), sum(daily[-28:-14]), sum(daily[-14:])
    if f1 < p["min_fortnight"] or not f1 > f2 > f3 or f2 - f3 <= f1 - f2:
        return None
    decline = (f1 - f3) / f1
    if decline < p["min_decline"]:
        return None
    c = p["min_dispersion"]
    if f2 - f3 < (f2 + f3 + c * (f2 * f2 + f3 * f3)) ** 0.5:
        return None  # the second fall is within a fortnight's noise
    first = Reference(f1 / 2, p["dispersion_prior"], 2)
    if first.chance_of_at_most(f3, 14) >= p["alpha"]:
        return None
    trend = buckets.trend(int(p["window"]), complete_to=clock)
    return Finding(
        "accelerating_decline",
        p["severity"],
        name,
        {
            "fortnight_totals": [f1, f2, f3],
            "first_fortnight_start": iso_day(clock - 42),
            "window_days": trend.window,
            "slope_per_day": round(trend.slope, 3),
            "acceleration_per_day2": round(trend.acceleration, 4),
            "level_per_day": round(trend.level, 2),
            "level_per_day_84d": round(sum(daily) / DAYS, 2),
            "decline_pct": round(100 * decline, 1),
        },
    )


# -- account detectors --------------------------------------------------------------------


def champion_status(state: AccountState, silent_days: float) -> str:
    if state.champion_departed:
        return "departed"
    if state.champion_user is None:
        return "unknown"
    if state.champion_last_seen_day == NO_DAY:
        return "silent"
    return "silent" if state.clock - state.champion_last_seen_day >= silent_days else "responsive"


def champion_evidence(state: AccountState, silent_days: float) -> dict[str, Any]:
    seen = state.champion_last_seen_day
    return {
        "status": champion_status(state, silent_days),
        "champion": state.champion_user,
        "last_seen": None if seen == NO_DAY else iso_day(seen),
        "days_silent": None if seen == NO_DAY else state.clock - seen,
    }


def champion_silent(state: AccountState, p: Params) -> Finding | None:
    if champion_status(state, p["silent_days"]) != "silent":
        return None
    return Finding(
        "champion_silent", p["severity"], None, champion_evidence(state, p["silent_days"])
    )


def series_decline(day: SeriesDay, p: Params) -> dict[str, Any] | None:
    """One series' part of multi_signal_decline: the last 14 complete days down
    ``decline_pct`` or more on the usual level of the 10 weeks before, and less likely than
    ``alpha`` by noise."""
    ref = day.reference(0, WEEKS - 2, p)
    if ref is None:
        return None
    last = day.last(14)
    usual = 2 * ref.per_week
    if usual < p["min_prior_14d"] or 100 * last > (100 - p["decline_pct"]) * usual:
        return None
    if ref.chance_of_at_most(last, 14) >= p["alpha"]:
        return None
    return {
        "last_14d": last,
        "usual_14d": round(usual, 1),
        "change_pct": round(100 * (last / usual - 1), 1),
    }


def with_dropped_series(
    declining: dict[str, dict[str, Any]], series_findings: list[Finding]
) -> dict[str, dict[str, Any]]:
    """Add the series found gone to zero or dropped without recovery."""
    for finding in series_findings:
        if finding.detector in ("regime_change", "drop_no_recovery") and finding.series:
            declining.setdefault(finding.series, {"by": finding.detector})
    return declining


def multi_signal_decline(
    state: AccountState, declining: dict[str, dict[str, Any]], p: Params
) -> Finding | None:
    """Several watched series declining at once; red when the champion is silent or gone."""
    if len(declining) < p["min_signals"]:
        return None
    champion = champion_evidence(state, p["silent_days"])
    silent = champion["status"] in ("silent", "departed")
    return Finding(
        "multi_signal_decline",
        p["silent_severity"] if silent else p["severity"],
        None,
        {"declining": declining, "champion": champion},
    )


#: how every count is judged against the account's own usual level (see scoring.counts)
_COUNTS: dict[str, Any] = {
    # the squared extra CV of a week's total assumed before the account's weeks say more,
    # and the least ever assumed: real weeks vary more than a Poisson count's
    "dispersion_prior": 0.05,
    "min_dispersion": 0.02,
    "min_baseline_weeks": 4,
    # below this many a week a series is too sparse to say anything about
    "min_per_week": 1.0,
}

#: every detector's parameters and defaults; a profile tunes them in ``[detectors.NAME]``
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "regime_change": {
        "enabled": True,
        "severity": "red",
        "zero_days": 7,
        # how unlikely the silence must be at the usual level of the 4 weeks before it
        "alpha": 1e-4,
        "min_active_days": 8,
        # each of the 4 weeks before the silence at least this share of their mean
        "steady_ratio": 0.5,
        **_COUNTS,
        "action": "Immediate outreach: assume something broke.",
    },
    "single_drop": {
        "enabled": True,
        "severity": "monitor",
        "no_recovery_severity": "yellow",
        # a drop starts when the last 1-4 weeks are at most this share of the usual level
        # and less likely than alpha by noise (judged once a day, over complete days)
        "dip_ratio": 0.5,
        "alpha": 0.005,
        # it becomes drop_no_recovery once the last this many days are down (at most
        # dip_ratio of the usual level, the last week too) and less likely than hold_alpha
        "no_recovery_days": 21,
        "hold_alpha": 0.02,
        # recovered when back at this share of the usual level over a window long enough
        # to expect recovery_events (with 10, one lucky week at 15 a week ended one drop in
        # five that lasted 16 weeks; with 20, one in twenty)
        "recover_ratio": 0.8,
        "recovery_events": 20,
        # a recovered drop is shown (monitor) for this many days
        "recent_days": 14,
        # a drop lasting this long (days) is judged against the weeks before the 84-day
        # view, once the account has this many of them
        "long_windows": [56, 84],
        # read every day over two windows: stricter than alpha, for the same rate of onsets
        "long_alpha": 0.002,
        "min_long_weeks": 8,
        **_COUNTS,
        "action": "Note it, no outreach needed.",
        "no_recovery_action": "Reach out to check in and understand the context.",
    },
    "weakening_rebounds": {
        "enabled": True,
        "severity": "yellow",
        "dip_ratio": 0.5,
        "alpha": 0.001,
        "weaker_ratio": 0.9,
        **_COUNTS,
        "action": "Find what keeps breaking: review the drops with the customer.",
    },
    "accelerating_decline": {
        "enabled": True,
        "severity": "yellow",
        "window": 30,
        "min_fortnight": 14,
        "min_decline": 0.4,
        "alpha": 0.001,
        **_COUNTS,
        "action": "Reach out before the decline compounds: confirm goals and blockers.",
    },
    "multi_signal_decline": {
        "enabled": True,
        "severity": "yellow",
        "silent_severity": "red",
        "min_signals": 2,
        "decline_pct": 30.0,
        "min_prior_14d": 4.0,
        "alpha": 0.001,
        "silent_days": 14,
        **_COUNTS,
        "action": "Schedule a working session and re-align on goals.",
        "silent_action": "Executive alignment call: confirm renewal intent.",
    },
    "champion_silent": {
        "enabled": True,
        "severity": "yellow",
        "silent_days": 14,
        "action": "Reach the champion through another channel; find a second contact.",
    },
}
DETECTOR_SETTINGS_DEFAULTS: dict[str, Any] = {
    "series": ["value_actions", "logins", "integration_messages", "api_calls"],
    # yellow caps the score just below healthy, red just below at risk
    "cap_score": True,
}


@dataclass(frozen=True)
class DetectorSettings:
    """Which series are watched, whether findings cap the score, and each detector's params."""

    series: tuple[str, ...]
    cap_score: bool
    params: Mapping[str, Mapping[str, Any]]

    def enabled(self, name: str) -> bool:
        return bool(self.params[name]["enabled"])

    def action(self, finding: Finding) -> str:
        p = self.params[
            "single_drop" if finding.detector == "drop_no_recovery" else finding.detector
        ]
        if finding.detector == "drop_no_recovery":
            return str(p["no_recovery_action"])
        if finding.detector == "multi_signal_decline" and finding.severity == p["silent_severity"]:
            return str(p["silent_action"])
        return str(p["action"])


class DetectorSet:
    """The detectors a profile enables, read once a day over complete days.

    Today's events change nothing the series detectors read, so their findings hold for the
    day: they are derived on the first evaluation of a day (when each series' drop record
    also advances, once) and again only for an event of an earlier day arriving late."""

    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self.watched = [(name, SERIES_BY_NAME[name]) for name in settings.series]
        p = settings.params
        self.regime = p["regime_change"] if settings.enabled("regime_change") else None
        self.drop = p["single_drop"] if settings.enabled("single_drop") else None
        self.rebounds = p["weakening_rebounds"] if settings.enabled("weakening_rebounds") else None
        self.accel = p["accelerating_decline"] if settings.enabled("accelerating_decline") else None
        self.multi = p["multi_signal_decline"] if settings.enabled("multi_signal_decline") else None
        self.champion = p["champion_silent"] if settings.enabled("champion_silent") else None
        affected: dict[EventType, list[int]] = {}
        for index, (_, series) in enumerate(self.watched):
            for etype in EVENT_TYPES_OF_SERIES[series]:
                affected.setdefault(etype, []).append(index)
        self.affected = {t: tuple(ix) for t, ix in affected.items()}

    def evaluate(
        self, state: AccountState, changed_by: EventType | None, event_day: int = NO_DAY
    ) -> list[Finding]:
        """Every finding now."""
        clock = state.clock
        cached = state.finding_cache
        if state.daily_clock != clock or changed_by is None:
            advance = state.watch_day != clock
            state.decline_cache.clear()
            cached = state.finding_cache = [()] * (len(self.watched) + 1)
            state.daily_clock = clock
            state.watch_day = clock
            stale: tuple[int, ...] = tuple(range(len(self.watched)))
        else:
            advance = False
            stale = self.affected.get(changed_by, ()) if event_day < clock else ()
        for index in stale:
            # most series have no finding: one shared empty tuple for all of them
            cached[index] = self._read_series(state, index, advance) or ()
        findings = [f for index in range(len(self.watched)) for f in cached[index]]
        if self.multi is not None:
            held = cached[_DECLINING]
            if stale or held == ():
                held = cached[_DECLINING] = self._declining(state, findings)
            found = multi_signal_decline(state, held, self.multi)
            if found is not None:
                findings.append(found)
        if self.champion is not None:
            found = champion_silent(state, self.champion)
            if found is not None:
                findings.append(found)
        if findings or state.held_findings:
            self._hold(state, findings)
        if state.resting and findings:
            resting = state.resting
            clock = state.clock
            findings[:] = [f for f in findings if resting.get(_resting_key(f.key), NO_DAY) < clock]
        return findings

    def turned_off(self, state: AccountState, before: list[str], now: list[str]) -> None:
        """Note the findings just turned off (``before`` but not ``now``, as emitted): they
        rest through ``REST_DAYS`` more days. Called by the engine when it emits, never
        from a query, so that reading an account changes nothing it will say."""
        resting = state.resting
        clock = state.clock
        still = {_resting_key(k) for k in now}
        for key in before:
            rest = _resting_key(key)
            if rest not in still:
                resting[rest] = clock + REST_DAYS

    def _hold(self, state: AccountState, findings: list[Finding]) -> None:
        """Hysteresis for the findings read afresh each day: one that lapses stays on until
        the end of the second day after its last reading (``HOLD_DAYS``), so none turns on
        and off, or off and on, within a day (the drop records have hysteresis of their
        own)."""
        clock = state.clock
        held = state.held_findings
        now = {f.key for f in findings}
        for f in findings:
            if f.detector not in _FOLLOWED:
                record = held.get(f.key)
                # once a day, not on every event: what these findings say changes once a day
                if record is None or record[0] != clock + HOLD_DAYS or record[4] != f.evidence:
                    held[f.key] = [clock + HOLD_DAYS, f.detector, f.severity, f.series, f.evidence]
        for key, (until, detector, severity, series, evidence) in list(held.items()):
            if key in now:
                continue
            if until < clock:
                del held[key]
            else:
                findings.append(Finding(detector, severity, series, {**evidence, "held": True}))

    def _declining(self, state: AccountState, findings: list[Finding]) -> dict[str, Any]:
        assert self.multi is not None
        declining: dict[str, dict[str, Any]] = {}
        entries = state.decline_cache
        for i, (name, _) in enumerate(self.watched):
            entry = entries.get(i)
            if entry is not None:
                declining[name] = entry
        return with_dropped_series(declining, findings)

    def _note_decline(self, state: AccountState, index: int, day: SeriesDay) -> None:
        """Keep the series' entry for multi_signal_decline of the day, not its days: the
        entries are all that a later reading of the day needs of the series."""
        assert self.multi is not None
        entry = series_decline(day, self.multi)
        if entry is None:
            state.decline_cache.pop(index, None)
        else:
            state.decline_cache[index] = entry

    def _read_series(self, state: AccountState, index: int, advance: bool) -> list[Finding]:
        name, series = self.watched[index]
        buckets = state.series[series]
        clock = state.clock
        if buckets is None:
            state.watch.pop(name, None)
            return []
        known = max(0, DAYS - state.tenure_days)
        day = SeriesDay(buckets.daily_array(clock - 1, DAYS), known)
        if self.multi is not None:
            self._note_decline(state, index, day)
        out: list[Finding] = []
        regime = regime_change(name, day, clock, self.regime) if self.regime else None
        if self.drop is not None:
            record = state.watch.get(name)
            if advance:
                long_ref = long_reference(state.long_weeks.get(str(int(series))), self.drop)
                record = advance_watch(record, day, clock, regime is not None, self.drop, long_ref)
                if record is None:
                    state.watch.pop(name, None)
                else:
                    state.watch[name] = record
            if record is not None:
                if regime is None:
                    regime = silence_held(name, record, day, clock)
                if regime is None:
                    found = drop_finding(name, record, day, clock, self.drop)
                    if found is not None:
                        out.append(found)
        if regime is not None:
            return [regime]  # the starkest reading of this series; drops would repeat it
        if self.rebounds is not None:
            found = weakening_rebounds(name, day, clock, self.rebounds)
            if found is not None:
                out.append(found)
        if self.accel is not None:
            found = accelerating_decline(name, day, buckets, clock, self.accel)
            if found is not None:
                out.append(found)
        return out
