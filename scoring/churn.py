"""How well a risk ranks churners: AUC, ROC, calibration, lift, Wilson intervals, zone
thresholds, and a logistic fit with its penalty chosen by cross-validation.

Pure numpy over arrays of one value per account, so a backtest's figures can be checked by
hand on a few accounts. ``risk`` is higher for accounts more likely to churn (for a health
score, ``100 - score``); ``churned`` is 1 for a churner and 0 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
#: the normal quantiles of a two-sided 95% interval and of a one-sided 5% test
Z_95 = 1.959964
Z_ONE_SIDED_5 = 1.644854
#: Student's t quantile of a one-sided 5% test with 4 degrees of freedom (5 folds)
T_4_ONE_SIDED_5 = 2.131847


def _arrays(risk: object, churned: object) -> tuple[Floats, Floats]:
    r = np.asarray(risk, dtype=np.float64)
    y = np.asarray(churned, dtype=np.float64)
    if r.shape != y.shape or r.ndim != 1:
        raise ValueError(f"risk and churned must be 1-d of one length: {r.shape}, {y.shape}")
    return r, y


def roc_auc(risk: object, churned: object) -> float | None:
    """The chance that a random churner has a higher risk than a random stayer (ties count
    half): the Mann-Whitney statistic. None when either class is empty."""
    r, y = _arrays(risk, churned)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(r, kind="mergesort")
    ranks = np.empty(len(r), dtype=np.float64)
    sorted_r = r[order]
    # average ranks over ties
    starts = np.flatnonzero(np.r_[True, sorted_r[1:] != sorted_r[:-1]])
    ends = np.r_[starts[1:], len(r)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def roc_points(risk: object, churned: object) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at every distinct risk threshold, from
    (0, 0) to (1, 1)."""
    r, y = _arrays(risk, churned)
    positives, negatives = y.sum(), len(y) - y.sum()
    if positives == 0 or negatives == 0:
        return [(0.0, 0.0), (1.0, 1.0)]
    order = np.argsort(-r, kind="mergesort")
    r, y = r[order], y[order]
    last_of_tie = np.r_[r[1:] != r[:-1], True]
    tp = np.cumsum(y)[last_of_tie]
    fp = np.cumsum(1 - y)[last_of_tie]
    points = [(0.0, 0.0)]
    points += [
        (round(float(f / negatives), 4), round(float(t / positives), 4))
        for f, t in zip(fp, tp, strict=True)
    ]
    return points


def lift_of_top(risk: object, churned: object, share: float = 0.1) -> float | None:
    """Churn rate among the riskiest ``share`` of accounts over the overall churn rate.

    Accounts tied on the risk at the cut count by their group's churn rate, for the seats
    left: the lift does not depend on the order the accounts came in."""
    r, y = _arrays(risk, churned)
    if len(y) == 0 or y.sum() == 0:
        return None
    top = max(1, round(len(y) * share))
    cut = np.sort(r)[::-1][top - 1]
    above, tied = r > cut, r == cut
    churners = y[above].sum() + (top - above.sum()) * y[tied].mean()
    return float(churners / top / y.mean())


def precision_recall(flagged: object, churned: object) -> tuple[float | None, float | None]:
    """Of the flagged accounts, the share that churned; of the churners, the share flagged."""
    f, y = _arrays(flagged, churned)
    hits = float((f * y).sum())
    precision = hits / f.sum() if f.sum() else None
    recall = hits / y.sum() if y.sum() else None
    return precision, recall


@dataclass(frozen=True)
class CalibrationBin:
    """Accounts whose predicted churn chance fell in ``[low, high)``, and how many churned."""

    low: float
    high: float
    accounts: int
    predicted: float
    observed: float


def calibration(predicted: object, churned: object, bins: int = 10) -> list[CalibrationBin]:
    """Observed churn rate against predicted chance, in equal-width bins (empty bins left
    out): on a calibrated prediction the two agree."""
    p, y = _arrays(predicted, churned)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(mask.sum()),
                    float(p[mask].mean()),
                    float(y[mask].mean()),
                )
            )
    return out


def wilson_interval(churned: int, accounts: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a churn rate (95% at the default ``z``): it stays inside
    [0, 1] and keeps its coverage on small zones, where the normal approximation does not.
    (0, 1) for no accounts."""
    if accounts == 0:
        return 0.0, 1.0
    p, n = churned / accounts, accounts
    shrink = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
    return max(0.0, centre - half), min(1.0, centre + half)


def _churns_more(k1: Floats, n1: Floats, k2: Floats, n2: Floats) -> Floats:
    """The two-proportion z statistic that group 1 churns more than group 2 (pooled
    variance); 0 where either group is empty or the pooled rate is 0 or 1."""
    safe1, safe2 = np.maximum(n1, 1.0), np.maximum(n2, 1.0)
    pooled = (k1 + k2) / np.maximum(n1 + n2, 1.0)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / safe1 + 1 / safe2))
    usable = (n1 > 0) & (n2 > 0) & (spread > 0)
    return np.where(usable, (k1 / safe1 - k2 / safe2) / np.where(usable, spread, 1.0), 0.0)


@dataclass(frozen=True)
class ZoneCut:
    """Score thresholds: critical below ``at_risk_from``, healthy from ``healthy_from``.

    ``separation`` is the smaller of the two z statistics that a zone churns more than the
    next healthier one (critical than at risk, at risk than healthy): at 1.645 or more, both
    steps are significant at 5%, one-sided."""

    at_risk_from: float
    healthy_from: float
    separation: float


def zone_thresholds(scores: object, churned: object, min_share: float = 0.05) -> ZoneCut | None:
    """The two thresholds, among the scores' half-percentiles, whose three zones each hold at
    least ``min_share`` of the accounts and are best separated (the largest ``separation``).
    None when no pair leaves every zone its share."""
    s, y = _arrays(scores, churned)
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    values = np.unique(np.quantile(s, np.linspace(0.0, 1.0, 201), method="inverted_cdf"))
    at = np.searchsorted(s, values, side="left")
    below = at.astype(np.float64)
    churned_below = np.r_[0.0, np.cumsum(y)][at]
    n, k = float(len(s)), float(y.sum())
    # rows: the at-risk threshold; columns: the healthy one
    crit_n, crit_k = below[:, None], churned_below[:, None]
    risk_n, risk_k = below[None, :] - crit_n, churned_below[None, :] - crit_k
    well_n, well_k = n - below[None, :], k - churned_below[None, :]
    least = max(1.0, min_share * n)
    allowed = (crit_n >= least) & (risk_n >= least) & (well_n >= least)
    if not allowed.any():
        return None
    separation = np.minimum(
        _churns_more(crit_k, crit_n, risk_k, risk_n), _churns_more(risk_k, risk_n, well_k, well_n)
    )
    separation = np.where(allowed, separation, -np.inf)
    i, j = np.unravel_index(int(np.argmax(separation)), separation.shape)
    return ZoneCut(float(values[i]), float(values[j]), float(separation[i, j]))


def _zone_counts(scores: Floats, churned: Floats, cut: ZoneCut) -> tuple[Floats, Floats]:
    """Accounts and churners in critical, at risk and healthy, in that order."""
    zone = (scores >= cut.at_risk_from).astype(np.int64) + (scores >= cut.healthy_from)
    accounts = np.bincount(zone, minlength=3).astype(np.float64)
    return accounts, np.bincount(zone, weights=churned, minlength=3).astype(np.float64)


def _separation(accounts: Floats, churners: Floats) -> float:
    """``ZoneCut.separation`` of counts in critical, at risk and healthy."""
    n, k = accounts, churners
    return float(
        min(
            _churns_more(k[:1], n[:1], k[1:2], n[1:2])[0],
            _churns_more(k[1:2], n[1:2], k[2:], n[2:])[0],
        )
    )


def cross_validated_separation(
    scores: object, churned: object, fold_of: object, min_share: float = 0.05
) -> float | None:
    """``separation`` out of sample: each fold's accounts are zoned by the thresholds chosen
    on the other folds, and the z statistics are taken over all the accounts so zoned. The
    search for thresholds inflates the separation it finds on its own accounts; this one it
    cannot. None when some fold's others leave no thresholds."""
    s, y = _arrays(scores, churned)
    f = np.asarray(fold_of, dtype=np.int64)
    n, k = np.zeros(3), np.zeros(3)
    for i in range(int(f.max()) + 1 if len(f) else 0):
        held = f == i
        cut = zone_thresholds(s[~held], y[~held], min_share)
        if cut is None:
            return None
        accounts, churners = _zone_counts(s[held], y[held], cut)
        n, k = n + accounts, k + churners
    return _separation(n, k)


def _sigmoid(s: Floats) -> Floats:
    return np.exp(-np.logaddexp(0.0, -s))


def log_loss(predicted: object, churned: object) -> float:
    """Mean negative log-likelihood per account of a predicted churn chance."""
    p, y = _arrays(predicted, churned)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@dataclass(frozen=True)
class LogisticFit:
    """A fitted L2-regularised logistic regression on standardised features.

    ``coefficients`` are per standardised feature (one standard deviation), so their sizes
    compare; ``mean`` and ``scale`` standardise new rows the same way. ``monotone``: every
    coefficient was held at or below 0."""

    coefficients: Floats
    intercept: float
    mean: Floats
    scale: Floats
    l2: float
    iterations: int
    monotone: bool = False

    def probability(self, features: object) -> Floats:
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return _sigmoid(x @ self.coefficients + self.intercept)


def _penalised_loss(z: Floats, y: Floats, w: Floats, penalty: Floats) -> float:
    s = z @ w
    return float(np.sum(np.logaddexp(0.0, s) - y * s) + 0.5 * np.sum(penalty * w * w))


def _projected_step(
    z: Floats, y: Floats, w: Floats, penalty: Floats, bounded: NDArray[np.bool_]
) -> tuple[Floats, float]:
    """One step of projected Newton: a bounded weight at 0 whose gradient pushes it above 0
    is held there; the others move by Newton's step, projected back onto ``w <= 0`` and
    halved until the penalised loss falls by Armijo's rule. When no Newton step does, a
    diagonally scaled gradient step (always a descent direction under the projection)."""
    p = _sigmoid(z @ w)
    gradient = z.T @ (p - y) + penalty * w
    hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
    free = ~(bounded & (w >= 0.0) & (gradient < 0.0))
    newton = np.zeros_like(w)
    newton[free] = np.linalg.solve(hessian[np.ix_(free, free)], gradient[free])
    before = _penalised_loss(z, y, w, penalty)
    for step in (newton, np.where(free, gradient / np.diag(hessian), 0.0)):
        t = 1.0
        while t > 1e-10:
            candidate = w - t * step
            candidate[bounded] = np.minimum(candidate[bounded], 0.0)
            if _penalised_loss(z, y, candidate, penalty) <= before + 1e-4 * float(
                gradient @ (candidate - w)
            ):
                return candidate, float(np.abs(candidate - w).max())
            t /= 2
    return w, 0.0


def fit_logistic(
    features: object, churned: object, l2: float = 1.0, monotone: bool = False
) -> LogisticFit:
    """Fit ``P(churn) = sigmoid(x . w + b)`` by Newton's method with an L2 penalty
    ``l2 * |w|^2 / 2`` on the standardised weights (the intercept is not penalised).
    Features with no spread get weight 0.

    ``monotone`` holds every weight at or below 0, inside the fit (projected Newton), for
    features that are all "higher = healthier": each may lower the churn chance or do
    nothing, never raise it."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(churned, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features must be accounts x features, got {x.shape} for {len(y)}")
    if not len(y) or y.min() == y.max():
        raise ValueError("fitting needs both churners and stayers")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    constant = scale == 0
    scale = np.where(constant, 1.0, scale)
    z = np.c_[(x - mean) / scale, np.ones(len(y))]
    z[:, :-1][:, constant] = 0.0
    penalty = np.full(z.shape[1], float(l2))
    penalty[-1] = 0.0
    bounded = np.zeros(z.shape[1], dtype=np.bool_)
    bounded[:-1] = monotone
    w = np.zeros(z.shape[1])
    iterations = 0
    while iterations < 200:
        iterations += 1
        w, change = _projected_step(z, y, w, penalty, bounded)
        if change < 1e-8:
            break
    return LogisticFit(w[:-1], float(w[-1]), mean, scale, float(l2), iterations, monotone)


def stratified_folds(churned: object, folds: int = 5, seed: int = 0) -> NDArray[np.int64]:
    """A fold number per account: churners, then stayers, dealt round the folds in a
    seeded random order, so every fold holds its share of each."""
    y = np.asarray(churned, dtype=np.float64)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    dealt = 0
    for outcome in (1.0, 0.0):
        where = rng.permutation(np.flatnonzero(y == outcome))
        fold_of[where] = (dealt + np.arange(len(where))) % folds
        dealt += len(where)
    return fold_of


def _check_folds(y: Floats, fold_of: NDArray[np.int64]) -> int:
    folds = int(fold_of.max()) + 1 if len(fold_of) else 0
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    for f in range(folds):
        held = fold_of == f
        for part in (y[held], y[~held]):
            if not len(part) or part.min() == part.max():
                raise ValueError(
                    f"fold {f}: churners and stayers are needed both held out and kept"
                )
    return folds


def fold_auc(risk: object, churned: object, fold_of: object) -> Floats:
    """The AUC of a fixed risk on each fold's accounts."""
    r, y = _arrays(risk, churned)
    f = np.asarray(fold_of, dtype=np.int64)
    folds = _check_folds(y, f)
    return np.array([roc_auc(r[f == i], y[f == i]) for i in range(folds)], dtype=np.float64)


@dataclass(frozen=True)
class Validation:
    """One penalty's cross-validated figures: per held-out fold, the log-loss and the AUC of
    the fit made on the other folds."""

    l2: float
    log_loss: Floats
    auc: Floats

    @property
    def mean_log_loss(self) -> float:
        return float(self.log_loss.mean())

    @property
    def mean_auc(self) -> float:
        return float(self.auc.mean())


def cross_validate(
    features: object, churned: object, l2: float, fold_of: object, monotone: bool = False
) -> Validation:
    """Fit on all folds but one, judge on the one held out, for each fold in turn."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(churned, dtype=np.float64)
    f = np.asarray(fold_of, dtype=np.int64)
    losses, aucs = [], []
    for i in range(_check_folds(y, f)):
        held = f == i
        fit = fit_logistic(x[~held], y[~held], l2, monotone)
        p = fit.probability(x[held])
        losses.append(log_loss(p, y[held]))
        aucs.append(roc_auc(p, y[held]))
    return Validation(float(l2), np.array(losses), np.array(aucs, dtype=np.float64))


@dataclass(frozen=True)
class L2Choice:
    """The penalty chosen, and every penalty tried, in increasing order."""

    chosen: Validation
    tried: tuple[Validation, ...]


def choose_l2(
    features: object,
    churned: object,
    grid: Sequence[float],
    fold_of: object,
    monotone: bool = False,
) -> L2Choice:
    """The strongest penalty whose cross-validated log-loss is within one standard error of
    the best one's (the one-standard-error rule): no more flexible than the training data
    can tell apart from the best."""
    if not grid:
        raise ValueError("no penalty to choose from")
    tried = tuple(cross_validate(features, churned, l2, fold_of, monotone) for l2 in sorted(grid))
    best = min(tried, key=lambda v: v.mean_log_loss)
    spread = best.log_loss.std(ddof=1) if len(best.log_loss) > 1 else 0.0
    bar = best.mean_log_loss + float(spread) / math.sqrt(len(best.log_loss))
    chosen = max((v for v in tried if v.mean_log_loss <= bar), key=lambda v: v.l2)
    return L2Choice(chosen, tried)


@dataclass(frozen=True)
class RankingComparison:
    """Per fold, the AUC of a fitted risk and of another risk on the same held-out accounts."""

    fitted: Floats
    other: Floats

    @property
    def difference(self) -> float:
        return float((self.fitted - self.other).mean())

    @property
    def standard_error(self) -> float:
        """Of the mean paired difference, corrected for folds that share training accounts
        (Nadeau and Bengio's resampled t-test: the variance over k folds is scaled by
        ``1/k + 1/(k-1)``, not ``1/k``, as the folds' fits are not independent)."""
        d = self.fitted - self.other
        k = len(d)
        return float(d.std(ddof=1) * math.sqrt(1 / k + 1 / (k - 1))) if k > 1 else 0.0

    def fitted_is_better(self, margin: float = T_4_ONE_SIDED_5) -> bool:
        """Better on average by more than ``margin`` standard errors of the paired
        difference: a gain the folds agree on, not one fold's luck."""
        return self.difference > max(1e-9, margin * self.standard_error)
