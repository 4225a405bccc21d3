"""What evaluate, predict and the report say about their numbers: intervals with widths, model flags, data
warnings, the threshold's origin, class names, the results CSV and the contribution picture's orientation.

The end-to-end tests use one constant-risk model (the tiny architecture with a zeroed classifier kernel, so
that every window gets P(CP) = sigmoid(0.5)) written with the flags, calibration and class names a trained
model's meta.json carries.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import stats
from test_commands import assert_one_line_error, run_main
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, cohort

from jaxcp import evaluate, predict
from jaxcp.clinical import evaluation, inference, prediction, report
from jaxcp.clinical.metrics import clopper_pearson
from jaxcp.clinical.predictor import Predictor
from jaxcp.data.dataset import data_settings, load_dataset
from jaxcp.data.splits import size_warning
from jaxcp.model.checkpoint import save_model

CONSTANT_P = 1 / (1 + math.exp(-0.5))  # softmax of logits (0, 0.5)
FLAGS = [{"code": "constant_risk", "message": "its validation risks lie within 0.6224-0.6225."}]
CALIBRATION = {"method": "prior", "logit_shift": -1.79, "train_prevalence": 0.5, "sampled_prevalence": 0.857}


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory) -> Path:
    """A checkpoint whose P(CP) is CONSTANT_P for every window, flagged, with class names in its meta."""
    spec = TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, data_settings(cohort()))
    variables = spec.network().init(jax.random.PRNGKey(0), np.zeros(spec.input_shape(1), np.float32), train=False)
    variables = jax.tree.map(np.asarray, dict(variables))
    fc = variables["params"]["classifier"]["fc"]
    fc["kernel"] = np.zeros_like(fc["kernel"])
    fc["bias"] = np.array([0.0, 0.5], fc["bias"].dtype)
    path = tmp_path_factory.mktemp("constant") / "model"
    extra = {"flags": FLAGS, "calibration": CALIBRATION, "labels": ["typical", "CP"]}
    return save_model(path, variables, spec, extra=extra)


@pytest.fixture(scope="module")
def evaluated(constant_model, tmp_path_factory):
    """(report folder, argv) of `evaluate` with the constant model on the test split."""
    out = tmp_path_factory.mktemp("evaluated")
    argv = ["--checkpoint", constant_model, "--data", cohort(), "--out", out, "--bootstrap", 50]
    return out, argv


def test_evaluate_warns_in_words_and_gives_every_interval_with_its_width(evaluated, constant_model, capsys):
    out, argv = evaluated
    code, stdout, stderr = run_main(evaluate.main, argv, capsys)
    assert code == 0, stderr
    result = json.loads((out / "metrics.json").read_text())
    text = (out / "report.md").read_text()
    test = load_dataset(cohort(), "test")
    n, num_cp = test.num_infants, int(test.labels.sum())
    # flags: metrics.json, stderr, the report's Warnings section, before anything else
    assert result["model_flags"] == {str(constant_model): FLAGS}
    assert f"warning: {constant_model}: {FLAGS[0]['message']}" in stderr.splitlines()
    assert text.index("## Warnings") < text.index("**Data**")
    assert "hardly tells infants apart" in text and "Treat these figures as unreliable" in text
    # the constant-risk check of the evaluated split
    spread = f"the risks of all {n} infants lie within {CONSTANT_P:.4f}-{CONSTANT_P:.4f}"
    assert any(w.startswith(spread) for w in result["warnings"]) and f"warning: {spread}" in stderr
    assert spread[0].upper() + spread[1:] in text
    expected = size_warning("the evaluated split 'test'", num_cp, n - num_cp)
    assert expected is None or (expected in result["warnings"] and f"warning: {expected}" in stderr)
    # every infant is positive at 0.5: tp = CP infants, fp = the others
    s = result["subject"]
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (num_cp, n - num_cp, 0, 0)
    for name, k, m in (("sensitivity", num_cp, num_cp), ("specificity", 0, n - num_cp),
                       ("accuracy", num_cp, n), ("ppv", num_cp, n)):  # fmt: skip
        low, high = clopper_pearson(k, m)
        assert (s[f"{name}_ci_low"], s[f"{name}_ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert f"{k / m:.3f} ({low:.3f}-{high:.3f}, width {high - low:.2f})" in text, name
    assert "NPV n/a" in text  # no negative call: no NPV and no interval
    # the AUC of ties is 0.5 in every bootstrap resample
    assert "0.500 (0.500-0.500, width 0.00)" in text and "not an infant-level figure" in text
    # the threshold and the prior correction
    threshold = result["threshold"]
    assert threshold["value"] == 0.5 and threshold["rule"] == "fixed" and threshold["chosen_on"] is None
    assert threshold["calibration"]["corrected"] and "logit shift -1.79" in text and "prevalence of 50 %" in text
    # class names from the model's meta: report, infants.csv, metrics.json
    assert result["labels"] == ["typical", "CP"] and "negative 'typical', positive 'CP'" in text
    rows = list(csv.DictReader((out / "infants.csv").open()))
    assert [r["class"] for r in rows] == ["CP"] * n
    # the one-line summary gives the intervals
    low, high = clopper_pearson(num_cp, num_cp)
    assert f"sensitivity 1.000 ({low:.3f}-{high:.3f}, width" in stdout and "AUC 0.500 (0.500-0.500" in stdout


def test_a_threshold_chosen_on_a_small_split_says_so_and_never_on_the_evaluated_one(evaluated, capsys,
                                                                                    tmp_path):
    _, argv = evaluated
    argv = [*argv[:-4], "--out", tmp_path, "--threshold", "youden", "--format", "html", "--bootstrap", 20,
            "--labels", "TD, atypical"]  # fmt: skip
    code, _, err = run_main(evaluate.main, [*argv, "--val-split", "test"], capsys)
    assert_one_line_error(code, err, "--val-split test", "evaluated infants themselves")
    # evaluate 'val' with the threshold chosen on the small 'test' split
    code, _, stderr = run_main(evaluate.main, [*argv, "--split", "val", "--val-split", "test"], capsys)
    assert code == 0, stderr
    result = json.loads((tmp_path / "metrics.json").read_text())
    small = load_dataset(cohort(), "test")
    num_cp = int(small.labels.sum())
    threshold = result["threshold"]
    assert threshold["value"] == pytest.approx(CONSTANT_P) and threshold["chosen_on"] == "test"
    assert (threshold["chosen_on_infants"], threshold["chosen_on_positive"]) == (small.num_infants, num_cp)
    expected = size_warning("the threshold's split 'test'", num_cp, small.num_infants - num_cp)
    assert expected is not None and expected in result["warnings"] and f"warning: {expected}" in stderr
    assert result["labels"] == ["TD", "atypical"]
    page = (tmp_path / "report.html").read_text()
    assert f"chosen on the &#x27;test&#x27; split ({small.num_infants} infants, {num_cp} with CP)" in page
    assert "&#x27;TD&#x27;" in page and "class='warnings'" in page
    assert [r["class"] for r in csv.DictReader((tmp_path / "infants.csv").open())][0] == "atypical"


def test_predict_names_the_flags_the_class_and_the_id(constant_model, tmp_path, capsys):
    key = load_dataset(cohort(), "test").ids[0]
    recording = cohort().parent / "raw" / f"orgcoords_{key}.csv"
    argv = ["--checkpoint", constant_model, recording, "--out", tmp_path, "--labels", "typical,atypical",
            "--contributions"]  # fmt: skip
    code, stdout, stderr = run_main(predict.main, argv, capsys)
    assert code == 0, stderr
    assert f"warning: {constant_model}: {FLAGS[0]['message']}" in stderr
    rows = list(csv.reader((tmp_path / f"{key}_results.csv").open()))
    assert rows[0] == ["id", "risk", "prediction_threshold", "positive_classification", "class"]
    assert rows[1][0] == key and float(rows[1][1]) == pytest.approx(CONSTANT_P, rel=1e-5)
    assert rows[1][3:] == ["True", "atypical"]
    record = json.loads((tmp_path / f"{key}_windows.json").read_text())
    assert record["model_flags"] == {str(constant_model): FLAGS} and record["class"] == "atypical"
    assert record["window_quartiles"] == pytest.approx([CONSTANT_P] * 2, rel=1e-5)
    assert "logit shift -1.79" in record["calibration"] and "atypical" in stdout
    assert (tmp_path / f"{key}_cam.png").stat().st_size > 0


def test_bad_labels_are_one_line_errors(capsys, tmp_path):
    for text in ("CP", "CP,CP", ",CP", "a,b,c"):
        code, _, err = run_main(evaluate.main, ["--checkpoint", tmp_path, "--data", tmp_path, "--labels", text],
                                capsys)  # fmt: skip
        assert_one_line_error(code, err, "--labels", "two distinct non-empty class names")
        code, _, err = run_main(predict.main, ["--checkpoint", tmp_path, "x.csv", "--labels", text], capsys)
        assert_one_line_error(code, err, "--labels")


# ---------------------------------------------------------------------------------------------- pieces


def test_ppv_and_npv_intervals_from_the_counts():
    # 8 of 10 positive calls right: Clopper-Pearson by the beta quantiles, and the published 0.444-0.975
    out = evaluation.proportion_intervals({"tp": 8, "fp": 2, "tn": 3, "fn": 3})
    assert out["ppv_ci_low"] == pytest.approx(stats.beta.ppf(0.025, 8, 3))
    assert out["ppv_ci_high"] == pytest.approx(stats.beta.ppf(0.975, 9, 2))
    assert report.interval(0.8, out["ppv_ci_low"], out["ppv_ci_high"]) == "0.800 (0.444-0.975, width 0.53)"
    assert out["npv_ci_low"] == pytest.approx(stats.beta.ppf(0.025, 3, 4))
    assert out["npv_ci_high"] == pytest.approx(stats.beta.ppf(0.975, 4, 3))
    assert report.interval(math.nan, math.nan, math.nan) == "n/a"


def test_constant_risk_warning_uses_the_spread():
    risk = np.array([0.62214, 0.62221, 0.6222])
    assert evaluation.constant_risk_warning(risk).startswith("the risks of all 3 infants lie within 0.6221-0.6222")
    assert evaluation.constant_risk_warning(np.array([0.3, 0.32])) is None
    assert evaluation.constant_risk_warning(np.array([0.5])) is None


def test_bootstrap_classification_intervals():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    perfect = evaluation.bootstrap_classification_ci(labels, labels * 0.9, 0.5, 200)
    assert perfect == {"f1_ci_low": 1.0, "f1_ci_high": 1.0, "balanced_accuracy_ci_low": 1.0,
                       "balanced_accuracy_ci_high": 1.0}  # fmt: skip
    risk = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.3, 0.2])  # 2 of 3 CP and 3 of 4 others right: 17/24
    out = evaluation.bootstrap_classification_ci(labels, risk, 0.5, 500)
    assert 0 <= out["balanced_accuracy_ci_low"] < 17 / 24 < out["balanced_accuracy_ci_high"] <= 1


def _predictor(meta: dict) -> Predictor:
    return Predictor("m", None, None, meta=meta)


def test_calibration_flags_and_class_names_from_meta():
    corrected = inference.calibration_note([_predictor({"calibration": CALIBRATION})] * 2)
    assert corrected["corrected"] and "logit shift -1.79" in corrected["description"]
    assert "prevalence of 50 %" in corrected["description"]
    plain = inference.calibration_note([_predictor({}), _predictor({"calibration": CALIBRATION})])
    assert not plain["corrected"] and plain["description"].startswith("uncorrected (1 of 2 models corrected)")
    assert "--threshold youden" in plain["description"]
    odd = _predictor({"flags": [{"code": "chance_auc", "message": "AUC 0.5."}, "plain text"]})
    assert inference.model_flags([odd, _predictor({})]) == {
        "m": [{"code": "chance_auc", "message": "AUC 0.5."}, {"code": "flag", "message": "plain text"}]
    }
    assert inference.class_names([_predictor({"labels": ["TD", "CP"]})]) == ("TD", "CP")
    assert inference.class_names([_predictor({"labels": ["TD", "CP"]})], " a , b ") == ("a", "b")
    assert inference.class_names([_predictor({})]) == ("no CP", "CP")
    assert prediction.flag_note({"m": odd.meta["flags"][:1]}).startswith("1 flagged model(s) (chance_auc)")


def test_the_picture_is_drawn_head_up_whatever_the_convention():
    pose = np.zeros((LAYOUT.num_joints, 2))
    pose[list(LAYOUT.thorax), 1] = 1.0  # y up: thorax above pelvis already
    pose[list(LAYOUT.pelvis), 1] = 0.0
    assert not prediction.head_up_inverts(pose, LAYOUT)
    pose[:, 1] *= -1  # y down (image coordinates): the axis must be inverted
    assert prediction.head_up_inverts(pose, LAYOUT)


def test_results_csv_has_the_id_first_and_the_class_name_last():
    text = prediction.results_csv("0042", 0.7, 0.5, True, ("TD", "CP, spastic"))
    assert list(csv.reader(text.splitlines())) == [
        ["id", "risk", "prediction_threshold", "positive_classification", "certain_classification", "class"],
        ["0042", "0.7", "0.5", "True", "True", "CP, spastic"],
    ]
