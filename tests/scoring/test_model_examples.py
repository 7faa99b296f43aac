"""The playbooks' worked examples, run through the engine event by event."""

from __future__ import annotations

from typing import Any

import pytest

from scoring.alerts import AlertRules
from scoring.book import AccountBook, AlreadyApplied
from scoring.engine import DuplicateEvent, HealthEngine, ScoringConfig
from scoring.profile import Profile, load_profile, profile_from_mapping
from scoring.signals import SIGNALS
from windows.account import AccountState, Series
from windows.snapshot import decode_state, encode_state
from windows.telemetry import MS_PER_DAY, EventType, TelemetryEvent

E = EventType
DAY0 = 20_454  # 2026-01-01
CORE = ["dashboards", "reports", "alerts", "workflows", "integrations"]


class Account:
    """One account's history, scripted day by day, with every output kept."""

    def __init__(self, profile: str | Profile = "default", min_step: int = 1, **facts: Any) -> None:
        chosen = load_profile(profile) if isinstance(profile, str) else profile
        self.engine = HealthEngine(ScoringConfig(chosen, min_step))
        self.state = AccountState()
        self.outputs: list[dict[str, Any]] = []
        self.n = 0
        facts.setdefault("contract_start", "2024-01-01")
        facts.setdefault("renewal_date", "2027-06-01")
        self.send(E.ACCOUNT_FACTS, DAY0, **facts)

    def send(
        self, etype: EventType, day: int, value: float = 1, user: str | None = None, **attrs: Any
    ) -> list[dict[str, Any]]:
        self.n += 1
        event = TelemetryEvent(
            f"e{self.n}", "acme", etype, day * MS_PER_DAY + 3_600_000, value, user, attrs
        )
        out = self.engine.on_event("acme", self.state, event)
        self.outputs.extend(out)
        return out

    def tick(self, day: int, ms: int = 0) -> list[dict[str, Any]]:
        out = self.engine.on_tick("acme", self.state, day * MS_PER_DAY + ms)
        self.outputs.extend(out)
        return out

    def healthy_day(self, day: int, value_actions: int = 1, slack: int = 0) -> None:
        """A day of an engaged customer: logins by three people, core features, value."""
        for user in ("ana", "bo", "cy"):
            self.send(E.LOGIN, day, 1, user)
        self.send(E.FEATURE_USED, day, 1, "ana", feature=CORE[day % len(CORE)])
        if value_actions:
            self.send(E.VALUE_ACTION, day, value_actions, "ana")
        if slack:
            self.send(E.INTEGRATION_MESSAGE_SENT, day, slack, integration="slack")
        if day % 14 == 0:
            self.send(E.MEETING_ATTENDED, day)
            self.send(E.EMAIL_REPLIED, day, response_hours=5)
            self.send(E.INVOICE_PAID, day, days_late=0)

    def signal(self, name: str) -> tuple[float | None, dict[str, Any]]:
        """A signal's points and evidence on the account's state now."""
        card = self.engine.card_for(self.state)
        i = card.scorecard.profile.signal_names.index(name)
        kind, params = card.scorecard.kinds[i], card.scorecard.params[i]
        return SIGNALS[kind].score(self.state, params), SIGNALS[kind].evidence(self.state, params)

    def last(self, kind: str) -> dict[str, Any]:
        return [o for o in self.outputs if o["kind"] == kind][-1]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.outputs if o["kind"] == kind]

    @property
    def score(self) -> int:
        return self.last("score_changed")["score"]

    @property
    def zone(self) -> str:
        return self.last("score_changed")["zone"]


def test_value_activity_falling_from_30_to_2_a_month_is_a_drop_with_no_recovery() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 60):
        acct.healthy_day(day, value_actions=1)  # 30 a month
    assert acct.zone == "healthy"
    for day in range(DAY0 + 60, DAY0 + 88):
        acct.healthy_day(day, value_actions=1 if (day - DAY0) % 15 == 0 else 0)  # 2 a month
    out = acct.last("score_changed")
    findings = {(f["detector"], f["series"]): f for f in out["detectors"]}
    drop = findings[("drop_no_recovery", "value_actions")]
    assert drop["severity"] == "yellow"
    assert drop["evidence"]["usual_per_week"] == 7.0
    assert drop["evidence"]["per_week_since"] <= 1
    assert drop["evidence"]["days_down"] >= 14
    assert drop["evidence"]["drop_start"] >= "2026-03-01"
    assert drop["action"].startswith("Reach out")
    assert out["zone"] != "healthy"
    usage = {s["signal"]: s for o in acct.kinds("score_changed") for s in o["signals"]}
    assert usage["usage_trend"]["score"] <= 10


def test_100_slack_messages_a_month_falling_to_zero_is_a_red_regime_change() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 45):
        acct.healthy_day(day, slack=4 if day % 3 else 2)  # about 100 a month
    assert acct.zone == "healthy"
    for day in range(DAY0 + 45, DAY0 + 55):
        acct.healthy_day(day, slack=0)
    out = acct.last("score_changed")
    change = next(f for f in out["detectors"] if f["detector"] == "regime_change")
    assert change["series"] == "integration_messages" and change["severity"] == "red"
    assert change["evidence"]["zero_days"] >= 7
    assert change["evidence"]["per_week_before"] >= 20
    assert out["zone"] == "critical" and out["score"] <= 39
    assert out["computed_score"] >= 75  # the weighted average alone would call it healthy
    alert = next(a for a in acct.kinds("alert") if a["alert"] == "regime_change")
    assert alert["evidence"]["series"] == "integration_messages"
    assert out["recommended_action"].startswith("Immediate outreach")
    # back to normal: the finding and its cap go, once held through two quiet readings
    for day in range(DAY0 + 55, DAY0 + 59):
        acct.healthy_day(day, slack=4)
    assert not [
        f for f in acct.last("score_changed")["detectors"] if f["detector"] == "regime_change"
    ]
    assert acct.zone == "healthy"


def _logins(prior_14d: int, last_14d: int, calm_weeks: int = 8) -> Account:
    """``calm_weeks`` of logins at the prior fortnight's rate, then two fortnights with the
    given totals, spread as evenly as whole days allow."""
    acct = Account("trend_watch")
    start = DAY0 - 7 * calm_weeks
    for day in range(7 * calm_weeks + 28):
        fortnight = day - 7 * calm_weeks
        total = last_14d if fortnight >= 14 else prior_14d
        count = total * (day % 14 + 1) // 14 - total * (day % 14) // 14
        if count:
            acct.send(E.LOGIN, start + day, count, "ana")
        acct.send(E.VALUE_ACTION, start + day, 2, "ana")
    acct.tick(DAY0 + 28)  # the next morning: both fortnights are complete
    return acct


def test_logins_declining_score_worse_on_trend_than_fewer_growing() -> None:
    # the playbook's "100 a month down 20% vs 30 a month up 15%", at ten times the volume
    # and with changes clear of the account's own fortnight-to-fortnight swing (trend_watch
    # asks for three standard deviations): at 100 and 30 a month, and at 20% and 15%, the
    # changes are within the counts' ordinary noise
    big_declining = _logins(500, 275)  # about 1,000 a month, down 45%
    small_growing = _logins(140, 280)  # about 300 a month, doubled
    declining, declining_evidence = big_declining.signal("login_trend")
    growing, growing_evidence = small_growing.signal("login_trend")
    assert declining_evidence["trend_pct"] == -45.0
    assert growing_evidence["trend_pct"] == 100.0
    assert (declining, growing) == (10, 100)
    assert big_declining.score < small_growing.score
    # a 35% fall is within the swing that trend_watch allows (it is clear at two standard
    # deviations), and at the playbook's own volumes a change is noise: both stable
    assert _logins(500, 325).signal("login_trend")[0] == 70
    assert _logins(50, 40).signal("login_trend")[0] == 70


def test_champion_departure_caps_the_score_at_40_until_a_replacement() -> None:
    acct = Account()
    acct.send(E.CHAMPION_CHANGED, DAY0, 1, "ana", status="assigned")
    for day in range(DAY0, DAY0 + 37):
        acct.healthy_day(day)
    assert acct.score >= 75
    acct.send(E.CHAMPION_CHANGED, DAY0 + 35, 1, "ana", status="departed")
    assert acct.score == 40 and acct.zone == "at_risk"
    applied = acct.last("override_applied")
    assert (applied["override"], applied["effect"], applied["value"]) == (
        "champion_departed",
        "cap",
        40,
    )
    assert applied["score_before"] >= 75
    acct.send(E.CHAMPION_CHANGED, DAY0 + 36, 1, "bo", status="assigned")
    assert acct.last("override_cleared")["override"] == "champion_departed"
    assert acct.score >= 75


def test_zero_usage_in_the_last_14_days_sets_the_score_to_10() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 40):
        acct.healthy_day(day)
    acct.tick(DAY0 + 46)
    assert acct.score > 10
    acct.tick(DAY0 + 54)  # 14 days with no usage at all
    out = acct.last("score_changed")
    assert out["score"] == 10
    zero = next(o for o in out["overrides"] if o["override"] == "zero_usage")
    assert zero["effect"] == "set" and zero["evidence"]["days_without_usage"] == 14
    # one alert for the silence: it opened the episode that the zero usage belongs to
    alerts = acct.kinds("alert")
    assert len(alerts) == 1 and alerts[0]["severity"] == "red"
    assert alerts[0]["evidence"]["as_of"] <= "2026-02-24"


def test_a_new_account_in_its_first_30_days_is_not_marked_critical_for_low_usage() -> None:
    acct = Account(contract_start="2026-01-01")
    acct.send(E.LOGIN, DAY0 + 1, 1, "ana")
    for day in range(DAY0 + 2, DAY0 + 29, 3):
        acct.tick(day)
    zones = {o["zone"] for o in acct.kinds("score_changed")}
    assert zones == {"onboarding"}
    assert not acct.kinds("alert")
    # the zone's playbook comes with the change that enters the zone: here the first score
    assert acct.kinds("score_changed")[0]["playbook"]["zone"] == "onboarding"
    acct.tick(DAY0 + 40)  # past onboarding, still barely used: now it counts
    assert acct.zone == "critical"


def test_manual_override_holds_the_score_and_ends_by_itself_at_its_expiry() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 35):
        acct.healthy_day(day)
    computed = acct.score
    expires = (DAY0 + 37) * MS_PER_DAY + 12 * 3_600_000
    acct.send(
        E.MANUAL_OVERRIDE,
        DAY0 + 35,
        1,
        "csm-lee",
        score=45,
        reason="Customer announced a re-org; renewal at risk",
        expires_at_ms=expires,
    )
    applied = acct.last("override_applied")
    assert applied["override"] == "manual" and applied["effect"] == "hold"
    assert applied["evidence"]["reason"].startswith("Customer announced")
    assert applied["evidence"]["author"] == "csm-lee"
    assert acct.score == 45 and acct.last("score_changed")["computed_score"] == computed
    acct.tick(DAY0 + 37, 11 * 3_600_000)  # before the expiry: still held
    assert acct.score == 45
    assert not [o for o in acct.kinds("override_cleared") if o["override"] == "manual"]
    acct.tick(DAY0 + 37, 13 * 3_600_000)  # same day, past the expiry
    cleared = acct.last("override_cleared")
    assert cleared["override"] == "manual" and cleared["reason"] == "expired"
    assert acct.score != 45


def test_a_fast_drop_alerts_once_with_its_evidence() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 35):
        acct.healthy_day(day)
    acct.send(E.SUPPORT_TICKET_OPENED, DAY0 + 35, ticket_id="t1")
    acct.send(E.SUPPORT_TICKET_ESCALATED, DAY0 + 35, ticket_id="t1")
    acct.send(E.CHAMPION_CHANGED, DAY0 + 35, 1, "ana", status="departed")
    drops = [a for a in acct.kinds("alert") if a["alert"] == "score_drop"]
    assert len(drops) == 1
    assert drops[0]["evidence"]["usual_score"] - drops[0]["evidence"]["score"] >= 15
    assert drops[0]["evidence"]["episode"]["opened"] == drops[0]["evidence"]["as_of"]
    assert drops[0]["evidence"]["signals_moved"]
    assert drops[0]["seq"] > acct.kinds("score_changed")[0]["seq"]


def _zone(score: int) -> str:
    return "critical" if score < 40 else "at_risk" if score < 75 else "healthy"


def test_an_episode_alerts_once_and_closes_after_two_calm_weeks() -> None:
    rules = AlertRules(load_profile().alerts, at_risk_from=40)
    state = AccountState()
    state.first_day, state.clock = DAY0 - 60, DAY0  # past the warm-up
    fired = []
    scores = [80, 70, 64, 60, 49, 39, 41, 38] + [80] * 15 + [60, 39]
    for day, score in enumerate(scores):
        state.clock = DAY0 + day
        alerts = rules.check(state, score, score, _zone(score), [], (), ())
        fired.append([(a.alert, a.evidence["episode"]["opened"]) for a in alerts])
    # 80, 70, 64: the usual level (a 14-day average) lags; at 60 the fall reaches 15
    assert fired[:3] == [[]] * 3
    assert fired[3] == [("score_drop", "2026-01-04")]
    # the fall to critical, the wobble around it: the same episode, no more alerts
    assert fired[4:8] == [[]] * 4
    # 14 calm days close it (day 8 is the first healthy one); then a new episode alerts
    assert fired[8:23] == [[]] * 15
    assert fired[23] == [("score_drop", "2026-01-24")]
    assert fired[24] == []  # entering critical next day: the same, new, episode


def test_entering_critical_has_hysteresis_for_a_score_that_hovers_at_the_threshold() -> None:
    rules = AlertRules(load_profile().alerts, at_risk_from=40)
    state = AccountState()
    state.first_day, state.clock = DAY0 - 60, DAY0
    fired = []
    # each step far apart so that every episode has closed: only the re-arming matters
    for step, score in enumerate((41, 39, 41, 39, 46, 39)):
        state.clock = DAY0 + 30 * step
        state.episode_day = state.calm_since = -1
        fired.append([a.alert for a in rules.check(state, score, score, _zone(score), [], (), ())])
    assert fired == [[], ["entered_critical"], [], [], [], ["entered_critical"]]


def test_no_alert_fires_while_an_account_is_new_to_the_stream() -> None:
    rules = AlertRules(load_profile().alerts, at_risk_from=40)
    state = AccountState()
    state.first_day = state.clock = DAY0
    assert rules.check(state, 30, 30, "critical", [], (), ()) == []
    state.clock = DAY0 + 14
    found = rules.check(state, 30, 30, "critical", [], (), ())
    assert [a.alert for a in found] == ["entered_critical"]


def test_segments_take_the_first_match_and_carry_their_own_expectations() -> None:
    doc: dict[str, Any] = {
        "categories": {"api": {"weight": 1, "signals": {"api_usage": 1}}},
        "segments": {
            "big": {
                "match": {"seats_min": 500},
                "signals": {"api_usage": {"expected_calls_30d": 1000}},
            },
            "enterprise": {
                "match": {"segment": "enterprise"},
                "signals": {"api_usage": {"expected_calls_30d": 2000}},
            },
        },
        "onboarding": {"days": 0},
    }
    profile = profile_from_mapping(doc)
    scores = {}
    for name, facts in {
        "both": {"segment": "enterprise", "seats": 800},
        "enterprise": {"segment": "enterprise", "seats": 10},
        "none": {"segment": "smb", "seats": 10},
    }.items():
        engine = HealthEngine(ScoringConfig(profile, 1))
        state = AccountState()
        outs = engine.on_event(
            "a", state, TelemetryEvent("f", "a", E.ACCOUNT_FACTS, DAY0 * MS_PER_DAY, 1, None, facts)
        )
        outs = engine.on_event(
            "a", state, TelemetryEvent("c", "a", E.API_CALLS, DAY0 * MS_PER_DAY, 500, None, {})
        )
        out = [o for o in outs if o["kind"] == "score_changed"][-1]
        scores[name] = (out["segment"], out["score"])
    assert scores == {"both": ("big", 50), "enterprise": ("enterprise", 25), "none": (None, 100)}


def test_login_gating_leaves_login_frequency_out_for_api_driven_accounts() -> None:
    gated = Account(api_driven=True)
    detected = Account()  # no fact, but heavy API use and no logins
    ungated = Account(
        profile_from_mapping({**_default_doc(), "login_gating": {"mode": "off"}}), api_driven=True
    )
    for acct in (gated, detected, ungated):
        acct.send(E.LOGIN, DAY0)  # one login: logins are data, and they stopped
    for day in range(DAY0, DAY0 + 35):
        for acct in (gated, detected, ungated):
            acct.send(E.VALUE_ACTION, day, 3)
            acct.send(E.API_CALLS, day, 200)
    assert gated.last("score_changed")["login_gated"] is True
    assert detected.last("score_changed")["login_gated"] is True
    assert ungated.last("score_changed")["login_gated"] is False
    assert gated.score > ungated.score  # no logins costs the API-driven account nothing


def _default_doc() -> dict[str, Any]:
    import tomllib
    from importlib import resources

    return tomllib.loads(resources.files("scoring").joinpath("profiles/default.toml").read_text())


def test_a_resent_event_is_applied_once_and_the_memory_is_bounded() -> None:
    engine = HealthEngine(ScoringConfig(load_profile(), 1, dedup_memory=3))
    state = AccountState()

    def login(event_id: str, day: int) -> TelemetryEvent:
        return TelemetryEvent(event_id, "a", E.LOGIN, day * MS_PER_DAY, 5, "ana", {})

    engine.on_event("a", state, login("l1", DAY0))
    with pytest.raises(DuplicateEvent):
        engine.on_event("a", state, login("l1", DAY0))
    assert state.total(Series.LOGINS, 14) == 5
    for n in range(2, 5):  # three newer ids push l1 out of a memory of three
        engine.on_event("a", state, login(f"l{n}", DAY0))
    engine.on_event("a", state, login("l1", DAY0))  # past the bound: applied again
    assert state.total(Series.LOGINS, 14) == 25
    snapshot = decode_state(encode_state(state))
    assert snapshot.recent_ids == state.recent_ids  # the memory survives a restart
    with pytest.raises(DuplicateEvent):
        engine.on_event("a", snapshot, login("l4", DAY0))


def test_a_record_read_again_is_recognised_by_its_log_position() -> None:
    book = AccountBook(HealthEngine(ScoringConfig(load_profile(), 1)))
    event = TelemetryEvent("v1", "a", E.VALUE_ACTION, DAY0 * MS_PER_DAY, 4, "ana", {})
    book.apply(event, (2, 100))
    restored = AccountBook(book.engine, {"a": encode_state(book.state("a"))})
    with pytest.raises(AlreadyApplied):
        restored.apply(event._replace(event_id="v1-again"), (2, 100))
    restored.apply(event._replace(event_id="v2"), (2, 101))
    assert restored.state("a").total(Series.VALUE_ACTIONS, 14) == 8


def test_a_zone_left_is_not_entered_again_within_a_day() -> None:
    acct = Account()
    for day in range(DAY0, DAY0 + 35):
        acct.healthy_day(day)
    assert acct.zone == "healthy"
    held_until = (DAY0 + 36) * MS_PER_DAY + 3_600_000
    acct.send(
        E.MANUAL_OVERRIDE,
        DAY0 + 35,
        1,
        "csm-lee",
        score=45,
        reason="re-org",
        expires_at_ms=held_until,
    )
    assert acct.zone == "at_risk"
    acct.tick(DAY0 + 36, 2 * 3_600_000)  # the hold has ended: the score is back up
    assert acct.last("override_cleared")["override"] == "manual"
    assert acct.score >= 80 and acct.zone == "at_risk"  # but healthy was left yesterday
    acct.tick(DAY0 + 37)
    assert acct.zone == "healthy"
    changes = [o["zone"] for o in acct.kinds("score_changed")]
    assert changes[-3:] == ["at_risk", "at_risk", "healthy"]
