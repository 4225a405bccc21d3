"""Tests for the J, V, B, A feature streams against scipy and a plain per-window numpy implementation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from train_fixtures import CompileCounter

from jaxcp.core.errors import InputError
from jaxcp.data.features import FeatureConfig, acceleration_operators, arccos, butterworth_operator, compute_features
from jaxcp.data.skeleton import COCO_17, IN_MOTION_29
from jaxcp.training import engine


def numpy_features(window: np.ndarray, parents, streams="JVBA", relative=1, order=8, cutoff=0.5,
                   use_filter=True) -> np.ndarray:
    """One window (T, V, 2) -> (I, T, V, 4), written the plain way (float64, loops, sosfiltfilt)."""
    p = window.astype(np.float64).transpose(2, 0, 1)  # (2, T, V) as AutoCP lays it out
    num_frames = p.shape[1]
    joint = np.concatenate([p, p - p[:, :, relative : relative + 1]])
    vel = np.zeros((4, num_frames, p.shape[2]))
    for t in range(num_frames - 2):
        vel[0:2, t] = p[:, t + 1] - p[:, t]
        vel[2:4, t] = (p[:, t + 2] - p[:, t]) / 2
    bone = np.zeros((4, num_frames, p.shape[2]))
    for v, parent in enumerate(parents):
        b = p[:, :, v] - p[:, :, parent]
        length = np.sqrt(b[0] ** 2 + b[1] ** 2) + 1e-4
        bone[0:2, :, v] = b
        bone[2, :, v] = np.arccos(b[0] / length)
        bone[3, :, v] = np.arccos(b[1] / length)
    filtered = vel.copy()
    if use_filter:
        sos = scipy.signal.butter(order, cutoff, output="sos")
        for c in range(4):
            for v in range(p.shape[2]):
                filtered[c, :, v] = scipy.signal.sosfiltfilt(sos, vel[c, :, v])
    acc = np.zeros_like(vel)
    for t in range(num_frames - 2):
        acc[0:2, t] = filtered[0:2, t + 1] - filtered[0:2, t]
        acc[2:4, t] = (filtered[2:4, t + 2] - filtered[2:4, t]) / 2
    out = {"J": joint, "V": vel, "B": bone, "A": acc}
    return np.stack([out[s].transpose(1, 2, 0) for s in "JVBA" if s in streams])


def random_windows(shape, seed=0) -> np.ndarray:
    """Smooth random walks around unit scale, like normalised keypoints."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.02, shape)
    return (np.cumsum(steps, axis=-3) + rng.normal(0, 0.3, shape[:-3] + (1,) + shape[-2:])).astype(np.float32)


@pytest.mark.parametrize("num_frames", [28, 150, 225])
def test_butterworth_operator_is_sosfiltfilt(num_frames):
    rng = np.random.default_rng(1)
    signals = rng.normal(size=(num_frames, 5))
    signals[-2:, 0] = 0.0  # the velocity's trailing zeros
    sos = scipy.signal.butter(8, 0.5, output="sos")
    expected = scipy.signal.sosfiltfilt(sos, signals, axis=0)
    np.testing.assert_allclose(butterworth_operator(num_frames) @ signals, expected, atol=1e-12)


def test_acceleration_operators_are_difference_filter_difference():
    x = np.random.default_rng(3).normal(size=(40, 3))
    sos = scipy.signal.butter(8, 0.5, output="sos")
    for step, op in zip((1, 2), acceleration_operators(40), strict=True):
        def diff(a, step=step):  # frame_differences on one channel: last two frames 0
            out = np.zeros_like(a)
            out[:-2] = (a[step : len(a) - 2 + step] - a[: len(a) - 2]) / step
            return out

        expected = diff(scipy.signal.sosfiltfilt(sos, diff(x), axis=0))
        np.testing.assert_allclose(op @ x, expected, atol=1e-12)
    assert not acceleration_operators(40).flags.writeable


def test_butterworth_operator_is_cached_and_read_only():
    assert butterworth_operator(150) is butterworth_operator(150)
    assert not butterworth_operator(150).flags.writeable
    sos = scipy.signal.butter(4, 0.3, output="sos")
    x = np.random.default_rng(2).normal(size=60)
    expected = scipy.signal.sosfiltfilt(sos, x)
    np.testing.assert_allclose(butterworth_operator(60, 4, 0.3) @ x, expected, atol=1e-12)
    with pytest.raises(InputError, match="27 frames"):
        butterworth_operator(27)


@pytest.mark.parametrize("layout,num_frames", [(IN_MOTION_29, 150), (COCO_17, 64)], ids=["im29", "coco"])
def test_features_match_numpy(layout, num_frames):
    windows = random_windows((3, num_frames, layout.num_joints, 2), seed=3)
    features = jax.jit(compute_features, static_argnums=(1, 2))(windows, layout, FeatureConfig())
    chex.assert_shape(features, (3, 4, num_frames, layout.num_joints, 4))
    assert features.dtype == jnp.float32
    expected = np.stack([numpy_features(w, layout.parents) for w in windows])
    np.testing.assert_allclose(np.asarray(features), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", [FeatureConfig(streams="BJ", relative_joint=8),
                                    FeatureConfig(streams="AV", use_filter=False),
                                    FeatureConfig(streams="A", filter_order=4, filter_cutoff=0.3)],
                         ids=["BJ-rel8", "AV-nofilter", "A-order4"])
def test_stream_selection_and_settings_match_numpy(config):
    windows = random_windows((2, 60, 29, 2), seed=4)
    features = compute_features(windows, IN_MOTION_29, config)
    chex.assert_shape(features, (2, config.num_streams, 60, 29, 4))
    expected = np.stack([numpy_features(w, IN_MOTION_29.parents, config.streams, config.relative_joint,
                                        config.filter_order, config.filter_cutoff, config.use_filter)
                         for w in windows])
    np.testing.assert_allclose(np.asarray(features), expected, atol=1e-5, rtol=0)


def test_features_by_hand():
    window = np.zeros((150, 29, 2), np.float32)
    window[:, :, 0] = np.arange(150)[:, None] * 0.01  # every joint moves right at 0.1 per frame
    window[:, 4, 1] = 1.0  # upper_neck sits one unit above the thorax (its parent)
    f = np.asarray(compute_features(window, IN_MOTION_29))
    np.testing.assert_allclose(f[0, :, 1, 2:], 0.0)  # J relative to joint 1 is zero at joint 1
    np.testing.assert_allclose(f[1, :148, :, 0], 0.01, atol=1e-6)  # one-step velocity
    np.testing.assert_allclose(f[1, :148, :, 2], 0.01, atol=1e-6)  # two-step velocity / 2
    np.testing.assert_allclose(f[1, 148:], 0.0)  # two trailing zero frames
    np.testing.assert_allclose(f[3, 148:], 0.0)
    np.testing.assert_allclose(f[2, :, 8, 2:], np.pi / 2, atol=1e-6)  # the root's zero bone
    np.testing.assert_allclose(f[2, :, 4, :2], [[0.0, 1.0]] * 150, atol=1e-6)
    np.testing.assert_allclose(f[2, :, 4, 2:], [[np.pi / 2, np.arccos(1 / 1.0001)]] * 150, atol=1e-5)
    # constant velocity: no acceleration except near the trailing zeros, which the filter smears
    np.testing.assert_allclose(f[3, :100], 0.0, atol=1e-6)
    assert np.abs(f[3, 130:148, :, 0]).max() > 1e-3


def test_arccos():
    r = np.concatenate([np.linspace(-1, 1, 200001), [-1.0, -0.99999, 0.0, 0.99999, 1.0]]).astype(np.float32)
    np.testing.assert_allclose(np.asarray(arccos(r)), np.arccos(r.astype(np.float64)), atol=6e-7, rtol=0)


def test_vmap_and_single_windows_agree_with_the_batched_features():
    windows = random_windows((2, 3, 40, 29, 2), seed=5)
    config = FeatureConfig(streams="VA")
    batched = jax.jit(lambda x: compute_features(x, IN_MOTION_29, config))(windows)
    mapped = jax.vmap(lambda x: compute_features(x, IN_MOTION_29, config))(windows)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(mapped), atol=1e-6)
    single = compute_features(windows[1, 2], IN_MOTION_29, config)
    np.testing.assert_allclose(np.asarray(batched[1, 2]), np.asarray(single), atol=1e-6)


def test_the_featurise_program_compiles_once_per_config_and_shape():
    """The project's jitted entry point for features is `engine.featurise` (validation and test windows).
    Other windows of the same shape with an equal but new FeatureConfig compile nothing; another config
    is another program (which the counter does see)."""
    windows = random_windows((6, 40, 29, 2), seed=6)
    engine.featurise(windows, IN_MOTION_29, FeatureConfig(streams="VA"), chunk=4)
    with CompileCounter() as counter:
        out = engine.featurise(windows * 1.5 + 2.0, IN_MOTION_29, FeatureConfig(streams="VA"), chunk=4)
    assert counter.events == []
    np.testing.assert_allclose(np.asarray(out[5]), np.asarray(compute_features(windows[5] * 1.5 + 2.0,
                               IN_MOTION_29, FeatureConfig(streams="VA"))), atol=1e-5)  # fmt: skip
    with CompileCounter() as control:
        engine.featurise(windows, IN_MOTION_29, FeatureConfig(streams="V"), chunk=4)
    assert control.events


def test_feature_config():
    config = FeatureConfig(streams="AJ")
    assert config.stream_names == ("J", "A") and config.num_streams == 2
    assert hash(config) == hash(FeatureConfig(streams="AJ")) and FeatureConfig().num_streams == 4
    for bad in [dict(streams=""), dict(streams="JX"), dict(streams="JJ"), dict(relative_joint=-1),
                dict(filter_order=0), dict(filter_cutoff=1.0)]:
        with pytest.raises(InputError):
            FeatureConfig(**bad)


def test_bad_windows():
    with pytest.raises(InputError, match="expected"):
        compute_features(np.zeros((1, 40, 17, 2)), IN_MOTION_29)
    with pytest.raises(InputError, match="relative_joint"):
        compute_features(np.zeros((1, 40, 17, 2)), COCO_17, FeatureConfig(relative_joint=17))
    with pytest.raises(InputError, match="27 frames"):
        compute_features(np.zeros((1, 27, 17, 2)), COCO_17)
