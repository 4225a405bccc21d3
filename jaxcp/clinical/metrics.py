"""Subject-level (per-infant) evaluation: window P(CP) -> per-infant score -> clinical metrics.

The chain follows AutoCP (reference autocp-algorithm.md §2.5, §7.4) and MovementOutcome
(movementoutcome-data.md §3): each window's softmax P(CP) is aggregated per infant by the median,
clipped to [0, 1]; an infant is positive iff its score >= threshold (0.5). AUC is the Mann-Whitney
statistic with ties counted 1/2. Exact Clopper-Pearson intervals use the actual counts of the evaluated
set (AutoCP hard-coded its test-set sizes).

Everything here is host-side numpy/scipy on small arrays (hundreds of infants, ~10^4 windows). Metrics
whose denominator is zero (e.g. sensitivity with no positive infant, AUC with one class) are NaN, never
an error. AutoCP rounds the reward AUC to 3 decimals; that rounding is left to the caller.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats

AGGREGATES = ("median", "mean")


class Confusion(NamedTuple):
    """Counts of a binary classification at a threshold."""

    tp: int
    fp: int
    tn: int
    fn: int


def _as_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (no CP) or 1 (CP)")
    return labels.astype(np.int64)


def _as_scores(scores, n: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"scores must have shape ({n},), got {scores.shape}")
    return scores


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else math.nan


# ------------------------------------------------------------------------------------------------ aggregation
def subject_scores(window_probs, owner, num_subjects: int, aggregate: str = "median",
                   nan_value: float = 0.5) -> np.ndarray:
    """Per-infant scores from window scores.

    window_probs: (M,) P(CP) of each window; owner: (M,) int, the window's infant in [0, num_subjects).
    Returns (N,) float64: the median (or mean) of each infant's windows, clipped to [0, 1]. A NaN score
    (a diverged model) becomes `nan_value` (MovementOutcome uses the threshold, 0.5). Every infant must own
    at least one window.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {AGGREGATES}")
    probs = np.asarray(window_probs, dtype=np.float64)
    owner = np.asarray(owner)
    if probs.ndim != 1 or owner.shape != probs.shape:
        raise ValueError(f"window_probs {probs.shape} and owner {owner.shape} must be equal 1-D shapes")
    if owner.size and (owner.min() < 0 or owner.max() >= num_subjects):
        raise ValueError(f"owner indices must lie in [0, {num_subjects})")
    counts = np.bincount(owner, minlength=num_subjects)
    if (counts == 0).any():
        raise ValueError(f"subjects without windows: {np.flatnonzero(counts == 0)[:10].tolist()}")
    order = np.argsort(owner, kind="stable")
    groups = np.split(probs[order], np.cumsum(counts)[:-1])
    reduce = np.median if aggregate == "median" else np.mean
    scores = np.array([reduce(g) for g in groups], dtype=np.float64)
    return np.where(np.isnan(scores), nan_value, np.clip(scores, 0.0, 1.0))


def ensemble_window_probs(probs) -> np.ndarray:
    """Ensemble window P(CP): (K, M) per-model window scores -> (M,) median over the K models."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be (K, M), got shape {probs.shape}")
    return np.median(probs, axis=0)


def ensemble_certainty(per_model_scores, threshold: float = 0.5, risk=None) -> np.ndarray:
    """MovementOutcome's certainty of an ensemble prediction, per infant.

    per_model_scores: (K, N) subject score of each model. risk: (N,) the ensemble's subject score, which
    decides the predicted class (MovementOutcome: median over windows of the ensemble window probabilities,
    i.e. `subject_scores(ensemble_window_probs(...))`); default: the median of the per-model scores.
    A positive prediction (risk >= threshold) is certain iff Q1 > threshold; a negative one iff
    Q3 < threshold, with quartiles from np.percentile (linear). Returns (N,) bool.
    """
    scores = np.asarray(per_model_scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"per_model_scores must be (K, N), got shape {scores.shape}")
    risk = np.median(scores, axis=0) if risk is None else np.asarray(risk, dtype=np.float64)
    q1, q3 = np.percentile(scores, [25, 75], axis=0)
    return np.where(risk >= threshold, q1 > threshold, q3 < threshold)


# ------------------------------------------------------------------------------------------------ AUC
def roc_auc(labels, scores) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + P(tie)/2 (Mann-Whitney U / (n_pos n_neg)).

    labels: (N,) in {0, 1}; scores: (N,). NaN when only one class is present (AUC undefined).
    """
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(scores)  # average ranks: ties count 1/2
    u_pos = ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2
    return float(u_pos / (n_pos * n_neg))


def weighted_auc(labels, scores, weights) -> float:
    """AUC with a weight per sample (ties count 1/2).

    = sum_{i pos, j neg} w_i w_j (1[s_i > s_j] + 1[s_i = s_j] / 2) / (W_pos W_neg).

    Computed in O(N log N) over groups of tied scores. NaN when a class has zero total weight.
    """
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    weights = np.asarray(weights, dtype=np.float64)
    uniq, inverse = np.unique(scores, return_inverse=True)
    pos = np.bincount(inverse, weights=weights * labels, minlength=uniq.size)
    neg = np.bincount(inverse, weights=weights * (1 - labels), minlength=uniq.size)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return math.nan
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (total_pos * total_neg))


def window_auc(labels_per_window, scores, owner) -> float:
    """Window-level AUC, each window weighted 1 / (windows of its infant * number of infants) (AutoCP).

    labels_per_window: (M,) the label of each window's infant; scores: (M,) window P(CP); owner: (M,) infant
    index of each window. So every infant carries the same total weight.
    """
    owner = np.asarray(owner)
    _, inverse, counts = np.unique(owner, return_inverse=True, return_counts=True)
    weights = 1.0 / (counts[inverse] * counts.size)
    return weighted_auc(labels_per_window, scores, weights)


def bootstrap_auc_ci(labels, scores, n_boot: int = 2000, seed: int = 1234,
                     alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the subject AUC, resampling infants within each class.

    Stratified: every resample keeps the numbers of positive and negative infants, so the AUC is always
    defined. Returns (low, high); (nan, nan) with one class.
    """
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    sample_pos = rng.choice(pos, size=(n_boot, pos.size), replace=True)
    sample_neg = rng.choice(neg, size=(n_boot, neg.size), replace=True)
    ranks = stats.rankdata(np.concatenate([sample_pos, sample_neg], axis=1), axis=1)
    u_pos = ranks[:, : pos.size].sum(axis=1) - pos.size * (pos.size + 1) / 2
    aucs = u_pos / (pos.size * neg.size)
    low, high = np.percentile(aucs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


# ------------------------------------------------------------------------------------------------ thresholds
def confusion(labels, scores, threshold: float = 0.5) -> Confusion:
    """Confusion counts with positive prediction iff score >= threshold. labels, scores: (N,)."""
    labels = _as_labels(labels)
    predicted = _as_scores(scores, labels.size) >= threshold
    actual = labels == 1
    return Confusion(tp=int((predicted & actual).sum()), fp=int((predicted & ~actual).sum()),
                     tn=int((~predicted & ~actual).sum()), fn=int((~predicted & actual).sum()))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 1 - alpha interval of a proportion k / n; (nan, nan) when n = 0."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def youden_threshold(labels, scores) -> float:
    """Threshold maximising sensitivity + specificity (Youden's J), positive iff score >= threshold.

    Candidates are the observed scores; among equally good ones the lowest (most sensitive) is returned.
    """
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    n_pos, n_neg = int(labels.sum()), int(labels.size - labels.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("youden_threshold needs both classes")
    candidates = np.unique(scores)
    predicted = scores[None, :] >= candidates[:, None]  # (C, N)
    sens = (predicted & (labels == 1)).sum(axis=1) / n_pos
    spec = (~predicted & (labels == 0)).sum(axis=1) / n_neg
    return float(candidates[np.argmax(sens + spec)])


def threshold_for_sensitivity(labels, scores, target: float) -> float:
    """The highest threshold whose sensitivity (score >= threshold) is at least `target` in (0, 1]."""
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
    positives = np.sort(scores[labels == 1])[::-1]
    if positives.size == 0:
        raise ValueError("threshold_for_sensitivity needs at least one positive")
    needed = math.ceil(target * positives.size - 1e-9)
    return float(positives[needed - 1])


# ------------------------------------------------------------------------------------------------ reports
def subject_metrics(labels, scores, threshold: float = 0.5, alpha: float = 0.05) -> dict[str, float]:
    """All subject-level metrics of AutoCP plus exact intervals. labels, scores: (N,) per infant.

    Keys: auc, tp, fp, tn, fn, sensitivity, specificity, accuracy, ppv, npv, f1, balanced_accuracy,
    {sensitivity,specificity,accuracy}_ci_low/_ci_high (Clopper-Pearson from the actual counts), threshold.
    Undefined values are NaN.
    """
    tp, fp, tn, fn = confusion(labels, scores, threshold)
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    out: dict[str, float] = {
        "auc": roc_auc(labels, scores), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": sens, "specificity": spec, "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "balanced_accuracy": (sens + spec) / 2, "threshold": float(threshold),
    }
    for name, k, n in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                       ("accuracy", tp + tn, tp + tn + fp + fn)):
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = clopper_pearson(k, n, alpha)
    return out


def evaluate_windows(window_probs, owner, labels, threshold: float = 0.5,
                     aggregate: str = "median") -> dict[str, float]:
    """Window scores -> subject metrics (see `subject_metrics`) plus `window_auc`.

    window_probs: (M,) window P(CP); owner: (M,) infant index of each window; labels: (N,) per infant.
    """
    labels = _as_labels(labels)
    scores = subject_scores(window_probs, owner, labels.size, aggregate=aggregate, nan_value=threshold)
    out = subject_metrics(labels, scores, threshold)
    probs = np.nan_to_num(np.asarray(window_probs, dtype=np.float64), nan=threshold)
    out["window_auc"] = window_auc(labels[np.asarray(owner)], probs, owner)
    return out
