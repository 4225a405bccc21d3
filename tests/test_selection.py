"""Model selection (`select`, `select_from`), the early stop against it, the training settings, the prior
calibration of the training data, and what a training run records (flags, calibration, labels)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from train_fixtures import TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, TINY_OVERRIDES, cohort

from jaxcp import train
from jaxcp.clinical import metrics, predictor
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import load_dataset
from jaxcp.data.splits import size_warning
from jaxcp.data.windows import balanced_window_plan, make_eval_windows, train_window_plan
from jaxcp.model import checkpoint
from jaxcp.training import run as training_run
from jaxcp.training import students
from jaxcp.training.archfile import arch_file_text


def track(config: students.TrainConfig, evaluations: list[tuple[float, float]]) -> students._Tracker:
    """A one-student tracker fed one (auc, loss) evaluation per epoch."""
    tracker = students._Tracker(1, config)
    for epoch, (auc, loss) in enumerate(evaluations):
        tracker.record_loss(epoch, np.array([0.5]))
        tracker.record_eval(epoch, [{"auc": auc, "loss": loss}])
        tracker.check_early_stop(epoch)
    return tracker


def kept(config: students.TrainConfig, evaluations) -> tuple[int, float]:
    [result] = track(config, evaluations).results(compile_s=0, train_s=0, eval_s=0, states=None)
    return result.best_epoch, result.reward


NO_STOP = students.TrainConfig(epochs=10, early_stop=False)


def test_select_auc_breaks_ties_by_loss_then_by_the_later_epoch():
    auc = dataclasses.replace(NO_STOP, select="auc")
    # epochs 2 and 3 tie at AUC 0.9: the lower loss (epoch 3) is kept; epoch 4 has a higher loss
    assert kept(auc, [(0.7, 0.3), (0.9, 0.6), (0.9, 0.4), (0.9, 0.5), (0.8, 0.1)]) == (3, 0.9)
    # equal AUC and loss: the later epoch
    assert kept(auc, [(0.9, 0.4), (0.9, 0.4), (0.6, 0.4)]) == (2, 0.9)
    # a lower loss never beats a higher AUC; an undefined AUC is never kept
    assert kept(auc, [(0.8, 0.6), (0.7, 0.1), (math.nan, 0.05)]) == (1, 0.8)


def test_select_loss_and_last():
    loss = dataclasses.replace(NO_STOP, select="loss")
    assert kept(loss, [(0.9, 0.5), (0.6, 0.3), (1.0, 0.4), (0.7, 0.3)]) == (4, 0.7)  # tie at 0.3: later
    assert NO_STOP.select == "last"
    assert kept(NO_STOP, [(0.9, 0.5), (1.0, 0.2), (0.6, 0.7)]) == (3, 0.6)
    tracker = track(NO_STOP, [(0.9, 0.5), (math.nan, 0.6)])  # the last epoch even with an undefined AUC
    assert (int(tracker.best_epoch[0]), tracker.reward(0)) == (2, 0.0)


def test_select_from_records_earlier_evaluations_but_keeps_none_of_them():
    auc = dataclasses.replace(NO_STOP, select="auc", select_from=3)
    tracker = track(auc, [(1.0, 0.1), (0.95, 0.2), (0.6, 0.5), (0.7, 0.6)])
    assert [h["val_auc"] for h in tracker.history[0]] == [1.0, 0.95, 0.6, 0.7]
    assert [h["val_loss"] for h in tracker.history[0]] == [0.1, 0.2, 0.5, 0.6]
    assert (int(tracker.best_epoch[0]), tracker.reward(0)) == (4, 0.7)
    assert kept(dataclasses.replace(NO_STOP, select="loss", select_from=2), [(0.5, 0.1), (0.6, 0.4)]) == (2, 0.6)


def test_early_stop_uses_the_best_auc_seen_not_the_kept_one():
    """AutoCP's early stop (epoch >= 6, best AUC < 0.5) looks at every evaluation."""
    config = students.TrainConfig(epochs=10, eval_every=1, select="loss")
    # kept by loss: AUC 0.3; but 0.7 was seen, so the student trains on
    tracker = track(config, [(0.7, 0.9), (0.3, 0.5)] + [(0.3, 0.6)] * 4)
    assert tracker.status == ["running"] and int(tracker.best_epoch[0]) == 2
    # never above 0.5 and nothing kept before epoch 8: stopped after epoch 6, reward = best AUC seen
    late = students.TrainConfig(epochs=10, eval_every=1, select="auc", select_from=8)
    tracker = track(late, [(0.3, 0.5), (0.45, 0.5), (0.4, 0.5), (0.2, 0.5), (0.1, 0.5), (0.2, 0.5)])
    [result] = tracker.results(compile_s=0, train_s=0, eval_s=0, states=None)
    assert (result.status, result.best_epoch, result.reward, result.metrics) == ("early_stopped", -1, 0.45, {})


def test_tracker_state_round_trips_with_the_kept_loss_and_the_best_auc_seen():
    tracker = track(dataclasses.replace(NO_STOP, select="loss"), [(0.9, 0.5), (0.6, 0.3)])
    again = students._Tracker.from_dict(json.loads(json.dumps(tracker.to_dict())), tracker.config)
    assert again.to_dict() == tracker.to_dict()
    assert (again.best_loss[0], again.max_auc[0], again.best_auc[0]) == (0.3, 0.9, 0.6)


@pytest.mark.parametrize("override, key", [
    ("select=best", "select"), ("sampling=uniform", "sampling"), ("calibration=platt", "calibration"),
    ("select_from=301", "select_from"), ("select_from=0", "select_from"), ("labels=[CP]", "labels"),
    ("labels=[CP, CP]", "labels"), ("select_from=x", "select_from"),
])  # fmt: skip
def test_bad_selection_settings_are_one_line_errors(override, key):
    with pytest.raises(InputError, match=key) as error:
        training_run.build_config(None, [override])
    assert "\n" not in str(error.value)


def test_selection_settings_are_read():
    config = training_run.build_config(
        None, ["select=auc", "select_from=20", "sampling=balanced", "calibration=none", "labels=[healthy, CP]"]
    )
    assert (config.select, config.select_from, config.sampling, config.calibration, config.labels) == (
        "auc", 20, "balanced", "none", ("healthy", "CP"))
    assert training_run.build_config(None, []).select == "last"
    with pytest.raises(InputError, match="select_from"):  # --epochs comes after the settings
        training_run.build_config(10, ["select_from=20"])


def test_calibration_of_the_sampling_plans():
    balanced = np.array([1, 0] * 10)
    autocp = students.calibration_of(balanced, train_window_plan(balanced, 30, 5))
    assert autocp == pytest.approx({"method": "prior", "logit_shift": -math.log(6), "train_prevalence": 0.5,
                                    "sampled_prevalence": 300 / 350})
    assert students.calibration_of(balanced, balanced_window_plan(balanced, 30, 5))["logit_shift"] == 0.0
    raw = students.calibration_of(balanced, train_window_plan(balanced, 30, 5), "none")
    assert raw["logit_shift"] == 0.0 and raw["sampled_prevalence"] == pytest.approx(300 / 350)
    few = np.array([1] * 3 + [0] * 12)  # balanced sampling: 75 CP and 72 non-CP windows
    shift = students.calibration_of(few, balanced_window_plan(few, 30, 5))["logit_shift"]
    assert shift == pytest.approx(math.log(3 / 12) - math.log(75 / 72))


def test_make_train_data_uses_the_sampling_setting():
    train_set = load_dataset(cohort(), "train")
    config = dataclasses.replace(TINY_CONFIG, sampling="balanced")
    plan = students.make_train_data(train_set, config).plan
    expected = balanced_window_plan(train_set.labels, TINY_CONFIG.parts_positive, TINY_CONFIG.parts_negative)
    np.testing.assert_array_equal(plan.infant, expected.infant)
    assert not np.array_equal(plan.infant, students.make_train_data(train_set, TINY_CONFIG).plan.infant)


def test_a_training_run_records_flags_calibration_and_labels(tmp_path, capsys):
    """`jaxcp train`, two seeds, two epochs (select: last): every saved model's meta.json and summary.json
    say how it is calibrated and flagged, its Predictor reproduces the (calibrated) validation loss and
    AUC, and the flags and small splits are warnings on stderr."""
    data_dir = cohort()
    (tmp_path / "arch.yaml").write_text(arch_file_text(TINY_ARCH, TINY_HPARAMS))
    sets = [x for item in [*TINY_OVERRIDES, "labels=[typical, CP]"] for x in ("--set", item)]
    argv = ["--arch", tmp_path / "arch.yaml", "--data", data_dir, "--out", tmp_path / "run", "--epochs", 2,
            "--seeds", 2, "--seed", 0, "--space", "none", "--quiet", *sets]
    assert train.main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    train_labels = load_dataset(data_dir, "train").labels
    n_pos, n = int(train_labels.sum()), train_labels.size
    w_pos, w_neg = 8 * n_pos, 3 * (n - n_pos)  # parts_positive 8, parts_negative 3
    calibration = {"method": "prior", "logit_shift": math.log(n_pos / (n - n_pos)) - math.log(w_pos / w_neg),
                   "train_prevalence": n_pos / n, "sampled_prevalence": w_pos / (w_pos + w_neg)}
    assert calibration["logit_shift"] == pytest.approx(-math.log(8 / 3))
    assert summary["calibration"] == pytest.approx(calibration) and summary["select"] == "last"
    val_set = load_dataset(data_dir, "val")
    windows = make_eval_windows(val_set, TINY_CONFIG.window, TINY_CONFIG.hop)
    expected_warnings = []
    for split, data in (("train", train_labels), ("val", val_set.labels)):
        what = f"the {'training' if split == 'train' else 'validation'} split {split!r}"
        line = size_warning(what, int(data.sum()), int((data == 0).sum()))
        expected_warnings += [f"warning: {line}"] if line else []
    for k, seed in enumerate(summary["seeds"]):
        meta = checkpoint.read_meta(tmp_path / "run" / f"seed_{k}")
        assert meta["best_epoch"] == seed["best_epoch"] == 2  # the last validated epoch
        assert meta["calibration"] == pytest.approx(calibration) and meta["labels"] == ["typical", "CP"]
        assert meta["logit_shift"] == pytest.approx(calibration["logit_shift"])
        assert meta["flags"] == seed["flags"] == metrics.model_flags(
            meta["metrics"], int(val_set.labels.sum()), int((val_set.labels == 0).sum()))
        expected_warnings += [f"warning: seed {seed['seed']}: {f['message']}" for f in seed["flags"]]
        model = predictor.load_checkpoint(tmp_path / "run" / f"seed_{k}")
        probs, _ = model(windows.windows)
        again = metrics.evaluate_windows(probs, windows.owner, val_set.labels)
        assert again["loss"] == pytest.approx(meta["metrics"]["loss"], rel=1e-4)
        assert again["auc"] == pytest.approx(meta["metrics"]["auc"])
    assert any(w.startswith("warning: seed ") for w in expected_warnings)  # 2 epochs: near-constant risks
    assert [line for line in err.splitlines() if line.startswith("warning:")] == expected_warnings


def test_train_summary_gives_every_figure_with_its_interval():
    subject = metrics.subject_metrics(np.array([1] * 10 + [0] * 10), np.r_[np.linspace(0.6, 0.9, 10),
                                                                          np.linspace(0.1, 0.55, 10)])
    summary = {"epochs": 2, "seconds_compile": 1.0, "seconds_train": 2.0, "seconds_eval": 3.0,
               "seeds": [{"seed": 7, "status": "ok", "best_epoch": 2, "metrics": subject, "checkpoint": "seed_0"}]}
    row = train.format_summary(summary).splitlines()[1]
    low, high = metrics.hanley_mcneil_ci(subject["auc"], 10, 10)
    assert f"{subject['auc']:.3f} ({low:.2f}-{high:.2f})" in row
    assert f"{subject['accuracy']:.3f} ({subject['accuracy_ci_low']:.2f}-{subject['accuracy_ci_high']:.2f})" in row
