"""`python -m jaxcp.train`: the final, long training of one architecture in a run folder, resumable.

    python -m jaxcp.train --arch configs/arch/autocp_best.yaml --data data/processed --out runs/best \\
        [--epochs 300] [--seeds 3] [--set window=150] [--space autocp|FILE|none] [--quiet] [--restart]

The long schedule of AutoCP (reference §7.3): learning rate halved at epochs 200 and 250, validation every
5 epochs and every epoch of the last 15, no early stop. `--seeds N` trains N seeds of the architecture
together (vmapped). The architecture file must lie in `--space` (default: the paper's space; `none`
skips that check). The run folder OUT holds:

    run.json       what was asked: arch, hparams, seeds, training settings, data folder and sizes
    arch.yaml      the architecture file; config.yaml: the resolved training settings
    seed_<k>/      the best-validation model of seed k (`jaxcp.checkpoint`), replaced when validation
                   improves; what `evaluate`, `predict` and `export` read (`--checkpoint OUT` = all seeds)
    progress/      the training state after the latest epoch (Orbax: stacked TrainState and PRNG keys, plus
                   epoch, tracker and timings), replaced atomically every `--save-every` epochs
    summary.json   written last: per seed status, best epoch, validation metrics and history

Run the same command again after a kill and it continues from `progress/` (with the same settings); the
result is the same as that of an uninterrupted run. A finished run is not trained again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
import types
from pathlib import Path

import numpy as np

from jaxcp import atomic, checkpoint
from jaxcp.config import apply_overrides, dump_yaml, from_dict, to_dict
from jaxcp.data.dataset import dataset_layout, load_dataset
from jaxcp.errors import InputError, exit_with
from jaxcp.runtime import DEFAULT_SEED, enable_compilation_cache
from jaxcp.search_config import resolve_config_path
from jaxcp.space import Arch, HParams, arch_file_text, load_arch_file, load_space
from jaxcp.train import LONG_SCHEDULE, EpochReport, StudentRun, TrainConfig, make_eval_data, make_train_data
from jaxcp.workflow import data_settings

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
PROGRESS_DIR = "progress"
RUN_FORMAT = "jaxcp-train-run-1"


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Everything that determines a training run's result (a resumed run must ask for the same)."""

    arch: Arch
    hparams: HParams
    config: TrainConfig
    seeds: tuple[int, ...]
    data: str
    train_split: str = "train"
    val_split: str = "val"

    def to_json(self, sizes: dict) -> dict:
        return {"format": RUN_FORMAT, "arch": to_dict(self.arch), "hparams": to_dict(self.hparams),
                "config": to_dict(self.config), "seeds": list(self.seeds), "data": self.data,
                "train_split": self.train_split, "val_split": self.val_split,
                "data_sizes": sizes}  # fmt: skip


def read_arch(path: str, space: str) -> tuple[Arch, HParams]:
    """The arch file, checked against a search space (`none`: only the values' own rules)."""
    if space == "none":
        return load_arch_file(path, types.SimpleNamespace(arch=(), hparams=()))
    return load_arch_file(path, load_space(resolve_config_path(space, "space")))


def seed_dir(out_dir: Path, index: int) -> Path:
    return out_dir / f"seed_{index}"


def build_config(epochs: int | None, overrides: list[str]) -> TrainConfig:
    """The long schedule, then `--set key=value` overrides, then `--epochs`."""
    mapping = apply_overrides(to_dict(LONG_SCHEDULE), overrides)
    if epochs is not None:
        mapping["epochs"] = epochs
    config = from_dict(TrainConfig, mapping, "--set")
    checks = {
        "epochs": config.epochs >= 1,
        "eval_every": config.eval_every >= 1,
        "window": config.window >= 3,
        "hop": config.hop >= 1,
        "eval_last": config.eval_last >= 0,
        "eval_batch": config.eval_batch >= 1,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise InputError(f"--set {bad[0]}={getattr(config, bad[0])}: not a usable value")
    return config


def _first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} ({a!r} there, {b!r} now)"
    return None


def check_out_dir(out_dir: Path, run: dict, restart: bool) -> str:
    """'new', 'resume' or 'finished'; an InputError when OUT belongs to something else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise InputError(
                f"{out_dir}: not empty and not a jaxcp training run (no {RUN_FILE}); choose a new --out"
            )
        return "new"
    if restart:
        for path in [out_dir / SUMMARY_FILE, out_dir / PROGRESS_DIR, *out_dir.glob("seed_*")]:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return "new"
    try:
        old = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{run_file}: unreadable; use --restart to start this run again") from None
    difference = _first_difference(old, run) if isinstance(old, dict) else "format"
    if difference:
        raise InputError(
            f"{out_dir}: holds a run with different settings: {difference}; use another --out or --restart"
        )
    return "finished" if (out_dir / SUMMARY_FILE).is_file() else "resume"


class Progress:
    """A progress bar on a terminal; otherwise (or with `quiet`) one plain line per validation."""

    def __init__(self, total: int, start_epoch: int, *, quiet: bool, stream=None):
        self.stream = stream or sys.stderr
        self.bar = not quiet and self.stream.isatty()
        self.total, self.start_epoch, self.start = total, start_epoch, time.perf_counter()
        self.first_done: tuple[int, float] | None = None

    def update(self, report: EpochReport) -> None:
        now = time.perf_counter()
        if self.first_done is None:  # the first epoch includes compiling: time the others
            self.first_done = (report.epoch, now)
        done, since = report.epoch - self.first_done[0], now - self.first_done[1]
        per_epoch = since / done if done else now - self.start
        eta = per_epoch * (self.total - report.epoch)
        best = [s["best_auc"] for s in report.summaries]
        text = (
            f"epoch {report.epoch:>{len(str(self.total))}}/{self.total}  loss {np.mean(report.losses):.4f}"
            + (f"  val AUC {_join(report.val_auc)}" if report.evaluated else "")
            + f"  best {_join(best)}  {per_epoch:.1f} s/epoch  ETA {_duration(eta)}"
        )
        if self.bar:
            width = 24
            filled = int(width * report.epoch / self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}\033[K")
            self.stream.flush()
        elif report.evaluated or report.epoch == self.total:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar:
            self.stream.write("\n")
            self.stream.flush()


def _join(values) -> str:
    return "/".join("-" if v is None or not np.isfinite(v) else f"{v:.3f}" for v in values)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def save_best(out_dir: Path, run: StudentRun, report: EpochReport, request: RunRequest, layout, data) -> None:
    """Save the model of every seed whose validation AUC improved in this epoch."""
    for k in np.flatnonzero(report.improved):
        state = run.student_state(int(k))
        tracker = run.tracker
        checkpoint.save_model(
            seed_dir(out_dir, int(k)), params=state.params, batch_stats=state.batch_stats, arch=request.arch,
            hparams=request.hparams, layout=layout, features=request.config.features,
            window=request.config.window, hop=request.config.hop, metrics=tracker.best_metrics[k], data=data,
            extra={"best_epoch": int(tracker.best_epoch[k]), "seed": request.seeds[k],
                   "split": request.val_split},
        )  # fmt: skip


def train_run(
    request: RunRequest,
    out_dir: Path,
    *,
    restart: bool = False,
    quiet: bool = False,
    save_every: int = 1,
    log=print,
) -> dict:
    """Train (or resume, or find finished) the run of `request` in `out_dir`; returns the summary."""
    data_dir = Path(request.data)
    layout = dataset_layout(data_dir)
    train_set = load_dataset(data_dir, request.train_split)
    val_set = load_dataset(data_dir, request.val_split)
    sizes = {"train": len(train_set.ids), "val": len(val_set.ids), "frames": int(train_set.coords.shape[1])}
    run_json = request.to_json(sizes)
    mode = check_out_dir(out_dir, run_json, restart)
    if mode == "finished":
        log(f"{out_dir}: this run is already finished")
        return json.loads((out_dir / SUMMARY_FILE).read_text())
    if mode == "new":
        atomic.write_text(out_dir / "arch.yaml", arch_file_text(request.arch, request.hparams))
        atomic.write_text(out_dir / "config.yaml", dump_yaml(request.config))
        atomic.write_text(out_dir / RUN_FILE, json.dumps(run_json, indent=2))
    config = request.config
    run = StudentRun(
        request.arch,
        [request.hparams] * len(request.seeds),
        request.seeds,
        make_train_data(train_set, config),
        make_eval_data(val_set, layout, config),
        layout,
        config,
    )
    if mode == "resume" and (out_dir / PROGRESS_DIR).is_dir():
        arrays, info = checkpoint.restore_run_state(out_dir / PROGRESS_DIR, run.snapshot()[0])
        run.restore(arrays, info)
        log(f"{out_dir}: resuming after epoch {run.epoch} of {config.epochs}")
    data = data_settings(data_dir)
    progress = Progress(config.epochs, run.epoch, quiet=quiet)
    try:
        while not run.finished:
            report = run.run_epoch()
            save_best(out_dir, run, report, request, layout, data)
            if run.epoch % save_every == 0 or run.finished:
                checkpoint.save_run_state(out_dir / PROGRESS_DIR, *run.snapshot())
            progress.update(report)
    finally:
        progress.close()
    return write_summary(out_dir, run, request)


def write_summary(out_dir: Path, run: StudentRun, request: RunRequest) -> dict:
    seeds = []
    for k, result in enumerate(run.results()):
        path = seed_dir(out_dir, k)
        seeds.append({"seed": request.seeds[k], "status": result.status, "reward": result.reward,
                      "best_epoch": result.best_epoch, "checkpoint": path.name if path.is_dir() else None,
                      "metrics": result.metrics, "history": result.history})  # fmt: skip
    result = run.results()[0]
    summary = {
        "epochs": run.epoch,
        "seconds_compile": result.seconds_compile,
        "seconds_train": result.seconds_train,
        "seconds_eval": result.seconds_eval,
        "seeds": seeds,
    }
    atomic.write_text(out_dir / SUMMARY_FILE, json.dumps(checkpoint.jsonable(summary), indent=2))
    return checkpoint.jsonable(summary)


def format_summary(summary: dict) -> str:
    lines = [f"{'seed':>6} {'status':<14} {'best epoch':>10} {'val AUC':>8} {'val acc':>8}  checkpoint"]
    for s in summary["seeds"]:
        m = s["metrics"] or {}
        auc, acc = m.get("auc"), m.get("accuracy")
        lines.append(
            f"{s['seed']:>6} {s['status']:<14} {s['best_epoch']:>10} "
            f"{'-' if auc is None else f'{auc:.3f}':>8} {'-' if acc is None else f'{acc:.3f}':>8}  "
            f"{s['checkpoint'] or '-'}"
        )
    lines.append(
        f"{summary['epochs']} epochs; compile {summary['seconds_compile']:.1f} s, train "
        f"{summary['seconds_train']:.1f} s, validation {summary['seconds_eval']:.1f} s"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    settings = "\n".join(f"  {line}" for line in dump_yaml(LONG_SCHEDULE).splitlines())
    parser = argparse.ArgumentParser(
        prog="jaxcp train", description="Train one architecture for the long schedule (resumable).",
        epilog=f"training settings (--set key=value) and their defaults:\n{settings}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--arch", required=True, help="architecture file (arch: and hparams: sections)")
    parser.add_argument(
        "--data", required=True, help="processed dataset folder (jaxcp prepare, or AutoCP npy)"
    )
    parser.add_argument(
        "--out", required=True, help="run folder (created; an unfinished run there is resumed)"
    )
    parser.add_argument(
        "--space",
        default="autocp",
        help="search space the architecture must belong to (a name, a YAML file, or none)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 300)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds trained together, each with a checkpoint")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="first seed (seeds are seed, seed+1, ...)"
    )
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="a training setting, e.g. window=150 or features.streams=JVBA (repeatable)",
    )
    parser.add_argument("--save-every", type=int, default=1, help="epochs between saved training states")
    parser.add_argument(
        "--restart", action="store_true", help="discard an unfinished or finished run in --out"
    )
    parser.add_argument("--quiet", action="store_true", help="plain progress lines instead of a bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.seeds < 1 or args.save_every < 1:
            raise InputError("--seeds and --save-every must be at least 1")
        arch, hparams = read_arch(args.arch, args.space)
        config = build_config(args.epochs, args.overrides)
        seeds = tuple(args.seed + k for k in range(args.seeds))
        request = RunRequest(
            arch, hparams, config, seeds, str(Path(args.data).resolve()), args.train_split, args.val_split
        )
        enable_compilation_cache()
        summary = train_run(
            request, Path(args.out), restart=args.restart, quiet=args.quiet, save_every=args.save_every
        )
    except InputError as error:
        exit_with(error)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; run the same command again to resume from {Path(args.out) / PROGRESS_DIR}",
            file=sys.stderr,
        )
        return 130
    print(format_summary(summary))
    return 0
