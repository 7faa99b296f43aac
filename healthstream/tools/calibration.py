"""Calibrate a profile from history: fit churn on the signals at one date, set the zones
from that date too, and test the calibrated profile at a later one.

Features are the profile's signal points (0-100) at the training date; the outcome is churn
in the horizon after it. Every signal's points are "higher = healthier", so the logistic
regression (``scoring.churn``) holds each coefficient at or below 0 while it fits: a signal
may lower the churn chance or get no weight, never raise it. The L2 penalty is chosen by
stratified 5-fold cross-validation on the training accounts alone (the strongest penalty
within one standard error of the best log-loss). A signal's health weight is its
coefficient's size in points (``-coefficient / standard deviation``); a category weighs the
sum of its signals' weights; both are scaled to 100.

The fitted weights are kept only if, in the same folds, they rank the held-out churners
better than the profile's own scores do, by more than two standard errors of the paired
difference; otherwise the profile keeps its weights, and the report says so. The zone
thresholds are then set on the training scores of the weights kept, so that critical
churns more than at risk, and at risk more than healthy, each step significant at 5%.

The copy is replayed to the test date, which must come a whole horizon after the training
date: the two never share a period. Segments, detectors, overrides, signal parameters and a
segment's own weights and zones stay as they were.
"""

from __future__ import annotations

import math
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from healthstream.tools.backtesting import (
    AccountAt,
    BacktestError,
    churn_outcomes,
    day_ms,
    evaluate,
    replay_to_cutoffs,
    zone_table,
)
from scoring.churn import (
    T_4_ONE_SIDED_5,
    Z_ONE_SIDED_5,
    L2Choice,
    LogisticFit,
    RankingComparison,
    ZoneCut,
    calibration,
    choose_l2,
    cross_validated_separation,
    fit_logistic,
    fold_auc,
    stratified_folds,
    wilson_interval,
    zone_thresholds,
)
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import PROFILES, Profile, load_profile, profile_from_mapping
from telemetry.codec import BadEvent
from windows.telemetry import TelemetryEvent

Records = Iterable[tuple[int, TelemetryEvent | BadEvent]]

#: the penalties cross-validation chooses among, weakest first
L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)
FOLDS = 5
#: the fewest churners, and stayers, a fit is tried on: two of each per fold
MIN_EACH = 2 * FOLDS
#: the fitted weights must beat the profile's scores by this many standard errors: a
#: one-sided 5% test over the FOLDS folds
MARGIN_SE = T_4_ONE_SIDED_5
#: the least share of the training accounts each zone must hold
ZONE_MIN_SHARE = 0.05
ZONES = ("critical", "at_risk", "healthy")


def profile_text(profile: str | None) -> str:
    """The TOML text of a packaged profile (by name) or a profile file."""
    if profile is None or profile in PROFILES:
        name = profile or "default"
        return resources.files("scoring").joinpath(f"profiles/{name}.toml").read_text()
    return Path(profile).read_text()


def features(accounts: list[AccountAt], signals: list[str]) -> np.ndarray:
    """Accounts x signals of points; a signal without data takes the column's mean."""
    x = np.array(
        [[np.nan if a.signals.get(s) is None else a.signals[s] for s in signals] for a in accounts],
        dtype=np.float64,
    )
    for j in range(x.shape[1]):
        column = x[:, j]
        known = column[~np.isnan(column)]
        column[np.isnan(column)] = known.mean() if len(known) else 50.0
    return x


#: category weights, and signal weights within each category
Weights = tuple[dict[str, float], dict[str, dict[str, float]]]


def fitted_weights(
    coefficients: np.ndarray, scale: np.ndarray, categories: dict[str, list[str]]
) -> Weights | None:
    """Category weights and signal weights within each category, each summing to 100; None
    when no signal lowered the churn chance."""
    names = [s for signals in categories.values() for s in signals]
    raw = {
        s: max(0.0, -float(c) / float(sd))
        for s, c, sd in zip(names, coefficients, scale, strict=True)
    }
    category_raw = {c: sum(raw[s] for s in signals) for c, signals in categories.items()}
    total = sum(category_raw.values())
    if total <= 0:
        return None
    category_weights = {c: round(100 * w / total, 1) for c, w in category_raw.items()}
    signal_weights = {
        c: {
            s: round(100 * raw[s] / category_raw[c], 1) if category_raw[c] > 0 else 0.0
            for s in signals
        }
        for c, signals in categories.items()
    }
    return category_weights, signal_weights


def profile_weights(profile: Profile) -> Weights:
    """The profile's own category and signal weights, as it gives them."""
    return (
        {c.name: c.weight for c in profile.categories},
        {c.name: {s.name: s.weight for s in c.signals} for c in profile.categories},
    )


def overall_weight(weights: Weights, category: str, signal: str) -> float:
    """A signal's share of the whole score, in points of 100."""
    categories, signals = weights
    within = sum(signals[category].values())
    share = signals[category][signal] / within if within else 0.0
    return round(100 * share * categories[category] / sum(categories.values()), 1)


@dataclass(frozen=True)
class WeightFit:
    """What the training date says about the weights: the penalty chosen, the fit with it,
    and its cross-validated ranking against the profile's own scores in the same folds."""

    choice: L2Choice
    fit: LogisticFit
    comparison: RankingComparison
    fitted: Weights | None
    #: why the profile keeps its own weights; None when the fitted ones are kept
    fallback_reason: str | None


def fit_weights(
    x: np.ndarray,
    churned: Sequence[int],
    original_risk: np.ndarray,
    categories: dict[str, list[str]],
    grid: Sequence[float],
) -> WeightFit:
    """Choose the penalty, fit with every health weight >= 0, and keep the fitted weights
    only if they rank held-out churners better than the profile's scores, with margin."""
    y = np.asarray(churned, dtype=np.float64)
    fold_of = stratified_folds(y, FOLDS)
    choice = choose_l2(x, y, grid, fold_of, monotone=True)
    fit = fit_logistic(x, y, choice.chosen.l2, monotone=True)
    comparison = RankingComparison(choice.chosen.auc, fold_auc(original_risk, y, fold_of))
    fitted = fitted_weights(fit.coefficients, fit.scale, categories)
    reason = None
    if fitted is None:
        reason = "no signal lowered the churn chance at the training date"
    elif not comparison.fitted_is_better(MARGIN_SE):
        reason = (
            f"in {FOLDS}-fold cross-validation the fitted weights ranked churn with AUC "
            f"{comparison.fitted.mean():.4f} and the profile's scores with "
            f"{comparison.other.mean():.4f}: a gain of {comparison.difference:+.4f}, not above "
            f"{MARGIN_SE:.2f} standard errors ({MARGIN_SE * comparison.standard_error:.4f})"
        )
    return WeightFit(choice, fit, comparison, fitted, reason)


@dataclass(frozen=True)
class ZoneChoice:
    """The zone thresholds written; the cut found on the training scores, and its
    separation out of sample; and why the profile's own thresholds were kept (None: the
    cut's were written)."""

    healthy_from: float
    at_risk_from: float
    cut: ZoneCut | None
    cross_validated: float | None
    kept_reason: str | None


def choose_zones(scores: np.ndarray, churned: Sequence[int], base: Profile) -> ZoneChoice:
    """Thresholds under which critical churns more than at risk, and at risk more than
    healthy, each step significant at 5% one-sided in cross-validation (thresholds chosen
    without the accounts they zone); else the profile's own, and why."""
    cut = zone_thresholds(scores, churned, ZONE_MIN_SHARE) if len(scores) else None
    held_out = None
    if cut is not None:
        fold_of = stratified_folds(churned, FOLDS)
        held_out = cross_validated_separation(scores, churned, fold_of, ZONE_MIN_SHARE)
    if cut is None or held_out is None:
        reason = f"too few accounts to give each zone {ZONE_MIN_SHARE:.0%} of them"
    elif held_out < Z_ONE_SIDED_5:
        reason = (
            "no thresholds made each zone churn more than the next healthier one in "
            f"{FOLDS}-fold cross-validation at the training date, significant at 5% one-sided "
            f"(z {held_out:.2f}, {Z_ONE_SIDED_5:.3f} needed)"
        )
    else:
        return ZoneChoice(cut.healthy_from, cut.at_risk_from, cut, held_out, None)
    return ZoneChoice(base.healthy_from, base.at_risk_from, cut, held_out, reason)


def zone_of(score: float, zones: ZoneChoice) -> str:
    if score >= zones.healthy_from:
        return "healthy"
    return "at_risk" if score >= zones.at_risk_from else "critical"


def zone_churn(zones: Sequence[str], churned: Sequence[int]) -> dict[str, Any]:
    """Per zone, accounts, churners, share, and the churn rate with its Wilson 95% interval
    (as a backtest reports them); and whether the zones rank churn: ``ordered``, critical's
    rate above at risk's above healthy's, and ``intervals_apart``, their intervals too
    (None when one of the three is empty)."""
    table = zone_table(zones, churned, keep_empty=True)
    ranked = [(table[z]["accounts"], table[z]["churned"]) for z in ZONES]
    if any(n == 0 for n, _ in ranked):
        return {"zones": table, "ordered": None, "intervals_apart": None}
    rates = [k / n for n, k in ranked]
    intervals = [wilson_interval(k, n) for n, k in ranked]
    return {
        "zones": table,
        "ordered": rates[0] > rates[1] > rates[2],
        "intervals_apart": all(a[0] > b[1] for a, b in zip(intervals, intervals[1:], strict=False)),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _check_dates(train_at: date, test_at: date, horizon_days: int) -> None:
    if horizon_days < 1:
        raise BacktestError(f"--horizon: must be at least 1 day, got {horizon_days}")
    if train_at + timedelta(days=horizon_days) > test_at:
        raise BacktestError(
            f"--train-at {train_at} + --horizon {horizon_days} days ends after --test-at "
            f"{test_at}: training and testing would share a period"
        )


def _check_outcomes(churned: Sequence[int], train_at: date) -> None:
    churners = sum(churned)
    stayers = len(churned) - churners
    if min(churners, stayers) < MIN_EACH:
        raise BacktestError(
            f"--train-at {train_at}: {churners} of {len(churned)} accounts churned in the "
            f"horizon and {stayers} stayed; calibrating needs at least {MIN_EACH} of each "
            f"({FOLDS}-fold cross-validation; an earlier --train-at, a longer --horizon or "
            "more history may help)"
        )


def _scores_at(
    read: Callable[[], Records],
    profile: Profile,
    min_step: int,
    cutoff: int,
    accounts: list[AccountAt],
    on_progress: Callable[[int], None] | None,
) -> np.ndarray:
    """The scores ``profile`` gives ``accounts`` at ``cutoff``."""
    engine = HealthEngine(ScoringConfig(profile, min_step))
    by_id = {
        a.account_id: a for a in replay_to_cutoffs(read(), engine, [cutoff], on_progress).at[cutoff]
    }
    return np.array([by_id[a.account_id].score for a in accounts], dtype=np.float64)


def _threshold(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _profile_document(
    data: dict[str, Any],
    name: str,
    weights: Weights | None,
    zones: ZoneChoice | None,
    description: str,
) -> dict[str, Any]:
    """A calibrated copy of a profile's document: the weights and the zones set (None:
    its own), the rest as it was."""
    copy = deepcopy(data)
    if weights is not None:
        categories, signals = weights
        for category, weight in categories.items():
            copy["categories"][category]["weight"] = weight
            copy["categories"][category]["signals"] = signals[category]
    if zones is not None:
        copy["zones"] = {
            "healthy": _threshold(zones.healthy_from),
            "at_risk": _threshold(zones.at_risk_from),
        }
    copy["name"] = f"{name}_calibrated"
    copy["description"] = description
    return copy


def _header(base: Profile, fitted: WeightFit, zones: ZoneChoice, y: Sequence[int]) -> str:
    weights = (
        f"kept from {base.name!r}: {fitted.fallback_reason}"
        if fitted.fallback_reason
        else (
            "fitted by L2 logistic regression with every health weight >= 0 "
            f"(penalty {fitted.choice.chosen.l2:g}, chosen by {FOLDS}-fold cross-validation)"
        )
    )
    zoned = f"kept: {zones.kept_reason}" if zones.kept_reason else "set on the training scores"
    return (
        f"# Calibrated from the profile {base.name!r} on {len(y)} accounts ({sum(y)} churned).\n"
        f"# Weights {weights}.\n# Zones {zoned}.\n# Everything else as in {base.name!r}.\n"
    )


@dataclass(frozen=True)
class Training:
    """The training date: the accounts judged, their outcomes, signal points and scores
    under the original profile."""

    accounts: list[AccountAt]
    churned: list[int]
    features: np.ndarray
    scores: np.ndarray


def calibrate(
    read: Callable[[], Records],
    profile: str | None,
    train_at: date,
    test_at: date,
    horizon_days: int,
    labels: dict[str, date | None] | None,
    profile_out: Path,
    min_step: int = 5,
    l2: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fit at ``train_at``, write the calibrated profile to ``profile_out``, and compare it
    with the original profile and both baselines at ``test_at``.

    ``l2`` fixes the penalty; None chooses it by cross-validation. ``on_note`` hears what
    was chosen and what was kept, a line at a time (default: stderr)."""
    say = on_note or _to_stderr
    _check_dates(train_at, test_at, horizon_days)
    base = load_profile(profile)
    train_ms, test_ms = day_ms(train_at), day_ms(test_at)
    history = replay_to_cutoffs(
        read(), HealthEngine(ScoringConfig(base, min_step)), [train_ms, test_ms], on_progress
    )
    accounts, churned, _, _ = churn_outcomes(
        history.at[train_ms], train_ms, horizon_days, labels, history.event_days
    )
    _check_outcomes(churned, train_at)
    categories = {c.name: [s.name for s in c.signals] for c in base.categories}
    names = [s for signals in categories.values() for s in signals]
    scores = np.array([a.score for a in accounts], dtype=np.float64)
    training = Training(accounts, churned, features(accounts, names), scores)
    fitted = fit_weights(
        training.features, churned, 100.0 - scores, categories, L2_GRID if l2 is None else (l2,)
    )
    say(_fit_note(fitted, l2 is None, train_at, base))
    data = tomllib.loads(profile_text(profile))
    weights, zones, train_zones = _weights_and_zones(
        read, data, base, training, fitted, min_step, train_ms, on_progress
    )
    say(_zones_note(zones))
    described = f"zones set on churn within {horizon_days} days of {train_at}"
    calibrated = _write_profile(profile_out, data, base, fitted, weights, zones, churned, described)

    test_accounts, test_churned, test_dates, before = churn_outcomes(
        history.at[test_ms], test_ms, horizon_days, labels, history.event_days
    )
    again = replay_to_cutoffs(
        read(), HealthEngine(ScoringConfig(calibrated, min_step)), [test_ms], on_progress
    )
    by_id = {a.account_id: a for a in again.at[test_ms]}
    calibrated_accounts = [by_id[a.account_id] for a in test_accounts]
    probabilities = fitted.fit.probability(features(test_accounts, names))
    return {
        "train_at": train_at.isoformat(),
        "test_at": test_at.isoformat(),
        "horizon_days": horizon_days,
        "labels": "file" if labels is not None else "inactivity",
        "profile": base.name,
        "profile_file": str(profile_out),
        "excluded_churned_before_test": before,
        "fell_back": fitted.fallback_reason is not None,
        "fallback_reason": fitted.fallback_reason,
        "fit": {
            "accounts": len(churned),
            "churned": int(sum(churned)),
            **_fit_report(fitted, weights, categories, names, l2 is None),
            "calibration": [b.__dict__ for b in calibration(probabilities, test_churned)],
        },
        "zones": {
            **_zones_report(zones, base),
            "train": zone_churn(train_zones, churned),
            "test": zone_churn([a.zone for a in calibrated_accounts], test_churned),
        },
        "test": {
            "original": evaluate(test_accounts, test_churned, test_dates),
            "calibrated": evaluate(calibrated_accounts, test_churned, test_dates),
        },
    }


def _write_profile(
    path: Path,
    data: dict[str, Any],
    base: Profile,
    fitted: WeightFit,
    weights: Weights,
    zones: ZoneChoice,
    churned: Sequence[int],
    described: str,
) -> Profile:
    """Write the calibrated profile (its header says how it was fitted) and load it back."""
    description = (
        f"{base.name} with {'its own' if fitted.fallback_reason else 'fitted'} weights and "
        f"{described}: categories "
        f"{', '.join(weights[0])} weighted {'/'.join(f'{w:g}' for w in weights[0].values())}."
    )
    document = _profile_document(
        data, base.name, None if fitted.fallback_reason else weights, zones, description
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_header(base, fitted, zones, churned) + dumps_toml(document))
    return load_profile(path)


def _weights_and_zones(
    read: Callable[[], Records],
    data: dict[str, Any],
    base: Profile,
    training: Training,
    fitted: WeightFit,
    min_step: int,
    train_ms: int,
    on_progress: Callable[[int], None] | None,
) -> tuple[Weights, ZoneChoice, list[str]]:
    """The weights kept, the zones chosen on the training scores under them, and each
    training account's zone under those (onboarding accounts are not zoned by score)."""
    scores = training.scores
    weights = profile_weights(base)
    if fitted.fitted is not None and fitted.fallback_reason is None:
        weights = fitted.fitted
        weighted = profile_from_mapping(_profile_document(data, base.name, weights, None, ""))
        scores = _scores_at(read, weighted, min_step, train_ms, training.accounts, on_progress)
    zoned = [a.zone != "onboarding" for a in training.accounts]
    zones = choose_zones(
        scores[np.array(zoned, dtype=bool)],
        [c for c, z in zip(training.churned, zoned, strict=True) if z],
        base,
    )
    train_zones = [
        zone_of(s, zones) if z else "onboarding" for s, z in zip(scores, zoned, strict=True)
    ]
    return weights, zones, train_zones


def _fit_note(fitted: WeightFit, chosen: bool, train_at: date, base: Profile) -> str:
    validation = fitted.choice.chosen
    how = f"chosen by {FOLDS}-fold cross-validation" if chosen else "as given"
    note = (
        f"calibrate: L2 penalty {validation.l2:g} {how} at {train_at}: log-loss "
        f"{validation.mean_log_loss:.4f}, AUC {validation.mean_auc:.4f}"
    )
    if fitted.fallback_reason:
        note += f"\ncalibrate: kept the weights of the profile {base.name!r}: "
        note += fitted.fallback_reason
    return note


def _zones_note(zones: ZoneChoice) -> str:
    if zones.kept_reason:
        return f"calibrate: kept the profile's zones: {zones.kept_reason}"
    return (
        f"calibrate: zones set at the training date: healthy >= {zones.healthy_from:g}, "
        f"at risk >= {zones.at_risk_from:g}"
    )


def _fit_report(
    fitted: WeightFit,
    weights: Weights,
    categories: dict[str, list[str]],
    names: list[str],
    chosen_by_validation: bool,
) -> dict[str, Any]:
    fit, choice, comparison = fitted.fit, fitted.choice, fitted.comparison
    return {
        "l2": choice.chosen.l2,
        "l2_chosen_by": "cross-validation" if chosen_by_validation else "given",
        "monotone": fit.monotone,
        "iterations": fit.iterations,
        "intercept": round(fit.intercept, 4),
        "validation": {
            "folds": FOLDS,
            "rule": "the strongest penalty within one standard error of the best log-loss",
            "log_loss": round(choice.chosen.mean_log_loss, 4),
            "auc": round(choice.chosen.mean_auc, 4),
            "grid": [
                {"l2": v.l2, "log_loss": round(v.mean_log_loss, 4), "auc": round(v.mean_auc, 4)}
                for v in choice.tried
            ],
        },
        "comparison": {
            "folds": FOLDS,
            "fitted_auc": round(float(comparison.fitted.mean()), 4),
            "original_auc": round(float(comparison.other.mean()), 4),
            "difference": round(comparison.difference, 4),
            "standard_error": round(comparison.standard_error, 4),
            "margin_standard_errors": MARGIN_SE,
            "fitted_is_better": comparison.fitted_is_better(MARGIN_SE),
        },
        "coefficients": [
            {
                "signal": s,
                "category": c,
                "coefficient": round(float(fit.coefficients[names.index(s)]), 4),
                "weight": 0.0 if fitted.fitted is None else overall_weight(fitted.fitted, c, s),
                "profile_weight": overall_weight(weights, c, s),
            }
            for c, signals in categories.items()
            for s in signals
        ],
        "fitted_category_weights": None if fitted.fitted is None else fitted.fitted[0],
        "category_weights": weights[0],
    }


def _zones_report(zones: ZoneChoice, base: Profile) -> dict[str, Any]:
    return {
        "thresholds": {"healthy": zones.healthy_from, "at_risk": zones.at_risk_from},
        "original_thresholds": {"healthy": base.healthy_from, "at_risk": base.at_risk_from},
        "set_from": "original" if zones.kept_reason else "training",
        "kept_reason": zones.kept_reason,
        "min_share": ZONE_MIN_SHARE,
        "separation": {
            "train": None if zones.cut is None else round(zones.cut.separation, 3),
            "cross_validated": _rounded(zones.cross_validated, 3),
            "needed": Z_ONE_SIDED_5,
        },
    }


# -- a small TOML writer, for profiles (tables, inline tables of numbers, arrays) ---------------


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"TOML has no value for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise ValueError(f"TOML has no value for {type(value).__name__}")


def _is_table(value: Any) -> bool:
    # small tables of scalars stay inline, as the packaged profiles write them
    return isinstance(value, dict) and any(isinstance(v, dict | list) for v in value.values())


def dumps_toml(data: dict[str, Any], prefix: str = "") -> str:
    """TOML text for nested tables of strings, numbers, booleans, dates and arrays."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict) and (prefix == "" or _is_table(value)) and value:
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{_key(key)}" if prefix else _key(key)
        if isinstance(value, list):
            for item in value:
                out += f"\n[[{name}]]\n" + dumps_toml(item, name)
        else:
            scalars = {k: v for k, v in value.items() if not (isinstance(v, dict) and _is_table(v))}
            nested = {k: v for k, v in value.items() if k not in scalars}
            if scalars or not nested:
                out += f"\n[{name}]\n" + "".join(
                    f"{_key(k)} = {_value(v)}\n" for k, v in scalars.items()
                )
            if nested:
                out += dumps_toml(nested, name)
    return out
