"""A synthetic infant cohort written in the raw format (`orgcoords_<id>.csv` + `outcomes.csv`).

Real CP recordings are private, so jaxcp's quick start, tests and benchmarks use this cohort. Each infant
is a supine body seen from above: joint positions come from forward kinematics along `layout.parents`
(so every bone keeps its per-infant length), driven by joint-angle signals:

- limbs: smooth band-limited random oscillations between 0.5 and 4 Hz (fidgety-like), a slow posture
  drift and a slow amplitude envelope; head turning and small trunk/neck motion; whole-body drift;
- camera: per-infant scale, offset and in-plane rotation, image y pointing down, coordinates as fractions
  of a square frame (as a pose estimator writes them), Gaussian jitter, rare outliers and short gaps of
  missing keypoints (empty cells).

CP-like infants differ the way the general movement assessment describes them. Each infant has a
"poverty" weight w in [0, 1]: every limb joint angle mixes a rich broadband signal (weight 1 - w) with one
shared, regular source of one or two slowly wandering sinusoids (weight w), the same for all four limbs
(mirrored left/right, small lags), which makes movements less varied, less complex, cramped and
synchronised; and about half of the CP infants move one side less (asymmetry growing with w). Typically
developing infants have small w, CP infants a larger one; `difficulty` in [0, 1] shrinks the gap (1 = no
difference). Every limb signal is normalised to the same angular speed, and the activity level is drawn
from one distribution for both classes, so overall amount and speed of movement do not give the class away.

All infants of a cohort share one frame rate (`fps`, default 30): the raw CSV has no fps field, so read
the cohort with that rate (it is also recorded in `synth.json`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from jaxcp import __version__
from jaxcp.core.atomic import check_out_folder, commit_dir, fresh_dir
from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.prepare import prepare_dataset
from jaxcp.data.skeleton import IN_MOTION_29, Layout, load_layout

DEFAULT_INFANTS = 100
DEFAULT_MINUTES = 3.0
DEFAULT_CP_FRACTION = 0.15
# calibrated with benchmarks/difficulty.py: a trained small model reaches subject AUC about 0.9 (README)
DEFAULT_DIFFICULTY = 0.1
DEFAULT_FPS = 30.0
MIN_MINUTES = 0.1  # the shortest recording (-15%) still holds a 150-frame window at 30 Hz
SETTINGS_FILE = "synth.json"
OUTCOMES_FILE = "outcomes.csv"

_TARGET_OMEGA = 2 * np.pi * 1.4  # angular speed (rad/s) of a unit-amplitude limb signal
_ROLE_AMPLITUDE = {"girdle": 0.05, "proximal": 0.24, "distal": 0.26, "end": 0.20}  # radians
_ROLE_DRIFT = {"girdle": 0.04, "proximal": 0.15, "distal": 0.15, "end": 0.12}
_POSTURE_SPREAD = 0.15  # per-infant rest-angle offsets of limb joints (radians)

# Body model: rest positions in trunk lengths (thorax at the origin, pelvis at (0, -1), y up, the
# infant's right on the image left as seen from a camera above a supine infant).
_TEMPLATE = {
    "thorax": (0.0, 0.0), "pelvis": (0.0, -1.0), "upper_neck": (0.0, 0.32), "nose": (0.0, 0.68),
    "head_top": (0.0, 1.05), "right_ear": (-0.22, 0.72), "left_ear": (0.22, 0.72),
    "right_eye": (-0.09, 0.78), "left_eye": (0.09, 0.78),
    "right_shoulder": (-0.38, 0.02), "right_elbow": (-0.72, -0.22), "right_wrist": (-0.82, 0.18),
    "right_little_finger": (-0.90, 0.32), "right_index_finger": (-0.78, 0.35),
    "right_hip": (-0.16, -1.0), "right_knee": (-0.46, -1.30), "right_ankle": (-0.38, -1.70),
    "right_heel": (-0.36, -1.78), "right_little_toe": (-0.49, -1.86), "right_big_toe": (-0.38, -1.91),
}  # fmt: skip
_TEMPLATE.update({n.replace("right_", "left_"): (-x, y) for n, (x, y) in list(_TEMPLATE.items())
                  if n.startswith("right_")})  # fmt: skip
_HEAD_WORDS = ("nose", "head", "ear", "eye")
_TORSO_WORDS = ("torso", "trunk", "head", "body", "spine", "neck")


# --------------------------------------------------------------------------------------------------------
# The body: joint roles, rest template, forward kinematics

@dataclasses.dataclass(frozen=True)
class BodyModel:
    """Per-layout constants of the simulation (numpy arrays, V joints, D angle signals).

    Attributes:
      order: joints sorted so that parents come before children (V,).
      template: rest positions in trunk lengths, y up (V, 2).
      rest_dir: rest direction of each bone parent -> joint, radians (V,); 0 for roots.
      rest_len: rest bone length in trunk lengths (V,); 0 for roots.
      dof: index of the angle signal that bends each joint (V,), -1 for roots and rigid joints.
      dof_role: role of each signal (D,): girdle, proximal, distal, end, neck, head, trunk.
      dof_limb: limb index of each signal (D,), -1 outside limbs; limbs are parts named arm/leg/...
      limb_side: +1 left, -1 right, 0 unknown, per limb. limb_kind: 0 arm, 1 leg, 2 other, per limb.
    """

    order: np.ndarray
    template: np.ndarray
    rest_dir: np.ndarray
    rest_len: np.ndarray
    dof: np.ndarray
    dof_role: tuple[str, ...]
    dof_limb: np.ndarray
    limb_side: np.ndarray
    limb_kind: np.ndarray


def _topological_order(parents: Sequence[int]) -> np.ndarray:
    depth = np.zeros(len(parents), np.int64)
    for v in range(len(parents)):
        joint = v
        while parents[joint] != joint:
            depth[v] += 1
            joint = parents[joint]
    return np.argsort(depth, kind="stable")


def _tree_template(layout: Layout, order: np.ndarray) -> np.ndarray:
    """Rest positions for a layout with unknown joint names: children fan out from their parent."""
    pos = np.zeros((layout.num_joints, 2))
    heading = np.full(layout.num_joints, -np.pi / 2)
    roots = [v for v in order if layout.parents[v] == v]
    for r, v in enumerate(roots):
        pos[v] = (1.5 * r, 0.0)
    for v in order:
        children = [c for c in range(layout.num_joints) if layout.parents[c] == v and c != v]
        if layout.parents[v] == v:
            angles = heading[v] + 2 * np.pi * np.arange(len(children)) / max(len(children), 1)
        else:
            angles = heading[v] + np.linspace(-0.6, 0.6, len(children)) * (len(children) > 1)
        for c, a in zip(children, angles, strict=True):
            heading[c] = a
            pos[c] = pos[v] + 0.4 * np.array([np.cos(a), np.sin(a)])
    return pos


def _limbs(layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V,) limb index per joint (-1 torso), and per limb its side (+1 left, -1 right) and kind."""
    limb_of = np.full(layout.num_joints, -1)
    sides, kinds = [], []
    for name, members in layout.parts:
        low = name.lower()
        if any(word in low for word in _TORSO_WORDS):
            continue
        limb_of[list(members)] = len(sides)
        sides.append(1 if "left" in low else -1 if "right" in low else 0)
        kinds.append(0 if "arm" in low else 1 if "leg" in low else 2)
    return limb_of, np.array(sides, np.int64), np.array(kinds, np.int64)


def _joint_role(layout: Layout, v: int, limb_of: np.ndarray) -> str:
    parent, name = layout.parents[v], layout.joints[v].lower()
    if parent == v:
        return "root"
    if limb_of[v] >= 0:
        depth, joint = 0, v
        while layout.parents[joint] != joint and limb_of[layout.parents[joint]] == limb_of[v]:
            depth, joint = depth + 1, layout.parents[joint]
        return ("girdle", "proximal", "distal")[depth] if depth < 3 else "end"
    if any(word in layout.joints[parent].lower() for word in _HEAD_WORDS):
        return "rigid"  # ears, eyes, head top move with the head
    if any(word in name for word in _HEAD_WORDS):
        return "head"
    return "neck" if "neck" in name else "trunk"


@functools.lru_cache(maxsize=16)
def body_model(layout: Layout) -> BodyModel:
    """The simulation constants for a layout (cached): template, bone rest geometry, angle signals."""
    order = _topological_order(layout.parents)
    if all(name in _TEMPLATE for name in layout.joints):
        template = np.array([_TEMPLATE[name] for name in layout.joints], np.float64)
    else:
        template = _tree_template(layout, order)
    parents = np.asarray(layout.parents)
    bone = template - template[parents]
    rest_len = np.hypot(bone[:, 0], bone[:, 1])
    rest_dir = np.arctan2(bone[:, 1], bone[:, 0])
    limb_of, sides, kinds = _limbs(layout)
    dof = np.full(layout.num_joints, -1)
    roles, dof_limb, end_dof = [], [], {}
    for v in order:
        role = _joint_role(layout, int(v), limb_of)
        if role in ("root", "rigid"):
            continue
        if role == "end" and parents[v] in end_dof:  # the points of one hand/foot share one angle
            dof[v] = end_dof[parents[v]]
            continue
        dof[v] = len(roles)
        if role == "end":
            end_dof[parents[v]] = dof[v]
        roles.append(role)
        dof_limb.append(limb_of[v])
    return BodyModel(order, template, rest_dir, rest_len, dof, tuple(roles), np.array(dof_limb, np.int64),
                     sides, kinds)


def forward_kinematics(parents: Sequence[int], order: np.ndarray, lengths: np.ndarray, angles: np.ndarray,
                       roots: np.ndarray) -> np.ndarray:
    """Joint positions from bone lengths and absolute bone directions.

    Args:
      parents: parent of each joint (V,); order: parents before children (V,).
      lengths: bone lengths (V,); angles: absolute direction of each bone parent -> joint (T, V).
      roots: positions used for root joints (T, V, 2) (only the roots' entries are read).
    Returns:
      (T, V, 2) positions; |pos[v] - pos[parent[v]]| == lengths[v] in every frame.
    """
    pos = np.empty_like(roots)
    for v in order:
        p = parents[v]
        if p == v:
            pos[:, v] = roots[:, v]
        else:
            pos[:, v, 0] = pos[:, p, 0] + lengths[v] * np.cos(angles[:, v])
            pos[:, v, 1] = pos[:, p, 1] + lengths[v] * np.sin(angles[:, v])
    return pos


# --------------------------------------------------------------------------------------------------------
# Random signals

def band_noise(rng: np.random.Generator, shape: tuple[int, ...], fps: float, low: float, high: float,
               slope: float = 1.0) -> np.ndarray:
    """(..., T) Gaussian noise with amplitude spectrum f^-slope between `low` and `high` Hz, unit RMS."""
    freqs = np.fft.rfftfreq(shape[-1], 1.0 / fps)
    band = (freqs >= low) & (freqs <= high)
    if not band.any():  # very short signal: keep the bin nearest to the band
        band[1 + np.argmin(np.abs(freqs[1:] - 0.5 * (low + high)))] = True
    gain = np.where(band, np.maximum(freqs, 1e-9) ** -slope, 0.0)
    size = shape[:-1] + (len(freqs),)
    spectrum = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) * gain
    x = np.fft.irfft(spectrum, n=shape[-1])
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-30)


def regular_source(rng: np.random.Generator, num_frames: int, fps: float, lags: np.ndarray) -> np.ndarray:
    """(L, T) one regular movement pattern (1-2 slowly wandering sinusoids, 0.5-4 Hz) at L time lags."""
    n = int(rng.integers(1, 3))
    freq = rng.uniform(0.5, 4.0, n)  # the same mean frequency as the broadband movements
    amp = rng.uniform(0.6, 1.0, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    wander = 0.8 * band_noise(rng, (n, num_frames), fps, 0.01, 0.1)
    t = np.arange(num_frames) / fps
    arg = 2 * np.pi * freq[:, None, None] * (t[None, None, :] - lags[None, :, None])
    x = np.sum(amp[:, None, None] * np.sin(arg + phase[:, None, None] + wander[:, None, :]), axis=0)
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True))


def _unit_speed(x: np.ndarray, fps: float) -> np.ndarray:
    """Scale each signal (..., T) so that its angular speed RMS is `_TARGET_OMEGA`."""
    speed = np.sqrt(np.mean(np.diff(x, axis=-1) ** 2, axis=-1, keepdims=True)) * fps
    return x * (_TARGET_OMEGA / (speed + 1e-12))


# --------------------------------------------------------------------------------------------------------
# One infant

def poverty_weight(rng: np.random.Generator, label: int, difficulty: float) -> float:
    """The weight w of the shared regular movement pattern: small for typical infants, larger for CP."""
    mean = 0.12 + (0.65 * (1.0 - difficulty) if label == 1 else 0.0)
    spread = 0.15 if label == 1 else 0.08
    return float(np.clip(rng.normal(mean, spread), 0.0, 0.95))


def _side_gains(rng: np.random.Generator, label: int, weight: float) -> tuple[np.ndarray, bool]:
    """Amplitude of the left and right limbs (mean square 1): mild natural asymmetry, CP hemi-like."""
    gains = rng.normal(1.0, 0.06, 2)
    asymmetric = bool(label == 1 and rng.random() < 0.5)
    if asymmetric:
        gains[rng.integers(2)] *= 1.0 - 0.7 * weight
    return gains / np.sqrt(np.mean(gains**2)), asymmetric


def limb_signals(rng: np.random.Generator, model: BodyModel, num_frames: int, fps: float, weight: float,
                 side_gains: np.ndarray) -> np.ndarray:
    """(D, T) angle offsets (radians) of all signals: limb movement, posture drift, head and trunk."""
    d = len(model.dof_role)
    roles = np.array(model.dof_role)
    rich = _unit_speed(band_noise(rng, (d, num_frames), fps, 0.5, 4.0), fps)
    num_limbs = len(model.limb_side)
    source = _unit_speed(regular_source(rng, num_frames, fps, rng.uniform(0.0, 0.15, num_limbs + 1)), fps)
    pattern = rng.choice([-1.0, 1.0], size=(3, 4))  # flexion sign per limb kind and joint role
    role_index = np.array([("girdle", "proximal", "distal", "end").index(r) if r in _ROLE_AMPLITUDE else 0
                           for r in roles])
    limb = model.dof_limb
    side = np.where(limb >= 0, model.limb_side[np.maximum(limb, 0)], 0)
    kind = np.where(limb >= 0, model.limb_kind[np.maximum(limb, 0)], 2)
    synced = source[limb] * (pattern[kind, role_index] * np.where(side == 0, 1, side))[:, None]
    movement = np.sqrt(1.0 - weight) * rich + np.sqrt(weight) * synced
    envelope = np.exp(0.3 * band_noise(rng, (num_limbs + 1, num_frames), fps, 0.01, 0.1))
    envelope /= envelope.mean(axis=-1, keepdims=True)
    gain = np.where(side > 0, side_gains[0], np.where(side < 0, side_gains[1], 1.0))
    amp = np.array([_ROLE_AMPLITUDE.get(r, 0.0) for r in roles]) * gain * np.exp(rng.normal(0.0, 0.25))
    drift = np.array([_ROLE_DRIFT.get(r, 0.0) for r in roles])
    out = amp[:, None] * envelope[limb] * movement
    out += drift[:, None] * band_noise(rng, (d, num_frames), fps, 0.02, 0.4)
    out += (limb >= 0)[:, None] * rng.normal(0.0, _POSTURE_SPREAD, (d, 1))
    return out + _torso_signals(rng, roles, num_frames, fps)


def _torso_signals(rng: np.random.Generator, roles: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """(D, T) head turning, neck and trunk bending (class independent); zero for limb signals."""
    slow = {"head": 0.30, "neck": 0.06, "trunk": 0.03}
    fast = {"head": 0.04, "neck": 0.03, "trunk": 0.01}
    d = len(roles)
    a_slow = np.array([slow.get(r, 0.0) for r in roles])[:, None]
    a_fast = np.array([fast.get(r, 0.0) for r in roles])[:, None]
    return (a_slow * band_noise(rng, (d, num_frames), fps, 0.02, 0.5)
            + a_fast * band_noise(rng, (d, num_frames), fps, 0.5, 4.0))


def simulate_body(rng: np.random.Generator, layout: Layout, *, label: int, num_frames: int, fps: float,
                  difficulty: float) -> tuple[np.ndarray, dict]:
    """One infant's noise-free poses in its body frame.

    Returns:
      poses (T, V, 2) float64 in trunk lengths, y up; latent {"poverty_weight": w, "asymmetric": bool}.
    """
    model = body_model(layout)
    weight = poverty_weight(rng, label, difficulty)
    side_gains, asymmetric = _side_gains(rng, label, weight)
    signals = limb_signals(rng, model, num_frames, fps, weight, side_gains)
    lengths = model.rest_len * np.clip(rng.normal(1.0, 0.05, layout.num_joints), 0.85, 1.15)
    trunk_angle = 0.05 * band_noise(rng, (num_frames,), fps, 0.01, 0.3)
    delta = np.where(model.dof >= 0, signals[np.maximum(model.dof, 0)].T, 0.0)  # (T, V)
    parents = np.asarray(layout.parents)
    angles = np.empty((num_frames, layout.num_joints))
    for v in model.order:
        p = parents[v]
        base = trunk_angle if p == v else angles[:, p] - model.rest_dir[p] * (parents[p] != p)
        angles[:, v] = base + model.rest_dir[v] + delta[:, v]
    shift = 0.04 * band_noise(rng, (2, num_frames), fps, 0.01, 0.2).T
    c, s = np.cos(trunk_angle), np.sin(trunk_angle)
    tx, ty = model.template[:, 0], model.template[:, 1]
    roots = np.stack([c[:, None] * tx - s[:, None] * ty, s[:, None] * tx + c[:, None] * ty], axis=-1)
    poses = forward_kinematics(layout.parents, model.order, lengths, angles, roots + shift[:, None, :])
    latent = {"poverty_weight": round(weight, 4), "asymmetric": asymmetric}
    return poses, latent


# --------------------------------------------------------------------------------------------------------
# The camera and the pose estimator

def camera_view(rng: np.random.Generator, poses: np.ndarray, model: BodyModel, fps: float) -> np.ndarray:
    """Body-frame poses (T, V, 2) -> keypoints as a pose estimator writes them.

    Returns (T, V, 2) float64: x, y as fractions of a square frame in [0, 1), y pointing down, with
    jitter, rare outliers, and NaN for missing keypoints (short gaps).
    """
    num_frames, num_joints, _ = poses.shape
    is_end = np.array([d >= 0 and model.dof_role[d] == "end" for d in model.dof])
    sigma = rng.uniform(0.006, 0.015) * np.where(is_end, 2.0, 1.0)
    noisy = poses + sigma[None, :, None] * rng.standard_normal(poses.shape, np.float32)
    outlier = np.nonzero(rng.random((num_frames, num_joints)) < 3e-4)
    noisy[outlier] += rng.normal(0.0, 0.25, (len(outlier[0]), 2))
    scale = rng.uniform(0.14, 0.22)
    angle = rng.normal(0.0, 0.15)
    c, s = np.cos(angle), np.sin(angle)
    x, y = noisy[..., 0], -(noisy[..., 1] + 0.45)  # body middle to the origin, then y down
    centre = 0.5 + rng.uniform(-0.06, 0.06, 2)
    image = np.stack([centre[0] + scale * (c * x - s * y), centre[1] + scale * (s * x + c * y)], axis=-1)
    image = np.clip(image, 0.0, 0.9999)
    image[missing_mask(rng, num_frames, is_end, fps)] = np.nan
    return image


def missing_mask(rng: np.random.Generator, num_frames: int, is_end: np.ndarray, fps: float) -> np.ndarray:
    """(T, V) bool: short gaps (1 to 30 frames) starting at random, more often for hands and feet."""
    per_minute = rng.uniform(0.2, 1.5) * np.where(is_end, 3.0, 1.0)
    starts = rng.random((num_frames, len(is_end))) < per_minute / (60.0 * fps)
    mask = np.zeros((num_frames, len(is_end)), bool)
    for t, v in zip(*np.nonzero(starts), strict=True):
        mask[t : t + min(int(rng.geometric(0.2)), 30), v] = True
    mask[0] = False  # every recording starts with a complete frame
    return mask


def simulate_infant(rng: np.random.Generator, layout: Layout, *, label: int, num_frames: int, fps: float,
                    difficulty: float) -> tuple[np.ndarray, dict]:
    """One infant's raw keypoints (T, V, 2) (image fractions, y down, NaN = missing) and its latent."""
    poses, latent = simulate_body(rng, layout, label=label, num_frames=num_frames, fps=fps,
                                  difficulty=difficulty)
    return camera_view(rng, poses, body_model(layout), fps), latent


# --------------------------------------------------------------------------------------------------------
# Writing the raw format

def _cell_table() -> np.ndarray:
    """(10000,) uint64: the bytes ",0.dddd" plus one padding byte for every 4-decimal value in [0, 1)."""
    table = np.zeros((10000, 8), np.uint8)
    table[:, :3] = np.frombuffer(b",0.", np.uint8)
    table[:, 3:7] = np.arange(10000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + 48
    return table.view(np.uint64).ravel()


_CELLS = _cell_table()


def csv_header(layout: Layout) -> str:
    return "frame," + ",".join(f"{joint}_{axis}" for joint in layout.joints for axis in "xy") + "\n"


def format_csv(layout: Layout, coords: np.ndarray) -> bytes:
    """The `orgcoords_<id>.csv` text of (T, V, 2) coordinates in [0, 1) (NaN = empty cell), as `%.4f`.

    Built as one byte array (fixed-width fields, then the padding removed with a mask), which is much
    faster than formatting every number in Python.
    """
    num_frames = coords.shape[0]
    values = coords.reshape(num_frames, -1)
    missing = np.isnan(values)
    fixed = np.rint(np.clip(np.nan_to_num(values), 0.0, 0.9999) * 10000).astype(np.intp)
    width = len(str(num_frames))
    frame = np.arange(1, num_frames + 1)
    frame_digits = ((frame[:, None] // 10 ** np.arange(width - 1, -1, -1)) % 10 + 48).astype(np.uint8)
    cells = _CELLS[fixed].view(np.uint8).reshape(num_frames, -1)  # (T, 2V * 8)
    rows = np.concatenate([frame_digits, cells, np.full((num_frames, 1), 10, np.uint8)], axis=1)
    keep = np.ones(rows.shape, bool)
    keep[:, : width - 1] = frame[:, None] >= 10 ** np.arange(width - 1, 0, -1)  # leading zeros
    keep_cells = keep[:, width:-1].reshape(num_frames, -1, 8)
    keep_cells[..., 1:7] = ~missing[..., None]  # an empty cell keeps only its comma
    keep_cells[..., 7] = False  # padding
    return csv_header(layout).encode() + rows[keep].tobytes()


def format_outcomes(ids: Sequence[str], labels: Sequence[int]) -> str:
    return "id;outcome\n" + "".join(f"{i};{int(y)}\n" for i, y in zip(ids, labels, strict=True))


# --------------------------------------------------------------------------------------------------------
# The cohort

@dataclasses.dataclass(frozen=True)
class _Settings:
    layout: Layout
    minutes: float
    difficulty: float
    fps: float
    seed: int


def assign_labels(infants: int, cp_fraction: float, seed: int) -> np.ndarray:
    """(N,) int labels, 1 = CP, about `cp_fraction` of them (at least one of each class when possible)."""
    num_cp = int(round(cp_fraction * infants))
    if infants >= 2 and 0.0 < cp_fraction < 1.0:
        num_cp = min(max(num_cp, 1), infants - 1)
    labels = np.zeros(infants, np.int64)
    labels[:num_cp] = 1
    return np.random.default_rng([seed, 0]).permutation(labels)


def _write_infant(job: tuple[Path, int, str, int, _Settings]) -> dict:
    folder, index, infant_id, label, settings = job
    rng = np.random.default_rng([settings.seed, 1, index])
    num_frames = int(round(settings.minutes * 60.0 * settings.fps * rng.uniform(0.85, 1.15)))
    coords, latent = simulate_infant(rng, settings.layout, label=label, num_frames=num_frames,
                                     fps=settings.fps, difficulty=settings.difficulty)
    (folder / f"orgcoords_{infant_id}.csv").write_bytes(format_csv(settings.layout, coords))
    missing = float(np.isnan(coords[..., 0]).mean())
    return {"id": infant_id, "label": label, "frames": num_frames, "missing": round(missing, 5), **latent}


def _check_args(infants: int, minutes: float, cp_fraction: float, difficulty: float, fps: float) -> None:
    if infants < 1:
        raise InputError(f"--infants {infants}: need at least one infant")
    if not minutes >= MIN_MINUTES:
        raise InputError(f"--minutes {minutes}: recordings must be at least {MIN_MINUTES} minutes")
    if not 0.0 <= cp_fraction <= 1.0:
        raise InputError(f"--cp-fraction {cp_fraction}: must be between 0 and 1")
    if not 0.0 <= difficulty <= 1.0:
        raise InputError(f"--difficulty {difficulty}: must be between 0 and 1")
    if not fps >= 5.0:
        raise InputError(f"--fps {fps}: must be at least 5 frames per second")


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SETTINGS_FILE).is_file():
        raise InputError(f"{out_dir}: folder is not empty and holds no synthetic cohort; choose a new folder")
    check_out_folder(out_dir)


def generate_cohort(out_dir: str | Path, *, layout: Layout | str = IN_MOTION_29,
                    infants: int = DEFAULT_INFANTS, minutes: float = DEFAULT_MINUTES,
                    cp_fraction: float = DEFAULT_CP_FRACTION, difficulty: float = DEFAULT_DIFFICULTY,
                    seed: int = DEFAULT_SEED, fps: float = DEFAULT_FPS,
                    workers: int | None = None) -> list[tuple[str, int]]:
    """Write a synthetic cohort to `out_dir` (replaced as a whole, atomically) and return [(id, label)].

    Files: `orgcoords_<id>.csv` per infant, `outcomes.csv` (`id;outcome`, 1 = CP) and `synth.json`
    (settings, fps, and each infant's frames, missing fraction and latent movement parameters).
    The same arguments give the same files whatever the number of `workers` (processes).
    """
    _check_args(infants, minutes, cp_fraction, difficulty, fps)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    settings = _Settings(load_layout(layout), float(minutes), float(difficulty), float(fps), int(seed))
    labels = assign_labels(infants, cp_fraction, seed)
    ids = [f"syn{i + 1:0{max(4, len(str(infants)))}d}" for i in range(infants)]
    tmp = fresh_dir(out_dir)
    try:
        jobs = [(tmp, i, ids[i], int(labels[i]), settings) for i in range(infants)]
        workers = min(os.cpu_count() or 1, 8) if workers is None else workers
        if workers > 1 and infants >= 4:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                records = list(pool.map(_write_infant, jobs, chunksize=max(1, infants // (4 * workers))))
        else:
            records = [_write_infant(job) for job in jobs]
        (tmp / OUTCOMES_FILE).write_text(format_outcomes(ids, labels))
        meta = {"jaxcp_version": __version__, "layout": settings.layout.name, "fps": settings.fps,
                "units": "fractions of a square frame, y down", "seed": settings.seed, "infants": infants,
                "minutes": settings.minutes, "cp_fraction": cp_fraction, "difficulty": settings.difficulty,
                "recordings": records}
        (tmp / SETTINGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")
        commit_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [(i, int(y)) for i, y in zip(ids, labels, strict=True)]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """A synthetic cohort to generate (the search's default data when no --data is given)."""

    infants: int = 120
    minutes: float = 1.0
    cp_fraction: float = 0.25
    difficulty: float | None = None  # None: DEFAULT_DIFFICULTY


def ensure_synthetic(settings: SyntheticConfig, seed: int, layout: Layout, root: str | Path,
                     log: Callable[[str], None] = print) -> Path:
    """A processed synthetic cohort for these settings under `root`, generated on first use (raw files in
    `root/<hash>/raw`, processed in `root/<hash>/processed`) and reused afterwards."""
    values = dataclasses.asdict(settings)
    if values["difficulty"] is None:  # the generator's default, in the key: a new default is a new cohort
        values["difficulty"] = DEFAULT_DIFFICULTY
    key = json.dumps({**values, "seed": seed, "layout": layout.name}, sort_keys=True)
    folder = Path(root) / hashlib.sha1(key.encode()).hexdigest()[:10]
    processed = folder / "processed"
    if (processed / "manifest.json").is_file():
        return processed
    log(f"generating a synthetic cohort of {settings.infants} infants in {folder}")
    generate_cohort(
        folder / "raw", layout=layout, infants=settings.infants, minutes=settings.minutes,
        cp_fraction=settings.cp_fraction, difficulty=values["difficulty"], seed=seed,
    )  # fmt: skip
    prepare_dataset(folder / "raw", processed, layout=layout, seed=seed)
    return processed
