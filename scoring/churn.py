"""How well a risk ranks churners: AUC, ROC, calibration, lift, and a logistic fit.

Pure numpy over arrays of one value per account, so a backtest's figures can be checked by
hand on a few accounts. ``risk`` is higher for accounts more likely to churn (for a health
score, ``100 - score``); ``churned`` is 1 for a churner and 0 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


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


@dataclass(frozen=True)
class LogisticFit:
    """A fitted L2-regularised logistic regression on standardised features.

    ``coefficients`` are per standardised feature (one standard deviation), so their sizes
    compare; ``mean`` and ``scale`` standardise new rows the same way."""

    coefficients: Floats
    intercept: float
    mean: Floats
    scale: Floats
    l2: float
    iterations: int

    def probability(self, features: object) -> Floats:
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(x @ self.coefficients + self.intercept)))


def fit_logistic(features: object, churned: object, l2: float = 1.0) -> LogisticFit:
    """Fit ``P(churn) = sigmoid(x . w + b)`` by Newton's method (iteratively reweighted
    least squares) with an L2 penalty ``l2 * |w|^2 / 2`` on the standardised weights (the
    intercept is not penalised). Features with no spread get weight 0."""
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
    w = np.zeros(z.shape[1])
    iterations = 0
    while iterations < 100:
        iterations += 1
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return LogisticFit(w[:-1], float(w[-1]), mean, scale, float(l2), iterations)
