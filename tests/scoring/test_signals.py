"""Signal scorers and the composite against hand-computed cases."""

import itertools
from itertools import pairwise

import pytest

from scoring.engine import HealthEngine, ScoringConfig
from scoring.model import NO_SCORE, assess
from scoring.profile import load_profile
from scoring.signals import SIGNALS
from windows.account import AccountState
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

DAY0 = 20_454
PROFILE = load_profile()
TREND = SIGNALS["usage_trend"]


def ev(
    etype: EventType, day: int, value: float = 1, user: str | None = None, **attrs: object
) -> TelemetryEvent:
    return TelemetryEvent(
        f"e{next(_ids)}", "a", etype, day * MS_PER_DAY + 1000, value, user, dict(attrs)
    )


_ids = itertools.count()


def usage(prior: int, last: int) -> AccountState:
    """14 days at ``prior`` per day then 14 days at ``last`` per day (totals 14x each), seen
    the next morning: the trend reads complete days."""
    s = AccountState()
    for d in range(28):
        amount = prior if d < 14 else last
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d, amount))
    s.advance_to(DAY0 + 28)
    return s


@pytest.mark.parametrize(
    ("prior", "last", "points"),
    [
        (100, 111, 100),  # +11%: growing
        (100, 110, 70),  # exactly +10% is still stable
        (100, 90, 70),  # exactly -10%: stable
        (100, 89, 40),  # -11%: declining
        (100, 75, 40),  # exactly -25%: declining
        (100, 74, 10),  # -26%: critical
        (100, 0, 0),  # zero usage: dead
        (0, 5, 100),  # usage from nothing: growing
    ],
)
def test_usage_trend_bands(prior: int, last: int, points: int) -> None:
    # the band edges, with any change taken as clear of noise
    params = {**TREND.defaults, "min_z": 0.0}
    assert TREND.score(usage(prior, last), params) == points


@pytest.mark.parametrize(
    ("prior", "last", "points"),
    [
        (7, 3, 70),  # "3 vs 7": ordinary noise of small counts, stable
        (30, 12, 10),  # -60% and clear of noise: critical
        (1400, 1120, 70),  # -20% at high volume: within a fortnight's usual swing
        (1400, 900, 70),  # -36%, with no history to show how far this account swings
        (1400, 700, 10),  # -50% at high volume: clear
    ],
)
def test_usage_trend_moves_only_on_changes_clear_of_count_noise(
    prior: int, last: int, points: int
) -> None:
    s = AccountState()
    s.apply(ev(EventType.VALUE_ACTION, DAY0, prior))  # one day of each fortnight holds it
    s.apply(ev(EventType.VALUE_ACTION, DAY0 + 14, last))
    s.advance_to(DAY0 + 28)
    assert TREND.score(s, TREND.defaults) == points


def test_login_frequency_bands() -> None:
    p = SIGNALS["login_frequency"]
    s = AccountState()
    s.apply(ev(EventType.LOGIN, DAY0))
    assert p.score(s, p.defaults) == 0  # today is not complete: no login day yet
    s.advance_to(DAY0 + 1)
    assert p.score(s, p.defaults) == 25  # one login day in 30: monthly
    for d in range(1, 4):
        s.apply(ev(EventType.LOGIN, DAY0 + d * 7))
    assert p.score(s, p.defaults) == 50  # today's login (day 21) counts tomorrow
    s.advance_to(DAY0 + 22)
    assert p.score(s, p.defaults) == 75  # four login days: weekly
    s.advance_to(DAY0 + 60)
    assert p.score(s, p.defaults) == 0  # inactive for 30 days


def test_csat_is_linear_from_one_to_five() -> None:
    p = SIGNALS["csat"]
    s = AccountState()
    s.apply(ev(EventType.SUPPORT_TICKET_RESOLVED, DAY0, ticket_id="t", csat=4))
    assert p.score(s, p.defaults) == 75
    assert p.score(AccountState(), p.defaults) is None  # no CSAT yet: no data


def test_composite_weights_categories_and_shares_missing_signal_weight() -> None:
    # usage: logins on 20 days (100), usage trend growing (100), cadence daily and not
    # silent (100), feature adoption 1/5 (20)
    s = AccountState()
    for d in range(20):
        s.apply(ev(EventType.LOGIN, DAY0 + d))
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d, 3))
    s.apply(ev(EventType.FEATURE_USED, DAY0 + 2, feature="dashboards"))
    s.apply(ev(EventType.SUPPORT_TICKET_OPENED, DAY0 + 3, ticket_id="t"))
    s.apply(ev(EventType.SUPPORT_TICKET_RESOLVED, DAY0 + 4, ticket_id="t", csat=4))
    s.advance_to(DAY0 + 20)  # the morning after: 20 complete days
    a = assess(s, PROFILE)
    # usage = (20*100 + 35*100 + 25*100 + 20*20) / 100 = 84
    assert a.category_scores["usage"] == 84
    # support: csat 4/5 -> 75, no escalation 100, nothing open 100 -> 90; engagement and
    # financial have no data, so their weight goes to the others:
    # composite = (35*84 + 20*90) / 55 = 86.2 -> 86
    assert a.category_scores["engagement"] is None
    assert a.category_scores["support"] == 90
    assert a.category_scores["financial"] is None
    assert a.score == 86
    assert a.zone == "healthy"


def test_signals_of_data_the_account_never_produced_have_no_data() -> None:
    # an account with value actions only: no logins, no features, no support ever
    s = AccountState()
    for d in range(20):
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d, 3))
    s.advance_to(DAY0 + 20)
    a = assess(s, PROFILE)
    by_name = dict(zip(PROFILE.signal_names, a.signal_scores, strict=True))
    for name in ("login_frequency", "feature_adoption", "csat", "escalations", "open_issue_age"):
        assert by_name[name] == NO_SCORE, name
    assert a.category_scores["support"] is None
    assert a.score == a.category_scores["usage"] == 100
    # unless the profile says that absence itself is the risk
    p = SIGNALS["login_frequency"]
    assert p.score(s, {**p.defaults, "absent_points": 0}) == 0
    # an account that did log in, long ago, scores 0, not "no data"
    s.apply(ev(EventType.LOGIN, DAY0 - 60))
    assert p.score(s, p.defaults) == 0


def test_engine_emits_on_step_or_zone_change_with_seq_and_evidence() -> None:
    engine = HealthEngine(ScoringConfig(PROFILE, min_step=5))
    s = AccountState()
    outs = []
    for d in range(28):
        outs.extend(engine.on_event("a", s, ev(EventType.VALUE_ACTION, DAY0 + d, 5)))
    assert outs[0]["seq"] == 1 and outs[0]["previous_score"] is None
    assert [o["seq"] for o in outs] == list(range(1, len(outs) + 1))
    emitted = [o for o in outs if o["kind"] == "score_changed"]
    for prev, cur in pairwise(emitted):
        assert (
            abs(cur["score"] - prev["score"]) >= 5
            or cur["zone"] != prev["zone"]
            or cur["detectors"] != prev["detectors"]
            or cur["overrides"] != prev["overrides"]
        )
        assert cur["previous_score"] == prev["score"]
    # silence: ticks alone pull the usage trend to zero and the score down
    ticked = engine.on_tick("a", s, (DAY0 + 50) * MS_PER_DAY)
    out = next(o for o in ticked if o["kind"] == "score_changed")
    assert out["score"] < emitted[-1]["score"]
    moved = {m["signal"]: m for m in out["signals"]}
    assert moved["usage_trend"]["score"] == 0
    assert moved["usage_trend"]["evidence"]["last_14d"] == 0
    assert out["config_version"] == engine.version


def test_feature_adoption_reads_complete_days_so_midnight_and_a_use_today_do_not_flip_it() -> None:
    p = {"core_features": ["reports", "alerts"]}
    adoption = SIGNALS["feature_adoption"]
    s = AccountState()
    s.apply(ev(EventType.FEATURE_USED, DAY0, feature="reports"))
    assert adoption.score(s, p) == 0  # today's use counts tomorrow
    s.advance_to(DAY0 + 30)
    assert adoption.score(s, p) == 50  # used on the first of the 30 complete days
    s.advance_to(DAY0 + 31)
    s.apply(ev(EventType.FEATURE_USED, DAY0 + 31, feature="reports"))
    assert adoption.score(s, p) == 0  # out of the 30 complete days; today's use not yet in
    s.advance_to(DAY0 + 32)
    assert adoption.score(s, p) == 50


def test_zones_have_hysteresis_on_the_way_up() -> None:
    assert PROFILE.zone_after(76, "at_risk", 3) == "at_risk"
    assert PROFILE.zone_after(78, "at_risk", 3) == "healthy"
    assert PROFILE.zone_after(74, "healthy", 3) == "at_risk"  # down at once
    assert PROFILE.zone_after(41, "critical", 3) == "critical"
    assert PROFILE.zone_after(76, "critical", 3) == "at_risk"
    assert PROFILE.zone_after(76, "", 3) == "healthy"  # a first score has no zone to leave


CADENCE = SIGNALS["cadence"]


def _used_on(days: list[int], seen_on: int) -> AccountState:
    s = AccountState()
    for d in days:
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d))
    s.advance_to(DAY0 + seen_on)
    return s


def test_cadence_reads_silence_against_the_accounts_own_rhythm() -> None:
    weekdays = [d for d in range(84) if d % 7 < 5]
    daily = _used_on(weekdays, 84)  # day 84 is a Monday morning after a weekend
    assert CADENCE.score(daily, CADENCE.defaults) == pytest.approx(100)
    silent = _used_on(weekdays, 84 + 21)  # three weeks without use
    assert CADENCE.score(silent, CADENCE.defaults) < 20
    quarterly = _used_on([0, 91, 182, 273], 273 + 30)  # a quarterly habit, a month ago
    assert CADENCE.score(quarterly, CADENCE.defaults) > 50
    once = _used_on([0], 270)  # one day of use, nine months ago
    assert CADENCE.score(once, CADENCE.defaults) < 10
    assert CADENCE.score(AccountState(), CADENCE.defaults) is None
    evidence = CADENCE.evidence(silent, CADENCE.defaults)
    # the last day of use was Friday, day 81 (2026-03-23): 23 complete days since
    assert evidence["days_silent"] == 23 and evidence["last_active_on"] == "2026-03-23"


def test_cadence_falls_with_each_silent_day_beyond_the_longest_before() -> None:
    days = [d for d in range(84) if d % 7 < 5]
    points = [CADENCE.score(_used_on(days, 82 + k), CADENCE.defaults) for k in range(0, 30, 3)]
    assert points == sorted(points, reverse=True)
    assert points[0] == pytest.approx(100) and points[-1] < 50


def test_zero_usage_waits_for_a_silence_longer_than_the_accounts_usual_gaps() -> None:
    engine = HealthEngine(ScoringConfig(PROFILE))
    monthly = _used_on([0, 30, 60, 90, 120], 120 + 20)  # a monthly buyer, 19 days silent
    daily = _used_on(list(range(121)), 121 + 15)  # a daily user, 15 days silent
    overrides = {
        name: [o["override"] for o in engine.describe("a", s)["overrides"]]
        for name, s in (("monthly", monthly), ("daily", daily))
    }
    assert "zero_usage" not in overrides["monthly"]
    assert "zero_usage" in overrides["daily"]


def test_usage_trend_falls_back_to_api_calls_for_an_account_without_value_actions() -> None:
    p = {**TREND.defaults, "fallback_series": ["api_calls"]}
    s = AccountState()
    for d in range(28):
        s.apply(ev(EventType.API_CALLS, DAY0 + d, 1000 if d < 14 else 200))
    s.advance_to(DAY0 + 28)
    assert TREND.score(s, p) == 10  # an 80% fall in API volume
    assert TREND.evidence(s, p)["series"] == "api_calls"
    assert TREND.score(s, TREND.defaults) is None  # without the fallback: no data


def test_login_frequency_steps_down_a_band_on_a_clear_fall_in_login_days() -> None:
    p = SIGNALS["login_frequency"]
    s = AccountState()
    for d in list(range(14)) + [14, 18, 22, 26]:  # daily, then twice a week
        s.apply(ev(EventType.LOGIN, DAY0 + d))
    s.advance_to(DAY0 + 28)
    assert p.evidence(s, p.defaults)["declining"] is True
    assert p.score(s, p.defaults) == 50  # 18 login days is "weekly" (75), one band lower


def test_cadence_has_no_data_for_a_new_accounts_first_two_weeks() -> None:
    # the rhythm of a few days would move the score with every new day of use
    assert CADENCE.score(_used_on([0, 1, 2, 5], 6), CADENCE.defaults) is None
    assert CADENCE.score(_used_on([0, 1, 2, 5, 9, 13], 14), CADENCE.defaults) is not None


def _weeks_then(weekly: list[int], prior: int, last: int) -> AccountState:
    """Complete weeks with the given totals (spread over their days), then two fortnights."""
    s = AccountState()
    day = DAY0
    for total in weekly:
        for i in range(7):
            count = total * (i + 1) // 7 - total * i // 7
            s.apply(ev(EventType.VALUE_ACTION, day + i, count))
        day += 7
    s.apply(ev(EventType.VALUE_ACTION, day, prior))
    s.apply(ev(EventType.VALUE_ACTION, day + 14, last))
    s.advance_to(day + 28)
    return s


def test_usage_trend_judges_a_change_against_the_accounts_own_swing() -> None:
    # the same fall of 36% at 1,400 a fortnight: clear for an account whose weeks hardly
    # vary, ordinary for one whose weeks swing between 400 and 1,000
    calm = _weeks_then([700] * 8, 1400, 900)
    swinging = _weeks_then([400, 1000] * 4, 1400, 900)
    assert TREND.score(calm, TREND.defaults) == 10
    assert TREND.score(swinging, TREND.defaults) == 70


def test_a_silent_fortnight_is_zero_only_when_the_usual_level_makes_it_unlikely() -> None:
    # 3 a week: a fortnight of nothing happens now and then; 30 a week: it does not
    sparse = _weeks_then([3] * 8, 6, 0)
    busy = _weeks_then([30] * 8, 60, 0)
    assert TREND.score(sparse, TREND.defaults) != 0
    assert TREND.score(busy, TREND.defaults) == 0
