"""The skeleton data check of `jaxcp prepare`: does each recording look like a tracked body?

It runs on each recording's raw coordinates (image units, NaN = missing; after the `--y-up` flip, before
resampling, filtering and scaling): the figures are ratios and angles, so units do not matter, the image
convention (y down) is still there to judge orientation by, and nothing has been smoothed away yet.
Every statistic is robust (quantiles and medians over the observed frames), so the tracker's rare outliers
and short gaps do not raise a flag.

Per recording (`measure_recording`, pure numpy, runs where the recording is read):
  - bones against unrelated joint pairs (self-normalised: no scale and no assumption about how much the
    body moves): every distance -- each bone (layout edge), and each of up to `max_pairs` joint pairs at
    least `min_hops` edges apart in the skeleton graph (a fixed selection) -- is smoothed by a running
    median over `smoothing_s` seconds (removes the tracker's jitter), and its spread q90 - q10 measured in
    body sizes. A bone's ratio is its spread over the median spread of the unrelated pairs that share a
    joint with it. In a tracked body a bone varies less than such a pair, whose distance changes with every
    joint angle between its ends: rotating out of the image plane (2D foreshortening) shortens a limb's
    bones and the longer pairs spanning that limb by the same factor, and the trunk and head, which lie
    in the image plane, keep their bones steady. With scrambled or mislabelled columns the "bones" are
    unrelated pairs too and the ratios scatter around 1. The recording's figure r is the `bone_quantile`
    quantile of the bone ratios (0.25: the steadiest quarter of the bones, so that limbs swinging out of
    plane do not count); r > `bone_ratio` fails the check. A bone whose spread reaches both that of its
    pairs (ratio >= 1) and the median spread of all unrelated pairs is listed as unstable (for the
    report). A recording whose median pair spread is below `min_motion` body sizes barely moves and is
    not judged (r = NaN).
  - far joints: the fraction of frames in which a joint lies farther than `far_body_sizes` body sizes
    from the body centre (midpoint of thorax and pelvis in that frame; body size: the median
    thorax-pelvis distance). More than `far_fraction` of the frames is flagged.
  - body axis: the angle of the median pelvis -> thorax vector from image up (y down): 0 = head up,
    180 = upside down, 90 = along x.
  - handedness: for layouts whose joint names pair left and right joints (`left_right_pairs`), the
    median over frames of the mean cross product (body axis x (left - right)) / body size^2, and the
    fraction of frames that agree with its sign; the sign flips when left and right (or the image) are
    mirrored.

Across the cohort (`assess_cohort`): a recording with the thorax below the pelvis (axis more than 120
degrees from up) is upside down (hint: `--y-up`, said once for the cohort when most are); one whose axis
lies along x (60-120 degrees) while most lie along y (or the reverse) has x and y swapped; among the
other recordings whose handedness is clear (|h| >= MIN_HANDEDNESS in at least MIN_AGREEMENT of the
frames), one with the minority sign has left and right swapped.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import Layout

UPRIGHT_MAX_DEG = 60.0  # axis within this of image up (or down): the body lies along y
UPSIDE_DOWN_MIN_DEG = 120.0  # axis more than this from image up: thorax below pelvis
MIN_HANDEDNESS = 0.1  # |handedness| below this is too weak to compare
MIN_AGREEMENT = 0.9  # ... and so is a handedness whose sign fewer frames than this agree with
MIN_FRAMES = 10  # a bone seen in fewer frames is not judged
MAX_WINDOWS = 600  # the running median is evaluated at most at this many evenly spaced positions
NUM_WORST = 5
_LEFT_RIGHT = (("left_", "right_"), ("_left", "_right"), ("left", "right"), ("l_", "r_"), ("_l", "_r"),
               ("l", "r"))


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Data check settings (`--set quality.<name>=value`); see the module docstring.

    Attributes:
      smoothing_s: seconds of the running median applied to each distance (removes jitter).
      min_hops: joint pairs at least this many edges apart are the "unrelated" pairs bones are compared with
        (the farthest pairs there are, if none is that far).
      max_pairs: at most this many of them (evenly spaced in index order; all when fewer).
      bone_quantile: r is this quantile of the bones' ratios (0.25: the steadiest quarter of the bones).
      bone_ratio: a recording whose r exceeds this fails.
      min_motion: a recording whose median pair spread is below this many body sizes is not judged by it.
      far_body_sizes: a joint farther than this many body sizes from the body centre is far out.
      far_fraction: a joint far out in more than this fraction of frames is flagged.
      on_failure: a recording that fails: "error" (stop, exit 2), "warn" (keep it, flagged) or "skip"
        (leave it out, listed in the manifest).
    """

    smoothing_s: float = 1.0
    min_hops: int = 3
    max_pairs: int = 400
    bone_quantile: float = 0.25
    bone_ratio: float = 0.3
    min_motion: float = 0.05
    far_body_sizes: float = 4.0
    far_fraction: float = 0.05
    on_failure: Literal["error", "warn", "skip"] = "error"

    def __post_init__(self):
        for name in ("bone_ratio", "far_body_sizes"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InputError(f"quality.{name}: must be > 0, got {getattr(self, name)}")
        for name in ("smoothing_s", "min_motion"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InputError(f"quality.{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("min_hops", "max_pairs"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 2):
                raise InputError(f"quality.{name}: must be an integer >= 2, got {getattr(self, name)!r}")
        for name in ("bone_quantile", "far_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"quality.{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.on_failure not in ("error", "warn", "skip"):
            raise InputError(f"quality.on_failure: must be error, warn or skip, got {self.on_failure!r}")


@dataclasses.dataclass(frozen=True)
class RecordingQuality:
    """The figures of one recording (see the module docstring); NaN where a figure cannot be measured.

    Attributes:
      bone_spread: (q90 - q10) of each bone's smoothed length in body sizes, per layout edge (E,).
      pair_spread: the median of the same over the unrelated joint pairs.
      bone_ratio: r, the `bone_quantile` quantile of the bones' ratios (NaN when the recording barely moves).
      unstable: names ("a-b") of the bones whose spread reaches both that of the unrelated pairs sharing a
        joint with them (ratio >= 1) and pair_spread.
      far_fraction: the largest fraction of frames any joint is far out; far_joint: that joint.
      axis_angle: degrees of the body axis from image up, in [0, 180].
      handedness: signed left/right figure, NaN when the layout pairs no joints.
      agreement: fraction of frames whose left/right figure has the sign of `handedness`.
      failed: bone_ratio above the threshold.
    """

    bone_spread: tuple[float, ...]
    pair_spread: float
    bone_ratio: float
    unstable: tuple[str, ...]
    far_fraction: float
    far_joint: str
    axis_angle: float
    handedness: float
    agreement: float
    failed: bool


# --------------------------------------------------------------------------------------------------------
# Figures of one recording

def smoothing_frames(seconds: float, fps: float) -> int:
    """The odd number of frames closest to `seconds` at `fps` (at least 1)."""
    return max(1, 2 * int(round(seconds * fps / 2)) + 1) if seconds > 0 else 1


def body_points(coords: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) thorax and pelvis points per frame (means of the layout's joints; NaN where missing)."""
    return coords[:, list(layout.thorax)].mean(axis=1), coords[:, list(layout.pelvis)].mean(axis=1)


def distances(coords: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(T, P) distance of each joint pair per frame (NaN where an end is missing). coords: (T, V, 2)."""
    ends = np.asarray(pairs, np.int64).reshape(-1, 2)
    return np.linalg.norm(coords[:, ends[:, 0]] - coords[:, ends[:, 1]], axis=-1)


def running_median(x: np.ndarray, window: int, max_windows: int | None = None) -> np.ndarray:
    """(W, ...) median of `window` consecutive frames of x (T, ...), NaN ignored (NaN where a window holds
    no value), for every window start or, with `max_windows`, at most that many evenly spaced ones; x itself
    when window <= 1 or longer than x."""
    if window <= 1 or window > x.shape[0]:
        return x
    views = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)
    if max_windows is not None and views.shape[0] > max_windows:
        ordered = views[np.linspace(0, views.shape[0] - 1, max_windows).round().astype(np.int64)]  # a copy
    else:
        ordered = np.array(views)
    # np.nanmedian's own result, computed directly (it takes a slow masked-array path for windows this
    # short): sorted, NaN go last; the mean of the two middle values of the n seen, the middle one when n is odd
    ordered.sort(axis=-1)  # in place: the windows are copied once
    if not np.isnan(x).any():  # every window full
        return (ordered[..., (window - 1) // 2] + ordered[..., window // 2]) / 2
    seen = (~np.isnan(ordered)).sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ordered, np.maximum(seen - 1, 0) // 2, axis=-1)[..., 0]
    high = np.take_along_axis(ordered, seen // 2, axis=-1)[..., 0]
    return np.where(seen[..., 0] > 0, (low + high) / 2, np.nan)


def body_size(coords: np.ndarray, layout: Layout) -> float:
    """The median thorax-pelvis distance over the frames where both are seen (NaN if never)."""
    thorax, pelvis = body_points(coords, layout)
    trunk = np.linalg.norm(thorax - pelvis, axis=-1)
    return float(np.median(trunk[~np.isnan(trunk)])) if (~np.isnan(trunk)).any() else float("nan")


def unrelated_pairs(layout: Layout, min_hops: int, max_pairs: int) -> tuple[tuple[int, int], ...]:
    """Joint pairs (a < b) at least `min_hops` edges apart (the farthest pairs there are when none is that
    far, none when no pair is 2 apart), in index order; evenly spaced `max_pairs` of them when more."""
    hops = layout.hop_distance(max_hop=layout.num_joints)
    upper = np.triu(np.ones_like(hops, dtype=bool), k=1)
    farthest = hops[upper].max(initial=0)
    a, b = np.nonzero(upper & (hops >= min(min_hops, farthest)) & (hops >= 2))
    if len(a) > max_pairs:
        keep = np.linspace(0, len(a) - 1, max_pairs).round().astype(np.int64)
        a, b = a[keep], b[keep]
    return tuple(zip(a.tolist(), b.tolist(), strict=True))


def distance_spread(coords: np.ndarray, layout: Layout, pairs: Sequence[tuple[int, int]],
                    window: int = 1) -> np.ndarray:
    """(P,) spread (q90 - q10) in body sizes of each pair's distance over time, after a running median over
    `window` frames (which removes the tracker's frame-to-frame jitter). coords: (T, V, 2), NaN = missing.
    NaN for a pair seen in fewer than MIN_FRAMES (smoothed) frames, or all NaN without a body size."""
    smooth = running_median(distances(coords, pairs), window, MAX_WINDOWS)
    size = body_size(coords, layout)
    out = np.full(smooth.shape[1], np.nan)
    seen = (~np.isnan(smooth)).sum(axis=0)
    if not size > 0:
        return out
    judged = seen >= MIN_FRAMES
    full = judged & (seen == smooth.shape[0])  # no NaN: np.quantile over all of them at once, the same numbers
    if full.any():
        low, high = np.quantile(smooth[:, full], (0.1, 0.9), axis=0)
        out[full] = (high - low) / size
    for p in np.flatnonzero(judged & ~full):
        low, high = np.nanquantile(smooth[:, p], (0.1, 0.9))
        out[p] = (high - low) / size
    return out


def far_fractions(coords: np.ndarray, layout: Layout, body_sizes: float) -> np.ndarray:
    """(V,) fraction of each joint's observed frames farther than `body_sizes` body sizes from the body
    centre (the thorax-pelvis midpoint of that frame); 0 where nothing is measurable."""
    thorax, pelvis = body_points(coords, layout)
    size = body_size(coords, layout)
    if not size > 0:
        return np.zeros(layout.num_joints)
    distance = np.linalg.norm(coords - ((thorax + pelvis) / 2)[:, None], axis=-1) / size  # (T, V)
    seen = ~np.isnan(distance)
    far = np.where(seen, distance, 0.0) > body_sizes
    return far.sum(axis=0) / np.maximum(seen.sum(axis=0), 1)


def axis_angle(coords: np.ndarray, layout: Layout) -> float:
    """Degrees in [0, 180] of the median pelvis -> thorax vector from image up (y down); NaN if unseen."""
    thorax, pelvis = body_points(coords, layout)
    axis = thorax - pelvis
    axis = axis[~np.isnan(axis).any(axis=1)]
    if not len(axis):
        return float("nan")
    dx, dy = np.median(axis, axis=0)
    return float(abs(np.degrees(np.arctan2(dx, -dy))))


def left_right_pairs(layout: Layout) -> tuple[tuple[int, int], ...]:
    """(left, right) joint index pairs named alike: left_*/right_*, *_left/*_right, l*/r*, *_l/*_r ...

    Names are compared in lower case; the first naming pattern that finds a partner wins."""
    names = {name.lower(): i for i, name in enumerate(layout.joints)}
    pairs = []
    for name, i in names.items():
        for left, right in _LEFT_RIGHT:
            if left.endswith("_") or left in ("left", "l"):
                partner = right + name[len(left):] if name.startswith(left) else None
            else:
                partner = name[: -len(left)] + right if name.endswith(left) else None
            if partner is not None and partner in names and partner != name:
                pairs.append((i, names[partner]))
                break
    return tuple(pairs)


def handedness(coords: np.ndarray, layout: Layout, pairs: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """(h, agreement): h the median over frames of mean_pairs cross(thorax - pelvis, left - right) / body
    size^2, agreement the fraction of frames whose figure has the sign of h; (NaN, 0) without pairs.

    h > 0 for a supine infant seen from above, head up in an image with y down (its left on the image's
    right); mirroring the image or swapping left and right flips the sign."""
    if not pairs:
        return float("nan"), 0.0
    thorax, pelvis = body_points(coords, layout)
    axis = thorax - pelvis  # (T, 2)
    ends = np.asarray(pairs)
    offset = coords[:, ends[:, 0]] - coords[:, ends[:, 1]]  # (T, P, 2)
    cross = axis[:, None, 0] * offset[..., 1] - axis[:, None, 1] * offset[..., 0]  # (T, P)
    valid = ~np.isnan(cross).all(axis=1) & ~np.isnan(axis).any(axis=1)
    if not valid.any():
        return float("nan"), 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_frame = np.nanmean(cross[valid], axis=1)
    size2 = float(np.median(np.sum(axis[valid] ** 2, axis=1)))
    if not size2 > 0:
        return float("nan"), 0.0
    h = float(np.median(per_frame)) / size2
    return h, float(np.mean(np.sign(per_frame) == np.sign(h)))


def bone_test(coords: np.ndarray, layout: Layout, fps: float,
              config: QualityConfig) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(bone spreads (E,), bone ratios (E,), median pair spread, r) of one recording.

    Each bone's ratio is its spread over the median spread of the unrelated pairs that share a joint with
    it (of all of them when none does); r is the `config.bone_quantile` quantile of the bone ratios (the
    steadiest bones), NaN when the median pair spread is below `config.min_motion` (the body barely
    moves) or nothing is measured."""
    window = smoothing_frames(config.smoothing_s, fps)
    bones = distance_spread(coords, layout, layout.edges, window)
    pairs = np.asarray(unrelated_pairs(layout, config.min_hops, config.max_pairs), np.int64).reshape(-1, 2)
    spread = distance_spread(coords, layout, pairs, window) if len(pairs) else np.full(0, np.nan)
    ratios = np.full(len(bones), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nothing measured
        typical = float(np.nanmedian(spread)) if len(spread) else float("nan")
        for e, ends in enumerate(layout.edges):
            near = spread[np.isin(pairs, ends).any(axis=1)]
            reference = np.nanmedian(near) if (~np.isnan(near)).any() else typical
            ratios[e] = bones[e] / reference if reference > 0 else np.nan
        judged = typical >= config.min_motion and (~np.isnan(ratios)).any()
        ratio = float(np.nanquantile(ratios, config.bone_quantile)) if judged else float("nan")
    return bones, ratios, typical, ratio


def measure_recording(coords: np.ndarray, layout: Layout, fps: float,
                      config: QualityConfig) -> RecordingQuality:
    """The figures of one recording. coords: (T, V, 2) raw image coordinates (y down), NaN = missing."""
    coords = np.asarray(coords, np.float64)
    spread, ratios, typical, ratio = bone_test(coords, layout, fps, config)
    names = [f"{layout.joints[a]}-{layout.joints[b]}" for a, b in layout.edges]
    unstable = tuple(name for name, s, r in zip(names, spread, ratios, strict=True)
                     if r >= 1 and s >= typical and not math.isnan(ratio))
    far = far_fractions(coords, layout, config.far_body_sizes)
    hand, agreement = handedness(coords, layout, left_right_pairs(layout))
    return RecordingQuality(
        bone_spread=tuple(float(s) for s in spread), pair_spread=typical, bone_ratio=ratio, unstable=unstable,
        far_fraction=float(far.max()), far_joint=layout.joints[int(np.argmax(far))],
        axis_angle=axis_angle(coords, layout), handedness=hand, agreement=agreement,
        failed=ratio > config.bone_ratio,
    )


# --------------------------------------------------------------------------------------------------------
# The cohort

@dataclasses.dataclass(frozen=True)
class CohortQuality:
    """The check's verdict: per recording its flags (messages), the failures, and notes for the cohort.

    Attributes:
      flags: {id: messages}, every recording (empty tuple: nothing found).
      failed: ids that fail the check (bones as variable as unrelated joint pairs).
      notes: cohort-level lines (checks skipped, a hint for the whole cohort).
      worst: up to NUM_WORST flagged ids, worst first.
    """

    flags: dict[str, tuple[str, ...]]
    failed: tuple[str, ...]
    notes: tuple[str, ...]
    worst: tuple[str, ...]

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(key for key, messages in self.flags.items() if messages)


def _own_flags(figures: RecordingQuality, layout: Layout, config: QualityConfig) -> list[str]:
    flags = []
    if figures.failed:
        judged = sum(1 for s in figures.bone_spread if not math.isnan(s))
        flags.append(f"bones vary like unrelated joint pairs (steady-bone ratio {figures.bone_ratio:.2f} > "
                     f"{config.bone_ratio:g}; {len(figures.unstable)} of {judged} bones unstable): "
                     f"columns scrambled?")
    if figures.far_fraction > config.far_fraction:
        flags.append(f"joint {figures.far_joint!r} farther than {config.far_body_sizes:g} body sizes from the "
                     f"body in {100 * figures.far_fraction:.0f}% of frames")
    return flags


def assess_cohort(figures: Mapping[str, RecordingQuality], layout: Layout,
                  config: QualityConfig) -> CohortQuality:
    """Flags for every recording, own and relative to the cohort (orientation, x/y and left/right swaps)."""
    flags = {key: _own_flags(f, layout, config) for key, f in figures.items()}
    notes = []
    if not unrelated_pairs(layout, config.min_hops, config.max_pairs):
        notes.append(f"bone check skipped: layout {layout.name!r} has no joints two or more edges apart")
    else:
        still = [key for key, f in figures.items() if math.isnan(f.bone_ratio)]
        if still:
            notes.append(f"bone check not judged for {len(still)} of {len(figures)} recordings (too little "
                         f"motion or too few frames): {', '.join(still[:NUM_WORST])}"
                         f"{', ...' if len(still) > NUM_WORST else ''}")
    angles = {key: f.axis_angle for key, f in figures.items() if not math.isnan(f.axis_angle)}
    down = [key for key, a in angles.items() if a > UPSIDE_DOWN_MIN_DEG]
    along_x = {key for key, a in angles.items() if UPRIGHT_MAX_DEG <= a <= UPSIDE_DOWN_MIN_DEG}
    along_y = {key for key, a in angles.items() if a < UPRIGHT_MAX_DEG or a > UPSIDE_DOWN_MIN_DEG}
    if len(down) > len(angles) / 2:
        notes.append(f"{len(down)} of {len(angles)} recordings have the thorax below the pelvis: y points "
                     f"up? prepare with --y-up")
    for key in down:
        flags[key].append(f"upside down (thorax below pelvis, body axis {angles[key]:.0f} degrees from up): "
                          f"y up? (--y-up)")
    odd = along_x if len(along_x) < len(along_y) else along_y
    if len(along_x) >= len(along_y) and along_x:
        notes.append(f"the body axis lies along x in {len(along_x)} of {len(angles)} recordings (camera "
                     f"turned 90 degrees?)")
    for key in odd:
        flags[key].append(f"x and y look swapped (body axis {angles[key]:.0f} degrees from up, most "
                          f"recordings' lie along {'y' if odd is along_x else 'x'})")
    _left_right(figures, layout, flags, notes, set(down) | odd)
    failed = tuple(key for key, f in figures.items() if f.failed)
    severity = {key: (key in failed, len(flags[key]), np.nan_to_num(figures[key].bone_ratio))
                for key in figures}
    worst = sorted((key for key in figures if flags[key]), key=lambda k: severity[k], reverse=True)
    return CohortQuality({k: tuple(v) for k, v in flags.items()}, failed, tuple(notes),
                         tuple(worst[:NUM_WORST]))


def _left_right(figures: Mapping[str, RecordingQuality], layout: Layout, flags: dict, notes: list,
                turned: set) -> None:
    """Flag recordings whose handedness has the minority sign (among those not already turned)."""
    if not left_right_pairs(layout):
        notes.append(f"left/right check skipped: layout {layout.name!r} names no left/right joint pairs "
                     f"(left_*/right_*, l*/r*, ...)")
        return
    signs = {key: np.sign(f.handedness) for key, f in figures.items()
             if key not in turned and abs(f.handedness) >= MIN_HANDEDNESS and f.agreement >= MIN_AGREEMENT}
    num_positive = sum(s > 0 for s in signs.values())
    if 2 * num_positive == len(signs):
        return  # no majority: nothing to compare against
    majority = 1 if 2 * num_positive > len(signs) else -1
    for key, sign in signs.items():
        if sign != majority:
            flags[key].append("left and right look swapped (or the image is mirrored)")


def summary_lines(record: Mapping) -> str:
    """"data quality: 2 of 20 recordings flagged; worst: id7 (...), ..." and one line per cohort note, from
    the manifest's quality section (`quality_record`)."""
    flags = {r["id"]: r["flags"] for r in record["recordings"]}
    line = f"data quality: {record['flagged']} of {len(flags)} recordings flagged"
    if record["worst"]:
        line += "; worst: " + ", ".join(f"{key} ({flags[key][0]})" for key in record["worst"])
    return "\n".join([line, *(f"data quality: {note}" for note in record["notes"])])


def quality_record(figures: Mapping[str, RecordingQuality], quality: CohortQuality, layout: Layout,
                   config: QualityConfig) -> dict:
    """The manifest's "quality" section (plain JSON types)."""
    def number(x: float, digits: int = 4):
        return None if math.isnan(x) else round(float(x), digits)

    recordings = [
        {"id": key, "flags": list(quality.flags[key]), "failed": key in quality.failed,
         "bone_ratio": number(f.bone_ratio, 3), "pair_spread": number(f.pair_spread),
         "unstable_bones": list(f.unstable), "bone_spread": [number(s, 4) for s in f.bone_spread],
         "far_fraction": number(f.far_fraction), "far_joint": f.far_joint,
         "axis_angle": number(f.axis_angle, 1), "handedness": number(f.handedness),
         "agreement": number(f.agreement, 3)}
        for key, f in figures.items()
    ]
    return {"thresholds": dataclasses.asdict(config),
            "bones": [f"{layout.joints[a]}-{layout.joints[b]}" for a, b in layout.edges],
            "flagged": len(quality.flagged), "failed": list(quality.failed), "worst": list(quality.worst),
            "notes": list(quality.notes), "recordings": recordings}
