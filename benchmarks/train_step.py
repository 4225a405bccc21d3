"""Training and inference speed of one architecture: compile seconds, then steady-state windows per second.

    python benchmarks/train_step.py [--arch configs/arch/autocp_best.yaml] [--students 1,4,8] [--quick]

Uses the engine's own compiled programs (`jaxcp.training.engine.get_programs`), so the figures are what training
runs: a training step is one batch of AutoCP's window sampling, augmentation, features, forward, backward
and the student optimizer inside the epoch's `lax.scan`; inference is the `predict` program on
precomputed features, `--eval-batch` windows per chunk. For each student count S (vmapped students of the
one architecture) it reports the compile time of init, epoch and predict (measured separately with
`.lower().compile()`), then the median over `--repeats` calls of windows per second (all students
together) after a warm-up call; a student count whose training step needs more temporaries than the
device has free (XLA's memory analysis of the compiled step) is reported as skipped instead of run.
Inference is also given as a fraction of the ~55 windows/s ceiling of
2 CPU cores (1.8 GFLOP per window at ~100 GFLOP/s), which only means something on such a machine.

Prints a table and writes benchmarks/results/train_step_<platform>.json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcp.data.augment import augment
from jaxcp.data.features import FeatureConfig, compute_features
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.windows import train_window_plan
from jaxcp.model import create_model, input_shape
from jaxcp.nas.space import load_arch_file
from jaxcp.training import engine, optim

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CPU_CEILING = 55.0  # windows/s of inference on 2 cores: 1.8 GFLOP per window at ~100 GFLOP/s


def make_data(batch: int, steps: int, window: int, seed: int = 0) -> engine.TrainData:
    """`steps` batches of random training windows: one label-0 infant of 2 windows' frames per window."""
    rng = np.random.default_rng(seed)
    n = batch * steps
    labels = np.zeros(n, np.int32)
    labels[: n // 4] = 1
    coords = rng.normal(size=(n, 2 * window, IN_MOTION_29.num_joints, 2)).astype(np.float32)
    plan = train_window_plan(labels, parts_positive=1, parts_negative=1)
    return engine.TrainData(coords=jnp.asarray(coords), labels=jnp.asarray(labels), plan=plan)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def program_memory(compiled) -> int | None:
    """Bytes of temporaries a compiled program allocates (XLA's memory analysis), None if unknown."""
    try:
        return int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every backend reports it
        return None


def available_memory() -> int | None:
    """Free bytes of the device: host RAM available on CPU, free memory reported by an accelerator."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return None


def compile_timed(fn, *args):
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def bench_students(spec: engine.ProgramSpec, hparams, students: int, steps: int, eval_windows: int,
                   repeats: int) -> dict:
    """Compile seconds and windows/s of the epoch and predict programs for `students` vmapped students."""
    programs = engine.get_programs(spec)
    hp = engine.stack_students([optim.make_hparams(hparams.optimizer, hparams.lr, hparams.weight_decay,
                                                   hparams.momentum)] * students)
    keys = jax.random.split(jax.random.PRNGKey(0), students)
    init, init_s = compile_timed(programs.init, keys, hp)
    state = init(keys, hp)
    data = make_data(spec.batch_size, steps, spec.window)
    lr = jnp.float32(1.0)
    epoch, epoch_s = compile_timed(programs.epoch, state, keys, lr, data)
    needed = program_memory(epoch)
    available = available_memory()
    if needed is not None and available is not None and needed > 0.9 * available:
        return {"students": students, "compile_init_s": init_s, "compile_epoch_s": epoch_s,
                "skipped": f"the training step needs {needed / 1e9:.1f} GB of temporaries, "
                           f"{available / 1e9:.1f} GB available"}  # fmt: skip
    state, _ = epoch(state, keys, lr, data)  # warm-up
    train_times = []
    for r in range(repeats):
        step_keys = jax.random.split(jax.random.PRNGKey(r + 1), students)
        start = time.perf_counter()
        state, out = epoch(state, step_keys, lr, data)
        jax.block_until_ready(out)
        train_times.append(time.perf_counter() - start)
    features = jnp.asarray(np.random.default_rng(1).normal(
        size=input_shape(spec.layout, spec.features, spec.window, eval_windows)).astype(np.float32))
    predict, predict_s = compile_timed(programs.predict, state, features)
    timed(predict, state, features)
    infer_times = [timed(predict, state, features) for _ in range(repeats)]
    train_windows = students * steps * spec.batch_size
    return {
        "students": students,
        "compile_init_s": init_s,
        "compile_epoch_s": epoch_s,
        "compile_predict_s": predict_s,
        "train_windows_per_s": train_windows / statistics.median(train_times),
        "infer_windows_per_s": students * eval_windows / statistics.median(infer_times),
        "train_call_s": train_times,
        "infer_call_s": infer_times,
    }


def bench_parts(spec: engine.ProgramSpec, hparams, repeats: int) -> dict:
    """Seconds per batch of the parts of one training step (one student, each part compiled alone)."""
    model = create_model(spec.arch, spec.layout, spec.features)
    tx = optim.student_optimizer()
    hp = optim.make_hparams(hparams.optimizer, hparams.lr, hparams.weight_decay, hparams.momentum)
    state = jax.jit(lambda k: engine._init_one(spec, model, k, hp))(jax.random.PRNGKey(0))
    rng = np.random.default_rng(2)
    windows = jnp.asarray(rng.normal(size=(spec.batch_size, spec.window, IN_MOTION_29.num_joints, 2)),
                          jnp.float32)
    labels = jnp.asarray(rng.integers(0, 2, spec.batch_size), jnp.int32)
    key = jax.random.PRNGKey(3)

    def features(key, w):
        return compute_features(augment(key, w, spec.augment), spec.layout, spec.features)

    def grads(state, x, y, key):
        fn = jax.value_and_grad(functools.partial(engine._loss_fn, model), has_aux=True)
        return fn(state.params, state.batch_stats, x, y, key)

    def update(state, g):
        updates, opt_state = tx.update(g, state.opt_state, state.params)
        return optax.apply_updates(state.params, updates), opt_state

    def forward(state, x):
        return model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)

    x = jax.jit(features)(key, windows)
    g = jax.jit(grads)(state, x, labels, key)[1]
    parts = {"augment + features": (jax.jit(features), (key, windows)),
             "forward (inference mode)": (jax.jit(forward), (state, x)),
             "forward + backward": (jax.jit(grads), (state, x, labels, key)),
             "optimizer update": (jax.jit(update), (state, g))}  # fmt: skip
    out = {}
    for name, (fn, args) in parts.items():
        timed(fn, *args)
        out[name] = min(timed(fn, *args) for _ in range(repeats))
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "autocp_best.yaml"))
    parser.add_argument("--students", default="1,4,8", help="comma-separated student counts (default 1,4,8)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=150)
    parser.add_argument("--eval-batch", type=int, default=32, help="windows per predict chunk (default 32)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed epoch call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 step per call, 2 repeats")
    parser.add_argument("--parts", action="store_true",
                        help="also time the parts of a step (features, forward, backward, optimizer) alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 1, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    arch, hparams = load_arch_file(args.arch)
    spec = engine.ProgramSpec(arch=arch, layout=IN_MOTION_29, features=FeatureConfig(), batch_size=args.batch,
                              window=args.window, eval_batch=args.eval_batch)
    counts = [int(s) for s in args.students.split(",") if s]
    load_before = os.getloadavg()
    rows = []
    for s in counts:
        rows.append(bench_students(spec, hparams, s, args.steps, 2 * args.eval_batch, args.repeats))
        if "skipped" in rows[-1]:
            print(f"{s:>8} students skipped: {rows[-1]['skipped']}")
            continue
        print_row(rows[-1], header=not any("train_windows_per_s" in r for r in rows[:-1]),
                  backend=jax.default_backend())
    parts = bench_parts(spec, hparams, args.repeats) if args.parts else {}
    if parts:
        print(f"parts of one training step, batch {args.batch}, seconds (best of {args.repeats})")
        for name, seconds in parts.items():
            print(f"  {name:<28} {seconds:7.3f}")
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "jax": jax.__version__, "backend": jax.default_backend(),
              "devices": [str(d) for d in jax.devices()], "arch": Path(args.arch).name,
              "batch": args.batch, "window": args.window, "eval_batch": args.eval_batch,
              "steps_per_call": args.steps, "repeats": args.repeats, "rows": rows,
              "parts_s": parts}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    from jaxcp.core.atomic import write_text

    write_text(RESULTS / f"train_step_{jax.default_backend()}.json", json.dumps(result, indent=2) + "\n")
    return 0


def print_row(row: dict, *, header: bool, backend: str) -> None:
    if header:
        print(f"{backend}: compile seconds (init / epoch / predict), windows per second (all students)")
        print(f"{'students':>8} {'init s':>7} {'epoch s':>8} {'predict s':>9} {'train w/s':>10} "
              f"{'infer w/s':>10} {'of 55':>6}")
    frac = row["infer_windows_per_s"] / CPU_CEILING
    print(f"{row['students']:>8} {row['compile_init_s']:7.1f} {row['compile_epoch_s']:8.1f} "
          f"{row['compile_predict_s']:9.1f} {row['train_windows_per_s']:10.2f} "
          f"{row['infer_windows_per_s']:10.2f} {frac:6.0%}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
