"""The skeleton data check: figures on hand-made arrays, and `prepare` on small synthetic cohorts that are
clean, scrambled, upside down, or hold one recording with x/y or left/right swapped."""

from __future__ import annotations

import dataclasses
import json
import shutil
import warnings

import numpy as np
import pytest
import yaml
from data_fixtures import write_csv

from jaxcp.core.errors import InputError
from jaxcp.data import quality, synth
from jaxcp.data.dataset import available_splits, data_settings, load_dataset, read_manifest
from jaxcp.data.io import read_recording
from jaxcp.data.prepare import PrepareConfig, prepare_dataset
from jaxcp.data.quality import QualityConfig
from jaxcp.data.skeleton import COCO_17, IN_MOTION_29, Layout, layout_from_dict
from jaxcp.prepare import main

TWO = Layout("two", ("thorax", "pelvis"), ((0, 1),), 0, (0, 0), (("body", (0, 1)),), (0,), (1,))


# --------------------------------------------------------------------------------------------------------
# Figures of one recording, by hand


CHAIN = Layout("chain", ("thorax", "pelvis", "knee", "foot"), ((0, 1), (1, 2), (2, 3)), 0, (0, 0, 1, 2),
               (("body", (0, 1, 2, 3)),), (0,), (1,))


def test_unrelated_pairs_are_the_far_apart_joint_pairs():
    assert quality.unrelated_pairs(CHAIN, 3, 10) == ((0, 3),)
    assert quality.unrelated_pairs(CHAIN, 2, 10) == ((0, 2), (0, 3), (1, 3))
    assert quality.unrelated_pairs(CHAIN, 2, 2) == ((0, 2), (1, 3))  # evenly spaced: the first and the last
    star = Layout("star", ("thorax", "pelvis", "a", "b"), ((0, 1), (0, 2), (0, 3)), 0, (0, 0, 0, 0),
                  (("body", (0, 1, 2, 3)),), (0,), (1,))
    assert quality.unrelated_pairs(star, 3, 10) == ((1, 2), (1, 3), (2, 3))  # none 3 apart: the farthest
    assert quality.unrelated_pairs(TWO, 3, 10) == ()


def test_distance_spread_and_the_bone_test_by_hand():
    t = np.arange(10.0)
    coords = np.zeros((10, 4, 2))
    coords[:, 1] = (0.0, 2.0)  # body size 2
    coords[:, 2] = (0.0, 4.0)
    coords[:, 3, 0] = 1.0 + t  # foot bone 1..10 long, along x from the knee
    coords[:, 3, 1] = 4.0
    pairs = quality.unrelated_pairs(CHAIN, 2, 10)
    pair_distances = [np.hypot(1.0 + t, 4.0), np.hypot(1.0 + t, 2.0)]  # (0, 2) is rigid: 4 all along
    expected = [0.0] + [np.subtract(*np.quantile(d, (0.9, 0.1))) / 2 for d in pair_distances]
    np.testing.assert_allclose(quality.distance_spread(coords, CHAIN, pairs), expected)
    bones = quality.distance_spread(coords, CHAIN, CHAIN.edges)
    np.testing.assert_allclose(bones, [0.0, 0.0, (9.1 - 1.9) / 2])
    config = QualityConfig(smoothing_s=0, min_hops=2)
    spread, ratios, typical, ratio = quality.bone_test(coords, CHAIN, 30.0, config)
    np.testing.assert_allclose(spread, bones)
    assert typical == pytest.approx(np.median(expected))
    # each bone against the pairs sharing a joint with it: 0-1 -> (0, 2), (0, 3), (1, 3); 1-2 -> all three;
    # 2-3 -> (0, 2), (0, 3), (1, 3) again: all against the median pair spread
    np.testing.assert_allclose(ratios, bones / np.median(expected))
    assert ratio == 0.0  # the quarter quantile of (0, 0, 3.6 / ...)
    coords[:, 1, 0] = t / 100  # pelvis sways 0.09 along x: bones 0-1 and 1-2 now vary a little
    spread, ratios, typical, ratio = quality.bone_test(coords, CHAIN, 30.0, config)
    assert ratio == pytest.approx(np.quantile(ratios, 0.25)) and 0 < ratio < 0.01
    assert quality.bone_test(coords, CHAIN, 30.0, dataclasses.replace(config, bone_quantile=1.0))[3] == \
        pytest.approx(ratios[2])
    still = np.broadcast_to(coords[:1], coords.shape)  # nothing moves: not judged
    assert np.isnan(quality.bone_test(still, CHAIN, 30.0, config)[3])
    figures = quality.measure_recording(coords, CHAIN, 30.0, dataclasses.replace(config, bone_ratio=1e-4))
    assert figures.failed and figures.unstable == ("knee-foot",) and figures.bone_ratio == pytest.approx(ratio)


def test_the_cohort_notes_a_still_recording_and_a_layout_without_unrelated_pairs():
    t = np.arange(40.0)
    moving = np.zeros((40, 4, 2))
    moving[:, 1] = (0.0, 2.0)
    moving[:, 2] = (0.0, 4.0)
    moving[:, 3] = np.stack([2 * np.cos(t / 6), 4 + 2 * np.sin(t / 6)], axis=-1)  # the foot bone turns
    still = np.broadcast_to(moving[:1], moving.shape)
    config = QualityConfig(smoothing_s=0, min_hops=2)
    figures = {key: quality.measure_recording(c, CHAIN, 30.0, config) for key, c in (("a", moving), ("b", still))}
    assert figures["a"].bone_ratio == 0.0 and np.isnan(figures["b"].bone_ratio) and not figures["b"].failed
    verdict = quality.assess_cohort(figures, CHAIN, config)
    assert verdict.notes[0] == "bone check not judged for 1 of 2 recordings (too little motion or too few frames): b"
    assert verdict.failed == () and verdict.flagged == ()
    two = np.zeros((40, 2, 2))
    two[:, 1, 1] = 1.0 + t / 40
    verdict = quality.assess_cohort({"c": quality.measure_recording(two, TWO, 30.0, config)}, TWO, config)
    assert verdict.notes[0] == "bone check skipped: layout 'two' has no joints two or more edges apart"


def test_the_running_median_removes_jitter_and_can_be_thinned():
    spiky = np.zeros((40, 2, 2))
    spiky[:, 1, 1] = 2.0
    spiky[::4, 1, 1] = 5.0  # a jump every 4th frame: q90 - q10 = 3 unsmoothed, none after 3 frames
    np.testing.assert_allclose(quality.distance_spread(spiky, TWO, TWO.edges), [1.5])  # body size 2
    np.testing.assert_allclose(quality.distance_spread(spiky, TWO, TWO.edges, window=3), [0.0])
    x = np.arange(20.0)
    np.testing.assert_allclose(quality.running_median(x, 5), x[2:-2])
    np.testing.assert_allclose(quality.running_median(x, 5, max_windows=3), [2.0, 10.0, 17.0])  # 0, 8, 15
    spiky[:35, 1] = np.nan  # seen in 5 frames only: not judged
    assert np.isnan(quality.distance_spread(spiky, TWO, TWO.edges)).all()
    assert quality.smoothing_frames(1.0, 30.0) == 31 and quality.smoothing_frames(0.0, 30.0) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_running_median_is_numpys_nanmedian_of_each_window(dtype):
    """Bit for bit np.nanmedian over the windows: odd and even counts of seen values, all-NaN windows."""
    rng = np.random.default_rng(2)
    for window, max_windows in ((2, None), (7, None), (8, 5), (31, 40)):
        x = (10 * rng.normal(size=(90, 4))).astype(dtype)
        x[rng.random(x.shape) < 0.3] = np.nan
        x[:40, 3] = np.nan  # whole windows without a value
        views = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)
        if max_windows is not None:
            views = views[np.linspace(0, len(views) - 1, max_windows).round().astype(np.int64)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(views, axis=-1)
        got = quality.running_median(x, window, max_windows)
        assert got.dtype == want.dtype and np.isnan(got).any()
        np.testing.assert_array_equal(got, want)


def test_far_fractions_axis_angle_and_handedness_by_hand():
    layout = Layout("four", ("thorax", "pelvis", "left_hand", "right_hand"), ((0, 1), (0, 2), (0, 3)), 0,
                    (0, 0, 0, 0), (("body", (0, 1, 2, 3)),), (0,), (1,))
    coords = np.zeros((10, 4, 2))
    coords[:, 1] = (0.0, 1.0)  # pelvis below the thorax (y down): head up, body size 1, centre (0, 0.5)
    coords[:, 2] = (1.0, 0.5)  # the infant's left on the image's right
    coords[:, 3] = (-1.0, 0.5)
    coords[:3, 3] = (-5.0, 0.5)  # 5 body sizes from the centre in 3 of 10 frames
    np.testing.assert_allclose(quality.far_fractions(coords, layout, 4.0), [0, 0, 0, 0.3])
    assert quality.axis_angle(coords, layout) == pytest.approx(0.0)
    assert quality.axis_angle(coords[..., ::-1], layout) == pytest.approx(90.0)  # x and y swapped
    upside_down = coords * (1, -1)
    assert quality.axis_angle(upside_down, layout) == pytest.approx(180.0)
    pairs = quality.left_right_pairs(layout)
    assert pairs == ((2, 3),)
    # cross((0, -1), left - right = (2, 0)) = 2 in 7 frames, (0, -1) x (6, 0) = 6 in 3: median 2, size 1
    assert quality.handedness(coords, layout, pairs) == pytest.approx((2.0, 1.0))
    swapped = coords[:, [0, 1, 3, 2]]
    assert quality.handedness(swapped, layout, pairs) == pytest.approx((-2.0, 1.0))
    assert np.isnan(quality.handedness(coords, layout, ())[0])


def test_left_right_pairs_from_joint_names():
    names = ("neck", "LShoulder", "RShoulder", "knee_l", "knee_r", "lhip", "rhip", "left_ear", "right_ear",
             "lip", "leg")
    layout = Layout("names", names, tuple((0, i) for i in range(1, len(names))), 0, (0,) * len(names),
                    (("all", tuple(range(len(names)))),), (0,), (5,))
    pairs = {(names[a], names[b]) for a, b in quality.left_right_pairs(layout)}
    assert pairs == {("LShoulder", "RShoulder"), ("knee_l", "knee_r"), ("lhip", "rhip"), ("left_ear", "right_ear")}
    assert len(quality.left_right_pairs(IN_MOTION_29)) == 12 and len(quality.left_right_pairs(COCO_17)) == 8
    assert quality.left_right_pairs(TWO) == ()


def test_quality_config_rejects_bad_values():
    with pytest.raises(InputError, match="quality.bone_ratio: must be > 0"):
        QualityConfig(bone_ratio=0)
    with pytest.raises(InputError, match="quality.far_fraction: must be in"):
        QualityConfig(far_fraction=1.5)
    with pytest.raises(InputError, match="quality.min_hops: must be an integer >= 2"):
        QualityConfig(min_hops=1)


# --------------------------------------------------------------------------------------------------------
# `prepare` on synthetic cohorts

MY_LAYOUT = {  # a user layout: 16 joints named as the synthetic body knows them, its own edges and name
    "name": "my-16",
    "joints": ["head_top", "upper_neck", "thorax", "pelvis", "left_shoulder", "left_elbow", "left_wrist",
               "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle",
               "right_hip", "right_knee", "right_ankle"],
    "parents": {"head_top": "upper_neck", "upper_neck": "thorax", "thorax": "thorax", "pelvis": "thorax",
                "left_shoulder": "thorax", "left_elbow": "left_shoulder", "left_wrist": "left_elbow",
                "right_shoulder": "thorax", "right_elbow": "right_shoulder", "right_wrist": "right_elbow",
                "left_hip": "pelvis", "left_knee": "left_hip", "left_ankle": "left_knee",
                "right_hip": "pelvis", "right_knee": "right_hip", "right_ankle": "right_knee"},
    "parts": {"torso": ["head_top", "upper_neck", "thorax", "pelvis"],
              "left_arm": ["left_shoulder", "left_elbow", "left_wrist"],
              "right_arm": ["right_shoulder", "right_elbow", "right_wrist"],
              "left_leg": ["left_hip", "left_knee", "left_ankle"],
              "right_leg": ["right_hip", "right_knee", "right_ankle"]},
    "center": "thorax",
    "thorax": "thorax",
    "pelvis": "pelvis",
}  # fmt: skip
MY_LAYOUT["edges"] = [[joint, parent] for joint, parent in MY_LAYOUT["parents"].items() if joint != parent]
CONFIG = PrepareConfig(window=90)  # short windows, as the training tests use


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """Raw synthetic cohorts of 10 infants: in-motion-29 and the user layout (file path, Layout)."""
    root = tmp_path_factory.mktemp("quality")
    layout_file = root / "my-16.yaml"
    layout_file.write_text(yaml.safe_dump(MY_LAYOUT, sort_keys=False))
    mine = layout_from_dict(MY_LAYOUT)
    for name, layout in (("im29", IN_MOTION_29), ("mine", mine)):
        synth.generate_cohort(root / name, layout=layout, infants=10, minutes=0.25, cp_fraction=0.5, seed=4,
                              workers=1)
    return {"im29": (root / "im29", IN_MOTION_29), "mine": (root / "mine", mine), "layout_file": layout_file}


def copy_cohort(cohorts, name, tmp_path):
    raw, layout = cohorts[name]
    shutil.copytree(raw, tmp_path / "raw")
    return tmp_path / "raw", layout


def rewrite(path, layout, change):
    """Rewrite one raw CSV with `change` applied to its (T, V, 2) coordinates."""
    coords = np.asarray(read_recording(path, layout).coords, np.float64)
    write_csv(path, layout, change(coords))


def scramble(coords, seed=0):
    """The 2V coordinate columns in a random order (as a CSV read with the wrong column order)."""
    t, v, _ = coords.shape
    return coords.reshape(t, 2 * v)[:, np.random.default_rng(seed).permutation(2 * v)].reshape(t, v, 2)


@pytest.mark.parametrize("name", ["im29", "mine"])
def test_a_clean_cohort_passes_with_no_flags(cohorts, tmp_path, name):
    raw, layout = cohorts[name]
    warnings = []
    manifest = prepare_dataset(raw, tmp_path / "out", layout=layout, config=CONFIG, warn=warnings.append)
    record = read_manifest(tmp_path / "out").quality
    assert record == manifest.quality and record["flagged"] == 0 and record["failed"] == [] and not record["notes"]
    assert record["thresholds"] == {**vars(QualityConfig())}
    assert len(record["recordings"]) == 10 and all(not r["flags"] for r in record["recordings"])
    assert len(record["bones"]) == len(layout.edges) == len(record["recordings"][0]["bone_spread"])
    ratios = [r["bone_ratio"] for r in record["recordings"]]  # bones far steadier than unrelated pairs
    assert max(ratios) < QualityConfig().bone_ratio / 2 and min(r["pair_spread"] for r in record["recordings"]) > 0.05
    assert all(r["axis_angle"] < 45 and r["handedness"] > 0.1 for r in record["recordings"])
    assert not any("data" in w for w in warnings)  # only the small-split warnings
    if name == "im29":  # a manifest written before the data check (no "quality") still loads
        path = tmp_path / "out" / "manifest.json"
        data = json.loads(path.read_text())
        del data["quality"]
        path.write_text(json.dumps(data))
        assert read_manifest(tmp_path / "out").quality == {}


def test_a_scrambled_cohort_fails_and_passes_flagged_with_warn(cohorts, tmp_path, capsys):
    raw, layout = copy_cohort(cohorts, "im29", tmp_path)
    files = sorted(raw.glob("orgcoords_*.csv"))
    for k, path in enumerate(files):
        rewrite(path, layout, lambda c, k=k: scramble(c, k))
    with pytest.raises(SystemExit) as info:
        main([str(raw), str(tmp_path / "out"), "--set", "window=90"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert err.startswith(f"error: {files[0]}: bones vary like unrelated joint pairs (steady-bone ratio ")
    assert "bones unstable): columns scrambled?" in err
    assert "(and 9 more recordings)" in err and "--set quality.on_failure=warn" in err
    assert main([str(raw), str(tmp_path / "out"), "--set", "window=90", "--set", "quality.on_failure=warn"]) == 0
    out, err = capsys.readouterr()
    record = read_manifest(tmp_path / "out").quality
    assert record["flagged"] == 10 and len(record["failed"]) == 10 and len(record["worst"]) == 5
    assert all(r["failed"] and r["bone_ratio"] > QualityConfig().bone_ratio for r in record["recordings"])
    assert err.count("bones unstable): columns scrambled?; kept (quality.on_failure=warn)") == 10
    assert "data quality: 10 of 10 recordings flagged; worst: syn" in out


def foreshorten(coords, layout, seed, fps=30.0):
    """Limbs (parts named *arm*/*leg*) rotating out of the image plane about their root joint: every bone
    inside a limb is scaled by the limb's factor 0.7 + 0.3 cos(2 pi f t + phase), so its 2D length swings
    between 40 % and 100 % (f in [0.2, 0.6] Hz: at least one full swing in a 15 s recording)."""
    rng = np.random.default_rng(seed)
    part_of, limb = layout.joint_to_part(), [("arm" in name or "leg" in name) for name, _ in layout.parts]
    factor = 0.7 + 0.3 * np.cos(2 * np.pi * rng.uniform(0.2, 0.6, (len(limb), 1)) * np.arange(len(coords)) / fps
                                + rng.uniform(0, 2 * np.pi, (len(limb), 1)))
    depth = np.zeros(layout.num_joints, int)
    for j in range(layout.num_joints):
        k = j
        while layout.parents[k] != k:
            k, depth[j] = layout.parents[k], depth[j] + 1
    out = coords.copy()
    for j in np.argsort(depth, kind="stable"):  # parents first
        parent = layout.parents[j]
        scale = factor[part_of[j], :, None] if limb[part_of[j]] and part_of[parent] == part_of[j] else 1.0
        out[:, j] = out[:, parent] + scale * (coords[:, j] - coords[:, parent])
    return out


@pytest.mark.parametrize("name", ["im29", "mine"])
def test_a_clean_cohort_with_strong_foreshortening_passes(cohorts, tmp_path, name):
    raw, layout = copy_cohort(cohorts, name, tmp_path)
    path = raw / "orgcoords_syn0001.csv"
    coords = np.asarray(read_recording(path, layout).coords, np.float64)
    moved = foreshorten(coords, layout, 1)
    bones = quality.distances(moved, layout.edges) / quality.distances(coords, layout.edges)
    in_limbs = np.nanmin(bones, axis=0) < 0.9  # the limbs' inner bones swing from 40 % to 100 %
    assert in_limbs.sum() >= 8 and np.nanmin(bones) == pytest.approx(0.4, abs=0.01)
    assert np.nanmax(bones[:, in_limbs], axis=0).min() > 0.99
    for k, path in enumerate(sorted(raw.glob("orgcoords_*.csv"))):
        rewrite(path, layout, lambda c, k=k: foreshorten(c, layout, k))
    manifest = prepare_dataset(raw, tmp_path / "out", layout=layout, config=CONFIG, warn=lambda message: None)
    record = manifest.quality
    assert record["flagged"] == 0 and record["failed"] == [] and not record["notes"]
    # a proximal limb bone swinging 40-100 % on a body that hardly moves otherwise may vary as much as the
    # unrelated pairs: listed in the manifest, but no flag
    assert all(len(r["unstable_bones"]) <= 2 for r in record["recordings"])
    assert max(r["bone_ratio"] for r in record["recordings"]) < QualityConfig().bone_ratio


def test_skip_leaves_failing_recordings_out(cohorts, tmp_path):
    raw, layout = copy_cohort(cohorts, "im29", tmp_path)
    rewrite(raw / "orgcoords_syn0003.csv", layout, scramble)
    config = PrepareConfig(window=90, quality=QualityConfig(on_failure="skip"))
    warnings = []
    manifest = prepare_dataset(raw, tmp_path / "out", config=config, warn=warnings.append)
    assert [s["id"] for s in manifest.skipped] == ["syn0003"]
    assert manifest.skipped[0]["reason"] == "failed data check" and len(manifest.infants) == 9
    assert any("orgcoords_syn0003.csv" in w and w.endswith("; skipped") for w in warnings)
    assert manifest.quality["flagged"] == 0


def test_an_upside_down_cohort_gets_the_y_up_hint_and_y_up_fixes_it(cohorts, tmp_path, capsys):
    raw, layout = copy_cohort(cohorts, "mine", tmp_path)
    for path in raw.glob("orgcoords_*.csv"):
        rewrite(path, layout, lambda c: c * (1, -1) + (0, 1))  # y -> 1 - y: y points up
    layout_file = str(cohorts["layout_file"])
    assert main([str(raw), str(tmp_path / "up"), "--layout", layout_file, "--set", "window=90"]) == 0
    out = capsys.readouterr().out
    assert "data quality: 10 of 10 recordings have the thorax below the pelvis: y points up? prepare with " \
           "--y-up" in out
    record = read_manifest(tmp_path / "up").quality
    assert all("upside down" in r["flags"][0] for r in record["recordings"])
    assert main([str(raw), str(tmp_path / "fixed"), "--layout", layout_file, "--set", "window=90", "--y-up"]) == 0
    assert "data quality: 0 of 10 recordings flagged\n" in capsys.readouterr().out + "\n"
    assert read_manifest(tmp_path / "fixed").settings["preprocess"]["y_up"] is True
    assert data_settings(tmp_path / "fixed").preprocess.y_up is True  # what train stores, predict repeats
    # flipping y back gives the clean cohort's recordings again (centring removes the shift)
    prepare_dataset(cohorts["mine"][0], tmp_path / "clean", layout=layout, config=CONFIG)
    for split in available_splits(tmp_path / "clean"):
        clean, fixed = load_dataset(tmp_path / "clean", split), load_dataset(tmp_path / "fixed", split)
        assert clean.ids == fixed.ids
        np.testing.assert_allclose(fixed.coords, clean.coords, atol=2e-5)


def test_one_recording_with_x_y_swapped_and_one_with_left_right_swapped_are_flagged(cohorts, tmp_path):
    raw, layout = copy_cohort(cohorts, "im29", tmp_path)
    rewrite(raw / "orgcoords_syn0002.csv", layout, lambda c: c[..., ::-1])
    pairs = quality.left_right_pairs(layout)
    order = np.arange(layout.num_joints)
    for left, right in pairs:
        order[left], order[right] = right, left
    rewrite(raw / "orgcoords_syn0005.csv", layout, lambda c: c[:, order])
    manifest = prepare_dataset(raw, tmp_path / "out", config=CONFIG, warn=lambda message: None)
    flags = {r["id"]: r["flags"] for r in manifest.quality["recordings"]}
    assert {key for key, messages in flags.items() if messages} == {"syn0002", "syn0005"}
    assert flags["syn0002"] == [flags["syn0002"][0]] and flags["syn0002"][0].startswith("x and y look swapped")
    assert flags["syn0005"] == ["left and right look swapped (or the image is mirrored)"]
    assert manifest.quality["worst"] == ["syn0002", "syn0005"] or manifest.quality["worst"] == ["syn0005",
                                                                                              "syn0002"]


def test_a_layout_without_left_right_names_skips_that_check_once(cohorts):
    raw, layout = cohorts["im29"]
    joints = tuple(name.replace("left_", "a_").replace("right_", "b_") for name in layout.joints)
    anonymous = dataclasses.replace(layout, name="anon-29", joints=joints)
    figures = {path.stem: quality.measure_recording(read_recording(path, layout).coords, anonymous, 30.0,
                                                    QualityConfig()) for path in sorted(raw.glob("orgcoords_*.csv"))}
    verdict = quality.assess_cohort(figures, anonymous, QualityConfig())
    assert verdict.notes == ("left/right check skipped: layout 'anon-29' names no left/right joint pairs "
                             "(left_*/right_*, l*/r*, ...)",)
    assert verdict.flagged == () and verdict.failed == () and len(verdict.flags) == 10
