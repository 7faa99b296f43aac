"""Alerts: the moments someone should hear about now, each fired once per episode.

- ``score_drop``: the score fell ``drop_points`` or more below its peak within
  ``drop_period_days``; the peak then restarts from the new score, so a score that
  wobbles does not alert again until it falls another ``drop_points``;
- ``entered_critical``: the zone became critical; it alerts again only after the score
  has climbed ``critical_hysteresis`` points above the critical threshold;
- the onset of a finding of the listed detectors (``regime_change`` by default) and of the
  listed overrides (``renewal_escalation``).

None fires during an account's first ``warmup_days`` in the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.detectors import Finding, iso_day
from scoring.overrides import AppliedOverride
from windows.account import NO_DAY, AccountState

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
        zone: str,
        new_findings: Iterable[tuple[Finding, str]],
        new_overrides: Iterable[AppliedOverride],
    ) -> list[Alert]:
        """Alerts due now; updates the state's peak and arming as a side effect."""
        if not self.enabled:
            return []
        p = self.params
        alerts: list[Alert] = []
        day = state.clock
        if state.tenure_days < p["warmup_days"]:
            state.peak_score, state.peak_day = score, day
            return alerts
        if state.peak_day == NO_DAY or day - state.peak_day > p["drop_period_days"]:
            state.peak_score, state.peak_day = score, day
        elif score >= state.peak_score:
            state.peak_score, state.peak_day = score, day
        elif state.peak_score - score >= p["drop_points"]:
            alerts.append(
                Alert(
                    "score_drop",
                    "red",
                    {
                        "peak_score": state.peak_score,
                        "peak_day": iso_day(state.peak_day),
                        "score": score,
                        "drop": state.peak_score - score,
                        "within_days": day - state.peak_day,
                    },
                    str(p["drop_action"]),
                )
            )
            state.peak_score, state.peak_day = score, day
        if zone == "critical":
            if state.critical_armed:
                state.critical_armed = False
                alerts.append(
                    Alert(
                        "entered_critical",
                        "red",
                        {"score": score, "rearms_at": self.rearm_at},
                        str(p["critical_action"]),
                    )
                )
        elif score >= self.rearm_at:
            state.critical_armed = True
        for finding, action in new_findings:
            if finding.detector in self.on_detectors:
                alerts.append(
                    Alert(
                        finding.detector,
                        finding.severity,
                        {"series": finding.series, **finding.evidence},
                        action,
                    )
                )
        for override in new_overrides:
            if override.name in self.on_overrides:
                alerts.append(
                    Alert(override.name, override.severity, override.evidence, override.action)
                )
        return alerts
