"""Preprocessing: y-up input, resampling, gap filling and reports, median filter, centring and scaling, y flip."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from data_fixtures import TINY, infant_coords

from jaxcp.core.errors import InputError
from jaxcp.data.io import Recording
from jaxcp.data.preprocess import (
    GapReport,
    PreprocessConfig,
    TooIncomplete,
    body_reference,
    gap_report,
    interpolate_missing,
    max_gap_frames,
    median_filter_time,
    normalize,
    preprocess,
    preprocess_recording,
    resample_positions,
    run_lengths,
)
from jaxcp.data.skeleton import COCO_17


def rec(coords, fps=30.0) -> Recording:
    return Recording("x", np.asarray(coords, np.float32), fps, 0, "orgcoords_x.csv")


# --------------------------------------------------------------------------------------------------------
# Settings

@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(target_fps=0.0), "preprocess.target_fps: must be > 0"),
        (dict(target_fps=float("nan")), "preprocess.target_fps"),
        (dict(max_gap_s=-1.0), "preprocess.max_gap_s: must be >= 0"),
        (dict(max_missing_fraction=1.5), "preprocess.max_missing_fraction: must be in \\[0, 1\\]"),
        (dict(median_window=4), "preprocess.median_window: must be an odd number"),
        (dict(median_window=0), "preprocess.median_window"),
        (dict(trunk_multiple=0.0), "preprocess.trunk_multiple: must be > 0"),
    ],
)
def test_config_validation(changes, message):
    with pytest.raises(InputError, match=message):
        PreprocessConfig(**changes)


def test_config_defaults_follow_the_paper():
    cfg = PreprocessConfig()
    assert (cfg.target_fps, cfg.median_window, cfg.trunk_multiple) == (30.0, 5, 2.0)
    assert hash(cfg) == hash(PreprocessConfig())


# --------------------------------------------------------------------------------------------------------
# Resampling and gap filling

@pytest.mark.parametrize(
    "num_frames, fps, target, expected",
    [
        (10, 30.0, 30.0, np.arange(10.0)),
        (10, 60.0, 30.0, np.arange(0.0, 10, 2)),
        (11, 60.0, 30.0, np.arange(0.0, 11, 2)),  # ceil(11 / 2) = 6 positions: 0 .. 10
        (5, 25.0, 30.0, np.minimum(np.arange(6) * 25 / 30, 4)),  # ceil(5 * 30 / 25) = 6; 4.17 clamps
        (4, 15.0, 30.0, np.minimum(np.arange(8) * 0.5, 3)),  # 3.5 clamps to the last frame
    ],
)
def test_resample_positions(num_frames, fps, target, expected):
    np.testing.assert_allclose(resample_positions(num_frames, fps, target), expected)


def test_interpolate_missing_by_hand():
    coords = np.zeros((6, 2, 2))
    coords[:, 0, 0] = [np.nan, 1, np.nan, np.nan, 4, np.nan]  # x of joint 0
    coords[:, 0, 1] = [np.nan, 10, np.nan, np.nan, 40, np.nan]
    coords[:, 1] = 7.0
    missing = np.isnan(coords).any(-1)
    out = interpolate_missing(coords, missing, np.arange(6.0))
    np.testing.assert_allclose(out[:, 0, 0], [1, 1, 2, 3, 4, 4])  # ends hold the nearest observation
    np.testing.assert_allclose(out[:, 0, 1], [10, 10, 20, 30, 40, 40])
    np.testing.assert_allclose(out[:, 1], 7.0)
    between = interpolate_missing(coords, missing, np.array([1.5, 2.5]))
    np.testing.assert_allclose(between[:, 0, 0], [1.5, 2.5])


def test_run_lengths_do_not_join_joints():
    missing = np.zeros((5, 3), bool)
    missing[3:, 0] = True  # joint 0: frames 3, 4 (end)
    missing[:2, 1] = True  # joint 1: frames 0, 1 (start): must not merge with joint 0's run
    missing[[0, 2, 4], 2] = True  # joint 2: three runs of 1
    assert sorted(run_lengths(missing).tolist()) == [1, 1, 1, 2, 2]
    assert run_lengths(np.zeros((4, 2), bool)).size == 0


def test_gap_report_counts_long_gaps():
    missing = np.zeros((10, 2), bool)
    missing[1:3, 0] = True  # 2 frames: short
    missing[4:8, 1] = True  # 4 frames: long for max_gap 3
    report = gap_report(missing, max_gap=3)
    assert report == GapReport(raw_frames=10, missing_fraction=6 / 20, long_gap_fraction=4 / 20,
                               num_long_gaps=1)
    assert gap_report(missing, max_gap=4).num_long_gaps == 0
    assert max_gap_frames(0.5, 30.0) == 15 and max_gap_frames(0.5, 25.0) == 12
    assert max_gap_frames(0.1, 30.0) == 3


# --------------------------------------------------------------------------------------------------------
# Median filter

def shrinking_median_reference(x: np.ndarray, window: int) -> np.ndarray:
    """Frame by frame: the median of the centred window, half-width min(window // 2, t, T - 1 - t)."""
    out = np.empty_like(x)
    for t in range(len(x)):
        k = min(window // 2, t, len(x) - 1 - t)
        out[t] = np.median(x[t - k:t + k + 1], axis=0)
    return out


@pytest.mark.parametrize("num_frames", [1, 2, 3, 4, 5, 6, 40])
@pytest.mark.parametrize("window", [1, 3, 5, 7])
def test_median_filter_matches_shrinking_window_reference(num_frames, window):
    x = np.random.default_rng(num_frames * 10 + window).normal(size=(num_frames, 3, 2))
    np.testing.assert_allclose(median_filter_time(x, window), shrinking_median_reference(x, window))


def test_median_filter_interior_matches_scipy_and_edges_by_hand():
    x = np.random.default_rng(0).normal(size=(30, 4, 2))
    out = median_filter_time(x, 5)
    scipy_out = scipy.ndimage.median_filter(x, size=(5, 1, 1), mode="nearest")
    np.testing.assert_allclose(out[2:-2], scipy_out[2:-2])
    np.testing.assert_allclose(out[[0, -1]], x[[0, -1]])  # the ends are not filtered
    np.testing.assert_allclose(out[1], np.median(x[:3], axis=0))
    np.testing.assert_allclose(out[-2], np.median(x[-3:], axis=0))
    spike = np.zeros((9, 1, 2))
    spike[4] = 100.0
    np.testing.assert_allclose(median_filter_time(spike, 5), 0.0)  # a one-frame outlier is removed


# --------------------------------------------------------------------------------------------------------
# Centring and scaling

def test_body_reference_and_normalize_by_hand():
    coords = np.array([
        [[9, 9], [1, 2], [1, 4]],  # head, thorax, pelvis: trunk length 2
        [[9, 9], [2, 2], [2, 5]],  # trunk 3
        [[9, 9], [3, 2], [np.nan, np.nan]],  # pelvis missing: no trunk length, no pelvis position
        [[9, 9], [np.nan, np.nan], [5, 6]],  # thorax missing: pelvis counts, trunk does not
    ], np.float64)
    center, trunk = body_reference(coords, TINY, "f")
    np.testing.assert_allclose(center, [2, 5])  # medians of x (1, 2, 5) and y (4, 5, 6) separately
    assert trunk == pytest.approx(2.5)  # median of 2 and 3
    out = normalize(coords[:2], center, 5.0)
    np.testing.assert_allclose(out[0, 1], [(1 - 2) / 5, -(2 - 5) / 5])  # thorax above pelvis: y > 0


def test_thorax_and_pelvis_may_be_joint_means():
    coords = np.zeros((3, COCO_17.num_joints, 2))
    coords[:, [5, 6]] = [[0.0, 1.0], [2.0, 1.0]]  # shoulders -> thorax (1, 1)
    coords[:, [11, 12]] = [[0.0, 5.0], [2.0, 5.0]]  # hips -> pelvis (1, 5)
    center, trunk = body_reference(coords, COCO_17, "f")
    np.testing.assert_allclose(center, [1, 5])
    assert trunk == pytest.approx(4.0)


@pytest.mark.parametrize(
    "edit, message",
    [
        ("thorax_never_with_pelvis", "thorax and pelvis are never observed in the same frame"),
        ("zero_trunk", "median thorax-pelvis distance is 0"),
        ("joint_never_seen", "joint 'head' is missing in every frame"),
        ("wrong_shape", "expected \\(T, 3, 2\\) coordinates"),
    ],
)
def test_preprocess_bad_recordings(edit, message):
    coords = infant_coords(TINY, 40).astype(np.float64)
    if edit == "thorax_never_with_pelvis":
        coords[:20, 1] = np.nan
        coords[20:, 2] = np.nan
    elif edit == "zero_trunk":
        coords[:, 1] = coords[:, 2]
    elif edit == "joint_never_seen":
        coords[:, 0] = np.nan
    elif edit == "wrong_shape":
        coords = coords[:, :2]
    cfg = PreprocessConfig(max_missing_fraction=1.0)
    with pytest.raises(InputError, match=message) as info:
        preprocess(rec(coords), TINY, cfg)
    assert str(info.value).startswith("orgcoords_x.csv: ")


# --------------------------------------------------------------------------------------------------------
# The whole pipeline

def pipeline_reference(coords: np.ndarray, multiple: float, window: int = 5) -> np.ndarray:
    """Complete 30 Hz data: shrinking median filter, centre on the median pelvis, scale, flip y."""
    pelvis, thorax = coords[:, 2], coords[:, 1]
    center = np.median(pelvis, axis=0)
    trunk = np.median(np.sqrt(((thorax - pelvis) ** 2).sum(-1)))
    out = (shrinking_median_reference(coords, window) - center) / (multiple * trunk)
    return out * np.array([1.0, -1.0])


@pytest.mark.parametrize("multiple", [2.0, 4.0])
def test_preprocess_complete_30hz_recording_matches_reference(multiple):
    coords = infant_coords(TINY, 60, seed=3).astype(np.float64)
    out = preprocess(rec(coords), TINY, PreprocessConfig(trunk_multiple=multiple))
    assert out.dtype == np.float32 and out.shape == (60, 3, 2)
    np.testing.assert_allclose(out, pipeline_reference(coords, multiple), atol=1e-5)


def test_preprocess_static_body_puts_pelvis_at_origin_and_thorax_up():
    coords = np.tile(np.array([[0.5, 0.2], [0.5, 0.4], [0.5, 0.6]]), (20, 1, 1))  # image y down
    out = preprocess(rec(coords), TINY)
    np.testing.assert_allclose(out[:, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], [[0.0, 0.5]] * 20, atol=1e-6)  # trunk / (2 trunk), up
    np.testing.assert_allclose(out[:, 0], [[0.0, 1.0]] * 20, atol=1e-6)


def test_y_up_flips_the_raw_y_first():
    coords = np.tile(np.array([[0.5, 0.2], [0.5, 0.4], [0.5, 0.6]]), (20, 1, 1))  # image y down
    coords[:, 0, 0] += np.linspace(0.0, 0.1, 20)
    y_up = coords * np.array([1.0, -1.0]) + np.array([0.0, 3.0])  # the same body, y pointing up
    expected = preprocess(rec(coords), TINY)
    np.testing.assert_allclose(preprocess(rec(y_up), TINY, PreprocessConfig(y_up=True)), expected, atol=1e-6)
    flipped = preprocess(rec(y_up), TINY)  # without the flag the body stands on its head
    np.testing.assert_allclose(flipped[:, 0], expected[:, 0] * np.array([1.0, -1.0]), atol=1e-6)
    assert PreprocessConfig().y_up is False


def test_preprocess_resamples_60hz_linear_motion_exactly():
    t = np.arange(120) / 60.0
    coords = np.tile(np.array([[0.5, 0.2], [0.5, 0.4], [0.5, 0.6]]), (120, 1, 1))
    coords[:, 0, 0] += 0.1 * t  # the head moves linearly in x
    out = preprocess(rec(coords, fps=60.0), TINY, PreprocessConfig(median_window=1))
    assert out.shape == (60, 3, 2)
    np.testing.assert_allclose(out[:, 0, 0], 0.1 * np.arange(60) / 30.0 / (2 * 0.2), atol=1e-5)


def test_preprocess_fills_short_gaps_by_interpolation():
    coords = np.tile(np.array([[0.5, 0.2], [0.5, 0.4], [0.5, 0.6]]), (30, 1, 1))
    coords[:, 0, 0] = np.linspace(0.0, 0.29, 30)
    gappy = coords.copy()
    gappy[10:14, 0] = np.nan  # 4 frames < 0.5 s
    cfg = PreprocessConfig(median_window=1)
    out, report = preprocess_recording(rec(gappy), TINY, cfg)
    np.testing.assert_allclose(out, preprocess(rec(coords), TINY, cfg), atol=1e-6)
    assert report.num_long_gaps == 0 and report.missing_fraction == pytest.approx(4 / 90)


def test_long_gaps_are_interpolated_counted_or_too_incomplete():
    coords = infant_coords(TINY, 300, seed=1).astype(np.float64)
    coords[100:130, 0] = np.nan  # 30 frames = 1 s > 0.5 s: long; 30 / 900 joint-frames
    out, report = preprocess_recording(rec(coords), TINY, PreprocessConfig(max_missing_fraction=0.05))
    assert not np.isnan(out).any()
    assert report.num_long_gaps == 1 and report.long_gap_fraction == pytest.approx(30 / 900)
    with pytest.raises(TooIncomplete, match="3.3% of joint-frames are in gaps longer than 0.5 s") as info:
        preprocess_recording(rec(coords), TINY, PreprocessConfig(max_missing_fraction=0.02))
    assert info.value.report == report and isinstance(info.value, InputError)
    # with a 2 s gap limit, the same gap is short
    assert preprocess_recording(rec(coords), TINY, PreprocessConfig(max_gap_s=2.0))[1].num_long_gaps == 0
