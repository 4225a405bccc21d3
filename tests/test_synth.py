"""Tests for the synthetic cohort: CSV format, kinematics, camera, cohort files, class statistics."""

import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from jaxcp import synth as synth_command
from jaxcp.core.errors import InputError
from jaxcp.data import synth
from jaxcp.data.skeleton import COCO_17, IN_MOTION_19, IN_MOTION_29, Layout

CUSTOM = Layout(
    name="custom-5", joints=("a", "b", "c", "d", "e"), edges=((0, 1), (1, 2), (1, 3), (3, 4)), center=1,
    parents=(1, 1, 1, 1, 3), parts=(("left_arm", (2,)), ("right_leg", (3, 4)), ("torso", (0, 1))),
    thorax=(1,), pelvis=(0,),
)


def parse_csv(text: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Header, frame column (T,) and (T, 2V) values (NaN for empty cells), parsed with the csv module."""
    rows = list(csv.reader(io.StringIO(text)))
    values = np.array([[float(c) if c else np.nan for c in row[1:]] for row in rows[1:]])
    return rows[0], np.array([int(row[0]) for row in rows[1:]]), values


def auc(score: np.ndarray, label: np.ndarray) -> float:
    u = mannwhitneyu(score[label == 1], score[label == 0]).statistic
    return u / ((label == 1).sum() * (label == 0).sum())


# --------------------------------------------------------------------------------------------------------
# CSV text

def test_format_csv_round_trip():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0.0, 1.0, (1234, 3, 2))
    coords[5, 1] = np.nan
    coords[1000:1010, 2] = np.nan
    coords[7, 0, 0] = 1.0  # clipped to 0.9999
    layout = Layout("three", ("p", "q", "r"), ((0, 1), (1, 2)), 1, (1, 1, 1), (("all", (0, 1, 2)),), (1,),
                    (0,))
    header, frames, values = parse_csv(synth.format_csv(layout, coords).decode())
    assert header == ["frame", "p_x", "p_y", "q_x", "q_y", "r_x", "r_y"]
    np.testing.assert_array_equal(frames, np.arange(1, 1235))
    expected = np.clip(coords, 0, 0.9999).reshape(1234, 6)
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    np.testing.assert_allclose(values, expected, atol=5.01e-5)
    assert np.nanmax(values) == pytest.approx(0.9999)


def test_format_csv_text_is_compact():
    coords = np.array([[[0.5, 0.25], [np.nan, np.nan]]] * 2)
    layout = Layout("two", ("a", "b"), ((0, 1),), 0, (0, 0), (("x", (0, 1)),), (0,), (1,))
    text = synth.format_csv(layout, coords).decode()
    assert text == "frame,a_x,a_y,b_x,b_y\n1,0.5000,0.2500,,\n2,0.5000,0.2500,,\n"


def test_outcomes_text():
    assert synth.format_outcomes(["a", "b"], [1, 0]) == "id;outcome\na;1\nb;0\n"


# --------------------------------------------------------------------------------------------------------
# Body and camera

@pytest.mark.parametrize("layout", [IN_MOTION_29, IN_MOTION_19, COCO_17, CUSTOM], ids=lambda lay: lay.name)
def test_bones_keep_their_lengths(layout):
    rng = np.random.default_rng(1)
    poses, _ = synth.simulate_body(rng, layout, label=1, num_frames=300, fps=30.0, difficulty=0.2)
    bones = poses - poses[:, list(layout.parents)]
    lengths = np.linalg.norm(bones, axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[:1], lengths.shape), atol=1e-9)
    non_root = np.array([p != v for v, p in enumerate(layout.parents)])
    assert (lengths[0, non_root] > 0.05).all()
    assert np.ptp(poses, axis=0).max() > 0.1  # the infant moves


def test_forward_kinematics_by_hand():
    parents, order = (0, 0, 1), np.array([0, 1, 2])
    angles = np.array([[0.0, 0.0, np.pi / 2], [0.0, np.pi, np.pi / 2]])
    roots = np.zeros((2, 3, 2))
    roots[:, 0] = [1.0, 2.0]
    pos = synth.forward_kinematics(parents, order, np.array([0.0, 2.0, 1.0]), angles, roots)
    np.testing.assert_allclose(pos[0], [[1, 2], [3, 2], [3, 3]], atol=1e-12)
    np.testing.assert_allclose(pos[1], [[1, 2], [-1, 2], [-1, 3]], atol=1e-12)


def test_template_is_a_supine_infant_seen_from_above():
    model = synth.body_model(IN_MOTION_29)
    pos = {name: model.template[i] for i, name in enumerate(IN_MOTION_29.joints)}
    assert pos["head_top"][1] > pos["thorax"][1] > pos["pelvis"][1] > pos["left_ankle"][1]
    assert pos["right_shoulder"][0] < 0 < pos["left_shoulder"][0]  # the infant's right on the image left
    role = {name: model.dof_role[d] for name, d in zip(IN_MOTION_29.joints, model.dof, strict=True) if d >= 0}
    assert role["left_elbow"] == "proximal" and role["left_wrist"] == "distal" and role["nose"] == "head"
    assert "head_top" not in role and "thorax" not in role  # rigid with the head, root
    assert model.dof[IN_MOTION_29.index("left_big_toe")] == model.dof[IN_MOTION_29.index("left_heel")]


def test_band_noise_spectrum():
    rng = np.random.default_rng(2)
    x = synth.band_noise(rng, (4, 3000), 30.0, 0.5, 4.0)
    np.testing.assert_allclose(np.sqrt(np.mean(x**2, axis=-1)), 1.0, rtol=1e-9)
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(3000, 1 / 30.0)
    inside = (freqs >= 0.5) & (freqs <= 4.0)
    assert power[:, ~inside].sum() < 1e-12 * power[:, inside].sum()


@pytest.mark.parametrize("fps", [25.0, 50.0])
def test_raw_keypoints_look_like_a_pose_estimator(fps):
    rng = np.random.default_rng(3)
    n = int(120 * fps)
    coords, latent = synth.simulate_infant(rng, IN_MOTION_29, label=0, num_frames=n, fps=fps, difficulty=0.5)
    assert coords.shape == (n, 29, 2)
    missing = np.isnan(coords[..., 0])
    np.testing.assert_array_equal(missing, np.isnan(coords[..., 1]))
    assert 0 < missing.mean() < 0.05 and not missing[0].any() and not missing.all(axis=0).any()
    assert np.nanmin(coords) >= 0 and np.nanmax(coords) < 1
    head, ankle = IN_MOTION_29.index("head_top"), IN_MOTION_29.index("left_ankle")
    assert np.nanmedian(coords[:, head, 1]) < np.nanmedian(coords[:, ankle, 1])  # image y points down
    assert set(latent) == {"poverty_weight", "asymmetric"}


def test_movement_frequencies_do_not_depend_on_fps():
    def velocity_centroid(fps: float, seed: int) -> float:
        rng = np.random.default_rng(seed)
        poses, _ = synth.simulate_body(rng, IN_MOTION_29, label=0, num_frames=int(60 * fps), fps=fps,
                                       difficulty=0.5)
        velocity = np.diff(poses[:, [7, 11, 15, 18]], axis=0)  # wrists and ankles
        power = (np.abs(np.fft.rfft(velocity, axis=0)) ** 2).sum(axis=(1, 2))
        freqs = np.fft.rfftfreq(len(velocity), 1 / fps)
        return np.sum(power * freqs) / np.sum(power)  # Hz

    slow, fast = (np.mean([velocity_centroid(fps, seed) for seed in range(4)]) for fps in (25.0, 50.0))
    assert 1.0 < slow < 3.0  # limb movements between 0.5 and 4 Hz
    assert slow == pytest.approx(fast, rel=0.1)


# --------------------------------------------------------------------------------------------------------
# Classes

def test_poverty_weight_follows_difficulty():
    rng = np.random.default_rng(5)
    draws = {(y, d): np.array([synth.poverty_weight(rng, y, d) for _ in range(2000)])
             for y in (0, 1) for d in (0.0, 0.5, 1.0)}
    gaps = [draws[1, d].mean() - draws[0, d].mean() for d in (0.0, 0.5, 1.0)]
    assert gaps[0] > gaps[1] > 0.2 and abs(gaps[2]) < 0.03
    assert all(((w >= 0) & (w <= 0.95)).all() for w in draws.values())


def _infant_statistics(coords: np.ndarray, fps: float) -> tuple[float, float]:
    """Mean speed of wrists and ankles, and minus their mean spectral entropy, on trunk-normalised data."""
    t = np.arange(len(coords))
    filled = coords.copy()
    for v in range(coords.shape[1]):
        for c in range(2):
            ok = ~np.isnan(coords[:, v, c])
            filled[:, v, c] = np.interp(t, t[ok], coords[ok, v, c])
    trunk = np.median(np.linalg.norm(filled[:, 8] - filled[:, 12], axis=-1))
    velocity = np.diff(filled[:, [7, 11, 15, 18]], axis=0) * fps / trunk  # (T-1, 4, 2)
    speed = np.linalg.norm(velocity, axis=-1).mean()
    power = np.abs(np.fft.rfft(velocity, axis=0)[1:]) ** 2
    p = power / power.sum(axis=0)
    entropy = -(p * np.log(p + 1e-30)).sum(axis=0).mean()
    return speed, -entropy


def test_mean_speed_does_not_separate_the_classes_but_movement_complexity_does():
    """Speed must not separate the classes in either direction: |AUC - 0.5| < 0.2 (under no difference the
    AUC of 24 + 24 infants has a standard deviation of sqrt(49 / (12 * 24 * 24)) = 0.084, so 0.2 is 2.4
    of them; this fixed cohort gives 0.47). Complexity must separate them the right way round (0.90)."""
    labels = np.array([0, 1] * 24)
    stats = []
    for i, label in enumerate(labels):
        rng = np.random.default_rng([11, i])
        coords, _ = synth.simulate_infant(rng, IN_MOTION_29, label=int(label), num_frames=900, fps=30.0,
                                          difficulty=synth.DEFAULT_DIFFICULTY)
        stats.append(_infant_statistics(coords, 30.0))
    stats = np.array(stats)
    assert abs(auc(stats[:, 0], labels) - 0.5) < 0.2
    assert auc(stats[:, 1], labels) > 0.75


def test_assign_labels():
    labels = synth.assign_labels(100, 0.15, seed=3)
    assert labels.sum() == 15 and set(labels) == {0, 1}
    np.testing.assert_array_equal(labels, synth.assign_labels(100, 0.15, seed=3))
    assert not np.array_equal(labels, synth.assign_labels(100, 0.15, seed=4))
    assert synth.assign_labels(3, 0.15, seed=0).sum() == 1  # at least one of each class
    assert synth.assign_labels(3, 0.0, seed=0).sum() == 0


# --------------------------------------------------------------------------------------------------------
# Cohort files and command line

def test_generate_cohort_writes_the_raw_format(tmp_path):
    out = tmp_path / "raw"
    cohort = synth.generate_cohort(out, infants=5, minutes=0.1, cp_fraction=0.4, seed=7, fps=25.0, workers=1)
    assert [label for _, label in cohort].count(1) == 2
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"orgcoords_{i}.csv" for i, _ in cohort] + ["outcomes.csv", "synth.json"])
    rows = list(csv.reader(io.StringIO((out / "outcomes.csv").read_text()), delimiter=";"))
    assert rows[0] == ["id", "outcome"] and [(r[0], int(r[1])) for r in rows[1:]] == cohort
    meta = json.loads((out / "synth.json").read_text())
    assert meta["fps"] == 25.0 and meta["layout"] == "in-motion-29" and len(meta["recordings"]) == 5
    for (infant_id, _), record in zip(cohort, meta["recordings"], strict=True):
        header, frames, values = parse_csv((out / f"orgcoords_{infant_id}.csv").read_text())
        assert header[1:] == [f"{j}_{a}" for j in IN_MOTION_29.joints for a in "xy"]
        assert record["frames"] == len(frames) and 0.085 * 60 * 25 <= len(frames) <= 0.115 * 60 * 25 + 1
        np.testing.assert_array_equal(frames, np.arange(1, len(frames) + 1))
        assert np.nanmin(values) >= 0 and np.nanmax(values) < 1


def test_cohort_is_reproducible_and_independent_of_workers(tmp_path):
    args = dict(infants=4, minutes=0.1, seed=9)
    synth.generate_cohort(tmp_path / "a", workers=1, **args)
    synth.generate_cohort(tmp_path / "b", workers=2, **args)
    synth.generate_cohort(tmp_path / "c", workers=1, **{**args, "seed": 10})
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    csvs = [n for n in files if n.endswith(".csv") and n != "outcomes.csv"]
    assert (tmp_path / "a" / csvs[0]).read_bytes() != (tmp_path / "c" / csvs[0]).read_bytes()


def test_reader_reads_the_cohort(tmp_path):
    io_module = pytest.importorskip("jaxcp.data.io")
    cohort = synth.generate_cohort(tmp_path, layout="in-motion-19", infants=2, minutes=0.1, workers=1)
    header, _, values = parse_csv((tmp_path / f"orgcoords_{cohort[0][0]}.csv").read_text())
    path = tmp_path / f"orgcoords_{cohort[0][0]}.csv"
    recording = io_module.read_csv_recording(path, IN_MOTION_19, fps=30.0)
    assert recording.id == cohort[0][0]
    np.testing.assert_allclose(recording.coords.reshape(len(values), -1), values, atol=1e-6)


def test_existing_folders(tmp_path):
    (tmp_path / "other.txt").write_text("not a cohort")
    with pytest.raises(InputError, match="not empty"):
        synth.generate_cohort(tmp_path, infants=2, minutes=0.1, workers=1)
    assert (tmp_path / "other.txt").exists()
    out = tmp_path / "cohort"
    synth.generate_cohort(out, infants=3, minutes=0.1, workers=1)
    synth.generate_cohort(out, infants=2, minutes=0.1, workers=1)  # a previous cohort is replaced
    assert len(list(out.glob("orgcoords_*.csv"))) == 2


def test_command_line(tmp_path, capsys):
    out = tmp_path / "raw"
    assert synth_command.main(["--out", str(out), "--infants", "3", "--minutes", "0.1", "--fps", "50",
                       "--layout", "coco-17", "--workers", "1"]) == 0
    assert "wrote 3 infants" in capsys.readouterr().out
    header = (next(out.glob("orgcoords_*.csv"))).read_text().splitlines()[0]
    assert header.split(",")[1:3] == ["nose_x", "nose_y"]
    assert json.loads((out / "synth.json").read_text())["fps"] == 50.0


@pytest.mark.parametrize("bad", [["--infants", "0"], ["--minutes", "0.01"], ["--cp-fraction", "1.5"],
                                 ["--difficulty", "-1"], ["--fps", "0"], ["--layout", "no-such-layout"]])
def test_command_line_rejects_bad_arguments(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exit_info:
        synth_command.main(["--out", str(tmp_path / "raw"), *bad])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "raw").exists()
