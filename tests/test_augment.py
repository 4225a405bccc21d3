"""Tests for rotation/scale/translation augmentation: grids, distribution of draws, geometry."""

import dataclasses

import chex
import jax
import numpy as np
import pytest
from scipy.stats import chi2
from train_fixtures import LAYOUT, TINY_ARCH, TINY_CONFIG, TINY_HPARAMS, CompileCounter, other_train_data, tiny_data

from jaxcp.core.config import from_dict
from jaxcp.core.errors import InputError
from jaxcp.data.augment import (
    ROTATIONS_DEG,
    SCALES,
    TRANSLATIONS,
    AugmentConfig,
    AugmentParams,
    apply_augment,
    augment,
    sample_augment_params,
)
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.training import students


def chi_square_uniform(values: np.ndarray, grid) -> float:
    """Pearson chi-square of the counts of each grid value against a uniform distribution."""
    counts = np.array([(values == np.float32(g)).sum() for g in grid])
    assert counts.sum() == values.size  # every draw is a grid value
    assert (counts > 0).all()  # every grid value appears
    expected = values.size / len(grid)
    return float(((counts - expected) ** 2 / expected).sum())


def test_reference_grids():
    np.testing.assert_allclose(ROTATIONS_DEG, np.arange(-60, 61, 10))
    np.testing.assert_allclose(SCALES, np.linspace(0.7, 1.3, 7))
    np.testing.assert_allclose(TRANSLATIONS, np.linspace(-0.4, 0.4, 9))
    assert SCALES[3] == 1.0 and TRANSLATIONS[4] == 0.0


def test_draws_are_uniform_on_the_grids():
    n = 20000
    params = jax.jit(sample_augment_params, static_argnums=(1, 2))(jax.random.key(0), (n,), AugmentConfig())
    chex.assert_shape([params.angle_deg, params.scale, params.shift], [(n,), (n,), (n, 2)])
    angle, scale, shift = (np.asarray(p) for p in params)
    for values, grid in ((angle, ROTATIONS_DEG), (scale, SCALES), (shift[:, 0], TRANSLATIONS),
                         (shift[:, 1], TRANSLATIONS)):
        assert chi_square_uniform(values, grid) < chi2.ppf(0.999, len(grid) - 1)
    # dx and dy are independent: their 81 pairs are uniform too
    pairs = np.searchsorted(np.float32(TRANSLATIONS), shift[:, 0]) * 9 + np.searchsorted(
        np.float32(TRANSLATIONS), shift[:, 1])
    assert chi_square_uniform(pairs, range(81)) < chi2.ppf(0.999, 80)
    # the three draws are not tied to each other
    assert abs(np.corrcoef(angle, scale)[0, 1]) < 0.05 and abs(np.corrcoef(scale, shift[:, 0])[0, 1]) < 0.05


def test_one_draw_per_window_from_the_key():
    windows = np.random.default_rng(0).normal(size=(2, 3, 20, 29, 2)).astype(np.float32)
    key = jax.random.key(1)
    out = augment(key, windows)
    chex.assert_shape(out, windows.shape)
    assert out.dtype == windows.dtype
    params = sample_augment_params(key, (2, 3))
    np.testing.assert_allclose(np.asarray(out), np.asarray(apply_augment(windows, params)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(augment(key, windows)))
    assert not np.allclose(np.asarray(out), np.asarray(augment(jax.random.key(2), windows)))


def numpy_augment(window: np.ndarray, angle_deg: float, scale: float, dx: float, dy: float) -> np.ndarray:
    theta = np.radians(-angle_deg)
    x, y = window[..., 0], window[..., 1]
    out = np.stack([np.cos(theta) * x - np.sin(theta) * y, np.sin(theta) * x + np.cos(theta) * y], axis=-1)
    return out * scale + np.array([dx, dy])


def test_matches_the_reference_formulas():
    windows = np.random.default_rng(3).normal(size=(64, 10, 29, 2)).astype(np.float32)
    out = np.asarray(jax.jit(augment)(jax.random.key(4), windows))
    angle, scale, shift = (np.asarray(p, np.float64) for p in sample_augment_params(jax.random.key(4), (64,)))
    for i in range(64):
        expected = numpy_augment(windows[i].astype(np.float64), angle[i], scale[i], *shift[i])
        np.testing.assert_allclose(out[i], expected, atol=1e-5)


def test_by_hand():
    point = np.array([[[[1.0, 0.0]]]], np.float32)  # one window, one frame, one joint at (1, 0)
    params = AugmentParams(np.array([90.0]), np.array([2.0]), np.array([[0.1, -0.2]]))
    # rotate by -90 degrees: (1, 0) -> (0, -1); scale by 2: (0, -2); shift: (0.1, -2.2)
    np.testing.assert_allclose(np.asarray(apply_augment(point, params))[0, 0, 0], [0.1, -2.2], atol=1e-6)


def test_bone_lengths_scale_by_the_drawn_scale():
    windows = np.random.default_rng(5).normal(size=(256, 8, 29, 2)).astype(np.float32)
    key = jax.random.key(6)
    out = np.asarray(augment(key, windows))
    scale = np.asarray(sample_augment_params(key, (256,)).scale)
    parents = list(IN_MOTION_29.parents)
    before = np.linalg.norm(windows - windows[:, :, parents], axis=-1)
    after = np.linalg.norm(out - out[:, :, parents], axis=-1)
    np.testing.assert_allclose(after, before * scale[:, None, None], rtol=1e-5, atol=1e-6)


def test_rotation_preserves_lengths_and_turns_by_minus_the_angle():
    config = AugmentConfig(rotations_deg=(-60.0, 30.0), scales=(1.0,), translations=(0.0,))
    windows = np.random.default_rng(7).normal(size=(100, 4, 29, 2)).astype(np.float32)
    key = jax.random.key(8)
    out = np.asarray(augment(key, windows, config))
    angle = np.asarray(sample_augment_params(key, (100,), config).angle_deg)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(windows, axis=-1), rtol=1e-5)
    turn = np.arctan2(out[..., 1], out[..., 0]) - np.arctan2(windows[..., 1], windows[..., 0])
    turn = (turn + np.pi) % (2 * np.pi) - np.pi
    expected = np.broadcast_to(np.radians(-angle)[:, None, None], turn.shape)
    np.testing.assert_allclose(turn, expected, atol=1e-4)
    assert set(angle) == {-60.0, 30.0}


def test_the_training_program_compiles_once_per_augment_config():
    """`augment` has no jitted entry point of its own: the engine's epoch program augments every batch. A
    second run with an equal but new AugmentConfig (so an equal ProgramSpec) on other data of the same
    shapes compiles nothing, and another grid is another spec (another program)."""
    train_data, val_data = tiny_data()
    first = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [0, 1], train_data, val_data, LAYOUT, TINY_CONFIG)
    first.run_epoch()  # compiles, unless an earlier test of this process did
    fresh = AugmentConfig(rotations_deg=[float(r) for r in ROTATIONS_DEG], scales=list(SCALES),
                          translations=list(TRANSLATIONS))  # fmt: skip
    assert fresh is not TINY_CONFIG.augmentation
    config = dataclasses.replace(TINY_CONFIG, augmentation=fresh)
    other = other_train_data(train_data)
    with CompileCounter() as counter:
        again = students.StudentRun(TINY_ARCH, [TINY_HPARAMS] * 2, [5, 6], other, val_data, LAYOUT, config)
        again.run_epoch()
    assert counter.events == [] and again.compiled.seconds == 0.0
    losses = [[h[0]["loss"] for h in run.tracker.history] for run in (first, again)]
    assert np.isfinite(losses).all() and losses[0] != losses[1]  # other data, other seeds: other losses
    other = dataclasses.replace(config, augmentation=AugmentConfig(rotations_deg=(0.0,)))
    assert students.program_spec(TINY_ARCH, LAYOUT, 16, other) != students.program_spec(TINY_ARCH, LAYOUT, 16, config)


def test_config():
    config = from_dict(AugmentConfig, {"rotations_deg": [-45, 0, 45], "scales": [1]}, "augment")
    assert config.rotations_deg == (-45.0, 0.0, 45.0) and config.scales == (1.0,)
    assert config.translations == TRANSLATIONS and hash(config) == hash(AugmentConfig((-45, 0, 45), (1,)))
    with pytest.raises(InputError, match="at least one"):
        AugmentConfig(rotations_deg=())
    with pytest.raises(InputError, match="> 0"):
        AugmentConfig(scales=(0.0, 1.0))
