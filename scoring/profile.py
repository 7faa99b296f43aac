"""Health profiles: the whole model as data, loaded from TOML and validated on load.

A profile holds weighted categories of signals and zone thresholds, and optionally:
segments (their own weights, thresholds and expectations), the onboarding period, login
gating for API-driven accounts, detector and override parameters, alert rules and the
zone playbooks. Anything not given takes the documented default (docs/model.md).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from scoring.alerts import ALERT_DEFAULTS
from scoring.config import ProfileError, check_keys, merged, number, table, tuned
from scoring.detectors import (
    DETECTOR_DEFAULTS,
    DETECTOR_SETTINGS_DEFAULTS,
    SEVERITIES,
    DetectorSettings,
)
from scoring.overrides import OVERRIDE_DEFAULTS
from scoring.signals import SIGNALS
from windows.account import SERIES_BY_NAME

__all__ = ["MAX_SIGNALS", "PROFILES", "ZONES", "Profile", "ProfileError", "load_profile"]

MAX_SIGNALS = 10
ZONES = ("healthy", "at_risk", "critical")
#: the profiles shipped with the package, by the name ``--profile`` accepts
PROFILES = ("default", "four_layer", "five_factor", "trend_watch")
_TOP_KEYS = {
    "name",
    "description",
    "zones",
    "categories",
    "signals",
    "segments",
    "onboarding",
    "login_gating",
    "detectors",
    "overrides",
    "alerts",
    "playbooks",
}
_WEIGHTING_KEYS = {"zones", "categories", "signals"}

PLAYBOOK_DEFAULTS: dict[str, dict[str, Any]] = {
    "healthy": {
        "cadence": "monthly check-in",
        "owner": "csm",
        "actions": [
            "Identify expansion opportunities",
            "Request referrals and case studies",
            "Share product roadmap updates",
        ],
    },
    "at_risk": {
        "cadence": "biweekly check-in",
        "owner": "csm",
        "escalate_to": "cs_manager",
        "actions": [
            "Identify the top 3 pain points and create a resolution plan",
            "Schedule an executive business review",
            "Review open support tickets and accelerate resolution",
        ],
    },
    "critical": {
        "cadence": "weekly check-in",
        "owner": "cs_manager",
        "escalate_to": "vp_customer_success",
        "actions": [
            "Immediate executive-to-executive outreach",
            "Create a 30-day recovery plan with measurable milestones",
            "Review contract terms and identify retention options",
        ],
    },
    "onboarding": {
        "cadence": "weekly onboarding call",
        "owner": "onboarding_manager",
        "actions": [
            "Define the customer's value activity and first milestone",
            "Walk the team through the core features",
        ],
    },
}
ONBOARDING_DEFAULTS: dict[str, Any] = {"days": 30, "mode": "mark"}
LOGIN_GATING_DEFAULTS: dict[str, Any] = {
    "mode": "exclude",
    "factor": 0.25,
    "signals": ["login_frequency"],
    "auto": True,
    "min_api_calls_30d": 300,
    "max_login_days_30d": 2,
}


_ZONE_RANK = {"critical": 0, "at_risk": 1, "healthy": 2}


@dataclass(frozen=True)
class WeightedSignal:
    name: str
    weight: float
    params: Mapping[str, Any]
    #: the registered scorer this signal uses (its name unless the profile set ``kind``)
    kind: str = ""


@dataclass(frozen=True)
class Category:
    name: str
    weight: float
    signals: tuple[WeightedSignal, ...]


@dataclass(frozen=True)
class Weighting:
    """Zone thresholds and weighted categories: what a segment or onboarding may change."""

    healthy_from: float
    at_risk_from: float
    categories: tuple[Category, ...]

    def zone(self, score: float) -> str:
        if score >= self.healthy_from:
            return "healthy"
        if score >= self.at_risk_from:
            return "at_risk"
        return "critical"

    def zone_after(self, score: float, previous: str, margin: float) -> str:
        """The zone with hysteresis: an account climbs back into a better zone only once
        its score is ``margin`` above that zone's threshold, so a score that hovers at a
        threshold does not switch zones back and forth."""
        zone = self.zone(score)
        if _ZONE_RANK.get(zone, 0) <= _ZONE_RANK.get(previous, 3):
            return zone
        return self.zone(score - margin)

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.name for c in self.categories for s in c.signals)


@dataclass(frozen=True)
class Segment:
    """Accounts matching every condition are scored with this segment's weighting."""

    name: str
    segments: tuple[str, ...]
    plans: tuple[str, ...]
    seats_min: float | None
    seats_max: float | None
    weighting: Weighting

    def matches(self, segment: str | None, plan: str | None, seats: int) -> bool:
        if self.segments and segment not in self.segments:
            return False
        if self.plans and plan not in self.plans:
            return False
        if self.seats_min is not None and seats < self.seats_min:
            return False
        return self.seats_max is None or seats <= self.seats_max


@dataclass(frozen=True)
class Onboarding:
    days: int
    #: "mark": scored as usual but zoned ``onboarding``; "profile": scored by ``weighting``
    mode: str
    weighting: Weighting | None


@dataclass(frozen=True)
class LoginGating:
    #: "exclude" drops the login signals, "downweight" multiplies their weight, "off"
    mode: str
    factor: float
    signals: tuple[str, ...]
    auto: bool
    min_api_calls_30d: float
    max_login_days_30d: float


@dataclass(frozen=True)
class Profile(Weighting):
    """A validated model. ``version`` hashes everything that affects an output."""

    name: str = "default"
    description: str = ""
    version: str = ""
    segments: tuple[Segment, ...] = ()
    onboarding: Onboarding = Onboarding(30, "mark", None)
    login_gating: LoginGating = LoginGating("off", 1.0, (), False, 0.0, 0.0)
    detectors: DetectorSettings = field(
        default_factory=lambda: DetectorSettings(
            tuple(DETECTOR_SETTINGS_DEFAULTS["series"]), True, DETECTOR_DEFAULTS
        )
    )
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: OVERRIDE_DEFAULTS)
    alerts: Mapping[str, Any] = field(default_factory=lambda: ALERT_DEFAULTS)
    playbooks: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: PLAYBOOK_DEFAULTS)

    def segment_for(self, segment: str | None, plan: str | None, seats: int) -> Segment | None:
        """The first segment, in the profile's order, whose conditions all match."""
        for candidate in self.segments:
            if candidate.matches(segment, plan, seats):
                return candidate
        return None


def _signal(name: str, given: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """The scorer kind and validated parameters of a signal used by a category."""
    kind = given.get("kind", name)
    if kind not in SIGNALS:
        if "kind" in given:
            raise ProfileError(
                f"{where}.kind: unknown signal kind {kind!r} (known: {', '.join(SIGNALS)})"
            )
        raise ProfileError(
            f"{where}: unknown signal (known: {', '.join(SIGNALS)}; "
            "or give it a table with kind = one of them)"
        )
    params = tuned(SIGNALS[kind].defaults, {k: v for k, v in given.items() if k != "kind"}, where)
    if "series" in params and params["series"] not in SERIES_BY_NAME:
        known = ", ".join(SERIES_BY_NAME)
        raise ProfileError(f"{where}.series: unknown series {params['series']!r} (one of: {known})")
    for name in params.get("fallback_series", ()):
        if name not in SERIES_BY_NAME:
            known = ", ".join(SERIES_BY_NAME)
            raise ProfileError(
                f"{where}.fallback_series: unknown series {name!r} (one of: {known})"
            )
    return str(kind), params


def _weighting(data: Mapping[str, Any], source: str) -> Weighting:
    zones = table(data.get("zones", {}), f"{source}: zones")
    check_keys(zones, {"healthy", "at_risk"}, f"{source}: zones")
    healthy = number(zones.get("healthy", 75), f"{source}: zones.healthy", 0, 100)
    at_risk = number(zones.get("at_risk", 40), f"{source}: zones.at_risk", 0, 100)
    if at_risk > healthy:
        raise ProfileError(
            f"{source}: zones.at_risk: {at_risk:g} is above zones.healthy {healthy:g}"
        )
    tuning = table(data.get("signals", {}), f"{source}: signals")
    raw_categories = table(data.get("categories"), f"{source}: categories")
    if not raw_categories:
        raise ProfileError(f"{source}: categories: at least one category is needed")
    categories = []
    seen: set[str] = set()
    for cname, raw in raw_categories.items():
        where = f"{source}: categories.{cname}"
        raw = table(raw, where)
        check_keys(raw, {"weight", "signals"}, where)
        weight = number(raw.get("weight"), f"{where}.weight")
        signals = []
        for sname, sweight in table(raw.get("signals"), f"{where}.signals").items():
            if sname in seen:
                raise ProfileError(f"{where}.signals.{sname}: signal used in two categories")
            seen.add(sname)
            given = table(tuning.get(sname, {}), f"{source}: signals.{sname}")
            if sname not in SIGNALS and "kind" not in given:
                raise ProfileError(
                    f"{where}.signals.{sname}: unknown signal (known: {', '.join(SIGNALS)}; "
                    f"or add [signals.{sname}] with kind = one of them)"
                )
            kind, params = _signal(sname, given, f"{source}: signals.{sname}")
            signals.append(
                WeightedSignal(sname, number(sweight, f"{where}.signals.{sname}"), params, kind)
            )
        if not signals:
            raise ProfileError(f"{where}.signals: a category needs at least one signal")
        categories.append(Category(cname, weight, tuple(signals)))
    for sname in tuning:
        if sname not in seen:
            raise ProfileError(f"{source}: signals.{sname}: tuned but not used by any category")
    if len(seen) > MAX_SIGNALS:
        raise ProfileError(
            f"{source}: categories: {len(seen)} signals; a profile keeps to at most {MAX_SIGNALS}"
        )
    if not any(c.weight > 0 for c in categories):
        raise ProfileError(f"{source}: categories: every category weighs 0")
    return Weighting(healthy, at_risk, tuple(categories))


def _weighting_part(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in _WEIGHTING_KEYS}


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"{key}: expected a name or a list of names, got {value!r}")
    return tuple(value)


def _segments(data: Mapping[str, Any], source: str) -> tuple[Segment, ...]:
    raw = table(data.get("segments", {}), f"{source}: segments")
    base = _weighting_part(data)
    out = []
    for name, seg in raw.items():
        where = f"{source}: segments.{name}"
        seg = table(seg, where)
        check_keys(seg, {"match", "description"} | _WEIGHTING_KEYS, where)
        match = table(seg.get("match", {"segment": name}), f"{where}.match")
        check_keys(match, {"segment", "plan", "seats_min", "seats_max"}, f"{where}.match")
        seats_min = match.get("seats_min")
        seats_max = match.get("seats_max")
        out.append(
            Segment(
                name,
                _names(match.get("segment", []), f"{where}.match.segment"),
                _names(match.get("plan", []), f"{where}.match.plan"),
                None if seats_min is None else number(seats_min, f"{where}.match.seats_min"),
                None if seats_max is None else number(seats_max, f"{where}.match.seats_max"),
                _weighting(merged(base, _weighting_part(seg)), where),
            )
        )
    return tuple(out)


def _onboarding(data: Mapping[str, Any], source: str) -> Onboarding:
    where = f"{source}: onboarding"
    raw = table(data.get("onboarding", {}), where)
    check_keys(raw, set(ONBOARDING_DEFAULTS) | _WEIGHTING_KEYS, where)
    params = tuned(
        ONBOARDING_DEFAULTS, {k: v for k, v in raw.items() if k in ONBOARDING_DEFAULTS}, where
    )
    days = int(number(params["days"], f"{where}.days", 0, 365))
    mode = params["mode"]
    if mode not in ("mark", "profile"):
        raise ProfileError(f'{where}.mode: {mode!r} (use "mark" or "profile")')
    patch = _weighting_part(raw)
    if mode == "mark" and patch:
        raise ProfileError(f'{where}.{next(iter(patch))}: weights apply only with mode = "profile"')
    weighting = (
        _weighting(merged(_weighting_part(data), patch), where) if mode == "profile" else None
    )
    return Onboarding(days, mode, weighting)


def _login_gating(data: Mapping[str, Any], source: str) -> LoginGating:
    where = f"{source}: login_gating"
    p = tuned(LOGIN_GATING_DEFAULTS, table(data.get("login_gating", {}), where), where)
    if p["mode"] not in ("exclude", "downweight", "off"):
        raise ProfileError(f"{where}.mode: {p['mode']!r} (use exclude, downweight or off)")
    number(p["factor"], f"{where}.factor", 0, 1)
    return LoginGating(
        p["mode"],
        float(p["factor"]),
        _names(p["signals"], f"{where}.signals"),
        bool(p["auto"]),
        float(p["min_api_calls_30d"]),
        float(p["max_login_days_30d"]),
    )


def _severity(value: Any, key: str) -> None:
    if value not in SEVERITIES:
        raise ProfileError(f"{key}: {value!r} is not a severity (one of: {', '.join(SEVERITIES)})")


def _detectors(data: Mapping[str, Any], source: str) -> DetectorSettings:
    where = f"{source}: detectors"
    raw = table(data.get("detectors", {}), where)
    check_keys(raw, set(DETECTOR_SETTINGS_DEFAULTS) | set(DETECTOR_DEFAULTS), where)
    top = tuned(
        DETECTOR_SETTINGS_DEFAULTS,
        {k: v for k, v in raw.items() if k in DETECTOR_SETTINGS_DEFAULTS},
        where,
    )
    series = _names(top["series"], f"{where}.series")
    for name in series:
        if name not in SERIES_BY_NAME:
            raise ProfileError(
                f"{where}.series: unknown series {name!r} (one of: {', '.join(SERIES_BY_NAME)})"
            )
    params = {}
    for name, defaults in DETECTOR_DEFAULTS.items():
        p = tuned(defaults, table(raw.get(name, {}), f"{where}.{name}"), f"{where}.{name}")
        for key in ("severity", "no_recovery_severity", "silent_severity"):
            if key in p:
                _severity(p[key], f"{where}.{name}.{key}")
        params[name] = p
    return DetectorSettings(series, bool(top["cap_score"]), params)


def _overrides(data: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    where = f"{source}: overrides"
    raw = table(data.get("overrides", {}), where)
    check_keys(raw, set(OVERRIDE_DEFAULTS), where)
    params = {}
    for name, defaults in OVERRIDE_DEFAULTS.items():
        p = tuned(defaults, table(raw.get(name, {}), f"{where}.{name}"), f"{where}.{name}")
        if "severity" in p:
            _severity(p["severity"], f"{where}.{name}.severity")
        for key in ("cap", "score", "below"):
            if key in p:
                number(p[key], f"{where}.{name}.{key}", 0, 100)
        params[name] = p
    for name in _names(params["zero_usage"]["series"], f"{where}.zero_usage.series"):
        if name not in SERIES_BY_NAME:
            raise ProfileError(f"{where}.zero_usage.series: unknown series {name!r}")
    return params


def _alerts(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    where = f"{source}: alerts"
    p = tuned(ALERT_DEFAULTS, table(data.get("alerts", {}), where), where)
    for name in _names(p["on_detectors"], f"{where}.on_detectors"):
        if name not in DETECTOR_DEFAULTS and name != "drop_no_recovery":
            raise ProfileError(f"{where}.on_detectors: unknown detector {name!r}")
    for name in _names(p["on_overrides"], f"{where}.on_overrides"):
        if name not in OVERRIDE_DEFAULTS:
            raise ProfileError(f"{where}.on_overrides: unknown override {name!r}")
    return p


def _playbooks(data: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    where = f"{source}: playbooks"
    raw = table(data.get("playbooks", {}), where)
    check_keys(raw, set(PLAYBOOK_DEFAULTS), where)
    out = {}
    for zone, defaults in PLAYBOOK_DEFAULTS.items():
        given = table(raw.get(zone, {}), f"{where}.{zone}")
        check_keys(
            given, {"cadence", "owner", "escalate_to", "actions", "review"}, f"{where}.{zone}"
        )
        p = {**defaults, **given}
        actions = p["actions"]
        if (
            not isinstance(actions, list)
            or not actions
            or not all(isinstance(a, str) for a in actions)
        ):
            raise ProfileError(f"{where}.{zone}.actions: expected a non-empty list of strings")
        out[zone] = p
    return out


def profile_from_mapping(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Validate a parsed profile document; errors name the offending key."""
    check_keys(data, _TOP_KEYS, source)
    base = _weighting(data, source)
    segments = _segments(data, source)
    onboarding = _onboarding(data, source)
    gating = _login_gating(data, source)
    detectors = _detectors(data, source)
    overrides = _overrides(data, source)
    alerts = _alerts(data, source)
    playbooks = _playbooks(data, source)
    canonical = orjson.dumps(
        {
            "weighting": _canonical(base),
            "segments": [
                [s.name, s.segments, s.plans, s.seats_min, s.seats_max, _canonical(s.weighting)]
                for s in segments
            ],
            "onboarding": [
                onboarding.days,
                onboarding.mode,
                None if onboarding.weighting is None else _canonical(onboarding.weighting),
            ],
            "login_gating": gating.__dict__,
            "detectors": [detectors.series, detectors.cap_score, detectors.params],
            "overrides": overrides,
            "alerts": alerts,
            "playbooks": playbooks,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return Profile(
        healthy_from=base.healthy_from,
        at_risk_from=base.at_risk_from,
        categories=base.categories,
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        version=hashlib.sha256(canonical).hexdigest()[:12],
        segments=segments,
        onboarding=onboarding,
        login_gating=gating,
        detectors=detectors,
        overrides=overrides,
        alerts=alerts,
        playbooks=playbooks,
    )


def _canonical(w: Weighting) -> list[Any]:
    return [
        w.healthy_from,
        w.at_risk_from,
        [
            [c.name, c.weight, [[s.name, s.kind, s.weight, dict(s.params)] for s in c.signals]]
            for c in w.categories
        ],
    ]


def load_profile(path: str | Path | None = None) -> Profile:
    """Load a profile file, or a packaged profile by name (``None``: the default)."""
    if path is None or str(path) in PROFILES:
        name = "default" if path is None else str(path)
        text = resources.files("scoring").joinpath(f"profiles/{name}.toml").read_text()
        source = f"{name}.toml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            known = ", ".join(PROFILES)
            raise ProfileError(
                f"{path}: cannot read profile: {exc.strerror} (packaged profiles: {known})"
            ) from exc
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    return profile_from_mapping(data, source)
