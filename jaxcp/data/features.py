"""AutoCP's input feature streams J, V, B, A (reference section 3.1), in pure JAX, channels last.

From a window of (x, y) keypoints, each stream has 4 channels:

- J (joint): x, y and the position relative to `relative_joint` (AutoCP: joint 1, not the graph centre).
- V (velocity): one-step differences p[t+1] - p[t], and two-step differences (p[t+2] - p[t]) / 2, for
  t < T - 2; the last two frames are 0.
- B (bone): the bone vector b = p[v] - p[parent(v)], and its two direction angles arccos(b_x / L),
  arccos(b_y / L) with L = |b| + 1e-4 (the bone length itself is not a channel; the root's angles are pi/2;
  arccos is evaluated as a polynomial, see `arccos`).
- A (acceleration): the same differences as V, applied to the velocity low-passed by a zero-phase
  Butterworth filter (scipy `sosfiltfilt`, order 8, cutoff 0.5 x Nyquist, odd padding), filtered with its
  two trailing zero frames, as AutoCP does.

The filter is linear for a fixed window length, so it is precomputed once per T as a (T, T) matrix
(`butterworth_operator`); with the differences before and after it, A is two (T, T) matrices applied to
the positions on device in one matrix product (`acceleration_operators`).
`compute_features(windows, layout, config)` is pure and jittable (layout and config are static), and
works on any number of leading batch axes, so it also vmaps.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import Layout

STREAM_ORDER = "JVBA"
CHANNELS_PER_STREAM = 4
BONE_EPS = 1e-4
# arccos(a) = sqrt(1 - a) * poly(a) on [0, 1], |error| <= 2e-8 (Abramowitz & Stegun 4.4.46)
_ACOS_COEFFS = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046, 0.0308918810, -0.0170881256,
                0.0066700901, -0.0012624911)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Which streams to compute and how (a hashable, static spec).

    Attributes:
      streams: letters out of J, V, B, A; the output keeps the order J, V, B, A whatever order is given.
      relative_joint: index of the joint that the J stream is made relative to (AutoCP: 1).
      filter_order: Butterworth order of the A stream's low-pass filter.
      filter_cutoff: its cutoff relative to the Nyquist frequency (0.5 = 7.5 Hz at 30 Hz).
      use_filter: False computes A from the unfiltered velocity.
    """

    streams: str = STREAM_ORDER
    relative_joint: int = 1
    filter_order: int = 8
    filter_cutoff: float = 0.5
    use_filter: bool = True

    def __post_init__(self):
        unknown = sorted(set(self.streams) - set(STREAM_ORDER))
        if not self.streams or unknown or len(set(self.streams)) != len(self.streams):
            raise InputError(f"features.streams {self.streams!r}: use each of J, V, B, A at most once")
        if self.relative_joint < 0:
            raise InputError(f"features.relative_joint {self.relative_joint}: must be a joint index >= 0")
        if self.filter_order < 1:
            raise InputError(f"features.filter_order {self.filter_order}: must be >= 1")
        if not 0.0 < self.filter_cutoff < 1.0:
            raise InputError(f"features.filter_cutoff {self.filter_cutoff}: must be in (0, 1) x Nyquist")

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The selected streams in output order, e.g. ('J', 'B')."""
        return tuple(s for s in STREAM_ORDER if s in self.streams)

    @property
    def num_streams(self) -> int:
        return len(self.stream_names)


@functools.lru_cache(maxsize=64)
def butterworth_operator(num_frames: int, order: int = 8, cutoff: float = 0.5) -> np.ndarray:
    """(T, T) float64 matrix F with F @ x == scipy.signal.sosfiltfilt(butter(order, cutoff), x) for x (T,).

    Built by filtering the identity (the filter with odd padding and `sosfilt_zi` initial conditions is
    linear in x). Cached per (T, order, cutoff); the returned array is read-only.
    """
    import scipy.signal  # imported here: it costs seconds of start-up for commands that never filter

    sos = scipy.signal.butter(order, cutoff, btype="low", output="sos")
    try:
        matrix = scipy.signal.sosfiltfilt(sos, np.eye(num_frames), axis=0)
    except ValueError:
        raise InputError(f"the A stream's filter needs windows longer than its padding, got {num_frames} "
                         "frames") from None
    matrix.setflags(write=False)
    return matrix


def joint_stream(x: jax.Array, relative_joint: int) -> jax.Array:
    """(..., T, V, 2) -> (..., T, V, 4): positions and positions relative to one joint."""
    return jnp.concatenate([x, x - x[..., relative_joint : relative_joint + 1, :]], axis=-1)


def frame_differences(one_step: jax.Array, two_step: jax.Array) -> jax.Array:
    """(..., T, V, C) twice -> (..., T, V, 2C): a[t+1] - a[t] and (b[t+2] - b[t]) / 2, last 2 frames 0."""
    first = one_step[..., 1:-1, :, :] - one_step[..., :-2, :, :]
    second = (two_step[..., 2:, :, :] - two_step[..., :-2, :, :]) / 2
    diffs = jnp.concatenate([first, second], axis=-1)
    pad = [(0, 0)] * (diffs.ndim - 3) + [(0, 2), (0, 0), (0, 0)]
    return jnp.pad(diffs, pad)


def velocity_stream(x: jax.Array) -> jax.Array:
    """(..., T, V, 2) -> (..., T, V, 4): one-step and half two-step differences."""
    return frame_differences(x, x)


def arccos(r: jax.Array) -> jax.Array:
    """arccos of r in [-1, 1] as sqrt(1 - |r|) times a degree-7 polynomial (float32 error below 5e-7).

    On XLA:CPU this is about 40 times faster than `jnp.arccos`, which dominated the feature computation.
    """
    a = jnp.abs(r)
    poly = jnp.full_like(a, _ACOS_COEFFS[-1])
    for c in _ACOS_COEFFS[-2::-1]:
        poly = poly * a + c
    y = jnp.sqrt(jnp.maximum(1.0 - a, 0.0)) * poly
    return jnp.where(r < 0, np.pi - y, y)


def bone_stream(x: jax.Array, parents: tuple[int, ...]) -> jax.Array:
    """(..., T, V, 2) -> (..., T, V, 4): bone vectors to the parent joint and their direction angles."""
    bone = x - x[..., np.asarray(parents), :]
    length = jnp.sqrt(bone[..., :1] ** 2 + bone[..., 1:] ** 2) + BONE_EPS  # not a sum over axis -1: 2x faster
    return jnp.concatenate([bone, arccos(bone / length)], axis=-1)


def _difference_operator(num_frames: int, step: int) -> np.ndarray:
    """(T, T) matrix of `frame_differences` on one channel: row t < T - 2 is (x[t+step] - x[t]) / step."""
    op = np.zeros((num_frames, num_frames))
    rows = np.arange(num_frames - 2)
    op[rows, rows + step] += 1.0 / step
    op[rows, rows] -= 1.0 / step
    return op


@functools.lru_cache(maxsize=64)
def acceleration_operators(num_frames: int, order: int = 8, cutoff: float = 0.5) -> np.ndarray:
    """(2, T, T) float64: A's one-step channels are M[0] @ x, its two-step channels M[1] @ x, for positions x.

    The A stream is differences of the filtered differences of x, all linear in time, so each half is one
    (T, T) matrix: M[k] = D_k F D_k with D_1, D_2 the one- and two-step `frame_differences` operators
    (last two rows 0) and F the Butterworth operator. Applying it to the 2 position channels directly
    skips the filtered velocity (half the data through the matrix product, one pass less). Read-only.
    """
    filt = butterworth_operator(num_frames, order, cutoff)
    ops = np.stack([d @ filt @ d for d in (_difference_operator(num_frames, k) for k in (1, 2))])
    ops.setflags(write=False)
    return ops


def acceleration_stream(x: jax.Array, config: FeatureConfig) -> jax.Array:
    """(..., T, V, 2) positions -> (..., T, V, 4): differences of the (filtered) velocity channels."""
    if not config.use_filter:
        velocity = velocity_stream(x)
        return frame_differences(velocity[..., :2], velocity[..., 2:])
    ops = jnp.asarray(acceleration_operators(x.shape[-3], config.filter_order, config.filter_cutoff), x.dtype)
    acc = jnp.einsum("kts,...svc->...tvkc", ops, x, precision=jax.lax.Precision.HIGHEST)
    return acc.reshape(*acc.shape[:-2], 4)


def compute_features(windows: jax.Array, layout: Layout,
                     config: FeatureConfig = FeatureConfig()) -> jax.Array:
    """The selected streams of a batch of windows.

    Args:
      windows: (..., T, V, 2) x, y keypoints (T >= 3; T > 27 with the default filter).
      layout: the skeleton (static): its parents give the bones.
      config: the streams (static).
    Returns:
      (..., I, T, V, 4) float32 with I = config.num_streams, streams in the order J, V, B, A.
    """
    x = jnp.asarray(windows, jnp.float32)
    if x.shape[-1] != 2 or x.shape[-2] != layout.num_joints:
        raise InputError(f"windows of shape {x.shape}: expected (..., T, {layout.num_joints}, 2)")
    if x.shape[-3] < 3:
        raise InputError(f"windows of {x.shape[-3]} frames: the V and A streams need at least 3")
    if config.relative_joint >= layout.num_joints:
        raise InputError(f"features.relative_joint {config.relative_joint}: layout {layout.name!r} has "
                         f"{layout.num_joints} joints")
    streams = {}
    if "J" in config.streams:
        streams["J"] = joint_stream(x, config.relative_joint)
    if "V" in config.streams:
        streams["V"] = velocity_stream(x)
    if "B" in config.streams:
        streams["B"] = bone_stream(x, layout.parents)
    if "A" in config.streams:
        streams["A"] = acceleration_stream(x, config)
    return jnp.stack([streams[name] for name in config.stream_names], axis=-4)
