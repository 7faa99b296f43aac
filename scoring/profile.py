"""Health profiles: weighted categories of signals and zone thresholds, loaded from TOML."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from scoring.signals import SIGNALS
from windows.account import SERIES_BY_NAME

MAX_SIGNALS = 10
ZONES = ("healthy", "at_risk", "critical")


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the key and the reason."""


@dataclass(frozen=True)
class WeightedSignal:
    name: str
    weight: float
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Category:
    name: str
    weight: float
    signals: tuple[WeightedSignal, ...]


@dataclass(frozen=True)
class Profile:
    """A validated scoring model. ``version`` hashes everything that affects a score."""

    name: str
    description: str
    healthy_from: float
    at_risk_from: float
    categories: tuple[Category, ...]
    version: str

    def zone(self, score: float) -> str:
        if score >= self.healthy_from:
            return "healthy"
        if score >= self.at_risk_from:
            return "at_risk"
        return "critical"

    @property
    def signal_names(self) -> tuple[str, ...]:
        return tuple(s.name for c in self.categories for s in c.signals)


def _number(value: Any, key: str, minimum: float = 0.0, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{key}: expected a number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
        raise ProfileError(f"{key}: {value!r} is out of range (must be {bound})")
    return float(value)


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{key}: expected a table, got {type(value).__name__}")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(
            f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _signal_params(name: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    defaults = SIGNALS[name].defaults
    _check_keys(given, set(defaults), where)
    params = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, list) and not isinstance(value, list):
            raise ProfileError(f"{where}.{key}: expected a list, got {value!r}")
        if isinstance(default, int | float) and not isinstance(default, bool):
            _number(value, f"{where}.{key}", minimum=-1e12)
        if isinstance(default, str) and not isinstance(value, str):
            raise ProfileError(f"{where}.{key}: expected a string, got {value!r}")
        params[key] = value
    if name == "usage_trend" and params["series"] not in SERIES_BY_NAME:
        raise ProfileError(
            f"{where}.series: unknown series {params['series']!r} "
            f"(one of: {', '.join(SERIES_BY_NAME)})"
        )
    return params


def profile_from_mapping(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Validate a parsed profile document; errors name the offending key."""
    _check_keys(data, {"name", "description", "zones", "categories", "signals"}, source)
    zones = _table(data.get("zones", {}), f"{source}: zones")
    _check_keys(zones, {"healthy", "at_risk"}, f"{source}: zones")
    healthy = _number(zones.get("healthy", 75), f"{source}: zones.healthy", 0, 100)
    at_risk = _number(zones.get("at_risk", 40), f"{source}: zones.at_risk", 0, 100)
    if at_risk > healthy:
        raise ProfileError(
            f"{source}: zones.at_risk: {at_risk:g} is above zones.healthy {healthy:g}"
        )
    tuning = _table(data.get("signals", {}), f"{source}: signals")
    raw_categories = _table(data.get("categories"), f"{source}: categories")
    if not raw_categories:
        raise ProfileError(f"{source}: categories: at least one category is needed")
    categories = []
    seen: set[str] = set()
    for cname, raw in raw_categories.items():
        where = f"{source}: categories.{cname}"
        raw = _table(raw, where)
        _check_keys(raw, {"weight", "signals"}, where)
        weight = _number(raw.get("weight"), f"{where}.weight")
        signals = []
        for sname, sweight in _table(raw.get("signals"), f"{where}.signals").items():
            if sname not in SIGNALS:
                raise ProfileError(
                    f"{where}.signals.{sname}: unknown signal (known: {', '.join(SIGNALS)})"
                )
            if sname in seen:
                raise ProfileError(f"{where}.signals.{sname}: signal used in two categories")
            seen.add(sname)
            given = _table(tuning.get(sname, {}), f"{source}: signals.{sname}")
            params = _signal_params(sname, given, f"{source}: signals.{sname}")
            signals.append(
                WeightedSignal(sname, _number(sweight, f"{where}.signals.{sname}"), params)
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
    canonical = orjson.dumps(
        {
            "zones": [healthy, at_risk],
            "categories": [
                [c.name, c.weight, [[s.name, s.weight, dict(s.params)] for s in c.signals]]
                for c in categories
            ],
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return Profile(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")),
        healthy_from=healthy,
        at_risk_from=at_risk,
        categories=tuple(categories),
        version=hashlib.sha256(canonical).hexdigest()[:12],
    )


def load_profile(path: str | Path | None = None) -> Profile:
    """Load a profile file, or the packaged default when ``path`` is None."""
    if path is None:
        text = resources.files("scoring").joinpath("profiles/default.toml").read_text()
        source = "default.toml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from exc
        source = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    return profile_from_mapping(data, source)
