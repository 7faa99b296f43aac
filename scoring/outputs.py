"""What the engine emits: one typed record per kind of output, and the only functions that
put outputs together.

Every output starts with its ``kind``, the contract's ``schema_version``, its ``id``
(``account_id:seq``) and ``seq``, then the same fields (``Common``) in the same order;
docs/events.md describes each kind and docs/output-event.v1.schema.json is the contract in
machine-readable form. Outputs are plain dicts (``TypedDict``): they are serialized as they
are, keys in the order they are built here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from windows.account import NO_SCORE
from windows.days import iso_day
from windows.telemetry import MS_PER_DAY

__all__ = [
    "AlertRaised",
    "Common",
    "Description",
    "OverrideApplied",
    "OverrideCleared",
    "OUTPUT_SCHEMA_VERSION",
    "OverrideFacts",
    "Output",
    "OutputEvent",
    "ScoreChanged",
    "SignalMove",
    "SignalPoints",
    "iso_time",
]

#: the version of the output contract (docs/output-event.v1.schema.json) every output carries
OUTPUT_SCHEMA_VERSION = 1
#: why a ``score_changed`` was emitted, in this order (docs/events.md)
EMIT_REASONS = ("first", "step", "zone", "findings", "overrides")


class Identity(TypedDict):
    """What names an output, after its kind: the contract's version, ``account_id:seq``,
    and the account's count of outputs (alerts and overrides included)."""

    schema_version: int
    id: str
    seq: int


class Common(TypedDict):
    """The fields every output carries after its identity: whose score, what it is, when."""

    account_id: str
    score: int
    zone: str
    recommended_action: str
    event_time: str
    as_of: str
    config_version: str


class SignalMove(TypedDict):
    """A signal whose points changed since the account's previous score change."""

    signal: str
    category: str
    score: int | None
    previous: int | None
    delta: int
    impact: float
    evidence: dict[str, Any]


class SignalPoints(TypedDict):
    """A signal's points now, and its share of the composite (a description's)."""

    signal: str
    category: str
    score: int | None
    weight_share: float
    evidence: dict[str, Any]


class OverrideFacts(TypedDict):
    """What an override in force did to the score, and why."""

    override: str
    effect: str
    value: int | None
    score_before: int
    severity: str
    evidence: dict[str, Any]
    action: str


class ScoreChanged(Identity, Common):
    kind: Literal["score_changed"]
    emitted_for: list[str]
    #: the zone's playbook, on the change that enters a zone (an account's first score too)
    playbook: NotRequired[dict[str, Any] | None]
    previous_score: int | None
    previous_zone: str | None
    computed_score: int
    categories: dict[str, int | None]
    signals: list[SignalMove]
    detectors: list[dict[str, Any]]
    overrides: list[OverrideFacts]
    segment: str | None
    login_gated: bool


class OverrideApplied(Identity, Common, OverrideFacts):
    kind: Literal["override_applied"]


class OverrideCleared(Identity, Common):
    kind: Literal["override_cleared"]
    override: str
    reason: str


class AlertRaised(Identity, Common):
    kind: Literal["alert"]
    alert: str
    severity: str
    evidence: dict[str, Any]
    action: str


class Description(Common):
    """An account's whole picture now (``explain``, the HTTP API): nothing emitted."""

    seq: int
    playbook: dict[str, Any] | None
    computed_score: int
    categories: dict[str, int | None]
    signals: list[SignalPoints]
    detectors: list[dict[str, Any]]
    overrides: list[OverrideFacts]
    segment: str | None
    login_gated: bool


#: what the engine emits
Output = ScoreChanged | OverrideApplied | OverrideCleared | AlertRaised
#: an output as any reader holds it: one the engine built, or one read back from the
#: output topic (sinks, metrics and reports read outputs; they never build one)
OutputEvent = Mapping[str, Any]


def iso_time(ts_ms: int) -> str:
    """ISO-8601 in UTC to the millisecond, as ``datetime.isoformat(timespec="milliseconds")``
    writes it, without building a datetime per output."""
    day, ms = divmod(ts_ms, MS_PER_DAY)
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{iso_day(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}+00:00"


def score_or_none(score: int) -> int | None:
    """A score as outputs write it: None for no score yet."""
    return None if score == NO_SCORE else score


def common(
    account_id: str,
    score: int,
    zone: str,
    action: str,
    ts_ms: int,
    clock: int,
    config_version: str,
) -> Common:
    return {
        "account_id": account_id,
        "score": score,
        "zone": zone,
        "recommended_action": action,
        "event_time": iso_time(ts_ms),
        "as_of": iso_day(clock),
        "config_version": config_version,
    }


def _identity(base: Common, seq: int) -> Identity:
    return {
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "id": f"{base['account_id']}:{seq}",
        "seq": seq,
    }


def score_changed(
    base: Common,
    seq: int,
    emitted_for: list[str],
    playbook: dict[str, Any] | None,
    previous_score: int,
    previous_zone: str,
    computed: int,
    categories: dict[str, int | None],
    signals: list[SignalMove],
    detectors: list[dict[str, Any]],
    overrides: list[OverrideFacts],
    segment: str | None,
    login_gated: bool,
) -> ScoreChanged:
    changed: ScoreChanged = {
        "kind": "score_changed",
        **_identity(base, seq),
        **base,  # type: ignore[typeddict-item]
        "emitted_for": emitted_for,
        "previous_score": score_or_none(previous_score),
        "previous_zone": previous_zone or None,
        "computed_score": computed,
        "categories": categories,
        "signals": signals,
        "detectors": detectors,
        "overrides": overrides,
        "segment": segment,
        "login_gated": login_gated,
    }
    if "zone" in emitted_for or "first" in emitted_for:
        changed["playbook"] = playbook
    return changed


def override_applied(base: Common, seq: int, facts: OverrideFacts) -> OverrideApplied:
    return {"kind": "override_applied", **_identity(base, seq), **base, **facts}


def override_cleared(base: Common, seq: int, override: str, reason: str) -> OverrideCleared:
    return {
        "kind": "override_cleared",
        **_identity(base, seq),
        **base,
        "override": override,
        "reason": reason,
    }


def alert_raised(
    base: Common, seq: int, alert: str, severity: str, evidence: dict[str, Any], action: str
) -> AlertRaised:
    return {
        "kind": "alert",
        **_identity(base, seq),
        **base,
        "alert": alert,
        "severity": severity,
        "evidence": evidence,
        "action": action,
    }


def description(
    base: Common,
    seq: int,
    playbook: dict[str, Any] | None,
    computed: int,
    categories: dict[str, int | None],
    signals: list[SignalPoints],
    detectors: list[dict[str, Any]],
    overrides: list[OverrideFacts],
    segment: str | None,
    login_gated: bool,
) -> Description:
    return {
        **base,
        "seq": seq,
        "playbook": playbook,
        "computed_score": computed,
        "categories": categories,
        "signals": signals,
        "detectors": detectors,
        "overrides": overrides,
        "segment": segment,
        "login_gated": login_gated,
    }
