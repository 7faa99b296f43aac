"""Alerts: the moments someone should hear about now, at most one per episode.

What can raise an alert:

- ``score_drop``: the score fell ``drop_points`` or more below its usual level, an average
  of its daily scores over about ``drop_period_days`` (an exponential moving average); the
  level then restarts from the new score. Against a peak, the best day of ordinary noise,
  a steady account would alert on noise. It reads the score without the detector cap: a
  cap that mirrors a finding is not, by itself, news;
- ``entered_critical``: the zone became critical; it alerts again only after the score
  has climbed ``critical_hysteresis`` points above the critical threshold;
- the onset of a finding of the listed detectors (``regime_change`` by default) and of the
  listed overrides (``renewal_escalation``).

An **episode** opens with an account's alert and stays open while the account is out of
the healthy zone or has a yellow or red finding; it closes once the account has been calm
for ``episode_quiet_days``. Within an episode nothing alerts again: the score changes say
how it develops. When several reasons arise at once, the most severe is the alert and the
others are named in its evidence. None fires during an account's first ``warmup_days``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.detectors import SEVERITY_RANK, Finding
from scoring.overrides import AppliedOverride
from windows.account import NO_DAY, AccountState
from windows.days import iso_day

ALERT_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "drop_points": 15,
    "drop_period_days": 14,
    "critical_hysteresis": 5,
    # no alerts while the account's history in the stream is shorter: its windows are
    # still filling, and a first score is not news
    "warmup_days": 14,
    "on_detectors": ["regime_change"],
    "on_overrides": ["renewal_escalation"],
    # an episode closes after this many days healthy with nothing yellow or red
    "episode_quiet_days": 14,
    "drop_action": "Find out what changed: the score fell fast.",
    "critical_action": "Execute the save play: the account is critical.",
}


@dataclass(frozen=True, slots=True)
class Alert:
    alert: str
    severity: str
    evidence: dict[str, Any]
    action: str


class AlertRules:
    def __init__(self, params: Mapping[str, Any], at_risk_from: float) -> None:
        self.params = params
        self.enabled = bool(params["enabled"])
        self.rearm_at = at_risk_from + params["critical_hysteresis"]
        self.on_detectors = frozenset(params["on_detectors"])
        self.on_overrides = frozenset(params["on_overrides"])

    def check(
        self,
        state: AccountState,
        score: int,
        free_score: int,
        zone: str,
        findings: list[Finding],
        new_findings: Iterable[tuple[Finding, str]],
        new_overrides: Iterable[AppliedOverride],
    ) -> list[Alert]:
        """The alert due now, if any (at most one); updates the state's peak, arming and
        episode as a side effect. ``free_score`` is the score without the detector cap."""
        if not self.enabled:
            return []
        p = self.params
        if state.tenure_days < p["warmup_days"]:
            state.peak_score, state.peak_day = float(free_score), state.clock
            return []
        reasons: list[Alert] = []
        for finding, action in new_findings:
            if finding.detector in self.on_detectors:
                evidence = {"series": finding.series, **finding.evidence}
                reasons.append(Alert(finding.detector, finding.severity, evidence, action))
        for override in new_overrides:
            if override.name in self.on_overrides:
                reasons.append(
                    Alert(override.name, override.severity, override.evidence, override.action)
                )
        # the most specific reason first: a finding or an override says what happened
        reasons += self._critical(state, score, zone)
        reasons += self._score_drop(state, free_score)
        troubled = zone in ("at_risk", "critical") or any(
            SEVERITY_RANK[f.severity] >= SEVERITY_RANK["yellow"] for f in findings
        )
        open_episode = self._episode_open(state, troubled)
        if not reasons or open_episode:
            return []
        alert = max(reasons, key=lambda a: SEVERITY_RANK.get(a.severity, 0))
        state.episode_day = state.clock
        state.calm_since = NO_DAY if troubled else state.clock
        episode = {
            "opened": iso_day(state.clock),
            "opened_by": alert.alert,
            "also": [a.alert for a in reasons if a is not alert],
            "closes_after_quiet_days": p["episode_quiet_days"],
        }
        return [
            Alert(alert.alert, alert.severity, {**alert.evidence, "episode": episode}, alert.action)
        ]

    def _episode_open(self, state: AccountState, troubled: bool) -> bool:
        """Whether an episode is still open, closing it after enough calm days."""
        if state.episode_day == NO_DAY:
            return False
        if troubled:
            state.calm_since = NO_DAY
            return True
        if state.calm_since == NO_DAY:
            state.calm_since = state.clock
        if state.clock - state.calm_since >= self.params["episode_quiet_days"]:
            state.episode_day = state.calm_since = NO_DAY
            return False
        return True

    def _score_drop(self, state: AccountState, score: int) -> list[Alert]:
        """``peak_score`` holds the usual level and ``peak_day`` the day it last moved: it
        takes in the first score of each day, so it is the same whatever the day brings."""
        p = self.params
        day = state.clock
        if state.peak_day == NO_DAY or state.peak_score < 0:
            state.peak_score, state.peak_day = float(score), day
            return []
        usual = state.peak_score
        if usual - score >= p["drop_points"]:
            evidence = {
                "usual_score": round(usual, 1),
                "score": score,
                "drop": round(usual - score, 1),
                "usual_over_days": p["drop_period_days"],
            }
            state.peak_score, state.peak_day = float(score), day
            return [Alert("score_drop", "red", evidence, str(p["drop_action"]))]
        if day != state.peak_day:
            # one step of the moving average per day passed (a week at most), never past
            # today's score
            steps = min(day - state.peak_day, 7)
            weight = min(1.0, 2.0 / (p["drop_period_days"] + 1) * steps)
            state.peak_score = usual + weight * (score - usual)
            state.peak_day = day
        return []

    def _critical(self, state: AccountState, score: int, zone: str) -> list[Alert]:
        if zone != "critical":
            if score >= self.rearm_at:
                state.critical_armed = True
            return []
        if not state.critical_armed:
            return []
        state.critical_armed = False
        evidence = {"score": score, "rearms_at": self.rearm_at}
        return [Alert("entered_critical", "red", evidence, str(self.params["critical_action"]))]
