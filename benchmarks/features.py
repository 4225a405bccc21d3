"""Windows per second for sampling, augmenting and computing the J, V, B, A features of a training batch.

Compares jaxcp's jitted pipeline on the current JAX device with straightforward per-window numpy/scipy
loops (Python `random` draws, numpy augmentation and features) that call `sosfiltfilt` once per channel
and joint (as AutoCP's data loader does), once per channel, or once per window. All numpy versions are
checked to give the same features as the jitted pipeline on the same draws.

    python benchmarks/features.py [--batch 256] [--repeats 20] [--baseline-windows 256]

Prints a table and writes benchmarks/results/features_<platform>.json (device, versions, settings).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import common
import jax
import numpy as np
import scipy
import scipy.signal

from jaxcp.data import synth
from jaxcp.data.augment import AugmentConfig, augment, sample_augment_params
from jaxcp.data.dataset import make_dataset
from jaxcp.data.features import FeatureConfig, compute_features
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.windows import TrainPlan, sample_train_windows, train_window_bounds, train_window_plan

RESULTS = common.RESULTS
NUMPY_VARIANTS = {
    "numpy loop, sosfiltfilt per channel and joint (AutoCP)": "joint",
    "numpy loop, sosfiltfilt per channel": "channel",
    "numpy loop, one sosfiltfilt per window": "window",
}


def make_cohort(num_infants: int, minutes: float, seed: int = 0):
    """A tiled dataset of body-frame synthetic infants in processed-like units (pelvis-centred, 2 trunks)."""
    rng = np.random.default_rng(seed)
    labels = synth.assign_labels(num_infants, 0.15, seed)
    sequences = []
    for label in labels:
        frames = int(minutes * 60 * 30 * rng.uniform(0.85, 1.15))
        poses, _ = synth.simulate_body(rng, IN_MOTION_29, label=int(label), num_frames=frames, fps=30.0,
                                       difficulty=0.5)
        sequences.append((poses - np.median(poses[:, 12], axis=0)) / 2.0)
    return make_dataset([str(i) for i in range(num_infants)], labels, sequences, IN_MOTION_29.name, 30.0)


def batch_plan(labels: np.ndarray, batch: int) -> TrainPlan:
    """The first `batch` windows of one epoch's plan (AutoCP oversampling: 30 per CP, 5 per other infant)."""
    plan = train_window_plan(labels, 30, 5)
    order = np.random.default_rng(0).permutation(len(plan.infant))[:batch]
    return TrainPlan(*(np.asarray(a)[order] for a in plan))


def make_jax_steps(plan: TrainPlan, window: int, features: FeatureConfig, aug: AugmentConfig) -> dict:
    """Jitted functions for the three stages, each run on the same batch."""

    def sample(key, coords):
        return sample_train_windows(key, coords, plan, window, shuffle=False)[0]

    def sample_augment(key, coords):
        k1, k2 = jax.random.split(key)
        return augment(k2, sample(k1, coords), aug)

    def full(key, coords):
        return compute_features(sample_augment(key, coords), IN_MOTION_29, features)

    return {"sample": jax.jit(sample), "sample+augment": jax.jit(sample_augment), "sample+augment+features":
            jax.jit(full)}


def time_jax(fn, coords, repeats: int) -> tuple[float, float, float]:
    """(compile seconds, median and best seconds per call after warm-up)."""
    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = fn.lower(key, coords).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(key, coords))
    times = []
    for i in range(repeats):
        key = jax.random.key(i + 1)
        start = time.perf_counter()
        jax.block_until_ready(compiled(key, coords))
        times.append(time.perf_counter() - start)
    return compile_s, statistics.median(times), min(times)


# --------------------------------------------------------------------------------------------------------
# The per-window numpy/scipy baseline (what AutoCP's feeder does per item)

def numpy_window_features(window: np.ndarray, parents: np.ndarray, sos: np.ndarray, calls: str) -> np.ndarray:
    """(T, V, 2) -> (4, T, V, 4) J, V, B, A for one window, in float32 numpy (the filter in float64).

    calls: how `sosfiltfilt` is called: once per channel and joint ("joint", AutoCP), once per channel
    ("channel"), or once for the whole window ("window").
    """
    p = window.transpose(2, 0, 1)  # (2, T, V)
    num_frames = p.shape[1]
    joint = np.concatenate([p, p - p[:, :, 1:2]])
    vel = np.zeros((4, num_frames, p.shape[2]), np.float32)
    vel[0:2, :-2] = p[:, 1:-1] - p[:, :-2]
    vel[2:4, :-2] = (p[:, 2:] - p[:, :-2]) / 2
    bone_vec = p - p[:, :, parents]
    length = np.sqrt(bone_vec[0] ** 2 + bone_vec[1] ** 2) + 1e-4
    bone = np.concatenate([bone_vec, np.arccos(bone_vec / length)])
    if calls == "joint":
        filtered = np.empty(vel.shape, np.float64)
        for c in range(4):
            for v in range(p.shape[2]):
                filtered[c, :, v] = scipy.signal.sosfiltfilt(sos, vel[c, :, v])
    elif calls == "channel":
        filtered = np.stack([scipy.signal.sosfiltfilt(sos, vel[c], axis=0) for c in range(4)])
    else:
        filtered = scipy.signal.sosfiltfilt(sos, vel, axis=1)
    filtered = filtered.astype(np.float32)
    acc = np.zeros_like(vel)
    acc[0:2, :-2] = filtered[0:2, 1:-1] - filtered[0:2, :-2]
    acc[2:4, :-2] = (filtered[2:4, 2:] - filtered[2:4, :-2]) / 2
    return np.stack([joint, vel, bone, acc]).transpose(0, 2, 3, 1)


def numpy_augment(window: np.ndarray, angle: float, scale: float, dx: float, dy: float) -> np.ndarray:
    theta = np.radians(-angle)
    x, y = window[..., 0], window[..., 1]
    out = np.stack([np.cos(theta) * x - np.sin(theta) * y, np.sin(theta) * x + np.cos(theta) * y], axis=-1)
    return (out * scale + np.array([dx, dy], np.float32)).astype(np.float32)


def numpy_batch(coords: np.ndarray, plan: TrainPlan, window: int, aug: AugmentConfig, calls: str,
                params=None, starts=None) -> np.ndarray:
    """Per-window loop: draw a start in the window's part, cut, augment, compute features."""
    sos = scipy.signal.butter(8, 0.5, output="sos")
    parents = np.asarray(IN_MOTION_29.parents)
    num_frames = coords.shape[1]
    out = []
    for i, (infant, part, parts) in enumerate(zip(*plan, strict=True)):
        size = num_frames // parts
        low, high = min(part * size, num_frames - window), min((part + 1) * size, num_frames - window)
        start = random.randint(low, high) if starts is None else int(starts[i])
        if params is None:
            draw = (random.choice(aug.rotations_deg), random.choice(aug.scales),
                    random.choice(aug.translations), random.choice(aug.translations))
        else:
            draw = params[i]
        w = numpy_augment(coords[infant, start : start + window], *draw)
        out.append(numpy_window_features(w, parents, sos, calls))
    return np.stack(out)


def time_numpy(coords, plan, window, aug, calls: str, num_windows: int) -> float:
    """Seconds per window of the per-window loop over the first `num_windows` windows of the plan."""
    sub = TrainPlan(*(a[:num_windows] for a in plan))
    start = time.perf_counter()
    numpy_batch(coords, sub, window, aug, calls)
    return (time.perf_counter() - start) / num_windows


def check_same_features(coords, plan, window, aug, features: FeatureConfig) -> float:
    """Max abs difference between the jitted augment + features and both numpy versions, same draws."""
    sub = TrainPlan(*(a[:16] for a in plan))
    starts = np.asarray(train_window_bounds(coords.shape[1], sub, window)[0])
    windows = np.stack([coords[i, s : s + window] for i, s in zip(sub.infant, starts, strict=True)])
    key = jax.random.key(7)
    params = sample_augment_params(key, (16,), aug)
    draws = np.column_stack([np.asarray(p) for p in params])
    got = np.asarray(compute_features(augment(key, windows, aug), IN_MOTION_29, features))
    return max(float(np.abs(numpy_batch(coords, sub, window, aug, calls, draws, starts) - got).max())
               for calls in NUMPY_VARIANTS.values())


def table(rows: dict, full: float) -> list[str]:
    """The README's Markdown table: windows/s of each pipeline, and how much faster the jitted one is."""
    lines = ["| pipeline | windows/s | the jitted pipeline is faster by |", "|---|---|---|"]
    for name, row in rows.items():
        faster = "" if name.startswith("jax") else f"{full / row['windows_per_s']:.0f}×"
        lines.append(f"| {name} | {row['windows_per_s']:,.0f} | {faster} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--infants", type=int, default=40, help="infants in the synthetic dataset")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--baseline-windows", type=int, default=256, help="windows timed for numpy")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()  # other processes' load, before the run
    features, aug = FeatureConfig(), AugmentConfig()
    data = make_cohort(args.infants, args.minutes)
    plan = batch_plan(data.labels, args.batch)
    coords = jax.device_put(data.coords)
    rows = {}
    for name, fn in make_jax_steps(plan, args.window, features, aug).items():
        compile_s, step_s, best_s = time_jax(fn, coords, args.repeats)
        rows[f"jax {name}"] = dict(compile_s=compile_s, batch_s=step_s, best_batch_s=best_s,
                                   windows_per_s=args.batch / step_s)
    for name, calls in NUMPY_VARIANTS.items():
        per_window = time_numpy(data.coords, plan, args.window, aug, calls, args.baseline_windows)
        rows[name] = {"compile_s": 0.0, "batch_s": per_window * args.batch, "windows_per_s": 1.0 / per_window}
    error = check_same_features(data.coords, plan, args.window, aug, features)
    full = rows["jax sample+augment+features"]["windows_per_s"]
    print(f"{'pipeline':66s} {'windows/s':>11s} {'batch ms':>9s} {'compile s':>9s} {'speed-up':>8s}")
    for name, row in rows.items():
        print(f"{name:66s} {row['windows_per_s']:11.0f} {1000 * row['batch_s']:9.2f} {row['compile_s']:9.2f} "
              f"{full / row['windows_per_s']:8.1f}")
    print(f"max |jax - numpy| on the same draws: {error:.2e}")
    env = common.environment(load_before)
    print(f"device: {env['backend']} {env['devices'][0]}, {env['cpus']} CPUs, jax {env['jax']}, "
          f"load average before the run {load_before[0]:.2f}")
    result = {**env, "benchmark": "features", "settings": {**vars(args), "out": None},
              "results": rows, "max_abs_difference": error, "table": table(rows, full)}
    out = common.write_json(args.out or RESULTS / f"features_{env['backend']}.json", result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
