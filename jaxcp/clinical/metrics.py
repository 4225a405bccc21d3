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

from jaxcp.data.splits import size_warning

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
def confusion(labels, scores, threshold=0.5) -> Confusion:
    """Confusion counts with positive prediction iff score >= threshold. labels, scores: (N,); threshold:
    a number or (N,) per infant (e.g. each fold's own)."""
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


def hanley_mcneil_ci(auc: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> tuple[float, float]:
    """Normal-approximation interval of an AUC from its value and class sizes alone (Hanley and McNeil,
    1982): SE^2 = (A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)) / (n_pos n_neg), Q1 = A/(2-A),
    Q2 = 2A^2/(1+A); clipped to [0, 1]. For summaries that keep no risks (a bootstrap needs them);
    (nan, nan) when the AUC is undefined."""
    if n_pos <= 0 or n_neg <= 0 or auc is None or not math.isfinite(auc):
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    half = float(stats.norm.ppf(1 - alpha / 2)) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


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
    """Window scores -> subject metrics (see `subject_metrics`) plus `window_auc` and `quality_metrics`
    (loss, risk_spread, risk_min, risk_max, auc_p_value).

    window_probs: (M,) window P(CP); owner: (M,) infant index of each window; labels: (N,) per infant.
    """
    labels = _as_labels(labels)
    scores = subject_scores(window_probs, owner, labels.size, aggregate=aggregate, nan_value=threshold)
    out = subject_metrics(labels, scores, threshold)
    probs = np.nan_to_num(np.asarray(window_probs, dtype=np.float64), nan=threshold)
    out["window_auc"] = window_auc(labels[np.asarray(owner)], probs, owner)
    out.update(quality_metrics(window_probs, owner, labels, scores))
    return out


# ------------------------------------------------------------------------------------------------ model quality
PROB_CLIP = 1e-7  # window probabilities are clipped to [PROB_CLIP, 1 - PROB_CLIP] before a log or logit


def subject_loss(window_probs, owner, labels) -> float:
    """Infant-balanced cross-entropy: the mean over infants of the mean over the infant's windows of
    -log p(true class). window_probs: (M,) P(CP) (clipped to [1e-7, 1 - 1e-7]; NaN counts as 0.5);
    owner: (M,) infant index; labels: (N,) per infant, every infant owning a window."""
    labels = _as_labels(labels)
    owner = np.asarray(owner)
    probs = np.clip(np.nan_to_num(np.asarray(window_probs, np.float64), nan=0.5), PROB_CLIP, 1 - PROB_CLIP)
    true = labels[owner]
    nll = -np.log(np.where(true == 1, probs, 1.0 - probs))
    counts = np.bincount(owner, minlength=labels.size)
    if (counts == 0).any():
        raise ValueError(f"subjects without windows: {np.flatnonzero(counts == 0)[:10].tolist()}")
    return float(np.mean(np.bincount(owner, weights=nll, minlength=labels.size) / counts))


def auc_p_value(labels, scores) -> float:
    """One-sided Mann-Whitney p-value of AUC > 0.5 (scipy, alternative="greater"); NaN with one class."""
    labels = _as_labels(labels)
    scores = _as_scores(scores, labels.size)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    if np.ptp(scores) == 0:  # all tied: no evidence at all (scipy's normal approximation divides by 0)
        return 1.0
    return float(stats.mannwhitneyu(pos, neg, alternative="greater").pvalue)


def quality_metrics(window_probs, owner, labels, scores) -> dict[str, float]:
    """What says whether a model tells infants apart: `loss` (`subject_loss`), `risk_spread` = max - min of
    the infants' risks `scores` (N,), with `risk_min` / `risk_max`, and `auc_p_value` (`auc_p_value`)."""
    scores = _as_scores(scores, np.asarray(labels).size)
    low, high = (float(scores.min()), float(scores.max())) if scores.size else (math.nan, math.nan)
    return {"loss": subject_loss(window_probs, owner, labels), "risk_spread": high - low, "risk_min": low,
            "risk_max": high, "auc_p_value": auc_p_value(labels, scores)}


def _number(value) -> float:
    """A metric as a float; None (a NaN written to JSON) and missing values are NaN."""
    return math.nan if value is None else float(value)


def model_flags(metrics: dict, num_positive: int, num_negative: int, *, spread_tolerance: float = 0.01,
                alpha: float = 0.05) -> list[dict]:
    """Warnings about a model from its validation metrics (`evaluate_windows` keys), each
    {"code", "message"} with a one-sentence message in plain words:

    constant_risk     the infants' risks span less than `spread_tolerance`;
    chance_auc        the AUC is not above chance: NaN, <= 0.5, or its one-sided p-value >= `alpha`;
    small_validation  a class has fewer than 5 validation infants (`jaxcp.data.splits.size_warning`).
    """
    flags = []
    num = num_positive + num_negative
    spread = _number(metrics.get("risk_spread"))
    if math.isfinite(spread) and spread < spread_tolerance:
        low, high = _number(metrics.get("risk_min")), _number(metrics.get("risk_max"))
        flags.append({"code": "constant_risk", "message": (
            f"its risks for the {num} validation infants span only {spread:.4f} ({low:.4f}-{high:.4f}): "
            "it hardly tells infants apart")})
    auc, p_value = _number(metrics.get("auc")), _number(metrics.get("auc_p_value"))
    if not math.isfinite(auc):
        flags.append({"code": "chance_auc", "message": (
            "its validation AUC is undefined: the validation infants are all of one class")})
    elif auc <= 0.5 or not p_value < alpha:
        p_text = "not computed" if not math.isfinite(p_value) else f"{p_value:.3f}"
        flags.append({"code": "chance_auc", "message": (
            f"its validation AUC of {auc:.3f} on {num_positive} CP and {num_negative} non-CP infants is not "
            f"better than chance (one-sided Mann-Whitney p = {p_text}, needs < {alpha:g})")})
    small = size_warning("its validation split", num_positive, num_negative)
    if small is not None:
        flags.append({"code": "small_validation", "message": small})
    return flags


# ------------------------------------------------------------------------------------------------ calibration
def prior_logit_shift(num_positive: int, num_negative: int, windows_positive: int, windows_negative: int) -> float:
    """The logit correction for sampling the classes at other rates than their prevalence:
    log(n_pos / n_neg) - log(W_pos / W_neg), with n_c the training infants and W_c the training windows
    per epoch of class c. 0.0 when a count is zero (nothing to correct against)."""
    if min(num_positive, num_negative, windows_positive, windows_negative) <= 0:
        return 0.0
    return float(math.log(num_positive / num_negative) - math.log(windows_positive / windows_negative))


def apply_logit_shift(probs, shift: float) -> np.ndarray:
    """sigmoid(logit(p) + shift) of every probability p (clipped to [1e-7, 1 - 1e-7]), in p's float dtype;
    `probs` unchanged (the same array) when shift is 0. NaN stays NaN."""
    probs = np.asarray(probs)
    if shift == 0.0:
        return probs
    dtype = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float64
    p = np.clip(probs.astype(np.float64), PROB_CLIP, 1 - PROB_CLIP)
    logits = np.log(p) - np.log1p(-p) + shift
    return (1.0 / (1.0 + np.exp(-logits))).astype(dtype)
