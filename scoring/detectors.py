"""Detectors: patterns in a signal's history, each returned with the evidence it rests on.

A detector is a pure function of an account's windows. The series detectors read the last
84 days of one series as 12 weeks ending today (week 11 holds today); the account
detectors read several series and the champion. Each finding has a severity from the
response framework: ``monitor`` (note it), ``yellow`` (reach out) or ``red`` (act now).

Findings are recomputed on every event that can change them: a series' daily history is
rebuilt once per account and day, and an event of today only updates today's count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from windows.account import EVENT_TYPES_OF_SERIES, NO_DAY, SERIES_BY_NAME, AccountState
from windows.buckets import DailyBuckets
from windows.telemetry import EventType

Params = Mapping[str, Any]
DAYS = 84
WEEKS = DAYS // 7
SEVERITIES = ("monitor", "yellow", "red")
SEVERITY_RANK = {"monitor": 1, "yellow": 2, "red": 3}
#: where ``finding_cache`` keeps the declining series (the series' own findings use 0..n-1)
_DECLINING = -1
_EPOCH = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def iso_day(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since the epoch); outputs name few days."""
    return date.fromordinal(day + _EPOCH).isoformat()


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector firing: what, how serious, on which series, and why."""

    detector: str
    severity: str
    series: str | None
    evidence: dict[str, Any]

    @property
    def key(self) -> str:
        return self.detector if self.series is None else f"{self.detector}:{self.series}"

    def as_output(self, action: str) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "severity": self.severity,
            "series": self.series,
            "evidence": self.evidence,
            "action": action,
        }


def _weeks(daily: list[int]) -> list[int]:
    return [sum(daily[i : i + 7]) for i in range(0, DAYS, 7)]


_UNKNOWN: dict[str, Any] = {}


class SeriesDay:
    """One watched series of an account as the detectors read it, derived once per day.

    Today's count is the only part an event of today changes: it updates ``days[-1]`` and
    the week it falls in. What reads only complete days holds for the rest of the day:
    whether the decline is accelerating (when it is not) and the 14-day comparison for
    several signals declining."""

    __slots__ = ("days", "weeks", "accel_quiet", "decline")

    def __init__(self, days: list[int]) -> None:
        self.days = days
        self.weeks = _weeks(days)
        #: accelerating_decline found nothing today: it reads complete days only
        self.accel_quiet = False
        #: this series' entry for multi_signal_decline (None: not declining); not yet read
        self.decline: dict[str, Any] | None = _UNKNOWN

    def today(self, count: int) -> None:
        days = self.days
        days[-1] = count
        self.weeks[-1] = sum(days[-7:])


def _week_start(clock: int, week: int) -> str:
    return iso_day(clock - DAYS + 1 + 7 * week)


# -- series detectors ---------------------------------------------------------------------


def regime_change(name: str, daily: list[int], clock: int, p: Params) -> Finding | None:
    """Active → zero: at least ``zero_days`` silent days, and more than ``gap_multiple`` times
    the longest gap, after four steadily active weeks."""
    zeros = 0
    for count in reversed(daily):
        if count:
            break
        zeros += 1
    end = DAYS - zeros
    if zeros < p["zero_days"] or end < 28:
        return None
    before = daily[end - 28 : end]
    longest_gap = gap = 0
    for count in before:
        gap = 0 if count else gap + 1
        longest_gap = max(longest_gap, gap)
    if zeros <= p["gap_multiple"] * longest_gap:
        return None  # a series this sparse goes quiet that long by chance
    active = sum(1 for c in before if c)
    per_week = sum(before) / 4
    if active < p["min_active_days"] or per_week < p["min_per_week"]:
        return None
    steady = p["steady_ratio"] * per_week
    if any(sum(before[i : i + 7]) < steady for i in range(0, 28, 7)):
        return None  # it was already fading: a drop, not a sudden change
    return Finding(
        "regime_change",
        p["severity"],
        name,
        {
            "last_active_day": iso_day(clock - zeros),
            "zero_days": zeros,
            "per_week_before": round(per_week, 1),
            "active_days_in_4_weeks_before": active,
        },
    )


def _mean_sd(xs: list[int]) -> tuple[float, float]:
    n = len(xs)
    mean = sum(xs) / n
    return mean, (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5


def _latest_drop(
    weeks: list[int], daily: list[int], p: Params
) -> tuple[int, float, float, int | None] | None:
    """The latest week that fell below ``dip_ratio`` of the 4 weeks before it, and clearly
    so (by ``z`` standard deviations of a week, from those 28 days' day-to-day noise):
    its index, that baseline, the week's noise, and the first later week back at
    ``recover_ratio`` of the baseline (None: not yet)."""
    found = None
    i = 4
    while i < WEEKS:
        baseline = (weeks[i - 4] + weeks[i - 3] + weeks[i - 2] + weeks[i - 1]) / 4
        if baseline < p["min_baseline_per_week"] or weeks[i] >= p["dip_ratio"] * baseline:
            i += 1
            continue
        # the noise only where the ratio already says "drop": this runs on every event
        noise = _mean_sd(daily[7 * (i - 4) : 7 * i])[1] * 7**0.5
        if baseline - weeks[i] < p["z"] * noise:
            i += 1
            continue
        j = i + 1
        while j < WEEKS and weeks[j] < p["recover_ratio"] * baseline:
            j += 1
        found = (i, baseline, noise, j if j < WEEKS else None)
        i = j + 1
    return found


def signal_drop(
    name: str, weeks: list[int], daily: list[int], clock: int, p: Params
) -> Finding | None:
    """A single drop: ``monitor`` while young or once recovered within ``recovered_within_weeks``;
    ``drop_no_recovery`` (yellow) when it has lasted ``no_recovery_weeks`` without recovering
    and the weeks since are, together, clearly below the baseline."""
    drop = _latest_drop(weeks, daily, p)
    if drop is None:
        return None
    start, baseline, noise, recovered = drop
    down_weeks = (WEEKS if recovered is None else recovered) - start
    episode = weeks[start : WEEKS if recovered is None else recovered]
    evidence: dict[str, Any] = {
        "drop_week_start": _week_start(clock, start),
        "baseline_per_week": round(baseline, 1),
        "low_per_week": min(episode),
        "this_week": weeks[-1],
        "weeks_down": down_weeks,
    }
    if recovered is None:
        evidence["recovered"] = False
        shortfall = baseline - sum(episode) / down_weeks
        if down_weeks >= p["no_recovery_weeks"] and shortfall >= p["z"] * noise / down_weeks**0.5:
            return Finding("drop_no_recovery", p["no_recovery_severity"], name, evidence)
        return Finding("single_drop", p["severity"], name, evidence)
    if down_weeks <= p["recovered_within_weeks"] and WEEKS - recovered <= p["recent_weeks"]:
        evidence["recovered"] = True
        evidence["recovered_week_start"] = _week_start(clock, recovered)
        return Finding("single_drop", p["severity"], name, evidence)
    return None


def weakening_rebounds(
    name: str, weeks: list[int], daily: list[int], clock: int, p: Params
) -> Finding | None:
    """Repeated drops, each rebound weaker than the level before it. A drop is a week below
    ``dip_ratio`` of the first four weeks' level and ``z`` weekly deviations under it."""
    base = (weeks[0] + weeks[1] + weeks[2] + weeks[3]) / 4
    if base < p["min_baseline_per_week"]:
        return None

    def troughs_below(dip: float) -> list[int]:
        return [
            i
            for i in range(4, WEEKS)
            if weeks[i] < dip
            and weeks[i] <= weeks[i - 1]
            and (i == WEEKS - 1 or weeks[i] < weeks[i + 1])
        ]

    # the ratio first (cheap, on every event); the noise only when it finds two troughs
    if len(troughs_below(p["dip_ratio"] * base)) < 2:
        return None
    dip = min(p["dip_ratio"] * base, base - p["z"] * _mean_sd(daily[:28])[1] * 7**0.5)
    troughs = troughs_below(dip)
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
            "drop_week_starts": [_week_start(clock, t) for t in troughs],
            "drop_lows": [weeks[t] for t in troughs],
            "rebound_peaks": [round(v, 1) for v in levels[1:]],
        },
    )


def accelerating_decline(
    name: str, daily: list[int], buckets: DailyBuckets, clock: int, tenure: int, p: Params
) -> Finding | None:
    """A decline that speeds up: over the last three complete fortnights each total is
    lower than the one before, the second fall is the larger, and the whole fall is at
    least ``min_decline`` of the first fortnight. Today, still filling up, is left out.

    Fortnight totals rather than the sign of a fitted curvature: daily counts are noisy,
    and a quadratic's sign flips on noise; the fitted slope and acceleration are evidence."""
    if tenure < 43:
        return None
    f1, f2, f3 = sum(daily[-43:-29]), sum(daily[-29:-15]), sum(daily[-15:-1])
    if f1 < p["min_fortnight"] or not f1 > f2 > f3 or f2 - f3 <= f1 - f2:
        return None
    decline = (f1 - f3) / f1
    _, sd = _mean_sd(daily[-43:-29])
    if decline < p["min_decline"] or f1 - f3 < p["z"] * sd * 28**0.5:
        return None
    trend = buckets.trend(int(p["window"]), complete_to=clock)
    level_90 = buckets.total(90) / 90
    return Finding(
        "accelerating_decline",
        p["severity"],
        name,
        {
            "fortnight_totals": [f1, f2, f3],
            "window_days": trend.window,
            "slope_per_day": round(trend.slope, 3),
            "acceleration_per_day2": round(trend.acceleration, 4),
            "level_per_day": round(trend.level, 2),
            "level_per_day_90d": round(level_90, 2),
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


def declining_series(
    dailies: dict[str, list[int]], series_findings: list[Finding], p: Params
) -> dict[str, dict[str, Any]]:
    """The watched series down ``decline_pct`` or more, the last 14 complete days on the 14
    before, and clearly so (Welch's t at most ``-z``); or found dropped without recovery or
    gone to zero. ``DetectorSet`` assembles the same from each series' part, kept for the
    day (``SeriesDay.decline``)."""
    declining: dict[str, dict[str, Any]] = {}
    for name, daily in dailies.items():
        entry = series_decline(daily, p)
        if entry is not None:
            declining[name] = entry
    return with_dropped_series(declining, series_findings)


def series_decline(daily: list[int], p: Params) -> dict[str, Any] | None:
    """One series' part of ``declining_series``: it reads complete days only."""
    before, after = daily[-29:-15], daily[-15:-1]
    prior, last = sum(before), sum(after)
    if prior < p["min_prior_14d"] or 100 * last > (100 - p["decline_pct"]) * prior:
        return None
    (m1, s1), (m2, s2) = _mean_sd(before), _mean_sd(after)
    spread = ((s1 * s1 + s2 * s2) / 14) ** 0.5
    if spread and (m2 - m1) / spread > -p["z"]:
        return None
    return {
        "last_14d": last,
        "prior_14d": prior,
        "change_pct": round(100 * (last / prior - 1), 1),
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


#: every detector's parameters and defaults; a profile tunes them in ``[detectors.NAME]``
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "regime_change": {
        "enabled": True,
        "severity": "red",
        "zero_days": 7,
        # the silence must also outlast this many times the longest gap of the 4 weeks before
        "gap_multiple": 2.0,
        "min_active_days": 12,
        "min_per_week": 3.0,
        # each of the 4 weeks before the silence at least this share of their mean
        "steady_ratio": 0.5,
        "action": "Immediate outreach: assume something broke.",
    },
    "single_drop": {
        "enabled": True,
        "severity": "monitor",
        "no_recovery_severity": "yellow",
        "dip_ratio": 0.5,
        "recover_ratio": 0.8,
        "min_baseline_per_week": 7.0,
        # how many standard deviations of ordinary week-to-week noise a drop must clear
        "z": 2.0,
        "no_recovery_weeks": 3,
        "recovered_within_weeks": 2,
        "recent_weeks": 4,
        "action": "Note it, no outreach needed.",
        "no_recovery_action": "Reach out to check in and understand the context.",
    },
    "weakening_rebounds": {
        "enabled": True,
        "severity": "yellow",
        "dip_ratio": 0.5,
        "min_baseline_per_week": 7.0,
        "z": 2.0,
        "weaker_ratio": 0.9,
        "action": "Find what keeps breaking: review the drops with the customer.",
    },
    "accelerating_decline": {
        "enabled": True,
        "severity": "yellow",
        "window": 30,
        "min_fortnight": 14,
        "min_decline": 0.4,
        "z": 2.0,
        "action": "Reach out before the decline compounds: confirm goals and blockers.",
    },
    "multi_signal_decline": {
        "enabled": True,
        "severity": "yellow",
        "silent_severity": "red",
        "min_signals": 2,
        "decline_pct": 30.0,
        "min_prior_14d": 14.0,
        "z": 2.5,
        "silent_days": 14,
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
    """The detectors a profile enables, evaluated incrementally on an account's state."""

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
        """Every finding now. Series untouched since the last call keep their cached findings."""
        clock = state.clock
        daily: dict[int, SeriesDay] = state.daily_cache
        cached = state.finding_cache
        if state.daily_clock != clock or changed_by is None:
            daily.clear()
            cached.clear()
            state.daily_clock = clock
            stale: tuple[int, ...] = tuple(range(len(self.watched)))
        else:
            stale = self.affected.get(changed_by, ())
        for index in stale:
            name, series = self.watched[index]
            buckets = state.series[series]
            if buckets is None:
                cached[index] = []
                continue
            day = daily.get(index)
            if day is None or event_day != clock:
                day = daily[index] = SeriesDay(buckets.daily(clock, DAYS))
            else:
                day.today(buckets.day_count(clock, clock))
            cached[index] = self._series_findings(name, day, buckets, clock, state.tenure_days)
        findings = [f for index in range(len(self.watched)) for f in cached.get(index, ())]
        if self.multi is not None:
            held = cached.get(_DECLINING)
            if stale or not held:
                declining: dict[str, dict[str, Any]] = {}
                for i, (name, _) in enumerate(self.watched):
                    day = daily.get(i)
                    if day is None:
                        continue
                    entry = day.decline
                    if entry is _UNKNOWN:
                        entry = day.decline = series_decline(day.days, self.multi)
                    if entry is not None:
                        declining[name] = entry
                held = cached[_DECLINING] = [with_dropped_series(declining, findings)]
            found = multi_signal_decline(state, held[0], self.multi)
            if found is not None:
                findings.append(found)
        if self.champion is not None:
            found = champion_silent(state, self.champion)
            if found is not None:
                findings.append(found)
        return findings

    def _series_findings(
        self, name: str, day: SeriesDay, buckets: DailyBuckets, clock: int, tenure: int
    ) -> list[Finding]:
        out: list[Finding] = []
        days, weeks = day.days, day.weeks
        if self.regime is not None:
            found = regime_change(name, days, clock, self.regime)
            if found is not None:
                return [found]  # the starkest reading of this series; drops would repeat it
        if self.drop is not None:
            found = signal_drop(name, weeks, days, clock, self.drop)
            if found is not None:
                out.append(found)
        if self.rebounds is not None:
            found = weakening_rebounds(name, weeks, days, clock, self.rebounds)
            if found is not None:
                out.append(found)
        if self.accel is not None and not day.accel_quiet:
            found = accelerating_decline(name, days, buckets, clock, tenure, self.accel)
            if found is None:
                day.accel_quiet = True
            else:
                out.append(found)
        return out
