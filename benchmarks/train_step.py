"""Training and inference speed of one architecture: compile seconds, then steady-state windows per second.

    python benchmarks/train_step.py [--arch configs/arch/autocp_best.yaml] [--students 1,4,8] [--quick]
        [--remat none,blocks,full] [--formulation auto,matmul,conv] [--precision float32] [--memory-gb 80]

Uses the engine's own compiled programs (`jaxcp.training.engine.get_programs`), so the figures are what training
runs: a training step is one batch of AutoCP's window sampling, augmentation, features, forward, backward
and the student optimizer inside the epoch's `lax.scan`; inference is the `predict` program on
precomputed features, `--eval-batch` windows per chunk. For each student count S (vmapped students of the
one architecture) it reports the compile time of init, epoch and predict (measured separately with
`.lower().compile()`), then the median over `--repeats` calls of windows per second (all students
together) after a warm-up call; a student count whose training step needs more temporaries than the
device has free (XLA's memory analysis of the compiled step) is reported as skipped instead of run.

Every row is repeated for each `--remat`, `--formulation` and `--precision` setting (`jaxcp.model.options`) and
records `temp_bytes_per_student` (the compiled training step's temporaries divided by the student count) and
`students_fit`: how many students of this architecture fit in `--memory-gb` (default: the device's memory; on
CPU the machine's RAM) at that many bytes each. The machine's ceiling is measured, not assumed: a float32
matrix product's GFLOP/s (`matmul_gflops`) and XLA's count of the predict program's FLOPs per window give the
inference windows/s the machine could reach, and each row reports its fraction of it.

Prints a table and writes benchmarks/results/train_step_<platform>[_<tag>].json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from pathlib import Path

import common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcp.data.augment import augment
from jaxcp.data.features import FeatureConfig, compute_features
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.windows import train_window_plan
from jaxcp.model import create_model, input_shape
from jaxcp.model.options import ModelOptions
from jaxcp.nas.space import load_arch_file
from jaxcp.training import engine, optim

RESULTS = common.RESULTS
ROOT = Path(__file__).resolve().parents[1]
GB = 1e9


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


def device_memory(free: bool = False) -> int | None:
    """Bytes of the device's memory (`free`: what is not in use): on CPU the machine's RAM (available RAM),
    on an accelerator its limit (minus what is in use). None where unknown."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        try:
            return os.sysconf("SC_AVPHYS_PAGES" if free else "SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - (int(stats.get("bytes_in_use", 0)) if free else 0)


def make_spec(arch, batch: int, window: int, eval_batch: int, options: ModelOptions) -> engine.ProgramSpec:
    """The programs' spec of a benchmark row: in-motion-29, all four streams, default augmentation."""
    return engine.ProgramSpec(arch=arch, layout=IN_MOTION_29, features=FeatureConfig(), batch_size=batch,
                              window=window, eval_batch=eval_batch, options=options)


def memory_fields(compiled, students: int) -> dict:
    """The temporaries of a compiled training step, in all and per student (None where unknown)."""
    needed = program_memory(compiled)
    return {"temp_bytes": needed, "temp_bytes_per_student": needed / students if needed is not None else None}


def matmul_gflops(n: int = 2048, precision: str = "float32", repeats: int = 5) -> float:
    """GFLOP/s of an n x n float32 matrix product on the default device (best of `repeats`, after warm-up)."""
    names = {"float32": "highest", "tf32": "tensorfloat32", "bfloat16": "bfloat16"}
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    with jax.default_matmul_precision(names[precision]):
        product = jax.jit(lambda x, y: x @ y).lower(a, a).compile()
    timed(product, a, a)
    return 2 * n**3 / min(timed(product, a, a) for _ in range(repeats)) / GB


def program_flops(compiled) -> float | None:
    """XLA's FLOP count of a compiled program (None where the backend does not give one)."""
    try:
        analysis = compiled.cost_analysis()
        analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
        return float(analysis["flops"])
    except Exception:  # not every backend reports it
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
    head = {"students": students, **option_fields(spec), "compile_init_s": init_s, "compile_epoch_s": epoch_s,
            **memory_fields(epoch, students)}
    needed, available = head["temp_bytes"], device_memory(free=True)
    if needed is not None and available is not None and needed > 0.9 * available:
        return {**head, "skipped": f"the training step needs {needed / GB:.1f} GB of temporaries, "
                                   f"{available / GB:.1f} GB available"}  # fmt: skip
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
    flops = program_flops(predict)
    return {
        **head,
        "compile_predict_s": predict_s,
        "infer_flops_per_window": flops / (students * eval_windows) if flops else None,
        "train_windows_per_s": train_windows / statistics.median(train_times),
        "infer_windows_per_s": students * eval_windows / statistics.median(infer_times),
        "train_call_s": train_times,
        "infer_call_s": infer_times,
    }


def option_fields(spec: engine.ProgramSpec) -> dict:
    """The row fields of a spec's model options ("auto" resolved to what it chose on this backend)."""
    options = spec.options.resolved()
    return {"remat": options.remat, "formulation": options.formulation, "precision": options.precision}


def training_memory(spec: engine.ProgramSpec, hparams, students: int, steps: int = 1) -> dict:
    """Compile seconds and temporaries of the training step for `students` students, without running it."""
    programs = engine.get_programs(spec)
    hp = engine.stack_students([optim.make_hparams(hparams.optimizer, hparams.lr, hparams.weight_decay,
                                                   hparams.momentum)] * students)
    keys = jax.random.split(jax.random.PRNGKey(0), students)
    state = jax.eval_shape(programs.init, keys, hp)
    epoch, seconds = compile_timed(programs.epoch, state, keys, jnp.float32(1.0),
                                   make_data(spec.batch_size, steps, spec.window))
    return {"students": students, **option_fields(spec), "compile_epoch_s": seconds, **memory_fields(epoch, students)}


def with_fit(row: dict, memory: int | None) -> dict:
    """`row` with `students_fit`: students of this size that fit in `memory` bytes (None if unknown)."""
    per = row.get("temp_bytes_per_student")
    return {**row, "memory_bytes": memory, "students_fit": int(memory // per) if memory and per else None}


def bench_parts(spec: engine.ProgramSpec, hparams, repeats: int) -> dict:
    """Seconds per batch of the parts of one training step (one student, each part compiled alone)."""
    model = create_model(spec.arch, spec.layout, spec.features, options=spec.options)
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
    parser.add_argument("--remat", default="none", help="comma-separated remat settings (none,blocks,full)")
    parser.add_argument("--formulation", default="auto", help="comma-separated formulations (auto,matmul,conv)")
    parser.add_argument("--precision", default="float32", help="comma-separated precisions (float32,tf32,bfloat16)")
    parser.add_argument("--tag", default="", help="suffix of the result file: train_step_<platform>[_TAG].json")
    parser.add_argument("--memory-gb", type=float, default=None,
                        help="memory for the students_fit column (default: the device's; on CPU the RAM)")
    parser.add_argument("--parts", action="store_true",
                        help="also time the parts of a step (features, forward, backward, optimizer) alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 1, 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    arch, hparams = load_arch_file(args.arch)
    counts = [int(s) for s in args.students.split(",") if s]
    memory = int(args.memory_gb * GB) if args.memory_gb else device_memory()
    load_before = os.getloadavg()
    gflops = matmul_gflops()
    print(f"{jax.default_backend()}: float32 matrix product {gflops:.0f} GFLOP/s")
    rows = []
    for options in option_grid(args):
        spec = make_spec(arch, args.batch, args.window, args.eval_batch, options)
        for s in counts:
            rows.append(with_fit(bench_students(spec, hparams, s, args.steps, 2 * args.eval_batch, args.repeats),
                                 memory))
            if "skipped" in rows[-1]:
                print(f"{s:>8} students skipped ({options}): {rows[-1]['skipped']}")
                continue
            print_row(rows[-1], header=len(rows) == 1, gflops=gflops)
    parts = bench_parts(spec, hparams, args.repeats) if args.parts else {}
    if parts:
        print(f"parts of one training step, batch {args.batch}, seconds (best of {args.repeats})")
        for name, seconds in parts.items():
            print(f"  {name:<28} {seconds:7.3f}")
    result = {**common.environment(load_before), "arch": Path(args.arch).name,
              "batch": args.batch, "window": args.window, "eval_batch": args.eval_batch,
              "steps_per_call": args.steps, "repeats": args.repeats, "matmul_gflops": gflops, "rows": rows,
              "parts_s": parts}  # fmt: skip
    name = f"train_step_{jax.default_backend()}{'_' + args.tag if args.tag else ''}.json"
    common.write_json(RESULTS / name, result)
    return 0


def option_grid(args: argparse.Namespace) -> list[ModelOptions]:
    """Every combination of the comma-separated --formulation, --precision and --remat settings."""
    def names(text: str) -> list[str]:
        return [n for n in text.split(",") if n]

    return [ModelOptions(f, p, r) for f in names(args.formulation) for p in names(args.precision)
            for r in names(args.remat)]


def ceiling_fraction(row: dict, gflops: float) -> float | None:
    """Inference windows/s as a fraction of what `gflops` allows at XLA's FLOPs per window."""
    flops = row.get("infer_flops_per_window")
    return row["infer_windows_per_s"] * flops / (gflops * GB) if flops else None


def print_row(row: dict, *, header: bool, gflops: float) -> None:
    if header:
        print("compile seconds (init / epoch / predict), windows per second (all students), GB of temporaries "
              "per student, inference as a fraction of the matmul ceiling")
        print(f"{'students':>8} {'formul.':>7} {'remat':>6} {'init s':>7} {'epoch s':>8} {'predict s':>9} "
              f"{'train w/s':>10} {'infer w/s':>10} {'GB/st.':>7} {'ceiling':>8}")
    frac = ceiling_fraction(row, gflops)
    per = row.get("temp_bytes_per_student")
    print(f"{row['students']:>8} {row['formulation']:>7} {row['remat']:>6} {row['compile_init_s']:7.1f} "
          f"{row['compile_epoch_s']:8.1f} {row['compile_predict_s']:9.1f} {row['train_windows_per_s']:10.2f} "
          f"{row['infer_windows_per_s']:10.2f} {per / GB if per else float('nan'):7.2f} "
          f"{frac if frac is not None else float('nan'):8.0%}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
