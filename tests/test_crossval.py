"""Cross-validation: folds, pooled out-of-fold metrics, and `jaxcp crossval` end to end on a tiny cohort.

The command runs once (16 infants, 4 folds, 2 epochs, one compile); the other end-to-end tests read its
run folder or resume a copy of it in the same process (no new compile).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import numpy as np
import pytest
from train_fixtures import _ROOT, LAYOUT, TINY_ARCH, TINY_HPARAMS

from jaxcp import crossval as command
from jaxcp.clinical import metrics, pooling
from jaxcp.core.errors import InputError
from jaxcp.data import synth
from jaxcp.data.dataset import load_dataset
from jaxcp.data.prepare import PrepareConfig, prepare_dataset
from jaxcp.data.splits import SplitConfig
from jaxcp.nas.config import load_search_config
from jaxcp.training import crossval, engine
from jaxcp.training.archfile import arch_file_text
from jaxcp.training.checkpoint import restore_run_state
from jaxcp.training.experiment import Experiment
from jaxcp.training.run import build_config
from jaxcp.training.students import TrainConfig, program_spec

WINDOW = 45
OVERRIDES = ["eval_every=1", f"window={WINDOW}", f"hop={WINDOW}", "parts_positive=8", "parts_negative=8",
             "features.streams=V"]  # fmt: skip
EPOCHS, FOLDS = 2, 4


@functools.cache
def small_cohort():
    """16 infants (8 CP) of 6 s, prepared with windows of 1.5 s; made once per test process."""
    root = _ROOT / "crossval_cohort"
    synth.generate_cohort(root / "raw", layout=LAYOUT, infants=16, minutes=0.1, cp_fraction=0.5, seed=5,
                          workers=1)  # fmt: skip
    config = PrepareConfig(window=WINDOW, split=SplitConfig(test_fraction=0.2, val_fraction=0.3))
    prepare_dataset(root / "raw", root / "processed", layout=LAYOUT, config=config, seed=5, workers=1)
    (root / "arch.yaml").write_text(arch_file_text(TINY_ARCH, TINY_HPARAMS))
    return root


def argv(out, *extra) -> list[str]:
    root = small_cohort()
    sets = [x for item in OVERRIDES for x in ("--set", item)]
    return ["--arch", str(root / "arch.yaml"), "--data", str(root / "processed"), "--out", str(out),
            "--epochs", str(EPOCHS), "--folds", str(FOLDS), "--threshold", "youden", "--space", "none", "--quiet",
            *sets, *extra]  # fmt: skip


def request() -> crossval.CrossvalRequest:
    root = small_cohort()
    data = str((root / "processed").resolve())
    return crossval.CrossvalRequest(TINY_ARCH, TINY_HPARAMS, build_config(EPOCHS, OVERRIDES), (1234,), data,
                                    ("train", "val", "test"), FOLDS, 1234, "youden")  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("crossval") / "cv"
    assert command.main(argv(out)) == 0
    return out


# -------------------------------------------------------------------------------------------- pooled metrics
def test_within_fold_auc_is_the_pair_weighted_mean_of_fold_aucs():
    labels = np.array([1, 1, 0, 0, 0, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.4, 0.5, 0.1, 0.4, 0.2, 0.3, 0.2, 0.7, 0.7])
    folds = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    # by hand: fold 0: CP 0.9 beats all 3; CP 0.4 beats 0.1, ties 0.4, loses to 0.5 -> 4.5 of 6 pairs;
    # fold 1: CP 0.2 loses to 0.3, ties 0.2 -> 0.5 of 2; fold 2: tie -> 0.5 of 1. (4.5 + 0.5 + 0.5) / 9
    assert pooling.within_fold_auc(labels, scores, folds) == pytest.approx(5.5 / 9)
    per_fold = [(metrics.roc_auc(labels[folds == k], scores[folds == k]), (folds == k) & (labels == 1))
                for k in range(3)]  # fmt: skip
    weights = [m.sum() * ((folds == k) & (labels == 0)).sum() for k, (_, m) in enumerate(per_fold)]
    assert pooling.within_fold_auc(labels, scores, folds) == pytest.approx(
        np.average([a for a, _ in per_fold], weights=weights))
    # one fold: the ordinary AUC; a fold with one class adds no pairs
    assert pooling.within_fold_auc(labels, scores, np.zeros(10)) == pytest.approx(metrics.roc_auc(labels, scores))
    folds_one_class = np.where(np.arange(10) == 5, 3, folds)  # CP infant 5 alone in fold 3
    assert pooling.within_fold_auc(labels, scores, folds_one_class) == pytest.approx(4.5 / 6 * 6 / 7 + 0.5 / 7)
    # scales of different folds are never compared: shifting one fold's scores changes nothing
    shifted = np.where(folds == 1, scores + 10, scores)
    assert pooling.within_fold_auc(labels, shifted, folds) == pooling.within_fold_auc(labels, scores, folds)
    assert metrics.roc_auc(labels, shifted) != metrics.roc_auc(labels, scores)
    low, high = pooling.within_fold_auc_ci(labels, scores, folds, n_boot=500)
    assert 0 <= low <= 5.5 / 9 <= high <= 1
    separated = np.where(labels == 1, 1.0, 0.0) + folds
    assert pooling.within_fold_auc_ci(labels, separated, folds, n_boot=200) == (1.0, 1.0)


def test_pooled_counts_use_each_folds_own_threshold():
    labels = np.array([1, 0, 1, 0, 1, 0])
    risk = np.array([0.6, 0.55, 0.3, 0.1, 0.9, 0.8])
    folds = np.array([0, 0, 1, 1, 2, 2])
    thresholds = np.array([0.58, 0.58, 0.2, 0.2, 0.85, 0.85])  # every call right
    result = pooling.crossval_result([f"i{k}" for k in range(6)], labels, risk, folds, thresholds, n_boot=100)
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (3, 0, 3, 0)
    assert result["sensitivity"] == 1.0 and result["sensitivity_ci"] == pytest.approx(
        list(metrics.clopper_pearson(3, 3)))
    assert result["auc"] == 1.0 and result["auc_pooled"] == pytest.approx(metrics.roc_auc(labels, risk))
    assert result["auc_pooled"] < 1.0  # pooling all risks mixes the folds' scales
    assert [i["positive"] for i in result["infants"]] == [True, False, True, False, True, False]


# -------------------------------------------------------------------------------------------- folds and plans
def _cohort_and_folds(num_folds=FOLDS):
    data = small_cohort() / "processed"
    cohort = crossval.load_cohort(data, ("train", "val", "test"))
    return cohort, crossval.assign_folds(cohort, None, num_folds, seed=7)


def test_folds_are_stratified_infant_disjoint_and_plans_hold_only_training_infants():
    cohort, assignment = _cohort_and_folds()
    assert sorted(cohort.ids) == sorted(
        i for split in ("train", "val", "test") for i in load_dataset(small_cohort() / "processed", split).ids)
    members = [set(assignment.members(k)) for k in range(FOLDS)]
    assert sum(len(m) for m in members) == 16 and set().union(*members) == set(range(16))
    assert [int(cohort.labels[list(m)].sum()) for m in members] == [2, 2, 2, 2]
    config = build_config(EPOCHS, OVERRIDES)
    plans = crossval.fold_plans(assignment, config, seeds_per_fold=2)
    assert np.asarray(plans.infant).shape[0] == 2 * FOLDS
    for j in range(2 * FOLDS):
        parts = assignment.parts(j // 2)
        valid = int(plans.num_valid[j])
        trained = set(np.asarray(plans.infant[j])[:valid].tolist())
        assert trained == set(parts["train"].tolist())
        assert not trained & set(parts["val"].tolist()) and not trained & set(parts["test"].tolist())
        assert set(parts["test"].tolist()) == members[j // 2]
        assert set(parts["val"].tolist()) == members[(j // 2 + 1) % FOLDS]
        assert valid == 8 * len(parts["train"])  # parts_positive = parts_negative = 8


def test_each_fold_is_prior_corrected_from_its_own_training_infants():
    # 15 infants in 3 folds: fold 0's training part is fold 2 alone (fold 1 is its inner validation)
    labels = np.array([1, 0, 0, 0, 0] * 3)
    fold = np.repeat(np.arange(3), 5)
    assignment = crossval.FoldAssignment(tuple(f"i{n}" for n in range(15)), labels, fold, 3, "drawn")
    config = TrainConfig(parts_positive=30, parts_negative=5)
    calibration = crossval.fold_calibration(assignment, 0, config)
    # 1 CP and 4 non-CP training infants; 30 and 20 windows per epoch
    assert calibration["logit_shift"] == pytest.approx(math.log(1 / 4) - math.log(30 / 20))
    assert calibration["train_prevalence"] == pytest.approx(0.2) and calibration["sampled_prevalence"] == 0.6
    # a window probability equal to the sampled prior (0.6) maps to the infants' prior 0.2
    assert metrics.apply_logit_shift(np.array([0.6]), calibration["logit_shift"])[0] == pytest.approx(0.2)
    balanced = crossval.fold_calibration(assignment, 0, TrainConfig(sampling="balanced"))
    assert balanced["sampled_prevalence"] == pytest.approx(0.5, abs=0.02)
    assert crossval.fold_calibration(assignment, 0, TrainConfig(calibration="none"))["logit_shift"] == 0.0


def test_bad_folds_are_one_line_errors(tmp_path, capsys):
    for extra, message in ((["--folds", "9"], "more folds than infants of the smaller class"),
                           (["--folds", "2"], "at least 3"), (["--splits", "train,bogus"], "unknown split"),
                           (["--threshold", "best"], "--threshold")):  # fmt: skip
        with pytest.raises(SystemExit) as stop:
            command.main(argv(tmp_path / "bad", *extra))
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
    cohort, _ = _cohort_and_folds()
    only_cp = dataclasses.replace(cohort, labels=np.ones(16, np.int32))
    with pytest.raises(InputError, match="needs CP and non-CP"):
        crossval.assign_folds(only_cp, None, 4, 0)


# -------------------------------------------------------------------------------------------- the command
def test_crossval_writes_pooled_out_of_fold_results(run_dir):
    result = json.loads((run_dir / "metrics.json").read_text())
    for key in ("auc", "auc_ci", "auc_pooled", "auc_pooled_ci", "sensitivity", "sensitivity_ci", "specificity",
                "specificity_ci", "accuracy", "accuracy_ci", "ppv", "npv", "tp", "fp", "tn", "fn", "threshold",
                "folds", "warnings", "seconds", "fold_source", "pooling"):  # fmt: skip
        assert key in result, key
    assert result["format"] == "jaxcp-crossval-1" and result["num_folds"] == FOLDS
    rows = (run_dir / "infants.csv").read_text().splitlines()
    assert rows[0] == "id,label,risk,fold,positive" and len(rows) == 17
    ids = [r.split(",")[0] for r in rows[1:]]
    assert len(set(ids)) == 16  # every infant exactly once
    fold_of = {i: f["fold"] for f in result["folds"] for i in f["ids"]}
    assert {r.split(",")[0]: int(r.split(",")[3]) for r in rows[1:]} == fold_of
    labels = np.array([int(r.split(",")[1]) for r in rows[1:]])
    risk = np.array([float(r.split(",")[2]) for r in rows[1:]])
    folds = np.array([int(r.split(",")[3]) for r in rows[1:]])
    assert result["auc"] == pytest.approx(pooling.within_fold_auc(labels, risk, folds))
    assert result["auc_ci"][0] <= result["auc"] <= result["auc_ci"][1]
    assert [f["auc"] for f in result["folds"]] == pytest.approx(
        [metrics.roc_auc(labels[folds == k], risk[folds == k]) for k in range(FOLDS)])
    assert result["tp"] + result["fn"] == 8 and result["tn"] + result["fp"] == 8
    assert any("each fold's test part" in w for w in result["warnings"])
    report = (run_dir / "report.md").read_text()
    assert "AUC (within folds)" in report and "CI width" in report and "Warnings" in report
    assert (run_dir / "roc.png").stat().st_size > 0
    assert sorted(p.name for p in run_dir.glob("fold_*/seed_0")) == ["seed_0"] * FOLDS


def test_all_folds_compile_one_epoch_program(run_dir):
    programs = engine.get_programs(program_spec(TINY_ARCH, LAYOUT, TINY_HPARAMS.batch_size,
                                                build_config(EPOCHS, OVERRIDES)))  # fmt: skip
    kinds = [key[0] for key in programs.compiled]
    assert kinds.count(programs.fold_epoch) == 1 and kinds.count(programs.epoch) == 0
    assert kinds.count(programs.predict) == 1


def test_thresholds_are_chosen_on_inner_validation_infants_only(run_dir):
    """Rebuild the run from its saved state: each fold's threshold is Youden's on its inner validation
    infants' risks, and the test risks are those of infants.csv."""
    result = json.loads((run_dir / "metrics.json").read_text())
    run, _ = crossval.prepare_crossval(request())
    arrays, info = restore_run_state(run_dir / "progress", run.snapshot()[0])
    run.restore(arrays, info)
    rows = {r.split(",")[0]: float(r.split(",")[2]) for r in (run_dir / "infants.csv").read_text().splitlines()[1:]}
    labels = run.assignment.labels
    for fold, saved in zip(crossval.fold_risks(run, run.kept_probs()), result["folds"], strict=True):
        (val, val_risk), (test, test_risk) = fold["val"], fold["test"]
        assert not set(val.tolist()) & set(test.tolist())
        assert saved["threshold"] == pytest.approx(metrics.youden_threshold(labels[val], val_risk))
        assert [rows[run.assignment.ids[i]] for i in test] == pytest.approx(test_risk.tolist())
    # and the rule itself: a test part that would move the threshold does not
    val_labels, val_risk = np.array([1, 0, 1, 0]), np.array([0.7, 0.2, 0.6, 0.4])
    rule = crossval.ThresholdRule.parse("youden")
    assert crossval.choose_fold_threshold(rule, val_labels, val_risk) == 0.6
    assert metrics.youden_threshold(np.array([1, 0]), np.array([0.3, 0.1])) == 0.3


def test_interrupted_crossval_resumes_to_the_same_metrics(run_dir, tmp_path, monkeypatch, capsys):
    save = crossval.save_run_state

    def save_then_die(path, arrays, info):
        save(path, arrays, info)
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    out = tmp_path / "cv"
    monkeypatch.setattr(crossval, "save_run_state", save_then_die)
    assert command.main(argv(out)) == 130
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(crossval, "save_run_state", save)
    assert command.main(argv(out)) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    before, after = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, out))
    for data in (before, after):
        data.pop("seconds")
    assert before == after
    # a finished run is not redone
    text = (out / "metrics.json").read_text()
    assert command.main(argv(out)) == 0 and "already finished" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == text
    test_all_folds_compile_one_epoch_program(run_dir)  # the resumed run compiled nothing new


def test_search_students_can_be_rewarded_by_inner_cross_validation(run_dir):
    """Experiment fold mode on the same infants, folds and seed as the command's run: the reward is the mean
    of the folds' best inner-validation AUCs that the run recorded (and nothing is compiled again)."""
    data = small_cohort() / "processed"
    config = build_config(EPOCHS, OVERRIDES)
    experiment = Experiment(LAYOUT, crossval.load_cohort(data, ("train", "val")), load_dataset(data, "test"),
                            config, config, folds=FOLDS, fold_seed=1234)  # fmt: skip
    [result] = experiment.train(TINY_ARCH, [TINY_HPARAMS], [1234])
    tracker = json.loads((run_dir / "progress" / "progress.json").read_text())["tracker"]
    assert result.metrics["fold_val_auc"] == pytest.approx(tracker["best_auc"])
    assert result.reward == pytest.approx(np.mean(tracker["best_auc"]))
    test_all_folds_compile_one_epoch_program(run_dir)
    with pytest.raises(InputError, match="student.folds"):
        load_search_config("quick", ["student.folds=2"])
    assert load_search_config("quick", ["student.folds=5"]).student.folds == 5


def test_manifest_folds_are_used_when_every_infant_has_one():
    cohort, _ = _cohort_and_folds()
    data = small_cohort() / "processed"
    assert crossval.manifest_folds(data, cohort.ids) is None  # the test infants have no fold
    train_val = crossval.load_cohort(data, ("train", "val"))
    given = crossval.manifest_folds(data, train_val.ids)
    assert given is not None and (given >= 0).all()
    labels = np.repeat([0, 1], 8)
    ids = tuple(f"i{k}" for k in range(16))
    fake = dataclasses.replace(cohort, ids=ids, labels=labels)
    given = np.tile([3, 5, 7, 9], 4)  # renumbered 0..3
    assignment = crossval.assign_folds(fake, given, None, seed=0)
    assert assignment.source == "manifest" and assignment.num_folds == 4
    np.testing.assert_array_equal(assignment.fold, np.tile([0, 1, 2, 3], 4))
    assert crossval.assign_folds(fake, given, 4, seed=0).source == "drawn"  # --folds draws new ones
