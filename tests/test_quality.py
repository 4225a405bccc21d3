"""The skeleton data check: figures on hand-made arrays, and `prepare` on small synthetic cohorts that are
clean, scrambled, upside down, or hold one recording with x/y or left/right swapped."""

from __future__ import annotations

import dataclasses
import json
import shutil

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


def test_bone_spread_by_hand_and_the_running_median_removes_jitter():
    three = Layout("three", ("thorax", "pelvis", "hand"), ((0, 1), (0, 2)), 0, (0, 0, 0),
                   (("body", (0, 1, 2)),), (0,), (1,))
    coords = np.zeros((10, 3, 2))
    coords[:, 1] = (0.0, 10.0)  # body size 10: a bone shorter than 3 (SHORT_BONE) is measured against 3
    coords[:, 2, 0] = np.arange(1.0, 11.0)  # hand bone 1..10: q50 = 5.5, q90 = 9.1
    np.testing.assert_allclose(quality.bone_spread(coords, three), [0.0, (9.1 - 5.5) / 5.5])
    coords[:, 2, 0] = np.arange(1.0, 11.0) / 10  # 0.1..1.0: q50 0.55, q90 0.91, relative to 3
    np.testing.assert_allclose(quality.bone_spread(coords, three), [0.0, (0.91 - 0.55) / 3.0])
    spiky = np.zeros((40, 2, 2))
    spiky[:, 1, 1] = 2.0
    spiky[::4, 1, 1] = 5.0  # a jump every 4th frame: upper spread (5 - 2) / 2 unsmoothed, none after 3 frames
    np.testing.assert_allclose(quality.bone_spread(spiky, TWO), [1.5])
    np.testing.assert_allclose(quality.bone_spread(spiky, TWO, window=3), [0.0])
    spiky[:35, 1] = np.nan  # seen in 5 frames only: not judged
    assert np.isnan(quality.bone_spread(spiky, TWO)).all()
    assert quality.smoothing_frames(1.0, 30.0) == 31 and quality.smoothing_frames(0.0, 30.0) == 1


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
    with pytest.raises(InputError, match="quality.bone_spread: must be > 0"):
        QualityConfig(bone_spread=0)
    with pytest.raises(InputError, match="quality.unstable_fraction: must be in"):
        QualityConfig(unstable_fraction=1.5)


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
    medians = [np.median(r["bone_spread"]) for r in record["recordings"]]  # most bones stable
    assert max(medians) < QualityConfig().bone_spread
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
    assert err.startswith(f"error: {files[0]}: ") and "bones unstable: columns scrambled?" in err
    assert "(and 9 more recordings)" in err and "--set quality.on_failure=warn" in err
    assert main([str(raw), str(tmp_path / "out"), "--set", "window=90", "--set", "quality.on_failure=warn"]) == 0
    out, err = capsys.readouterr()
    record = read_manifest(tmp_path / "out").quality
    assert record["flagged"] == 10 and len(record["failed"]) == 10 and len(record["worst"]) == 5
    assert all(r["failed"] and len(r["unstable_bones"]) > 14 for r in record["recordings"])
    assert err.count("bones unstable: columns scrambled?; kept (quality.on_failure=warn)") == 10
    assert "data quality: 10 of 10 recordings flagged; worst: syn" in out


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
