"""Model checkpoints and run states: bit-identical predictions after restoring, and every damaged input."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import jax
import numpy as np
import pytest
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, tiny_data

from jaxcp.clinical import export, inference, predictor
from jaxcp.core.config import from_dict, jsonable, to_dict
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import DataSettings
from jaxcp.data.preprocess import PreprocessConfig
from jaxcp.model import checkpoint
from jaxcp.training import engine, students
from jaxcp.training.checkpoint import restore_run_state, save_run_state

DATA = DataSettings(
    preprocess=PreprocessConfig(trunk_multiple=4.0), confidence_threshold=0.25, fps=30.0, source="/somewhere"
)


@pytest.fixture(scope="module")
def trained():
    """(StudentRun after one epoch, student 0's TrainState)."""
    train_data, val_data = tiny_data()
    run = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG)
    run.run_epoch()
    return run, run.student_state(0)


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    _, state = trained
    path = tmp_path_factory.mktemp("ckpt") / "model"
    checkpoint.save_model(path, state.variables, TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, DATA),
                          hparams=TINY_HPARAMS, metrics={"auc": 0.75, "ppv": float("nan")},
                          extra={"best_epoch": 1})  # fmt: skip
    return path


def windows(count: int = 21) -> np.ndarray:
    _, val_data = tiny_data()
    rng = np.random.default_rng(3)
    return rng.normal(0, 0.5, size=(count, TINY_CONFIG.window, LAYOUT.num_joints, 2)).astype(np.float32)


def test_restored_model_has_every_setting(saved):
    restored = checkpoint.restore_model(saved)
    spec = restored.spec
    assert (spec.arch, restored.hparams, spec.layout) == (TINY_ARCH, to_dict(TINY_HPARAMS), LAYOUT)
    assert (spec.features, spec.window, spec.hop) == (TINY_CONFIG.features, TINY_CONFIG.window, TINY_CONFIG.hop)
    assert spec.data == DATA
    assert restored.metrics == {"auc": 0.75, "ppv": None} and restored.meta["best_epoch"] == 1
    assert from_dict(DataSettings, to_dict(DATA)) == DATA


def test_restore_gives_bit_identical_predictions(trained, saved):
    run, state = trained
    x = windows()
    spec = TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, DATA)
    in_memory = predictor.checkpoint_predictor(checkpoint.RestoredModel(spec, state.variables, {}, {}, saved))
    restored = predictor.load_checkpoint(saved)
    p_memory, c_memory = in_memory(x)
    p_restored, c_restored = restored(x)
    np.testing.assert_array_equal(p_memory, p_restored)
    np.testing.assert_array_equal(c_memory, c_restored)
    # the training engine's own predict program agrees (another compiled program: float tolerance)
    features = engine.featurise(x, LAYOUT, TINY_CONFIG.features)
    engine_probs = np.asarray(run.programs.predict(run.state, features))[0]
    np.testing.assert_allclose(p_restored, engine_probs, rtol=1e-5, atol=1e-6)
    assert ((c_restored >= 0) & (c_restored <= 1)).all() and c_restored.max() > 0


def test_exported_file_matches_the_model(saved, tmp_path):
    x = windows()
    path = export.write_export(checkpoint.restore_model(saved), tmp_path / "model.jaxcp", platforms=("cpu",))
    exported = export.load_exported(path, chunk=8)  # another chunk size: the batch dimension is symbolic
    reference = predictor.load_checkpoint(saved)
    for a, b in zip(exported(x), reference(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert exported.spec == reference.spec == TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, DATA)


def test_a_calibrated_model_shifts_its_probabilities_after_restoring_and_exporting(trained, saved, tmp_path):
    """A model saved with logit_shift gives sigmoid(logit(raw) + shift), bit-identical to the in-memory model;
    its export carries the shift, the calibration, the labels and the flags; older checkpoints mean 0."""
    _, state = trained
    shift = -math.log(6)
    spec = TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, DATA, logit_shift=shift)
    calibration = {"method": "prior", "logit_shift": shift, "train_prevalence": 0.5, "sampled_prevalence": 6 / 7}
    flags = [{"code": "chance_auc", "message": "its validation AUC ..."}]
    path = checkpoint.save_model(tmp_path / "calibrated", state.variables, spec, extra={
        "calibration": calibration, "labels": ["no CP", "CP"], "flags": flags})
    x = windows()
    raw, _ = predictor.load_checkpoint(saved)(x)  # the same weights without a shift
    restored = checkpoint.restore_model(path)
    assert restored.spec == spec and restored.meta["logit_shift"] == shift
    calibrated, contributions = predictor.checkpoint_predictor(restored)(x)
    logits = np.log(raw.astype(np.float64)) - np.log1p(-raw.astype(np.float64)) + shift
    np.testing.assert_allclose(calibrated, 1 / (1 + np.exp(-logits)), rtol=1e-6)
    assert calibrated.dtype == np.float32 and (calibrated < raw).all()
    in_memory = predictor.checkpoint_predictor(checkpoint.RestoredModel(spec, state.variables, {}, {}, path))
    np.testing.assert_array_equal(in_memory(x)[0], calibrated)
    exported = export.load_exported(export.write_export(restored, tmp_path / "m.jaxcp", platforms=("cpu",)))
    assert exported.spec == spec
    assert (exported.meta["calibration"], exported.meta["labels"], exported.meta["flags"]) == (
        calibration, ["no CP", "CP"], flags)
    np.testing.assert_allclose(exported(x)[0], calibrated, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exported(x)[1], contributions, rtol=1e-5, atol=1e-6)
    meta = json.loads((path / "meta.json").read_text())
    del meta["logit_shift"]  # a checkpoint from before calibration
    (path / "meta.json").write_text(json.dumps(meta))
    assert checkpoint.restore_model(path).spec.logit_shift == 0.0
    meta["logit_shift"] = "much"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="meta.json"):
        checkpoint.restore_model(path)


def test_contributions_by_hand():
    """CAM: class maps, median over time, CP - no CP, scaled by the largest magnitude, clipped at 0."""
    rng = np.random.default_rng(0)
    fmap, kernel = rng.normal(size=(3, 5, 4, 6)), rng.normal(size=(6, 2))
    cam = np.einsum("btvc,ck->bktv", fmap, kernel)
    diff = np.median(cam[:, 1], axis=1) - np.median(cam[:, 0], axis=1)
    expected = np.maximum(diff / np.abs(diff).max(axis=1, keepdims=True), 0)
    got = predictor.window_contributions(fmap.astype(np.float32), kernel.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "copy")


def test_missing_or_damaged_checkpoints_are_one_line_errors(saved, tmp_path):
    with pytest.raises(InputError, match="checkpoint folder not found"):
        checkpoint.restore_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no meta.json"):
        checkpoint.restore_model(tmp_path / "empty")
    copy = _copy(saved, tmp_path)
    (copy / "meta.json").write_text("{ not json")
    with pytest.raises(InputError, match="damaged checkpoint metadata"):
        checkpoint.restore_model(copy)
    shutil.rmtree(copy)
    copy = _copy(saved, tmp_path)
    for path in (copy / "state").rglob("*"):
        if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
            path.write_bytes(b"\0" * 7)
    with pytest.raises(InputError, match="damaged checkpoint"):
        checkpoint.restore_model(copy)


def test_weights_that_do_not_fit_the_settings_are_named(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    meta = json.loads((copy / "meta.json").read_text())
    meta["features"]["streams"] = "JVB"  # three input streams: weights of one are stored
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        checkpoint.restore_model(copy)
    meta["features"]["streams"] = "V"
    meta["arch"]["init_channels"] = "many"
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="init_channels"):
        checkpoint.restore_model(copy)


def test_run_state_round_trip_and_damage(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "k": np.array([1, 2], np.uint32)}
    save_run_state(tmp_path / "run", arrays, {"epoch": 3, "x": [1.5, None]})
    back, info = restore_run_state(tmp_path / "run", arrays)
    assert info == {"epoch": 3, "x": [1.5, None]}
    for key in arrays:
        np.testing.assert_array_equal(back[key], arrays[key])
        assert np.asarray(back[key]).dtype == arrays[key].dtype
    with pytest.raises(InputError, match="do not fit"):
        restore_run_state(tmp_path / "run", {"a": np.zeros((3, 3), np.float32), "k": arrays["k"]})
    (tmp_path / "run" / "progress.json").write_text("[")
    with pytest.raises(InputError, match="damaged training state"):
        restore_run_state(tmp_path / "run", arrays)


def test_ensembles_need_the_same_windows(saved):
    a = predictor.load_checkpoint(saved)
    b = predictor.Predictor("other", dataclasses.replace(a.spec, window=a.spec.window + 1), a.fn)
    with pytest.raises(InputError, match="window differs"):
        inference.check_compatible([a, b])
    assert inference.check_compatible([a, a]) is a


def test_jsonable_replaces_non_finite_numbers():
    assert jsonable({"a": np.float32(1.5), "b": [float("nan"), np.inf], 3: np.arange(2)}) == {
        "a": 1.5,
        "b": [None, None],
        "3": [0, 1],
    }
    assert jax.tree.leaves(checkpoint.jsonable({"x": (1, 2)})) == [1, 2]


def test_saving_a_model_removes_what_a_killed_save_left(trained, tmp_path):
    """An argmax candidate's save killed half way leaves `.iteration_000.xxxxxxxx.tmp/`; the resumed search
    saves that candidate again, and the leftover goes."""
    _, state = trained
    target = tmp_path / "argmax" / "iteration_000"
    leftover = tmp_path / "argmax" / ".iteration_000.k1lled00.tmp"
    (leftover / "state").mkdir(parents=True)
    checkpoint.save_model(target, state.variables, TINY_CONFIG.model_spec(TINY_ARCH, LAYOUT, DATA))
    assert sorted(p.name for p in target.parent.iterdir()) == ["iteration_000"]
    assert checkpoint.restore_model(target).spec.arch == TINY_ARCH
