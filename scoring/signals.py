"""Signal scorers: each turns an account's windows and facts into 0-100 points, or None.

None means "no data for this signal" (no meetings ever recorded, no CSAT yet): the signal
drops out and its weight is shared among the others of its category. Each scorer has a
matching ``evidence`` function that says what the points rest on; it is called only when a
score change is emitted, so the per-event path stays lean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.counts import Reference
from windows.account import (
    ACTIVE_USER_DAYS,
    EVENT_TYPES_OF_SERIES,
    NO_DAY,
    SERIES_BY_NAME,
    USE_SERIES,
    AccountState,
    Series,
)
from windows.days import iso_day
from windows.telemetry import EventType as E

Params = Mapping[str, Any]
Scorer = Callable[[AccountState, Params], float | None]
Evidence = Callable[[AccountState, Params], dict[str, Any]]


def _banded(value: float, bands: list[list[float]], floor: float) -> float:
    """Points of the first band ``[minimum, points]`` that ``value`` reaches (bands descend)."""
    for minimum, points in bands:
        if value >= minimum:
            return float(points)
    return floor


# -- usage ------------------------------------------------------------------------------


def _absent(state: AccountState, series: Series, p: Params) -> bool:
    """Whether the account has never produced this series' data: then the signal has no
    data, unless the profile gives ``absent_points`` of 0 or more (absence itself is the
    risk, say in a product every customer must log in to)."""
    return not state.has_seen(series) and p["absent_points"] < 0


def login_frequency(state: AccountState, p: Params) -> float | None:
    """Login days among the 30 complete days ending yesterday: today's first login does not
    move it, nor does midnight (which would read today as a day without logins)."""
    if not state.has_seen(Series.LOGINS):
        return None if _absent(state, Series.LOGINS, p) else float(p["absent_points"])
    days = state.complete_active_days(Series.LOGINS, 30)
    points = _banded(days, p["bands"], p["inactive_points"])
    if _logins_declining(state, p):
        lower = [b[1] for b in p["bands"] if b[1] < points]
        points = max(lower) if lower else float(p["inactive_points"])
    return points


def _login_fortnights(state: AccountState) -> tuple[int, int]:
    """Login days in the last 14 complete days and in the 14 before them."""
    last = state.complete_active_days(Series.LOGINS, 14)
    return last, state.complete_active_days(Series.LOGINS, 28) - last


def _logins_declining(state: AccountState, p: Params) -> bool:
    """A clear fall in login days, fortnight on fortnight: the trend, not only the level,
    is judged ("focus on trends rather than an arbitrary good threshold")."""
    last, prior = _login_fortnights(state)
    return last < prior and _clear_change(last, prior, p["min_z"], p["dispersion"])


def login_frequency_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    last, prior = _login_fortnights(state)
    return {
        "login_days_30d": state.complete_active_days(Series.LOGINS, 30),
        "login_days_last_14d": last,
        "login_days_prior_14d": prior,
        "declining": _logins_declining(state, p),
    }


def _usage_windows(state: AccountState, p: Params) -> tuple[float, float]:
    """The last 14 complete days and the 14 before them (today, still filling up, is left
    out: a trend that dipped every morning and recovered by night would be noise).

    From the windows ending today: ages 1..14 = total(14) - y₀ + y₁₄ and ages 15..28 =
    total(28) - total(14) - y₁₄ + y₂₈."""
    buckets = state.series[_used_series(state, p)]
    if buckets is None:
        return 0.0, 0.0
    clock = state.clock
    y0 = buckets.day_count(clock, clock)
    y14 = buckets.day_count(clock, clock - 14)
    y28 = buckets.day_count(clock, clock - 28)
    t14 = buckets.total(14)
    return t14 - y0 + y14, buckets.total(28) - t14 - y14 + y28


def _used_series(state: AccountState, p: Params) -> Series:
    """The signal's series, or the first of its ``fallback_series`` the account has used
    when it never produced the main one (an API-only account has no value actions)."""
    series = SERIES_BY_NAME[p["series"]]
    if state.has_seen(series):
        return series
    for name in p["fallback_series"]:
        if state.has_seen(SERIES_BY_NAME[name]):
            return SERIES_BY_NAME[name]
    return series


def usage_trend(state: AccountState, p: Params) -> float | None:
    """The 14-day usage trend: the last 14 complete days against the 14 before.

    Comparisons are made as ``100·last`` against ``(100 + pct)·prior`` so that integer
    sums fall exactly on band edges (10% growth on 100 is 110, not 110.00000000000001).
    """
    series = _used_series(state, p)
    if state.total(series, 90) == 0:
        return None  # never used (or not in 90 days): no data, rather than a collapse
    last, prior = _usage_windows(state, p)
    if last == 0 and prior == 0 and state.complete_total(series, 90) == 0:
        return None  # only today so far: no complete day to judge a trend on
    least = min(p["dispersion"], p["dispersion_prior"]) * _FORTNIGHT
    if last and not _clear_change(last, prior, p["min_z"], least):
        # within the noise of the calmest account: no need to read this one's weeks
        return float(p["stable_points"])
    ref = _trend_reference(state, p)
    if last == 0 and _silence_not_chance(ref, prior, p):
        return float(p["zero_points"])  # a silent fortnight that could not be chance
    c = (p["dispersion_prior"] if ref is None else ref.dispersion) * _FORTNIGHT
    if not _clear_change(last, prior, p["min_z"], c):
        return float(p["stable_points"])  # "3 vs 7" is noise, not a trend
    if prior == 0:
        return float(p["growing_points"])
    if 100 * last > (100 + p["growing_above_pct"]) * prior:
        return float(p["growing_points"])
    if 100 * last >= (100 + p["stable_from_pct"]) * prior:
        return float(p["stable_points"])
    if 100 * last >= (100 + p["declining_from_pct"]) * prior:
        return float(p["declining_points"])
    return float(p["critical_points"])


def _trend_reference(state: AccountState, p: Params) -> Reference | None:
    """The account's usual level and spread from its weekly totals in the 8 complete weeks
    before the two fortnights compared (``scoring.counts.Reference``; None with fewer than
    ``min_baseline_weeks`` of them known). Busy and quiet spells make a heavy account's
    fortnights differ by a fifth or more: a fixed allowance would read that as a trend
    every few weeks at high volume and never at low."""
    buckets = state.series[_used_series(state, p)]
    known = min(8, (state.tenure_days - 29) // 7)
    if buckets is None or known < p["min_baseline_weeks"]:
        return None
    days = buckets.daily(state.clock - 29, 7 * known)
    weeks = [sum(days[i : i + 7]) for i in range(0, 7 * known, 7)]
    return Reference.of_weeks(weeks, p["dispersion_prior"], p["dispersion"])


def _silence_not_chance(ref: Reference | None, prior: float, p: Params) -> bool:
    """Whether a silent fortnight is less likely than ``zero_alpha`` at the account's usual
    level (a sparse series goes quiet for a fortnight now and then); with too short a
    history, whether it is ``zero_min_z`` standard deviations below the fortnight before."""
    if ref is None:
        c = p["dispersion_prior"] * _FORTNIGHT
        return _clear_change(0.0, prior, p["zero_min_z"], c)
    return ref.chance_of_silence(14) < float(p["zero_alpha"])


#: a fortnight's extra relative variance against a week's (``Reference.expected``)
_FORTNIGHT = math.sqrt(0.5)


def _clear_change(last: float, prior: float, min_z: float, c: float) -> bool:
    """Whether two fortnights' counts differ by more than ``min_z`` standard deviations of
    their difference, for overdispersed counts: var = last + prior + c·(last² + prior²)."""
    spread = (last + prior + c * (last * last + prior * prior)) ** 0.5
    return bool(abs(last - prior) >= min_z * spread)


def usage_trend_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    last, prior = _usage_windows(state, p)
    trend = None if prior == 0 else round(100 * (last / prior - 1), 1)
    series = _used_series(state, p).name.lower()
    return {"series": series, "last_14d": last, "prior_14d": prior, "trend_pct": trend}


def _cadence(state: AccountState, p: Params) -> tuple[float, float, int]:
    """The account's rate of active days (a day with any use), its silence beyond the
    longest it has been silent before, and the chance that it is active again within
    ``outlook_days``.

    An account uses the product on a day with chance ``rate``; it may also have left, at
    ``1 / lifetime_days`` a day. After ``silence`` days without use, the chance it is still
    there is ``1 / (1 + μ/(λ+μ)·(e^{(λ+μ)·silence} − 1))`` (the Pareto/NBD model's), and
    if it is, it is active within the outlook with chance ``1 − e^{−λ·outlook}``. The rate
    is active days over the days since the first (plus ``prior_days`` of no use, so that
    one active day is not a daily habit). Silences no longer than the longest the account
    had before (weekends, holidays, a quarterly habit) count as none."""
    rate = 1.0 / state.usual_gap(p["prior_days"])
    silent = state.days_silent()
    beyond = max(0, silent - state.longest_silence)
    mu = 1.0 / p["lifetime_days"]
    grow = min((rate + mu) * beyond, 50.0)
    alive = 1.0 / (1.0 + mu / (rate + mu) * math.expm1(grow))
    return rate, alive * -math.expm1(-rate * p["outlook_days"]), silent


def cadence(state: AccountState, p: Params) -> float | None:
    """How overdue the account's use is against its own cadence: 100 × the chance it is
    active again within the outlook (see ``_cadence``). An account active daily and silent
    for three weeks scores near 0; one active every quarter and silent for a month does
    not. It reads the account's whole life, not only the 90-day windows, and has no data
    for the first ``min_history_days`` after the first day of use: a rhythm read from a
    few days would move the score with every new day of use, and say little."""
    if state.use_days == 0 or state.clock - state.first_use_day < p["min_history_days"]:
        return None  # no rhythm to read yet: a new account's first days say little
    return 100.0 * _cadence(state, p)[1]


def cadence_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    if state.use_days == 0:
        return {"active_days": 0}
    rate, chance, silent = _cadence(state, p)
    return {
        "active_days": state.use_days,
        "first_active_on": iso_day(state.first_use_day),
        "last_active_on": iso_day(state.last_use_day),
        "days_silent": silent,
        "usual_gap_days": round(1.0 / rate, 1),
        "longest_silence_days": state.longest_silence,
        f"chance_active_{p['outlook_days']}d": round(chance, 3),
    }


def _core_features_used(state: AccountState, p: Params) -> list[str]:
    """The core features used in the 30 complete days ending yesterday: a use today counts
    tomorrow, and midnight does not drop a feature that today's use brings back."""
    clock = state.clock
    since = clock - 30
    used = []
    for f in p["core_features"]:
        day = state.features.get(f, NO_DAY)
        if day == clock:
            day = state.features_before.get(f, NO_DAY)
        if day >= since and day != NO_DAY:
            used.append(f)
    return used


def feature_adoption(state: AccountState, p: Params) -> float | None:
    core = p["core_features"]
    if not core or _absent(state, Series.FEATURE_USES, p):
        return None
    if not state.has_seen(Series.FEATURE_USES):
        return float(p["absent_points"])
    return 100.0 * len(_core_features_used(state, p)) / len(core)


def feature_adoption_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {"core_features_used_30d": _core_features_used(state, p)}


# -- engagement ---------------------------------------------------------------------------


def meeting_attendance(state: AccountState, p: Params) -> float | None:
    attended = state.total(Series.MEETINGS_ATTENDED, 90)
    missed = state.total(Series.MEETINGS_MISSED, 90)
    if attended + missed == 0:
        return None
    return _banded(100 * attended / (attended + missed), p["bands"], p["floor_points"])


def meeting_attendance_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {
        "attended_90d": state.total(Series.MEETINGS_ATTENDED, 90),
        "missed_90d": state.total(Series.MEETINGS_MISSED, 90),
    }


def email_responsiveness(state: AccountState, p: Params) -> float | None:
    if state.email_count == 0:
        return None
    if state.total(Series.EMAIL_REPLIES, 90) == 0:
        return float(p["unresponsive_points"])
    for hours, points in p["bands"]:
        if state.email_hours_avg < hours:
            return float(points)
    return float(p["unresponsive_points"])


def email_responsiveness_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {
        "avg_response_hours": round(state.email_hours_avg, 1),
        "replies_90d": state.total(Series.EMAIL_REPLIES, 90),
    }


# -- support ------------------------------------------------------------------------------


def csat(state: AccountState, p: Params) -> float | None:
    if state.csat_count == 0:
        return None
    lo, hi = float(p["scale_min"]), float(p["scale_max"])
    clipped = min(max(state.csat_avg, lo), hi)
    return 100.0 * (clipped - lo) / (hi - lo)


def csat_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {"csat_avg": round(state.csat_avg, 2), "responses": state.csat_count}


def _never_in_support(state: AccountState) -> bool:
    """No ticket ever opened: the support signals have no data (a clean record of support
    is news only for an account that uses support)."""
    return not state.has_seen(Series.SUPPORT_OPENED) and not state.open_tickets


def escalations(state: AccountState, p: Params) -> float | None:
    if _never_in_support(state) and not state.has_seen(Series.ESCALATIONS):
        return None
    count = state.total(Series.ESCALATIONS, 90)
    if count == 0:
        return float(p["none_points"])
    return float(p["one_points"] if count == 1 else p["multiple_points"])


def escalations_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {"escalations_90d": state.total(Series.ESCALATIONS, 90)}


def _oldest_open_age(state: AccountState) -> int | None:
    if not state.open_tickets:
        return None
    return state.clock - min(state.open_tickets.values())


def open_issue_age(state: AccountState, p: Params) -> float | None:
    if _never_in_support(state):
        return None
    age = _oldest_open_age(state)
    if age is None:
        return float(p["none_open_points"])
    for max_days, points in p["bands"]:
        if age <= max_days:
            return float(points)
    return float(p["oldest_points"])


def open_issue_age_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {"open_tickets": len(state.open_tickets), "oldest_open_days": _oldest_open_age(state)}


# -- financial ---------------------------------------------------------------------------


def payment_timeliness(state: AccountState, p: Params) -> float | None:
    """A failed payment scores ``failed_points`` until an invoice is paid after it, however
    long ago it failed; otherwise the lateness of the last paid invoice."""
    if state.last_failed_day != NO_DAY and state.last_failed_day >= state.last_paid_day:
        return float(p["failed_points"])
    if state.last_days_late < 0:
        return None
    for max_days, points in p["bands"]:
        if state.last_days_late <= max_days:
            return float(points)
    return float(p["very_late_points"])


def payment_timeliness_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    failed = state.last_failed_day
    return {
        "last_days_late": None if state.last_days_late < 0 else state.last_days_late,
        "last_failed_on": None if failed == NO_DAY else iso_day(failed),
        "unpaid_since_failure": failed != NO_DAY and failed >= state.last_paid_day,
    }


def renewal_proximity(state: AccountState, p: Params) -> float | None:
    if state.renewal_day < 0:
        return None
    return _banded(state.renewal_day - state.clock, p["bands"], p["near_points"])


def renewal_proximity_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    if state.renewal_day < 0:
        return {"days_to_renewal": None}
    return {"days_to_renewal": state.renewal_day - state.clock}


# -- integrations and relationship --------------------------------------------------------


def api_usage(state: AccountState, p: Params) -> float | None:
    """API calls in 30 days against what the account's segment is expected to make."""
    if state.total(Series.API_CALLS, 90) == 0:
        return None
    calls = state.total(Series.API_CALLS, 30)
    return (
        min(100.0, 100.0 * calls / p["expected_calls_30d"])
        if p["expected_calls_30d"] > 0
        else 100.0
    )


def api_usage_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {
        "api_calls_30d": state.total(Series.API_CALLS, 30),
        "expected_calls_30d": p["expected_calls_30d"],
    }


def _error_pct(state: AccountState) -> float | None:
    calls = state.total(Series.API_CALLS, 30)
    if calls == 0:
        return None
    return 100.0 * state.total(Series.API_ERRORS, 30) / calls


def api_error_rate(state: AccountState, p: Params) -> float | None:
    pct = _error_pct(state)
    if pct is None:
        return None
    for max_pct, points in p["bands"]:
        if pct <= max_pct:
            return float(points)
    return float(p["worst_points"])


def api_error_rate_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    pct = _error_pct(state)
    return {
        "api_calls_30d": state.total(Series.API_CALLS, 30),
        "api_errors_30d": state.total(Series.API_ERRORS, 30),
        "error_pct": None if pct is None else round(pct, 2),
    }


def _active_users(state: AccountState, days: int) -> int:
    since = state.clock - days + 1
    return sum(1 for day in state.users.values() if day >= since)


def single_user_dependency(state: AccountState, p: Params) -> float | None:
    """How many people use the product: one user is a single point of failure."""
    users = _active_users(state, ACTIVE_USER_DAYS)
    if users == 0:
        return None
    return _banded(users, p["bands"], p["floor_points"])


def single_user_dependency_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {"active_users_30d": _active_users(state, ACTIVE_USER_DAYS)}


def champion_engagement(state: AccountState, p: Params) -> float | None:
    if state.champion_departed:
        return float(p["departed_points"])
    if state.champion_user is None:
        return None
    silent = state.clock - state.champion_last_seen_day
    for max_days, points in p["bands"]:
        if silent <= max_days:
            return float(points)
    return float(p["silent_points"])


def champion_engagement_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {
        "champion": state.champion_user,
        "departed": state.champion_departed,
        "days_since_champion_seen": None
        if state.champion_user is None
        else state.clock - state.champion_last_seen_day,
    }


def nps(state: AccountState, p: Params) -> float | None:
    """The latest NPS answer (0-10) on a 0-100 scale, while it is recent enough to count."""
    if state.nps < 0 or state.clock - state.nps_day > p["max_age_days"]:
        return None
    return 10.0 * state.nps


def nps_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    return {
        "nps": None if state.nps < 0 else state.nps,
        "days_since_answer": state.clock - state.nps_day,
    }


def ticket_volume_trend(state: AccountState, p: Params) -> float | None:
    """Support tickets opened in the last 30 days against the 30 before."""
    if _never_in_support(state):
        return None
    last = state.total(Series.SUPPORT_OPENED, 30)
    prior = state.total(Series.SUPPORT_OPENED, 60) - last
    if last == 0:
        return float(p["decreasing_points"])
    if 100 * last < (100 - p["stable_pct"]) * prior:
        return float(p["decreasing_points"])
    if 100 * last <= (100 + p["stable_pct"]) * prior:
        high = last > p["high_volume_30d"]
        return float(p["stable_high_points"] if high else p["stable_low_points"])
    return float(p["increasing_points"])


def ticket_volume_trend_evidence(state: AccountState, p: Params) -> dict[str, Any]:
    last = state.total(Series.SUPPORT_OPENED, 30)
    return {"tickets_30d": last, "tickets_prior_30d": state.total(Series.SUPPORT_OPENED, 60) - last}


@dataclass(frozen=True)
class SignalDefinition:
    """A scorer, its evidence, and the parameters a profile may tune (with defaults)."""

    score: Scorer
    evidence: Evidence
    defaults: Mapping[str, Any]
    #: the event types whose arrival can change this signal's points (time aside)
    inputs: frozenset[E] = frozenset()
    #: whether a repeat (``AccountState.is_repeat``: an event that only adds to today's
    #: count of a series already counted today) leaves its points as they were: true of
    #: a signal that reads complete days, days of use, users, features or the champion,
    #: not of one that reads today's totals
    repeat_proof: bool = False

    def inputs_for(self, params: Params) -> frozenset[E]:
        if "series" in params:
            names = [params["series"], *params.get("fallback_series", ())]
            fed = [EVENT_TYPES_OF_SERIES[SERIES_BY_NAME[n]] for n in names]
            return self.inputs.union(*fed)
        return self.inputs


SIGNALS: dict[str, SignalDefinition] = {
    "login_frequency": SignalDefinition(
        login_frequency,
        login_frequency_evidence,
        # active login days in the last 30: daily / weekly / biweekly / monthly / inactive
        {
            "bands": [[20, 100], [4, 75], [2, 50], [1, 25]],
            "inactive_points": 0,
            "absent_points": -1,
            # a fall in login days counts when clear of day-to-day noise (one band lower)
            "min_z": 2.0,
            "dispersion": 0.0,
        },
        frozenset({E.LOGIN}),
        repeat_proof=True,
    ),
    "usage_trend": SignalDefinition(
        usage_trend,
        usage_trend_evidence,
        {
            "series": "value_actions",
            "fallback_series": [],
            "growing_above_pct": 10,
            "stable_from_pct": -10,
            "declining_from_pct": -25,
            "growing_points": 100,
            "stable_points": 70,
            "declining_points": 40,
            "critical_points": 10,
            "zero_points": 0,
            # a change counts only when clear of the counts' noise: Poisson for small counts,
            # and for large ones the account's own week-to-week spread (at least
            # ``dispersion``; ``dispersion_prior`` until it has min_baseline_weeks)
            "min_z": 2.0,
            "zero_min_z": 3.0,
            "zero_alpha": 1e-4,
            "dispersion": 0.02,
            "dispersion_prior": 0.05,
            "min_baseline_weeks": 4,
        },
        repeat_proof=True,
    ),
    "cadence": SignalDefinition(
        cadence,
        cadence_evidence,
        {"outlook_days": 90, "lifetime_days": 365, "prior_days": 90, "min_history_days": 14},
        frozenset(t for s in USE_SERIES for t in EVENT_TYPES_OF_SERIES[s]),
        repeat_proof=True,
    ),
    "feature_adoption": SignalDefinition(
        feature_adoption,
        feature_adoption_evidence,
        {"core_features": [], "absent_points": -1},
        frozenset({E.FEATURE_USED}),
        repeat_proof=True,
    ),
    "meeting_attendance": SignalDefinition(
        meeting_attendance,
        meeting_attendance_evidence,
        {"bands": [[80, 100], [50, 60]], "floor_points": 20},
        frozenset({E.MEETING_ATTENDED, E.MEETING_MISSED}),
    ),
    "email_responsiveness": SignalDefinition(
        email_responsiveness,
        email_responsiveness_evidence,
        {"bands": [[24, 100], [72, 70], [168, 40]], "unresponsive_points": 10},
        frozenset({E.EMAIL_REPLIED}),
    ),
    "csat": SignalDefinition(
        csat,
        csat_evidence,
        {"scale_min": 1, "scale_max": 5},
        frozenset({E.SUPPORT_TICKET_RESOLVED}),
    ),
    "escalations": SignalDefinition(
        escalations,
        escalations_evidence,
        {"none_points": 100, "one_points": 60, "multiple_points": 20},
        # an account's first ticket gives it support data: the signal moves off "none"
        frozenset({E.SUPPORT_TICKET_ESCALATED, E.SUPPORT_TICKET_OPENED}),
    ),
    "open_issue_age": SignalDefinition(
        open_issue_age,
        open_issue_age_evidence,
        {"none_open_points": 100, "bands": [[7, 80], [14, 60], [30, 40]], "oldest_points": 10},
        frozenset({E.SUPPORT_TICKET_OPENED, E.SUPPORT_TICKET_RESOLVED}),
    ),
    "payment_timeliness": SignalDefinition(
        payment_timeliness,
        payment_timeliness_evidence,
        {"bands": [[0, 100], [14, 60], [30, 30]], "very_late_points": 0, "failed_points": 0},
        frozenset({E.INVOICE_PAID, E.PAYMENT_FAILED}),
    ),
    "api_usage": SignalDefinition(
        api_usage,
        api_usage_evidence,
        {"expected_calls_30d": 500},
        frozenset({E.API_CALLS}),
    ),
    "api_error_rate": SignalDefinition(
        api_error_rate,
        api_error_rate_evidence,
        # share of failed calls in 30 days, percent: at most 1 / 5 / 10, else worst_points
        {"bands": [[1, 100], [5, 70], [10, 40]], "worst_points": 10},
        frozenset({E.API_CALLS}),
    ),
    "single_user_dependency": SignalDefinition(
        single_user_dependency,
        single_user_dependency_evidence,
        # people active in 30 days: 3 or more / 2 / 1
        {"bands": [[3, 100], [2, 60]], "floor_points": 20},
        frozenset(E),
        repeat_proof=True,
    ),
    "champion_engagement": SignalDefinition(
        champion_engagement,
        champion_engagement_evidence,
        # days since the champion was last active: up to 14 / up to 30 / longer; departed
        {"bands": [[14, 100], [30, 60]], "silent_points": 20, "departed_points": 0},
        frozenset(E),
        repeat_proof=True,
    ),
    "nps": SignalDefinition(nps, nps_evidence, {"max_age_days": 180}, frozenset({E.NPS_RESPONSE})),
    "ticket_volume_trend": SignalDefinition(
        ticket_volume_trend,
        ticket_volume_trend_evidence,
        {
            "stable_pct": 10,
            "high_volume_30d": 5,
            "decreasing_points": 100,
            "stable_low_points": 80,
            "stable_high_points": 40,
            "increasing_points": 10,
        },
        frozenset({E.SUPPORT_TICKET_OPENED}),
    ),
    "renewal_proximity": SignalDefinition(
        renewal_proximity,
        renewal_proximity_evidence,
        # days until renewal: 6 months or more / 3-6 months / under 3 months
        {"bands": [[180, 80], [90, 60]], "near_points": 30},
        frozenset({E.ACCOUNT_FACTS}),
    ),
}
