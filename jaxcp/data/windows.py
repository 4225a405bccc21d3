"""Windows: fixed evaluation windows and AutoCP's training-window sampling.

Evaluation (validation, test, prediction): starts 0, hop, 2 hop, ... while the window fits, plus one
window aligned to the recording's end when the last regular one stops short of it. AutoCP always adds
the end-aligned window, duplicating the last one when (L - W) is a multiple of the hop; jaxcp does not.

Training (AutoCP, reference section 2.4): per epoch every CP infant contributes `parts_positive` windows
and every other infant `parts_negative`. With T the (tiled) length of the dataset, window p of P starts
uniformly in [min(p * floor(T / P), T - W), min((p + 1) * floor(T / P), T - W)] (p = 0..P-1, inclusive),
so the windows spread over the whole recording. `sample_train_windows` is pure and jittable.

Class-balanced training (`balanced_window_plan`, setting `sampling: balanced`): the same number of windows
per epoch as AutoCP's, half of them from each class, spread equally over that class's infants.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.core.errors import InputError
from jaxcp.data.dataset import Dataset

WINDOW = 150
HOP = 75
PARTS_POSITIVE = 30
PARTS_NEGATIVE = 5


class EvalWindows(NamedTuple):
    """All evaluation windows of a dataset.

    windows: (M, W, V, 2) float32; owner: (M,) int32 infant index into the Dataset; starts: (M,) int32.
    """

    windows: np.ndarray
    owner: np.ndarray
    starts: np.ndarray


class TrainPlan(NamedTuple):
    """Which window of which infant to draw in one epoch: (M,) int32 arrays.

    infant: index into the Dataset; part: p in 0..P-1; num_parts: P of that infant.
    """

    infant: np.ndarray
    part: np.ndarray
    num_parts: np.ndarray


def eval_window_starts(
    length: int, window: int = WINDOW, hop: int = HOP, *, tile: bool = False
) -> np.ndarray:
    """(M,) int32 starts of the evaluation windows of a recording of `length` frames.

    Starts 0, hop, 2 hop, ... <= length - window, then length - window when the last regular window does
    not reach the end. A recording shorter than the window raises InputError, unless `tile` is True: it
    then gets one window at 0 that reads the recording repeated from its start.
    """
    if window < 1 or hop < 1:
        raise InputError(f"window ({window}) and hop ({hop}) must be >= 1")
    if length < 1:
        raise InputError(f"a recording of {length} frames has no windows")
    if length < window:
        if tile:
            return np.zeros(1, np.int32)
        raise InputError(f"a recording of {length} frames is shorter than a window of {window} frames")
    starts = np.arange(0, length - window + 1, hop)
    if starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts.astype(np.int32)


def eval_window_index(
    lengths: np.ndarray, window: int = WINDOW, hop: int = HOP, *, tile: bool = False, ids=None
) -> tuple[np.ndarray, np.ndarray]:
    """(owner, starts): (M,) int32 infant index and start of every evaluation window, in infant order."""
    per_infant = []
    for i, length in enumerate(np.asarray(lengths).tolist()):
        try:
            per_infant.append(eval_window_starts(int(length), window, hop, tile=tile))
        except InputError as error:
            name = repr(ids[i]) if ids is not None else str(i)
            raise InputError(f"infant {name}: {error}") from None
    owner = np.repeat(np.arange(len(per_infant), dtype=np.int32), [len(s) for s in per_infant])
    starts = np.concatenate(per_infant).astype(np.int32) if per_infant else np.zeros(0, np.int32)
    return owner, starts


def make_eval_windows(
    dataset: Dataset, window: int = WINDOW, hop: int = HOP, *, tile: bool = False
) -> EvalWindows:
    """Cut every infant's evaluation windows out of its recording, in infant order (on the host).

    A window past the end of a short recording (with `tile`) reads the recording from its start again.
    For large sets, `eval_window_index` plus `cut_windows` per batch on device avoids the (M, W, V, 2) copy.
    """
    owner, starts = eval_window_index(dataset.lengths, window, hop, tile=tile, ids=dataset.ids)
    frames = (starts[:, None] + np.arange(window)[None, :]) % dataset.lengths[owner][:, None]
    windows = dataset.coords[owner[:, None], frames]
    return EvalWindows(windows.astype(np.float32), owner, starts)


def cut_windows(coords: jax.Array, infant: jax.Array, starts: jax.Array, window: int = WINDOW) -> jax.Array:
    """(M, W, V, 2) windows coords[infant[m], starts[m]:starts[m] + W]; jittable (one gather).

    coords: (N, T, V, 2) tiled sequences; starts must be <= T - W (XLA clamps larger ones).
    """
    size = (1, window, *coords.shape[2:])

    def cut(i, start):
        return jax.lax.dynamic_slice(coords, (i, start, 0, 0), size)[0]

    return jax.vmap(cut)(jnp.asarray(infant, jnp.int32), jnp.asarray(starts, jnp.int32))


def _plan_of_counts(counts: np.ndarray) -> TrainPlan:
    """The plan that draws counts[i] windows (parts) of infant i, in infant order."""
    counts = np.asarray(counts, np.int32)
    infant = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
    part = (np.arange(infant.size) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.int32)
    return TrainPlan(infant, part, counts[infant])


def _check_parts(parts_positive: int, parts_negative: int) -> None:
    if parts_positive < 1 or parts_negative < 1:
        raise InputError(f"parts per infant must be >= 1, got {parts_positive} and {parts_negative}")


def train_window_plan(labels: np.ndarray, parts_positive: int = PARTS_POSITIVE,
                      parts_negative: int = PARTS_NEGATIVE) -> TrainPlan:
    """One epoch's oversampling plan: P = parts_positive for label 1, parts_negative for label 0."""
    labels = np.asarray(labels).reshape(-1)
    _check_parts(parts_positive, parts_negative)
    return _plan_of_counts(np.where(labels == 1, parts_positive, parts_negative))


def balanced_window_plan(labels: np.ndarray, parts_positive: int = PARTS_POSITIVE,
                         parts_negative: int = PARTS_NEGATIVE) -> TrainPlan:
    """One epoch's class-balanced plan with as many windows as AutoCP's, M = parts_positive * n_pos +
    parts_negative * n_neg, split equally between the classes present: every infant of class c gets
    P = max(1, round(M / (2 n_c))) windows (rounded half up; M / n_c when only one class is present)."""
    labels = np.asarray(labels).reshape(-1)
    _check_parts(parts_positive, parts_negative)
    num = {c: int((labels == c).sum()) for c in (0, 1)}
    total = parts_positive * num[1] + parts_negative * num[0]
    present = sum(n > 0 for n in num.values())
    parts = {c: max(1, int(np.floor(total / (present * n) + 0.5))) if n else 0 for c, n in num.items()}
    return _plan_of_counts(np.where(labels == 1, parts[1], parts[0]))


SAMPLINGS = {"autocp": train_window_plan, "balanced": balanced_window_plan}


def train_window_bounds(
    num_frames: int, plan: TrainPlan, window: int = WINDOW
) -> tuple[jax.Array, jax.Array]:
    """(M,) inclusive low and high start of each planned window in a sequence of `num_frames`."""
    if num_frames < window:
        raise InputError(f"training needs sequences of at least {window} frames, got {num_frames}")
    part_size = num_frames // jnp.asarray(plan.num_parts)
    last = num_frames - window
    part = jnp.asarray(plan.part)
    return jnp.minimum(part * part_size, last), jnp.minimum((part + 1) * part_size, last)


def sample_train_windows(key: jax.Array, coords: jax.Array, plan: TrainPlan, window: int = WINDOW,
                         shuffle: bool = True) -> tuple[jax.Array, jax.Array]:
    """Draw one epoch of training windows on device.

    Args:
      key: PRNG key.
      coords: (N, T, V, 2) tiled sequences (`Dataset.coords`).
      plan: `train_window_plan(labels)`.
      window: W (static).
      shuffle: permute the windows (static).
    Returns:
      windows (M, W, V, 2) and infant_index (M,) int32.
    """
    start_key, perm_key = jax.random.split(key)
    low, high = train_window_bounds(coords.shape[1], plan, window)
    starts = jax.random.randint(start_key, low.shape, low, high + 1)
    infant = jnp.asarray(plan.infant, jnp.int32)
    if shuffle:
        order = jax.random.permutation(perm_key, infant.shape[0])
        infant, starts = infant[order], starts[order]
    return cut_windows(coords, infant, starts, window), infant
