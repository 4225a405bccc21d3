"""Student training loop: validation schedule, best epoch, early stop, failures, resuming, and learning."""

from __future__ import annotations

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, cohort, tiny_data

from jaxcp.clinical import metrics
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import load_dataset
from jaxcp.training import checkpoint, engine, students


def evaluated_epochs(config: students.TrainConfig) -> list[int]:
    return [e + 1 for e in range(config.epochs) if config.evaluates_at(e)]


def test_validation_schedule_of_students_and_long_runs():
    assert evaluated_epochs(students.TrainConfig()) == list(range(5, 51, 5))
    expected_long = sorted(set(range(5, 286, 5)) | set(range(286, 301)))
    assert evaluated_epochs(students.LONG_SCHEDULE) == expected_long
    assert evaluated_epochs(students.TrainConfig(epochs=12, eval_every=5)) == [5, 10, 12]  # the last epoch too
    assert not students.LONG_SCHEDULE.early_stop


def _metrics(auc: float) -> dict:
    return {"auc": auc, "accuracy": 0.5}


def test_tracker_with_select_auc_keeps_the_highest_auc_and_the_later_of_ties():
    """AutoCP's rule (select="auc"), except that an equal AUC (no loss recorded: equal losses) goes to the
    later epoch; AutoCP kept the first epoch with the strictly highest AUC (epoch 2 here)."""
    tracker = students._Tracker(1, students.TrainConfig(early_stop=False, select="auc"))
    for epoch, auc in enumerate([0.6, 0.8, 0.8, 0.7]):
        tracker.record_loss(epoch, np.array([0.5]))
        improved = tracker.record_eval(epoch, [_metrics(auc)])
        assert improved[0] == (epoch in (0, 1, 2))
    [result] = tracker.results(compile_s=0, train_s=0, eval_s=0, states=None)
    assert (result.reward, result.best_epoch, result.status) == (0.8, 3, "ok")
    assert [h["val_auc"] for h in result.history] == [0.6, 0.8, 0.8, 0.7]


def test_early_stop_from_epoch_6_when_the_best_auc_is_below_half():
    """AutoCP: checked after every epoch once epoch + 1 >= 6; only validated students can stop."""
    config = students.TrainConfig(eval_every=5)
    tracker = students._Tracker(3, config)
    aucs = {4: [0.4, 0.6, float("nan")]}  # epoch 5 (0-based 4): student 2 has no defined AUC
    for epoch in range(6):
        tracker.record_loss(epoch, np.zeros(3))
        if config.evaluates_at(epoch):
            tracker.record_eval(epoch, [_metrics(a) for a in aucs[epoch]])
        tracker.check_early_stop(epoch)
        if epoch < 5:
            assert tracker.status == ["running"] * 3
    assert tracker.status == ["early_stopped", "running", "early_stopped"]
    results = tracker.results(compile_s=0, train_s=0, eval_s=0, states=None)
    assert [r.reward for r in results] == [0.4, 0.6, 0.0]
    assert not tracker.stopped()


def test_a_non_finite_loss_fails_only_that_student():
    tracker = students._Tracker(2, students.TrainConfig(early_stop=False))
    tracker.record_loss(0, np.array([0.7, 0.7]))
    tracker.record_eval(0, [_metrics(0.9), _metrics(0.6)])
    tracker.record_loss(1, np.array([np.nan, 0.6]))
    tracker.record_eval(1, [_metrics(0.95), _metrics(0.7)])  # ignored for the failed student
    results = tracker.results(compile_s=0, train_s=0, eval_s=0, states=None)
    assert [r.status for r in results] == ["failed", "ok"]
    assert [r.reward for r in results] == [0.0, 0.7]


def test_tracker_round_trips_through_json():
    tracker = students._Tracker(2, students.TrainConfig())
    tracker.record_loss(0, np.array([0.1234567890123, np.inf]))
    tracker.record_eval(0, [_metrics(0.7123456789), _metrics(0.2)])
    again = students._Tracker.from_dict(json.loads(json.dumps(tracker.to_dict())), tracker.config)
    assert again.to_dict() == tracker.to_dict()
    np.testing.assert_array_equal(again.best_auc, tracker.best_auc)


# ---------------------------------------------------------------------------------------------- compiled


def _run(**kwargs) -> students.StudentRun:
    train_data, val_data = tiny_data()
    hps = [TINY_HPARAMS, TINY_HPARAMS]
    return students.StudentRun(TINY_ARCH, hps, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG, **kwargs)


def test_nan_in_one_student_fails_it_and_the_other_trains_on():
    run = _run()
    # a NaN learning rate for student 1: its parameters turn NaN after its first update
    run.state = run.state.replace(base_lr=run.state.base_lr.at[1].set(jnp.nan))
    seen = []
    while not run.finished:
        seen.append(run.run_epoch())
    ok, failed = run.results()
    assert [r.epoch for r in seen] == [1, 2]
    assert (failed.status, failed.reward, failed.state) == ("failed", 0.0, None)
    assert ok.status == "ok" and np.isfinite([h["loss"] for h in ok.history]).all()
    assert len(ok.history) == TINY_CONFIG.epochs and 0.0 <= ok.reward <= 1.0
    chex.assert_tree_all_finite(engine.select_student(run.state, 0).params)


def test_snapshot_restore_continues_bit_for_bit(tmp_path):
    """Train 2 epochs; or 1 epoch, save the run state with Orbax, restore into a new run, 1 more epoch."""
    straight = _run(keep_state=True)
    while not straight.finished:
        straight.run_epoch()
    first = _run(keep_state=True)
    first.run_epoch()
    checkpoint.save_run_state(tmp_path / "progress", *first.snapshot())
    second = _run(keep_state=True)
    arrays, info = checkpoint.restore_run_state(tmp_path / "progress", second.snapshot()[0])
    second.restore(arrays, info)
    assert second.epoch == 1
    while not second.finished:
        second.run_epoch()
    for a, b in zip(
        jax.tree.leaves(straight.snapshot()[0]), jax.tree.leaves(second.snapshot()[0]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    as_text = lambda run: json.dumps(run.tracker.to_dict(), sort_keys=True)  # noqa: E731 (NaN == NaN as text)
    assert as_text(straight) == as_text(second)


def test_too_few_training_windows_for_a_batch_is_bad_input():
    train_data, val_data = tiny_data()
    big = TINY_HPARAMS.__class__(**{**TINY_HPARAMS.__dict__, "batch_size": 4096})
    with pytest.raises(InputError, match="fewer than a batch"):
        students.StudentRun(TINY_ARCH, [big], [0], train_data, val_data, LAYOUT, TINY_CONFIG)


def test_it_learns_the_synthetic_cp_pattern():
    """Proof that it learns: the tiny architecture trained for 16 epochs (two seeds, `select: last`) scores
    the 25 infants it never trained on (validation and test splits, 10 CP) so that the two seeds' mean
    risk ranks them better than chance at p < 1e-3, its risks are not flagged constant, its loss falls.

    Why a model that does not learn fails with probability < 1e-3: the test's statistic is the exact
    one-sided Mann-Whitney p-value of the ensemble's subject scores against the labels, P(U >= u) over the
    C(25, 10) = 3,268,760 equally likely ways to place the CP labels. A model that learnt nothing scores
    infants independently of their labels (its weights come from seeds and training infants only), so all
    placements are equally likely and P(p-value <= 1e-3) <= 1e-3, however its scores are distributed (the
    risks are continuous: no ties). p < 1e-3 needs an AUC of about 0.87 or more; with
    `select: last` nothing is chosen on these infants, so the split is not used twice.
    """
    train_data, val_data = tiny_data()
    config = dataclasses.replace(TINY_CONFIG, epochs=16, eval_every=4)
    run = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [0, 1], train_data, val_data, LAYOUT, config)
    while not run.finished:
        run.run_epoch()
    results = run.results()
    assert [r.best_epoch for r in results] == [16, 16] and [r.status for r in results] == ["ok", "ok"]
    scores, labels = [], []
    for split in ("val", "test"):
        dataset = load_dataset(cohort(), split)
        data = students.make_eval_data(dataset, LAYOUT, config)
        probs = np.asarray(run.compiled(run.programs.predict, run.state, data.features))  # (2, windows)
        scores.append(metrics.subject_scores(probs.mean(0), data.owner, dataset.num_infants))
        labels.append(np.asarray(dataset.labels))
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert (len(labels), int(labels.sum())) == (25, 10) and len(np.unique(scores)) == 25
    p = mannwhitneyu(scores[labels == 1], scores[labels == 0], alternative="greater", method="exact").pvalue
    assert p < 1e-3, (p, metrics.roc_auc(labels, scores))
    for r in results:
        assert "constant_risk" not in [f["code"] for f in r.flags]
        losses = [h["loss"] for h in r.history]
        assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert results[0].calibration["logit_shift"] == pytest.approx(-np.log(8 / 3))  # 8 / 3 windows per CP / other
