"""Signal scorers and the composite against hand-computed cases."""

import itertools
from itertools import pairwise

import pytest

from scoring.engine import HealthEngine, ScoringConfig
from scoring.model import assess
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
        (1400, 900, 10),  # -36%: clear, critical
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
    # usage: logins on 20 days (100), usage trend growing (100), feature adoption 0/5 (0)
    s = AccountState()
    for d in range(20):
        s.apply(ev(EventType.LOGIN, DAY0 + d))
        s.apply(ev(EventType.VALUE_ACTION, DAY0 + d, 3))
    s.advance_to(DAY0 + 20)  # the morning after: 20 complete days
    a = assess(s, PROFILE)
    # usage = (25*100 + 45*100 + 30*0) / 100 = 70
    assert a.category_scores["usage"] == 70
    # engagement has no data; support: escalations 100, open issues 100, csat none -> 100;
    # financial has no data. composite = (35*70 + 20*100) / 55 = 80.9 -> 81
    assert a.category_scores["engagement"] is None
    assert a.category_scores["support"] == 100
    assert a.category_scores["financial"] is None
    assert a.score == 81
    assert a.zone == "healthy"


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
