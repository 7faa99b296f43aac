"""`healthstream calibrate`: weights fitted with every health weight >= 0 and the penalty
chosen on the training date, a fall back to the profile's own weights when the fit ranks
no better, and zones set where they rank churn; end to end on a synthetic history."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from healthstream.cli import main
from healthstream.dev.synthetic import Scenario
from healthstream.tools.calibration import (
    L2_GRID,
    MIN_EACH,
    calibrate,
    choose_zones,
    fit_weights,
    fitted_weights,
    zone_churn,
)
from scoring.profile import load_profile
from telemetry.mapping import read_events

START = Scenario().start
#: the training and test days of the history, a horizon (50 days) apart
TRAIN, TEST = 80, 130
CATEGORIES = {"usage": ["logins", "actions"], "support": ["csat", "tickets"]}
PROFILE = load_profile()


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The events and the labels, written by `healthstream generate`."""
    where = tmp_path_factory.mktemp("history")
    events, labels = where / "events.jsonl", where / "labels.csv"
    args = ["generate", "--accounts", "150", "--days", "160", "--intensity", "0.2"]
    args += ["--churn-in-span", "--out", str(events), "--labels", str(labels)]
    assert main(args) == 0
    return events, labels


def points(seed: int, health: list[float], n: int = 1200) -> tuple[np.ndarray, list[int]]:
    """Signal points and churn driven by known health weights (per standard deviation)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 15, size=(n, len(health)))
    log_odds = -1.0 - ((x - 50) / 15) @ np.asarray(health)
    return x, (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(int).tolist()


def test_fitted_weights_are_never_negative_and_sum_to_100() -> None:
    coefficients = np.array([-0.8, 0.3, -0.2, 0.0])
    weights = fitted_weights(coefficients, np.full(4, 10.0), CATEGORIES)
    assert weights is not None
    categories, signals = weights
    assert categories == {"usage": 80.0, "support": 20.0}
    assert signals == {
        "usage": {"logins": 100.0, "actions": 0.0},
        "support": {"csat": 100.0, "tickets": 0.0},
    }
    assert fitted_weights(np.array([0.1, 0.0, 0.2, 0.0]), np.ones(4), CATEGORIES) is None


def test_a_fit_that_ranks_churn_better_than_the_profile_is_kept() -> None:
    x, y = points(1, [1.0, 0.0, 0.5, 0.0])
    original_risk = 100 - x[:, [1, 3]].mean(axis=1)  # a profile weighting the wrong signals
    fit = fit_weights(x, y, original_risk, CATEGORIES, L2_GRID)
    assert fit.fallback_reason is None and fit.fitted is not None
    assert (fit.fit.coefficients <= 0).all()
    assert fit.fitted[1]["usage"]["logins"] > 80 and fit.fitted[1]["support"]["csat"] > 80
    assert fit.comparison.difference > 0.1


def test_a_fit_on_noise_falls_back_to_the_profile_weights() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(50, 15, size=(1000, 4))
    y = (rng.random(1000) < 0.2).astype(int).tolist()
    fit = fit_weights(x, y, 100 - x.mean(axis=1), CATEGORIES, L2_GRID)
    assert fit.choice.chosen.l2 == max(L2_GRID)  # noise: the strongest penalty validates best
    assert fit.fallback_reason is not None
    assert "cross-validation" in fit.fallback_reason


def test_zones_are_set_where_they_rank_churn_and_kept_where_they_cannot() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 101, size=2000).astype(float)
    churned = (rng.random(2000) < 0.6 - 0.5 * scores / 100).astype(int).tolist()
    zones = choose_zones(scores, churned, PROFILE)
    assert zones.kept_reason is None and zones.cut is not None
    assert zones.cross_validated is not None and zones.cross_validated > 1.645
    assert 0 < zones.at_risk_from < zones.healthy_from <= 100
    flat = (rng.random(2000) < 0.3).astype(int).tolist()
    kept = choose_zones(scores, flat, PROFILE)
    assert kept.kept_reason is not None and "cross-validation" in kept.kept_reason
    assert (kept.healthy_from, kept.at_risk_from) == (PROFILE.healthy_from, PROFILE.at_risk_from)


def test_zone_churn_gives_wilson_intervals_and_whether_the_zones_rank_churn() -> None:
    zones = ["critical"] * 10 + ["at_risk"] * 10 + ["healthy"] * 20 + ["onboarding"] * 2
    churned = [1] * 8 + [0] * 2 + [1] * 3 + [0] * 7 + [1] + [0] * 19 + [1, 0]
    figures = zone_churn(zones, churned)
    assert figures["zones"]["at_risk"] == {
        "accounts": 10,
        "churned": 3,
        "share": round(10 / 42, 4),
        "churn_rate": 0.3,
        "churn_rate_ci": [0.1078, 0.6032],
    }
    assert figures["ordered"] is True  # 0.8 > 0.3 > 0.05
    assert figures["intervals_apart"] is False  # at risk's interval reaches below 0.2
    assert zone_churn(["healthy", "critical"], [0, 1])["ordered"] is None  # at risk is empty


def test_calibrate_through_the_command_line_reports_its_choices(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    out = tmp_path / "calibration"
    args = ["calibrate", "--events", str(events), "--labels", str(labels), "--horizon", "50"]
    args += ["--train-at", day(TRAIN), "--test-at", day(TEST), "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    test = report["test"]
    for key in ("auc", "zones", "baselines"):
        assert key in test["original"] and key in test["calibrated"]
    assert isinstance(test["original"]["baselines"]["recency"]["auc"], float)
    assert isinstance(report["fell_back"], bool)
    assert (report["fallback_reason"] is None) != report["fell_back"]
    fit = report["fit"]
    assert {"l2", "l2_chosen_by", "validation", "comparison", "coefficients"} <= set(fit)
    assert {"folds", "log_loss", "auc", "grid"} <= set(fit["validation"])
    comparison = fit["comparison"]
    assert {"fitted_auc", "original_auc", "difference", "standard_error"} <= set(comparison)
    assert comparison["fitted_is_better"] != report["fell_back"]
    assert all(c["weight"] >= 0 for c in fit["coefficients"])
    assert all(c["coefficient"] <= 0 for c in fit["coefficients"])
    zones = report["zones"]
    assert zones["set_from"] in ("training", "original")
    for part in ("train", "test"):
        assert set(zones[part]["zones"]) >= {"critical", "at_risk", "healthy"}
        assert "ordered" in zones[part] and "intervals_apart" in zones[part]
        for figures in zones[part]["zones"].values():
            low, high = figures["churn_rate_ci"]
            assert 0 <= low <= high <= 1
    profile = load_profile(out / "calibrated.toml")
    assert (profile.healthy_from, profile.at_risk_from) == (
        zones["thresholds"]["healthy"],
        zones["thresholds"]["at_risk"],
    )
    assert {c.name: c.weight for c in profile.categories} == fit["category_weights"]
    err = capsys.readouterr().err
    assert "calibrate: L2 penalty 1 as given" in err or "chosen by" in err
    assert "calibrate: zones set" in err or "calibrate: kept the profile's zones" in err


def test_calibrate_chooses_the_penalty_and_falls_back_when_churn_is_unrelated_to_the_history(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    with open(labels) as f:
        accounts = [r["account_id"] for r in csv.DictReader(f)]
    rng = np.random.default_rng(0)
    unrelated: dict[str, date | None] = {
        a: START + timedelta(days=int(rng.integers(TRAIN + 1, TEST + 71)))
        if rng.random() < 0.6
        else None
        for a in accounts
    }
    report = calibrate(
        lambda: read_events(str(events), None, None),
        None,
        START + timedelta(days=TRAIN),
        START + timedelta(days=TEST),
        50,
        unrelated,
        tmp_path / "calibrated.toml",
    )
    fit = report["fit"]
    assert fit["l2_chosen_by"] == "cross-validation"
    assert [g["l2"] for g in fit["validation"]["grid"]] == list(L2_GRID)
    assert fit["l2"] in L2_GRID
    assert report["fell_back"] is True
    assert "cross-validation" in report["fallback_reason"]
    profile = load_profile(tmp_path / "calibrated.toml")
    assert [c.weight for c in profile.categories] == [c.weight for c in PROFILE.categories]
    assert [c["profile_weight"] for c in fit["coefficients"]] == [
        round(s.weight * c.weight / sum(s.weight for s in c.signals), 1)
        for c in PROFILE.categories
        for s in c.signals
    ]
    err = capsys.readouterr().err
    assert "chosen by 5-fold cross-validation" in err
    assert "kept the weights of the profile 'default'" in err


def test_calibrate_says_how_many_churned_when_too_few_to_fit(
    history: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, labels = history
    with open(labels) as f:
        accounts = [r["account_id"] for r in csv.DictReader(f)]
    few = tmp_path / "few.csv"
    churners = {a: day(TRAIN + 10) for a in accounts[:3]}
    few.write_text(
        "account_id,churned_at\n" + "".join(f"{a},{churners.get(a, '')}\n" for a in accounts)
    )
    args = ["calibrate", "--events", str(events), "--labels", str(few), "--horizon", "50"]
    args += ["--train-at", day(TRAIN), "--test-at", day(TEST), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"3 of {len(accounts)} accounts churned" in err
    assert f"needs at least {MIN_EACH} of each" in err
