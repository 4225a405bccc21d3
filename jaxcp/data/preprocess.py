"""Preprocessing of one recording (AutoCP paper, section III-A; MovementOutcome's LEGACY pipeline).

  0. Orientation: raw coordinates are image coordinates with y pointing down. With `y_up` (`prepare
     --y-up`) the raw y points up and is negated first (y -> -y), so every later step, and the data
     check, sees y down. Nothing downstream needs positive coordinates: the body is centred in step 3.
  1. Gaps and resampling: every joint coordinate is linearly interpolated over its observed frames and
     sampled at `target_fps` (positions 0, r, 2r, ... < T in source frames, r = fps / target_fps, as
     MovementOutcome); before the first and after the last observation the nearest value is held.
     Gaps up to `max_gap_s` are what interpolation is for. Longer gaps are interpolated in the same way
     (so the output is NaN-free) but counted; a recording whose points in long gaps exceed
     `max_missing_fraction` of all its joint-frames raises `TooIncomplete` (callers skip and report it).
  2. Median filter over time, `median_window` points per joint and coordinate; at the ends the window
     shrinks symmetrically (frames 0 and T-1 are kept, frames 1 and T-2 use 3 points), as LEGACY.
  3. Centre on the median pelvis position (x and y medians taken separately) and divide by
     `trunk_multiple` times the median thorax-pelvis distance; both statistics come from the observed
     raw frames, as LEGACY. Thorax and pelvis are the mean of the layout's `thorax` / `pelvis` joints.
  4. Flip y so that up is positive.

`trunk_multiple` defaults to 2.0, the paper's "twice the trunk length". MovementOutcome's code divides by
4 x the median trunk length (2 * num_trunk_lengths with num_trunk_lengths = 2): set it to 4.0 to match
data processed by that code.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.io import Recording
from jaxcp.data.skeleton import Layout


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings (`--set preprocess.<name>=value`).

    Attributes:
      target_fps: output frame rate.
      max_gap_s: gaps of missing points up to this many seconds are filled by linear interpolation.
      max_missing_fraction: a recording whose joint-frames in longer gaps exceed this fraction is too
        incomplete (its long gaps are otherwise interpolated as well, and counted).
      median_window: points of the temporal median filter (odd; 1 = off).
      trunk_multiple: coordinates are divided by this multiple of the median trunk length.
      y_up: the raw y axis points up (not down, as image coordinates do): negate it before anything else.
    """

    target_fps: float = 30.0
    max_gap_s: float = 0.5
    max_missing_fraction: float = 0.2
    median_window: int = 5
    trunk_multiple: float = 2.0
    y_up: bool = False

    def __post_init__(self):
        where = "preprocess"
        if not (math.isfinite(self.target_fps) and self.target_fps > 0):
            raise InputError(f"{where}.target_fps: must be > 0, got {self.target_fps}")
        if not self.max_gap_s >= 0:
            raise InputError(f"{where}.max_gap_s: must be >= 0, got {self.max_gap_s}")
        if not 0 <= self.max_missing_fraction <= 1:
            value = self.max_missing_fraction
            raise InputError(f"{where}.max_missing_fraction: must be in [0, 1], got {value}")
        if self.median_window < 1 or self.median_window % 2 == 0:
            raise InputError(f"{where}.median_window: must be an odd number >= 1, got {self.median_window}")
        if not (math.isfinite(self.trunk_multiple) and self.trunk_multiple > 0):
            raise InputError(f"{where}.trunk_multiple: must be > 0, got {self.trunk_multiple}")


@dataclasses.dataclass(frozen=True)
class GapReport:
    """Missing data of one raw recording.

    Attributes:
      raw_frames: frames in the raw recording.
      missing_fraction: joint-frames missing in the raw recording.
      long_gap_fraction: joint-frames in gaps longer than `max_gap_s` (interpolated all the same).
      num_long_gaps: number of such gaps over all joints.
    """

    raw_frames: int
    missing_fraction: float
    long_gap_fraction: float
    num_long_gaps: int


class TooIncomplete(InputError):
    """A recording whose long gaps exceed `max_missing_fraction`; `report` says by how much."""

    def __init__(self, message: str, report: GapReport):
        super().__init__(message)
        self.report = report


def preprocess(
    recording: Recording, layout: Layout, config: PreprocessConfig = PreprocessConfig()
) -> np.ndarray:
    """(T', V, 2) float32 NaN-free, resampled, filtered, centred and scaled coordinates (y up)."""
    return preprocess_recording(recording, layout, config)[0]


def preprocess_recording(
    recording: Recording, layout: Layout, config: PreprocessConfig = PreprocessConfig()
) -> tuple[np.ndarray, GapReport]:
    """`preprocess` plus the recording's `GapReport`; raises `TooIncomplete` for too many long gaps."""
    coords = oriented(recording.coords, config)
    if coords.ndim != 3 or coords.shape[1:] != (layout.num_joints, 2) or coords.shape[0] == 0:
        expected = f"(T, {layout.num_joints}, 2)"
        raise InputError(f"{recording.source}: expected {expected} coordinates, got {coords.shape}")
    missing = np.isnan(coords).any(axis=-1)
    if missing.all(axis=0).any():
        joint = layout.joints[int(np.argmax(missing.all(axis=0)))]
        raise InputError(f"{recording.source}: joint {joint!r} is missing in every frame")
    report = gap_report(missing, max_gap_frames(config.max_gap_s, recording.fps))
    if report.long_gap_fraction > config.max_missing_fraction:
        raise TooIncomplete(
            f"{recording.source}: {100 * report.long_gap_fraction:.1f}% of joint-frames are in gaps longer "
            f"than {config.max_gap_s} s (limit {100 * config.max_missing_fraction:.1f}%)", report)
    center, trunk = body_reference(coords, layout, recording.source)
    positions = resample_positions(coords.shape[0], recording.fps, config.target_fps)
    smooth = median_filter_time(interpolate_missing(coords, missing, positions), config.median_window)
    return normalize(smooth, center, config.trunk_multiple * trunk).astype(np.float32), report


def oriented(coords: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """float64 copy of raw (T, V, 2) coordinates with y pointing down: y negated when `config.y_up`."""
    out = np.array(coords, np.float64)
    if config.y_up and out.ndim == 3 and out.shape[-1] == 2:
        out[..., 1] *= -1.0
    return out


def max_gap_frames(max_gap_s: float, fps: float) -> int:
    """The longest gap, in frames at `fps`, that counts as short."""
    return int(math.floor(max_gap_s * fps + 1e-9))


def gap_report(missing: np.ndarray, max_gap: int) -> GapReport:
    """Summarise (T, V) bool missing points: runs longer than `max_gap` frames are long gaps."""
    lengths = run_lengths(missing)
    long = lengths[lengths > max_gap]
    size = max(missing.size, 1)
    return GapReport(
        raw_frames=int(missing.shape[0]),
        missing_fraction=float(missing.sum() / size),
        long_gap_fraction=float(long.sum() / size),
        num_long_gaps=int(long.size),
    )


def run_lengths(missing: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True along time of a (T, V) bool array, over all joints."""
    t, v = missing.shape
    padded = np.zeros((v, t + 2), np.int8)
    padded[:, 1:-1] = missing.T
    edges = np.diff(padded.ravel())
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return ends - starts


def resample_positions(num_frames: int, fps: float, target_fps: float) -> np.ndarray:
    """Positions in source frames: 0, r, 2r, ... < T with r = fps / target_fps (ceil(T / r) of them)."""
    count = max(1, int(math.ceil(num_frames * target_fps / fps - 1e-9)))
    return np.minimum(np.arange(count) * (fps / target_fps), num_frames - 1)


def interpolate_missing(coords: np.ndarray, missing: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(len(positions), V, 2): each joint coordinate linearly interpolated over its observed frames.

    coords: (T, V, 2); missing: (T, V) bool; outside the observed range the nearest value is held.
    """
    frames = np.arange(coords.shape[0], dtype=np.float64)
    out = np.empty((positions.size, coords.shape[1], 2), np.float64)
    for v in range(coords.shape[1]):
        seen = ~missing[:, v]
        for c in range(2):
            out[:, v, c] = np.interp(positions, frames[seen], coords[seen, v, c])
    return out


def median_filter_time(x: np.ndarray, window: int) -> np.ndarray:
    """Median over `window` frames centred on each frame of x: (T, ...); the window shrinks at the ends.

    Frame t uses half-width min(window // 2, t, T - 1 - t), so the first and last frames are unchanged.
    """
    half, num = window // 2, x.shape[0]
    if half == 0 or num < 3:
        return x.copy()
    out = x.copy()
    if num >= window:
        views = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)
        out[half:num - half] = np.partition(views, half, axis=-1)[..., half]  # the median of an odd count
    for t in (*range(min(half, num)), *range(max(num - half, 0), num)):
        k = min(half, t, num - 1 - t)
        out[t] = np.median(x[t - k:t + k + 1], axis=0)
    return out


def joint_mean(coords: np.ndarray, joints: tuple[int, ...]) -> np.ndarray:
    """(T, 2) mean of the given joints per frame (NaN where any of them is missing)."""
    return coords[:, list(joints)].mean(axis=1)


def body_reference(coords: np.ndarray, layout: Layout, source: str) -> tuple[np.ndarray, float]:
    """Median pelvis position (2,) and median thorax-pelvis distance over the observed raw frames."""
    thorax, pelvis = joint_mean(coords, layout.thorax), joint_mean(coords, layout.pelvis)
    seen_pelvis = ~np.isnan(pelvis).any(axis=1)
    trunk = np.linalg.norm(thorax - pelvis, axis=1)
    seen_trunk = ~np.isnan(trunk)
    if not seen_trunk.any():
        raise InputError(f"{source}: thorax and pelvis are never observed in the same frame")
    length = float(np.median(trunk[seen_trunk]))
    if not length > 0:
        raise InputError(f"{source}: the median thorax-pelvis distance is 0; cannot scale")
    return np.median(pelvis[seen_pelvis], axis=0), length


def normalize(coords: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """(x - cx) / scale and -(y - cy) / scale: centred, scaled, y up. coords: (T, V, 2)."""
    out = (coords - center) / scale
    out[..., 1] *= -1.0
    return out
