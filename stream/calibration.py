"""Calibrate a profile's weights from history: fit churn on the signals at one date, test
the fitted profile at a later one.

Features are the profile's signal points (0-100) at the training date; the outcome is churn
in the horizon after it. An L2-regularised logistic regression (``scoring.churn``) gives
one coefficient per signal. A signal whose points should lower the churn chance has a
negative coefficient; its health weight is that coefficient's size in points
(``-coefficient / standard deviation``), and a signal with the wrong sign gets weight 0. A
category weighs the sum of its signals' weights. Both are scaled to 100 and written into a
copy of the profile, with everything else (zones, parameters, segments, detectors) as it
was. The copy is then replayed to the test date, which must come a whole horizon after the
training date: the two never share a period.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from scoring.churn import calibration, fit_logistic
from scoring.engine import HealthEngine, ScoringConfig
from scoring.profile import PROFILES, load_profile
from stream.backtesting import (
    AccountAt,
    BacktestError,
    churn_outcomes,
    day_ms,
    evaluate,
    replay_to_cutoffs,
)
from stream.codec import BadEvent
from windows.telemetry import TelemetryEvent

Records = Iterable[tuple[int, TelemetryEvent | BadEvent]]


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


def fitted_weights(
    coefficients: np.ndarray, scale: np.ndarray, categories: dict[str, list[str]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Category weights and signal weights within each category, each summing to 100."""
    names = [s for signals in categories.values() for s in signals]
    raw = {
        s: max(0.0, -float(c) / float(sd))
        for s, c, sd in zip(names, coefficients, scale, strict=True)
    }
    category_raw = {c: sum(raw[s] for s in signals) for c, signals in categories.items()}
    total = sum(category_raw.values())
    if total <= 0:
        raise BacktestError(
            "no signal lowered the churn chance at the training date: nothing to weight "
            "(more history, or a later --train-at, may help)"
        )
    category_weights = {c: round(100 * w / total, 1) for c, w in category_raw.items()}
    signal_weights = {
        c: {
            s: round(100 * raw[s] / category_raw[c], 1) if category_raw[c] > 0 else 0.0
            for s in signals
        }
        for c, signals in categories.items()
    }
    return category_weights, signal_weights


def calibrate(
    read: Callable[[], Records],
    profile: str | None,
    train_at: date,
    test_at: date,
    horizon_days: int,
    labels: dict[str, date | None] | None,
    profile_out: Path,
    min_step: int = 5,
    l2: float = 1.0,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Fit at ``train_at``, write the fitted profile to ``profile_out``, and compare it with
    the original profile and both baselines at ``test_at``."""
    if horizon_days < 1:
        raise BacktestError(f"--horizon: must be at least 1 day, got {horizon_days}")
    if train_at + timedelta(days=horizon_days) > test_at:
        raise BacktestError(
            f"--train-at {train_at} + --horizon {horizon_days} days ends after --test-at "
            f"{test_at}: training and testing would share a period"
        )
    base = load_profile(profile)
    engine = HealthEngine(ScoringConfig(base, min_step))
    train_ms, test_ms = day_ms(train_at), day_ms(test_at)
    history = replay_to_cutoffs(read(), engine, [train_ms, test_ms], on_progress)
    categories = {c.name: [s.name for s in c.signals] for c in base.categories}
    names = [s for signals in categories.values() for s in signals]
    accounts, churned, _, _ = churn_outcomes(
        history.at[train_ms], train_ms, horizon_days, labels, history.event_days
    )
    if len(set(churned)) < 2:
        raise BacktestError(
            f"--train-at {train_at}: {sum(churned)} of {len(churned)} accounts churned in the "
            "horizon; fitting needs both churners and stayers"
        )
    x = features(accounts, names)
    fit = fit_logistic(x, churned, l2)
    category_weights, signal_weights = fitted_weights(fit.coefficients, fit.scale, categories)

    data = tomllib.loads(profile_text(profile))
    for name, weight in category_weights.items():
        data["categories"][name]["weight"] = weight
        data["categories"][name]["signals"] = signal_weights[name]
    data["name"] = f"{base.name}_calibrated"
    shares = "/".join(f"{w:g}" for w in category_weights.values())
    data["description"] = (
        f"{base.name} with weights fitted on churn within {horizon_days} days of {train_at}: "
        f"categories {', '.join(category_weights)} weighted {shares}."
    )
    header = (
        f"# Calibrated from the profile {base.name!r}: weights fitted by L2 logistic regression\n"
        f"# (penalty {l2}) on {len(churned)} accounts at {train_at}, churn within "
        f"{horizon_days} days\n# ({sum(churned)} churned); everything else as in {base.name!r}.\n"
    )
    profile_out.parent.mkdir(parents=True, exist_ok=True)
    profile_out.write_text(header + dumps_toml(data))
    calibrated = load_profile(profile_out)

    test_accounts, test_churned, test_dates, before = churn_outcomes(
        history.at[test_ms], test_ms, horizon_days, labels, history.event_days
    )
    fitted = HealthEngine(ScoringConfig(calibrated, min_step))
    again = replay_to_cutoffs(read(), fitted, [test_ms], on_progress)
    by_id = {a.account_id: a for a in again.at[test_ms]}
    calibrated_accounts = [by_id[a.account_id] for a in test_accounts]
    probabilities = fit.probability(features(test_accounts, names))
    return {
        "train_at": train_at.isoformat(),
        "test_at": test_at.isoformat(),
        "horizon_days": horizon_days,
        "labels": "file" if labels is not None else "inactivity",
        "profile": base.name,
        "profile_file": str(profile_out),
        "excluded_churned_before_test": before,
        "fit": {
            "accounts": len(churned),
            "churned": int(sum(churned)),
            "l2": l2,
            "iterations": fit.iterations,
            "intercept": round(fit.intercept, 4),
            "coefficients": [
                {
                    "signal": s,
                    "category": c,
                    "coefficient": round(float(fit.coefficients[names.index(s)]), 4),
                    "weight": round(signal_weights[c][s] * category_weights[c] / 100, 1),
                }
                for c, signals in categories.items()
                for s in signals
            ],
            "category_weights": category_weights,
            "calibration": [b.__dict__ for b in calibration(probabilities, test_churned)],
        },
        "test": {
            "original": evaluate(test_accounts, test_churned, test_dates),
            "calibrated": evaluate(calibrated_accounts, test_churned, test_dates),
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
