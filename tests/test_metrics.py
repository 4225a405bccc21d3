"""Subject-level metrics against hand computations, brute force and scipy."""

import math

import numpy as np
import pytest
from scipy import stats

from jaxcp.clinical import metrics


def brute_auc(labels, scores, weights=None):
    """Pair counting: sum over (pos, neg) pairs of w_i w_j (1[s_i > s_j] + 1[tie] / 2)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    weights = np.ones(labels.size) if weights is None else np.asarray(weights, dtype=float)
    num = den = 0.0
    for i in np.flatnonzero(labels == 1):
        for j in np.flatnonzero(labels == 0):
            w = weights[i] * weights[j]
            num += w * ((scores[i] > scores[j]) + 0.5 * (scores[i] == scores[j]))
            den += w
    return num / den


# ------------------------------------------------------------------------------------------------ aggregation
def test_subject_scores_median_of_each_infant_and_clip():
    probs = [0.1, 0.9, 0.3, 0.6, 0.2, 1.2, 0.4]
    owner = [0, 0, 0, 1, 1, 2, 1]
    got = metrics.subject_scores(probs, owner, 3)
    # infant 0: median(0.1, 0.9, 0.3) = 0.3; infant 1: median(0.6, 0.2, 0.4) = 0.4; infant 2: 1.2 clipped to 1
    np.testing.assert_allclose(got, [0.3, 0.4, 1.0])
    # even count: mean of the two middle values
    np.testing.assert_allclose(metrics.subject_scores([0.1, 0.2, 0.7, 0.9], [0, 0, 0, 0], 1), [0.45])
    np.testing.assert_allclose(metrics.subject_scores(probs, owner, 3, aggregate="mean"),
                               [1.3 / 3, 1.2 / 3, 1.0])


def test_subject_scores_nan_and_errors():
    got = metrics.subject_scores([np.nan, np.nan, 0.2], [0, 0, 1], 2, nan_value=0.5)
    np.testing.assert_allclose(got, [0.5, 0.2])
    with pytest.raises(ValueError, match="without windows"):
        metrics.subject_scores([0.1, 0.2], [0, 2], 3)
    with pytest.raises(ValueError, match="owner"):
        metrics.subject_scores([0.1, 0.2], [0, 3], 3)
    with pytest.raises(ValueError, match="aggregate"):
        metrics.subject_scores([0.1], [0], 1, aggregate="max")


def test_ensemble_window_probs_is_median_over_models():
    probs = np.array([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]])
    np.testing.assert_allclose(metrics.ensemble_window_probs(probs), [0.3, 0.4])


def test_ensemble_certainty_rule():
    # columns: certain positive, uncertain positive, certain negative, uncertain negative, boundary Q3 = thr
    scores = np.array([
        [0.6, 0.4, 0.1, 0.45, 0.3],
        [0.7, 0.6, 0.2, 0.55, 0.5],
        [0.8, 0.7, 0.3, 0.40, 0.5],
        [0.9, 0.8, 0.4, 0.30, 0.2],
        [0.55, 0.45, 0.2, 0.60, 0.4],
    ])
    q1, q3 = np.percentile(scores, [25, 75], axis=0)
    risk = np.median(scores, axis=0)
    expected = np.where(risk >= 0.5, q1 > 0.5, q3 < 0.5)
    got = metrics.ensemble_certainty(scores, 0.5)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, [True, False, True, False, False])
    # the class comes from `risk` when given
    got = metrics.ensemble_certainty(scores, 0.5, risk=np.array([0.4, 0.6, 0.6, 0.4, 0.4]))
    np.testing.assert_array_equal(got, [q3[0] < 0.5, q1[1] > 0.5, q1[2] > 0.5, q3[3] < 0.5, q3[4] < 0.5])


# ------------------------------------------------------------------------------------------------ AUC
def test_roc_auc_hand_values():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert metrics.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert metrics.roc_auc([1, 1, 0], [0.9, 0.5, 0.5]) == pytest.approx(0.75)
    assert math.isnan(metrics.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))


@pytest.mark.parametrize("seed", range(4))
def test_roc_auc_matches_pair_counting_and_mannwhitney(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=40)
    labels[:2] = [0, 1]
    scores = rng.integers(0, 8, size=40) / 8.0  # many ties
    got = metrics.roc_auc(labels, scores)
    assert got == pytest.approx(brute_auc(labels, scores))
    u = stats.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert got == pytest.approx(u / ((labels == 1).sum() * (labels == 0).sum()))


def test_weighted_and_window_auc_match_weighted_pair_counting():
    rng = np.random.default_rng(7)
    owner = np.repeat(np.arange(6), [1, 3, 2, 5, 4, 2])
    subject_labels = np.array([0, 1, 0, 1, 0, 0])
    scores = rng.integers(0, 5, size=owner.size) / 5.0
    counts = np.bincount(owner)
    weights = 1.0 / (counts[owner] * 6)
    expected = brute_auc(subject_labels[owner], scores, weights)
    assert metrics.window_auc(subject_labels[owner], scores, owner) == pytest.approx(expected)
    # weights matter: not the unweighted window AUC here
    assert metrics.window_auc(subject_labels[owner], scores, owner) != pytest.approx(
        metrics.roc_auc(subject_labels[owner], scores))
    w = rng.uniform(0.1, 2.0, size=owner.size)
    assert metrics.weighted_auc(subject_labels[owner], scores, w) == pytest.approx(
        brute_auc(subject_labels[owner], scores, w))


def test_bootstrap_auc_ci_brackets_auc_and_is_stratified():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 8 + [0] * 30)
    scores = np.concatenate([rng.normal(1, 1, 8), rng.normal(0, 1, 30)])
    low, high = metrics.bootstrap_auc_ci(labels, scores, n_boot=500, seed=3)
    auc = metrics.roc_auc(labels, scores)
    assert 0.0 <= low < auc < high <= 1.0
    assert (low, high) == metrics.bootstrap_auc_ci(labels, scores, n_boot=500, seed=3)
    # independent loop implementation with the same random draws
    gen = np.random.default_rng(3)
    pos = gen.choice(scores[labels == 1], size=(500, 8))
    neg = gen.choice(scores[labels == 0], size=(500, 30))
    aucs = [metrics.roc_auc(labels, np.concatenate([p, n])) for p, n in zip(pos, neg, strict=True)]
    np.testing.assert_allclose((low, high), np.percentile(aucs, [2.5, 97.5]))
    assert all(math.isnan(v) for v in metrics.bootstrap_auc_ci([1, 1], [0.2, 0.3]))


# ------------------------------------------------------------------------------------------------ counts
def test_confusion_threshold_is_inclusive():
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.5, 0.7, 0.2, 0.5, 0.1, 0.49, 0.9]
    assert metrics.confusion(labels, scores, 0.5) == (2, 2, 2, 1)


@pytest.mark.parametrize("k,n,low,high", [
    (0, 10, 0.0, 0.3085),
    (5, 10, 0.1871, 0.8129),
    (10, 10, 0.6915, 1.0),
    (1, 20, 0.0013, 0.2487),
])
def test_clopper_pearson_table_values(k, n, low, high):
    got = metrics.clopper_pearson(k, n)
    np.testing.assert_allclose(got, (low, high), atol=1e-4)


def test_clopper_pearson_edges_and_coverage_definition():
    assert all(math.isnan(v) for v in metrics.clopper_pearson(0, 0))
    low, high = metrics.clopper_pearson(7, 19, alpha=0.1)
    # defining property: P(X >= k | p=low) = alpha/2 and P(X <= k | p=high) = alpha/2
    assert stats.binom.sf(6, 19, low) == pytest.approx(0.05)
    assert stats.binom.cdf(7, 19, high) == pytest.approx(0.05)


def test_subject_metrics_hand_example():
    labels = [1, 1, 1, 0, 0, 0, 0]
    scores = [0.5, 0.7, 0.2, 0.5, 0.1, 0.49, 0.9]
    out = metrics.subject_metrics(labels, scores)
    tp, fp, tn, fn = 2, 2, 2, 1
    assert (out["tp"], out["fp"], out["tn"], out["fn"]) == (tp, fp, tn, fn)
    assert out["sensitivity"] == pytest.approx(2 / 3)
    assert out["specificity"] == pytest.approx(2 / 4)
    assert out["accuracy"] == pytest.approx(4 / 7)
    assert out["ppv"] == pytest.approx(2 / 4)
    assert out["npv"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert out["auc"] == pytest.approx(brute_auc(labels, scores))
    low, high = metrics.clopper_pearson(tn, tn + fp)
    assert (out["specificity_ci_low"], out["specificity_ci_high"]) == (low, high)
    assert (out["accuracy_ci_low"], out["accuracy_ci_high"]) == metrics.clopper_pearson(4, 7)


def test_subject_metrics_one_class_gives_nan_not_crash():
    out = metrics.subject_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert math.isnan(out["auc"]) and math.isnan(out["sensitivity"])
    assert out["ppv"] == 0.0  # one false positive
    assert out["specificity"] == pytest.approx(2 / 3)
    assert math.isnan(out["sensitivity_ci_low"]) and math.isnan(out["balanced_accuracy"])
    out = metrics.subject_metrics([1, 0], [0.1, 0.2])
    assert math.isnan(out["ppv"]) and out["f1"] == 0.0


def test_thresholds_on_validation():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.45, 0.3, 0.5, 0.35, 0.2, 0.1, 0.05])
    # brute force Youden over all observed scores; the lowest of equal maxima
    best = max(np.unique(scores), key=lambda t: (
        metrics.subject_metrics(labels, scores, t)["balanced_accuracy"], -t))
    assert metrics.youden_threshold(labels, scores) == best
    assert best == pytest.approx(0.3)
    assert metrics.threshold_for_sensitivity(labels, scores, 0.75) == pytest.approx(0.45)
    assert metrics.threshold_for_sensitivity(labels, scores, 0.76) == pytest.approx(0.3)
    assert metrics.threshold_for_sensitivity(labels, scores, 0.5) == pytest.approx(0.8)
    t = metrics.threshold_for_sensitivity(labels, scores, 1.0)
    assert metrics.confusion(labels, scores, t).fn == 0


def test_evaluate_windows_chain():
    owner = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    probs = np.array([0.8, 0.6, 0.2, 0.4, 0.3, 0.55, 0.1, np.nan])
    labels = np.array([1, 0, 1, 0])
    out = metrics.evaluate_windows(probs, owner, labels)
    subject = np.array([0.7, 0.3, 0.55, 0.5])  # infant 3: median(0.1, nan) is nan -> 0.5
    expected = metrics.subject_metrics(labels, subject)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, nan_ok=True), key
    filled = np.nan_to_num(probs, nan=0.5)
    assert out["window_auc"] == pytest.approx(
        brute_auc(labels[owner], filled, 1.0 / (np.bincount(owner)[owner] * 4)))


def test_evaluate_windows_quality_keys_by_hand():
    """loss: mean over infants of the mean over its windows of -log p(true class) (NaN counts as 0.5)."""
    owner = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    probs = np.array([0.8, 0.6, 0.2, 0.4, 0.3, 0.55, 0.1, np.nan])
    labels = np.array([1, 0, 1, 0])
    out = metrics.evaluate_windows(probs, owner, labels)
    per_infant = [
        -(math.log(0.8) + math.log(0.6)) / 2,
        -(math.log(1 - 0.2) + math.log(1 - 0.4) + math.log(1 - 0.3)) / 3,
        -math.log(0.55),
        -(math.log(1 - 0.1) + math.log(0.5)) / 2,
    ]
    assert out["loss"] == pytest.approx(np.mean(per_infant), rel=1e-12)
    # risks 0.7, 0.3, 0.55, 0.5
    assert (out["risk_spread"], out["risk_min"], out["risk_max"]) == pytest.approx((0.4, 0.3, 0.7))
    expected_p = stats.mannwhitneyu([0.7, 0.55], [0.3, 0.5], alternative="greater").pvalue
    assert out["auc_p_value"] == pytest.approx(expected_p) and expected_p == pytest.approx(1 / 6)  # exact: 1 of 6
    assert metrics.subject_loss([0.0, 1.0], [0, 1], [1, 0]) == pytest.approx(-math.log(1e-7))  # clipped


def test_auc_p_value_one_class_and_ties():
    assert math.isnan(metrics.auc_p_value([1, 1, 1], [0.2, 0.5, 0.9]))
    assert metrics.auc_p_value([1, 0, 1, 0], [0.6, 0.6, 0.6, 0.6]) == 1.0
    labels, scores = [1] * 5 + [0] * 5, [0.9, 0.8, 0.7, 0.65, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    assert metrics.auc_p_value(labels, scores) == pytest.approx(1 / math.comb(10, 5))  # perfect separation


def _codes(flags):
    return [f["code"] for f in flags]


def test_a_constant_model_is_flagged():
    """All window probabilities equal: the risks do not vary, the AUC is 0.5, and 3 + 2 infants are few."""
    owner = np.repeat(np.arange(5), 3)
    out = metrics.evaluate_windows(np.full(15, 0.6222), owner, np.array([1, 1, 1, 0, 0]))
    flags = metrics.model_flags(out, 3, 2)
    assert _codes(flags) == ["constant_risk", "chance_auc", "small_validation"]
    assert "5 validation infants span only 0.0000 (0.6222-0.6222)" in flags[0]["message"]
    assert "AUC of 0.500 on 3 CP and 2 non-CP infants" in flags[1]["message"]
    assert "3 CP and 2 non-CP infants" in flags[2]["message"]
    assert all(isinstance(f["message"], str) and "\n" not in f["message"] for f in flags)


def test_model_flags_of_a_good_model_and_of_json_metrics():
    labels, scores = np.array([1] * 5 + [0] * 5), np.linspace(0.9, 0.1, 10)
    out = metrics.evaluate_windows(scores, np.arange(10), labels)
    assert metrics.model_flags(out, 5, 5) == []
    # a perfect AUC on 3 + 3 infants has p = 1/20 = 0.05: not below alpha, so still at chance
    few = metrics.evaluate_windows(scores[[0, 1, 2, 7, 8, 9]], np.arange(6), np.array([1, 1, 1, 0, 0, 0]))
    assert few["auc"] == 1.0 and _codes(metrics.model_flags(few, 3, 3)) == ["chance_auc", "small_validation"]
    # metrics read back from JSON carry None for NaN: an undefined AUC is at chance
    assert _codes(metrics.model_flags({"auc": None, "risk_spread": 0.3}, 5, 0)) == ["chance_auc", "small_validation"]
    assert metrics.model_flags({}, 6, 6) == [{"code": "chance_auc", "message": (
        "its validation AUC is undefined: the validation infants are all of one class")}]


def test_prior_logit_shift_by_hand():
    # AutoCP's 30/5 on a balanced cohort of 10 + 10 infants: 300 CP and 50 non-CP windows per epoch
    assert metrics.prior_logit_shift(10, 10, 300, 50) == pytest.approx(-math.log(6))
    assert metrics.prior_logit_shift(3, 12, 75, 72) == pytest.approx(math.log(3 / 12) - math.log(75 / 72))
    assert metrics.prior_logit_shift(0, 12, 0, 72) == 0.0


def test_apply_logit_shift_by_hand():
    # logit(0.6) - log 6 = log(1.5 / 6) = log(1/4): sigmoid = (1/4) / (1 + 1/4) = 0.2; p = 0.5 -> 1/7
    shifted = metrics.apply_logit_shift(np.array([0.6, 0.5, 1.0, np.nan], np.float32), -math.log(6))
    assert shifted.dtype == np.float32
    np.testing.assert_allclose(shifted[:2], [0.2, 1 / 7], rtol=1e-6)
    assert shifted[2] == pytest.approx(1 / (1 + 6 * 1e-7 / (1 - 1e-7)), rel=1e-6) and np.isnan(shifted[3])
    probs = np.array([0.3, 0.7])
    assert metrics.apply_logit_shift(probs, 0.0) is probs
    back = metrics.apply_logit_shift(metrics.apply_logit_shift(probs, 1.3), -1.3)
    np.testing.assert_allclose(back, probs, rtol=1e-12)


def test_hanley_mcneil_interval_by_hand():
    # A = 0.8, 10 + 10: Q1 = 0.8 / 1.2, Q2 = 1.28 / 1.8; SE^2 = (0.16 + 9 (Q1 - 0.64) + 9 (Q2 - 0.64)) / 100 = 0.0104
    low, high = metrics.hanley_mcneil_ci(0.8, 10, 10)
    half = 1.959964 * math.sqrt(0.0104)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half), abs=1e-6)
    assert metrics.hanley_mcneil_ci(1.0, 3, 3) == (1.0, 1.0)  # the formula's SE is 0 at a perfect AUC
    assert all(math.isnan(v) for v in metrics.hanley_mcneil_ci(0.7, 0, 5))
