"""Override rules: the hard-won lessons that a weighted average alone would miss.

An override is in force while its condition holds (and is reported so), whether or not it
lowered the score this time. They apply in this order, each to the result of the one before:

1. ``detector_cap``: a yellow finding caps the score just below healthy, a red one just
   below at risk (when the profile's detectors cap the score);
2. ``champion_departed``: the champion left and no replacement was named → cap (40);
3. ``active_escalation``: an escalated ticket is still open → cap (50);
4. ``zero_usage``: no usage at all in the last 14 days, and for longer than five of the
   account's usual gaps between active days → the score is set (10, or lower if it is);
5. ``manual``: a CSM's governed override holds the score until its expiry;
6. ``renewal_escalation``: renewal within 60 days and the score under 60 → escalate to
   management (the score is unchanged).

Accounts in onboarding are not penalised for low usage: rules 1 and 4 do not apply to them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scoring.detectors import SEVERITY_RANK, Finding
from scoring.outputs import OverrideFacts
from windows.account import NO_DAY, SERIES_BY_NAME, AccountState
from windows.days import iso_day
from windows.telemetry import MS_PER_DAY

OVERRIDE_DEFAULTS: dict[str, dict[str, Any]] = {
    "detector_cap": {
        "enabled": True,
        "action": "Act on the detector's finding (see its action).",
    },
    "champion_departed": {
        "enabled": True,
        "cap": 40,
        "severity": "red",
        "action": "Champion gone: build a new relationship within 30 days.",
    },
    "active_escalation": {
        "enabled": True,
        "cap": 50,
        "severity": "yellow",
        "action": "Drive the escalated tickets to resolution and update the customer daily.",
    },
    "zero_usage": {
        "enabled": True,
        "score": 10,
        "days": 14,
        "series": ["logins", "value_actions", "feature_uses", "api_calls", "integration_messages"],
        # and the silence is longer than this many of the account's usual gaps between
        # active days (by chance, about e^-5 = 0.7% for an account still active at its rate):
        # a customer who buys monthly is not silent after 14 days
        "usual_gaps": 5,
        "prior_days": 30,
        "severity": "red",
        "action": "No usage in 14 days: immediate outreach, confirm the product still runs.",
    },
    "manual": {
        "enabled": True,
        "max_days": 90,
        "severity": "monitor",
        "action": "A CSM holds this score: review the reason before acting on the model.",
    },
    "renewal_escalation": {
        "enabled": True,
        "within_days": 60,
        "below": 60,
        "severity": "red",
        "escalate_to": "cs_manager",
        "action": "Escalate to management: renewal is near and the account is not healthy.",
    },
}


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class AppliedOverride:
    """An override in force: what it did to the score and why."""

    name: str
    effect: str  # cap, set, hold or escalate
    value: int | None
    score_before: int
    severity: str
    evidence: dict[str, Any]
    action: str

    def as_output(self) -> OverrideFacts:
        return {
            "override": self.name,
            "effect": self.effect,
            "value": self.value,
            "score_before": self.score_before,
            "severity": self.severity,
            "evidence": self.evidence,
            "action": self.action,
        }


class OverrideRules:
    """A profile's override rules, compiled."""

    def __init__(
        self, params: Mapping[str, Mapping[str, Any]], healthy_from: float, at_risk_from: float
    ) -> None:
        self.params = params
        # the highest integer score still below each threshold
        self.yellow_cap = max(math.ceil(healthy_from) - 1, 0)
        self.red_cap = max(math.ceil(at_risk_from) - 1, 0)
        self.zero_series = [SERIES_BY_NAME[s] for s in params["zero_usage"]["series"]]

    def enabled(self, name: str) -> bool:
        return bool(self.params[name]["enabled"])

    def manual_expired(self, state: AccountState) -> bool:
        manual = state.manual_override
        return manual is not None and state.now_ms >= self.manual_expiry(manual)

    def manual_expiry(self, manual: Mapping[str, Any]) -> int:
        """The override's own expiry, or the longest a profile lets one last."""
        limit = int(manual["set_ms"]) + int(self.params["manual"]["max_days"] * MS_PER_DAY)
        return min(int(manual["expires_ms"]), limit)

    def apply(
        self,
        state: AccountState,
        score: int,
        findings: list[Finding],
        onboarding: bool,
        cap_findings: bool,
    ) -> tuple[int, list[AppliedOverride], int]:
        """The score after the overrides, the overrides in force, and the score as it would
        be without the detector cap (what score alerts read: a cap that mirrors a finding
        is not, by itself, news)."""
        applied: list[AppliedOverride] = []
        free = score
        if cap_findings and not onboarding and findings and self.enabled("detector_cap"):
            capped = self._detector_cap(score, findings)
            if capped is not None:
                applied.append(capped)
                score = min(score, capped.value or 0)
        if state.champion_departed and self.enabled("champion_departed"):
            score = self._cap(applied, "champion_departed", score, {"champion_departed": True})
            free = min(free, applied[-1].value or 0)
        if state.escalated_open and self.enabled("active_escalation"):
            evidence = {"escalated_open_tickets": list(state.escalated_open)}
            score = self._cap(applied, "active_escalation", score, evidence)
            free = min(free, applied[-1].value or 0)
        for rule in (self._zero_usage, self._manual):
            found = rule(state, score, onboarding)
            if found is not None:
                applied.append(found)
                score = free = found.value or 0
        escalation = self._renewal_escalation(state, score)
        if escalation is not None:
            applied.append(escalation)
        return score, applied, free

    def _detector_cap(self, score: int, findings: list[Finding]) -> AppliedOverride | None:
        """The cap the most severe finding puts on the score (none for a monitor)."""
        worst = max(findings, key=lambda f: SEVERITY_RANK[f.severity])
        cap = {"red": self.red_cap, "yellow": self.yellow_cap}.get(worst.severity)
        if cap is None:
            return None
        return AppliedOverride(
            "detector_cap",
            "cap",
            cap,
            score,
            worst.severity,
            {"finding": worst.key, "severity": worst.severity},
            str(self.params["detector_cap"]["action"]),
        )

    def _zero_usage(
        self, state: AccountState, score: int, onboarding: bool
    ) -> AppliedOverride | None:
        """No usage for longer than the account's usual gap allows: the score set low."""
        zero = self.params["zero_usage"]
        if onboarding or not self.enabled("zero_usage") or state.tenure_days < zero["days"]:
            return None
        window = 14 if zero["days"] <= 14 else 30
        usual = state.usual_gap(zero["prior_days"])
        if any(state.total(s, window) for s in self.zero_series):
            return None
        if not state.days_silent() > zero["usual_gaps"] * usual:
            return None
        # "set to 10 regardless": an account already scored lower keeps its lower score, so
        # the silent accounts stay ranked among themselves
        return AppliedOverride(
            "zero_usage",
            "set",
            min(int(zero["score"]), score),
            score,
            str(zero["severity"]),
            {
                "days_without_usage": window,
                "usual_gap_days": round(usual, 1),
                "last_event_day": None
                if state.last_event_day == NO_DAY
                else iso_day(state.last_event_day),
            },
            str(zero["action"]),
        )

    def _manual(self, state: AccountState, score: int, onboarding: bool) -> AppliedOverride | None:
        """A CSM's manual override, held until it expires or is cleared."""
        manual = state.manual_override
        if manual is None or not self.enabled("manual"):
            return None
        rule = self.params["manual"]
        return AppliedOverride(
            "manual",
            "hold",
            int(manual["score"]),
            score,
            str(rule["severity"]),
            {
                "reason": manual["reason"],
                "author": manual["author"],
                "override_id": manual["override_id"],
                "set_at": iso_ms(int(manual["set_ms"])),
                "expires_at": iso_ms(self.manual_expiry(manual)),
            },
            str(rule["action"]),
        )

    def _renewal_escalation(self, state: AccountState, score: int) -> AppliedOverride | None:
        """A low score close to renewal: escalated, the score left as it is."""
        renewal = self.params["renewal_escalation"]
        if state.renewal_day == NO_DAY or not self.enabled("renewal_escalation"):
            return None
        days_left = state.renewal_day - state.clock
        if not (0 <= days_left <= renewal["within_days"] and score < renewal["below"]):
            return None
        return AppliedOverride(
            "renewal_escalation",
            "escalate",
            None,
            score,
            str(renewal["severity"]),
            {
                "days_to_renewal": days_left,
                "renewal_date": iso_day(state.renewal_day),
                "escalate_to": renewal["escalate_to"],
            },
            str(renewal["action"]),
        )

    def _cap(
        self, applied: list[AppliedOverride], name: str, score: int, evidence: dict[str, Any]
    ) -> int:
        p = self.params[name]
        cap = int(p["cap"])
        applied.append(
            AppliedOverride(name, "cap", cap, score, str(p["severity"]), evidence, str(p["action"]))
        )
        return min(score, cap)
