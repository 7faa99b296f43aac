"""Ranking and calibration figures against hand counts, and the logistic fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scoring.churn import (
    calibration,
    fit_logistic,
    lift_of_top,
    precision_recall,
    roc_auc,
    roc_points,
)


def pairwise_auc(risk: list[float], churned: list[int]) -> float:
    """Every (churner, stayer) pair: 1 when the churner is riskier, 1/2 on a tie."""
    pairs = [
        (r1, r0)
        for (r1, y1), (r0, y0) in itertools.product(zip(risk, churned, strict=True), repeat=2)
        if y1 == 1 and y0 == 0
    ]
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(6))
def test_auc_is_the_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    risk = rng.integers(0, 6, size=25).astype(float).tolist()  # many ties
    churned = (rng.random(25) < 0.4).astype(int).tolist()
    churned[0], churned[1] = 0, 1
    assert roc_auc(risk, churned) == pytest.approx(pairwise_auc(risk, churned))


def test_auc_extremes() -> None:
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    assert roc_auc([1, 2], [1, 1]) is None


def test_roc_points_by_hand() -> None:
    # thresholds 0.9, 0.8, 0.7, 0.1: churner, stayer, churner, stayer
    assert roc_points([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == [
        (0.0, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    # a tie is one step, not two
    assert roc_points([0.5, 0.5], [1, 0]) == [(0.0, 0.0), (1.0, 1.0)]


def test_lift_precision_and_recall_by_hand() -> None:
    risk = list(range(20, 0, -1))  # the first account is the riskiest
    churned = [1, 1, 0, 0] + [0] * 14 + [1, 0]  # 3 churners in 20: rate 0.15
    # the riskiest 10% (2 accounts) both churned: rate 1.0, lift 1.0 / 0.15
    assert lift_of_top(risk, churned) == pytest.approx(1 / 0.15)
    flagged = [1, 0, 1] + [0] * 17
    assert precision_recall(flagged, churned) == (0.5, pytest.approx(1 / 3))
    assert precision_recall([0] * 20, churned) == (None, 0.0)


def test_lift_counts_ties_at_the_cut_by_their_churn_rate() -> None:
    # 10 accounts, top 10% is 1 seat; the riskiest two tie, one of them churned
    risk = [9, 9, 5, 5, 5, 1, 1, 1, 1, 1]
    churned = [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    # the seat holds half a churner whichever of the two came first: 0.5 / 0.2
    assert lift_of_top(risk, churned) == pytest.approx(2.5)
    assert lift_of_top(risk[1::-1] + risk[2:], churned[1::-1] + churned[2:]) == 2.5
    # 3 seats of 20: two above the cut, one of three tied accounts (one churner)
    risk = [8, 7] + [4, 4, 4] + [0] * 15
    churned = [1, 0] + [0, 1, 0] + [0] * 14 + [1]
    assert lift_of_top(risk, churned, share=0.15) == pytest.approx((1 + 1 / 3) / 3 / 0.15)


def test_calibration_bins_by_hand() -> None:
    bins = calibration([0.05, 0.08, 0.55, 0.59, 0.51], [0, 1, 1, 1, 0], bins=10)
    assert [(b.low, b.accounts, b.observed) for b in bins] == [
        (0.0, 2, 0.5),
        (0.5, 3, pytest.approx(2 / 3)),
    ]
    assert bins[1].predicted == pytest.approx((0.55 + 0.59 + 0.51) / 3)


def test_logistic_fit_finds_the_signal_and_l2_shrinks_it() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 3))
    chance = 1 / (1 + np.exp(-(-1.5 * x[:, 0] + 0.0 * x[:, 1] - 1.0)))
    y = (rng.random(800) < chance).astype(float)
    fit = fit_logistic(x, y, l2=0.01)
    assert fit.coefficients[0] == pytest.approx(-1.5, abs=0.3)
    assert abs(fit.coefficients[1]) < 0.25
    assert fit.iterations < 20
    shrunk = fit_logistic(x, y, l2=500.0)
    assert abs(shrunk.coefficients[0]) < abs(fit.coefficients[0]) / 2
    p = fit.probability(x)
    assert roc_auc(p, y) > 0.8  # type: ignore[operator]
    with pytest.raises(ValueError, match="both churners and stayers"):
        fit_logistic(x, np.zeros(800))
