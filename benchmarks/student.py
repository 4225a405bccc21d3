"""Wall time of one full student on a synthetic cohort: data, compilation, training and validation.

    python benchmarks/student.py [--arch configs/arch/autocp_best.yaml] [--epochs 50] [--small]

By default a paper-scale cohort: 420 synthetic infants of 3 minutes split into about 300 training and 120
validation infants (no test split), AutoCP's 50-epoch NAS student schedule (TrainConfig defaults:
validation every 5 epochs, 30/5 windows per positive/negative infant, batch from the architecture file),
early stopping off so every epoch runs. `--small` is a CPU-sized run: 40 infants of 1 minute, 2 epochs,
validation every epoch, 2 / 1 windows per CP / other infant and epoch (one or two batches).

Data time covers generating and preprocessing the cohort (`synth.generate_cohort`, `prepare_dataset`),
loading it, moving it to the device and featurising the validation windows. Compilation, training and
validation are the student's own `StudentRun` timers. Prints a table and writes
benchmarks/results/student_<platform>[_small].json (machine, versions, settings).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import common
import jax

from jaxcp.data import synth
from jaxcp.data.dataset import load_dataset
from jaxcp.data.prepare import PrepareConfig, prepare_dataset
from jaxcp.data.skeleton import IN_MOTION_29
from jaxcp.data.splits import SplitConfig
from jaxcp.nas.space import load_arch_file
from jaxcp.training import students

RESULTS = common.RESULTS
ROOT = Path(__file__).resolve().parents[1]
VAL_FRACTION = 120 / 420


def make_cohort(folder: Path, infants: int, minutes: float) -> Path:
    """A processed synthetic cohort with train and val splits (no test split) in `folder`/processed."""
    workers = min(4, os.cpu_count() or 1)
    synth.generate_cohort(folder / "raw", infants=infants, minutes=minutes, seed=7, workers=workers)
    config = PrepareConfig(split=SplitConfig(test_fraction=0.0, val_fraction=VAL_FRACTION))
    prepare_dataset(folder / "raw", folder / "processed", config=config, workers=workers, warn=lambda m: None)
    return folder / "processed"


def run_student(args: argparse.Namespace, folder: Path, arch_hparams: tuple | None = None) -> dict:
    """One student on a fresh cohort in `folder`; `arch_hparams` (Arch, HParams) replaces `args.arch`."""
    arch, hparams = arch_hparams or load_arch_file(args.arch)
    config = students.TrainConfig(epochs=args.epochs, eval_every=args.eval_every, early_stop=False,
                                  parts_positive=args.parts_positive, parts_negative=args.parts_negative,
                                  window=args.window, hop=args.window // 2, remat=args.remat)
    start = time.perf_counter()
    data_dir = make_cohort(folder, args.infants, args.minutes)
    cohort_s = time.perf_counter() - start
    start = time.perf_counter()
    train_set, val_set = load_dataset(data_dir, "train"), load_dataset(data_dir, "val")
    train_data = students.make_train_data(train_set, config)
    val_data = students.make_eval_data(val_set, IN_MOTION_29, config)
    jax.block_until_ready((train_data.coords, val_data.features))
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    run = students.StudentRun(arch, [hparams], [args.seed], train_data, val_data, IN_MOTION_29, config)
    compile_init = run.compiled.seconds
    run.compiled = _CompileTimer(run.programs)
    while not run.finished:
        run.run_epoch()
    total_s = time.perf_counter() - start
    result = run.results()[0]
    compile_epoch = run.compiled.by_fn.get(run.programs.epoch, 0.0)
    compile_predict = run.compiled.by_fn.get(run.programs.predict, 0.0)
    windows = len(train_data.plan.infant) // hparams.batch_size * hparams.batch_size
    return {
        "train_infants": len(train_set.ids), "val_infants": len(val_set.ids),
        "train_windows_per_epoch": windows, "val_windows": int(val_data.features.shape[0]),
        "epochs_run": len(result.history), "reward": result.reward,
        "seconds": {"data: cohort (synth + prepare)": cohort_s, "data: load, device, features": load_s,
                    "compilation: init": compile_init, "compilation: epoch": compile_epoch,
                    "compilation: predict": compile_predict,
                    "training": run.seconds["train"],  # StudentRun's timers leave compilation out
                    "validation": run.seconds["eval"],
                    "student total (compile + train + validate + host)": total_s},
    }  # fmt: skip


class _CompileTimer(students._Compiled):
    """The student loop's compile cache, with the compile seconds recorded per program."""

    def __init__(self, programs):
        super().__init__(programs)
        self.by_fn: dict = {}

    def __call__(self, fn, *args):
        before = self.seconds
        out = super().__call__(fn, *args)
        self.by_fn[fn] = self.by_fn.get(fn, 0.0) + self.seconds - before
        return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=str(ROOT / "configs" / "arch" / "autocp_best.yaml"))
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--infants", type=int, default=420)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--parts-positive", type=int, default=30, help="windows per CP infant and epoch")
    parser.add_argument("--parts-negative", type=int, default=5, help="windows per non-CP infant and epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=150, help="frames per window (hop: half of it)")
    parser.add_argument("--remat", default="none", help="recompute in the backward pass: none | blocks | full")
    parser.add_argument("--small", action="store_true",
                        help="CPU-sized: 40 infants of 1 minute, 2 epochs of 2/1 windows per CP/other infant")
    args = parser.parse_args(argv)
    if args.small:
        args.infants, args.minutes, args.epochs, args.eval_every = 40, 1.0, 2, 1
        args.parts_positive, args.parts_negative = 2, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="jaxcp-bench-student-"))
    load_before = os.getloadavg()
    try:
        row = run_student(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    epochs = row["epochs_run"]
    print(f"{jax.default_backend()}: {Path(args.arch).name}, {row['train_infants']} train / "
          f"{row['val_infants']} val infants of {args.minutes:g} min, {epochs} epochs of "
          f"{row['train_windows_per_epoch']} windows, {row['val_windows']} validation windows")
    for name, seconds in row["seconds"].items():
        print(f"  {name:<52} {seconds:8.1f} s")
    train_s = row["seconds"]["training"]
    print(f"  training throughput: {epochs * row['train_windows_per_epoch'] / train_s:.1f} windows/s "
          "(compilation excluded)")
    result = {**common.environment(load_before), "arch": Path(args.arch).name,
              "settings": vars(args),
              **row}  # fmt: skip
    suffix = "_small" if args.small else ""
    common.write_json(RESULTS / f"student_{jax.default_backend()}{suffix}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
