"""Ranking and calibration figures against hand counts; the logistic fit, its monotone
constraint and its penalty chosen by cross-validation; zone thresholds and Wilson intervals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scoring.churn import (
    Z_ONE_SIDED_5,
    RankingComparison,
    calibration,
    choose_l2,
    cross_validate,
    cross_validated_separation,
    fit_logistic,
    fold_auc,
    lift_of_top,
    precision_recall,
    roc_auc,
    roc_points,
    stratified_folds,
    wilson_interval,
    zone_thresholds,
)

GRID = (0.01, 1.0, 100.0, 10_000.0, 1_000_000.0)


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


def health_points(seed: int, n: int, health: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Signal points (mean 50, SD 15) and churn drawn from known health weights: a point
    of a signal with weight w lowers the churn log-odds by w / 15."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 15, size=(n, len(health)))
    log_odds = -1.0 - ((x - 50) / 15) @ np.asarray(health)
    y = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(float)
    return x, y


@pytest.mark.parametrize("seed", range(4))
def test_monotone_fit_recovers_the_sign_pattern_and_never_a_negative_health_weight(
    seed: int,
) -> None:
    # two protective signals, two that do nothing, one whose points rise with churn
    health = [1.0, 0.6, 0.0, 0.0, -0.7]
    x, y = health_points(seed, 2000, health)
    fit = fit_logistic(x, y, l2=1.0, monotone=True)
    assert fit.monotone
    assert (fit.coefficients <= 0).all()  # health weight = -coefficient >= 0
    assert fit.coefficients[0] == pytest.approx(-1.0, abs=0.2)
    assert fit.coefficients[1] == pytest.approx(-0.6, abs=0.2)
    assert abs(fit.coefficients[2]) < 0.12 and abs(fit.coefficients[3]) < 0.12
    assert fit.coefficients[4] == 0.0
    free = fit_logistic(x, y, l2=1.0)
    assert free.coefficients[4] > 0.4  # unconstrained, it would weight the wrong sign


def test_monotone_fit_is_the_constrained_optimum_not_a_clipped_free_fit() -> None:
    # the second signal only corrects the first: freely it gets a churn-raising weight,
    # and with it held at 0 the first signal's coefficient must change, not stay as it was
    rng = np.random.default_rng(11)
    base = rng.normal(size=1500)
    x = np.c_[base + 0.3 * rng.normal(size=1500), base] * 15 + 50
    y = (rng.random(1500) < 1 / (1 + np.exp(1.0 + 1.5 * (x[:, 0] - x[:, 1]) / 15))).astype(float)
    free = fit_logistic(x, y, l2=1.0)
    held = fit_logistic(x, y, l2=1.0, monotone=True)
    assert free.coefficients[1] > 0 and held.coefficients[1] == 0.0
    assert abs(held.coefficients[0] - free.coefficients[0]) > 0.2
    # the Karush-Kuhn-Tucker conditions of the penalised loss under w <= 0
    z = (x - held.mean) / held.scale
    gradient = z.T @ (held.probability(x) - y) + held.l2 * held.coefficients
    assert gradient[0] == pytest.approx(0.0, abs=1e-4)  # free: stationary
    assert gradient[1] < 0  # held at 0: the loss falls only by raising churn with it


def test_the_penalty_chosen_by_validation_is_the_strongest_when_signals_are_noise() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(50, 15, size=(600, 6))
    y = (rng.random(600) < 0.2).astype(float)
    choice = choose_l2(x, y, GRID, stratified_folds(y, 5), monotone=True)
    assert choice.chosen.l2 == max(GRID)
    assert [v.l2 for v in choice.tried] == sorted(GRID)
    assert abs(choice.chosen.mean_auc - 0.5) < 0.1


def test_the_penalty_chosen_by_validation_is_weak_when_signals_carry_churn() -> None:
    x, y = health_points(2, 2000, [1.2, 0.8, 0.0])
    choice = choose_l2(x, y, GRID, stratified_folds(y, 5), monotone=True)
    assert choice.chosen.l2 <= 100.0
    assert choice.chosen.mean_auc > 0.75
    # the strongest penalty predicts hardly more than the base rate: a worse log-loss
    assert choice.tried[-1].mean_log_loss > choice.chosen.mean_log_loss + 0.05


def test_a_fit_on_noise_rarely_ranks_better_than_the_profile_it_started_from() -> None:
    # the comparison is a one-sided 5% test: on pure noise, the fitted weights pass it for
    # about one sample in twenty, and the profile keeps its weights for the rest
    passed = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        x = rng.normal(50, 15, size=(800, 5))
        y = (rng.random(800) < 0.25).astype(float)
        fold_of = stratified_folds(y, 5)
        choice = choose_l2(x, y, GRID, fold_of, monotone=True)
        original_risk = 100 - x.mean(axis=1)  # the profile: equal weights on the same signals
        comparison = RankingComparison(choice.chosen.auc, fold_auc(original_risk, y, fold_of))
        passed += comparison.fitted_is_better()
    assert passed <= 4


def test_a_fit_on_signals_that_carry_churn_ranks_better_than_a_profile_weighting_noise() -> None:
    x, y = health_points(4, 1500, [1.0, 0.0, 0.0])
    fold_of = stratified_folds(y, 5)
    fitted = cross_validate(x, y, 1.0, fold_of, monotone=True)
    comparison = RankingComparison(fitted.auc, fold_auc(100 - x[:, 1:].mean(axis=1), y, fold_of))
    assert comparison.fitted_is_better()
    assert comparison.difference > 0.15


def test_folds_hold_their_share_of_churners_and_stayers() -> None:
    y = np.r_[np.ones(23), np.zeros(77)]
    fold_of = stratified_folds(y, 5, seed=3)
    assert sorted(np.bincount(fold_of)) == [20] * 5
    assert sorted(np.bincount(fold_of[y == 1])) == [4, 4, 5, 5, 5]
    assert (stratified_folds(y, 5, seed=3) == fold_of).all()
    with pytest.raises(ValueError, match="churners and stayers"):
        fold_auc(np.arange(10.0), np.r_[1, np.zeros(9)], np.arange(10) % 2)


def test_wilson_interval_by_hand() -> None:
    # 3 of 10: centre (0.3 + z^2/20) / (1 + z^2/10), half-width z sqrt(0.021 + z^2/400) / ...
    low, high = wilson_interval(3, 10)
    assert (low, high) == (pytest.approx(0.1078, abs=1e-4), pytest.approx(0.6032, abs=1e-4))
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(0, 20)[1] == pytest.approx(
        0.1611, abs=1e-4
    )
    assert wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_zone_thresholds_rank_churn_when_churn_falls_with_the_score() -> None:
    rng = np.random.default_rng(8)
    scores = rng.integers(0, 101, size=3000).astype(float)
    churned = (rng.random(3000) < 0.7 - 0.6 * scores / 100).astype(float)
    cut = zone_thresholds(scores, churned, min_share=0.05)
    assert cut is not None
    assert 0 < cut.at_risk_from < cut.healthy_from <= 100
    zones = [scores < cut.at_risk_from, scores >= cut.healthy_from]
    critical, healthy = zones
    at_risk = ~critical & ~healthy
    rates = [churned[z].mean() for z in (critical, at_risk, healthy)]
    assert rates[0] > rates[1] > rates[2]
    assert min(z.mean() for z in (critical, at_risk, healthy)) >= 0.05
    assert cut.separation > Z_ONE_SIDED_5
    held_out = cross_validated_separation(scores, churned, stratified_folds(churned, 5))
    assert held_out is not None and held_out > Z_ONE_SIDED_5


def test_zones_cut_on_a_score_churn_ignores_do_not_separate_out_of_sample() -> None:
    rng = np.random.default_rng(9)
    scores = rng.integers(0, 101, size=1000).astype(float)
    churned = (rng.random(1000) < 0.3).astype(float)
    cut = zone_thresholds(scores, churned)
    held_out = cross_validated_separation(scores, churned, stratified_folds(churned, 5))
    assert cut is not None and held_out is not None
    assert held_out < Z_ONE_SIDED_5
    assert held_out < cut.separation  # the search flatters the accounts it searched on


def test_zone_thresholds_need_room_for_every_zone() -> None:
    assert zone_thresholds([50.0] * 40, [0.0, 1.0] * 20) is None
    assert zone_thresholds([1.0, 2.0, 3.0], [1.0, 0.0, 0.0], min_share=0.5) is None
