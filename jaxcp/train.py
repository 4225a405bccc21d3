"""`python -m jaxcp.train`: the final, long training of one architecture in a run folder, resumable.

    python -m jaxcp.train --arch configs/arch/autocp_best.yaml --data data/processed --out runs/best \\
        [--epochs 300] [--seeds 3] [--set window=150] [--space autocp|FILE|none] [--quiet] [--restart]

The long schedule of AutoCP (reference §7.3): learning rate halved at epochs 200 and 250, validation every
5 epochs and every epoch of the last 15, no early stop. `--seeds N` trains N seeds of the architecture
together (vmapped). The architecture file must lie in `--space` (default: the paper's space; `none`
skips that check). The run folder OUT holds:

    run.json       what was asked: arch, hparams, seeds, training settings, data folder and sizes
    arch.yaml      the architecture file; config.yaml: the resolved training settings
    seed_<k>/      the kept model of seed k (`jaxcp.model.checkpoint`), replaced when the kept evaluation
                   changes (setting `select`: last | auc | loss); meta.json holds its validation metrics,
                   `flags`, `calibration` and `labels`; what `evaluate`, `predict` and `export` read
                   (`--checkpoint OUT` = all seeds)
    progress/      the training state after the latest epoch (Orbax: stacked TrainState and PRNG keys, plus
                   epoch, tracker and timings), replaced atomically every `--save-every` epochs
    summary.json   written last: per seed status, kept epoch, flags, validation metrics and history

Warnings on stderr: `warning: <...>` at the start for a training or validation split with fewer than 5
infants of a class, and at the end `warning: seed <seed>: <...>` for every flag of a kept model (risks that
hardly vary, a validation AUC at chance, a small validation split).

Run the same command again after a kill and it continues from `progress/` (with the same settings); the
result is the same as that of an uninterrupted run. A finished run is not trained again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from jaxcp.clinical import metrics
from jaxcp.core.config import dump_yaml
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.progress import ProgressLog
from jaxcp.core.runtime import DEFAULT_SEED, enable_compilation_cache
from jaxcp.nas.space import read_arch_spec
from jaxcp.training.run import PROGRESS_DIR, RunRequest, build_config, train_run
from jaxcp.training.students import LONG_SCHEDULE, EpochReport


class EpochProgress:
    """The training's progress: a bar on a terminal; otherwise (or with `quiet`) one line per validation."""

    def __init__(self, total: int, *, quiet: bool, stream=None):
        self.log = ProgressLog(total, quiet=quiet, stream=stream or sys.stderr)
        self.total, self.start = total, time.perf_counter()
        self.first_done: tuple[int, float] | None = None

    def update(self, report: EpochReport) -> None:
        now = time.perf_counter()
        if self.first_done is None:  # the first epoch includes compiling: time the others
            self.first_done = (report.epoch, now)
        done, since = report.epoch - self.first_done[0], now - self.first_done[1]
        per_epoch = since / done if done else now - self.start
        eta = per_epoch * (self.total - report.epoch)
        best = [s["best_auc"] for s in report.summaries]  # the kept evaluation's AUC (setting `select`)
        text = (
            f"epoch {report.epoch:>{len(str(self.total))}}/{self.total}  loss {np.mean(report.losses):.4f}"
            + (f"  val AUC {_join(report.val_auc)}" if report.evaluated else "")
            + f"  kept {_join(best)}  {per_epoch:.1f} s/epoch  ETA {_duration(eta)}"
        )
        self.log.update(report.epoch, text, notable=report.evaluated or report.epoch == self.total)

    def close(self) -> None:
        self.log.close()


def _join(values) -> str:
    return "/".join("-" if v is None or not np.isfinite(v) else f"{v:.3f}" for v in values)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def _with_interval(value, low, high) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.3f} ({low:.2f}-{high:.2f})" if np.isfinite(low) and np.isfinite(high) else f"{value:.3f}"


def format_summary(summary: dict) -> str:
    """Per seed: the kept model's validation AUC (Hanley-McNeil 95 % interval from the class sizes) and
    accuracy (exact interval), then the timings."""
    header = f"{'seed':>6} {'status':<14} {'kept epoch':>10} {'val AUC (95% CI)':>20} {'val acc (95% CI)':>20}"
    lines = [header + "  checkpoint"]
    for s in summary["seeds"]:
        m = s["metrics"] or {}
        n_pos, n_neg = m.get("tp", 0) + m.get("fn", 0), m.get("tn", 0) + m.get("fp", 0)
        auc = _with_interval(m.get("auc"), *metrics.hanley_mcneil_ci(m.get("auc"), n_pos, n_neg))
        acc = _with_interval(m.get("accuracy"), m.get("accuracy_ci_low", np.nan), m.get("accuracy_ci_high", np.nan))
        lines.append(f"{s['seed']:>6} {s['status']:<14} {s['best_epoch']:>10} {auc:>20} {acc:>20}  "
                     f"{s['checkpoint'] or '-'}")
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
    parser.add_argument("--arch", required=True, help="architecture file (arch: and hparams: sections; its "
                        "features:, window: and hop:, when given, are the base training settings)")
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
    progress = None
    try:
        if args.seeds < 1 or args.save_every < 1:
            raise InputError("--seeds and --save-every must be at least 1")
        spec = read_arch_spec(args.arch, args.space)  # the arch file's features/window/hop are the base settings
        arch, hparams = spec.arch, spec.hparams
        config = build_config(args.epochs, args.overrides, spec.input_settings(), args.arch)
        seeds = tuple(args.seed + k for k in range(args.seeds))
        request = RunRequest(
            arch, hparams, config, seeds, str(Path(args.data).resolve()), args.train_split, args.val_split
        )
        enable_compilation_cache()
        progress = EpochProgress(config.epochs, quiet=args.quiet)
        summary = train_run(request, Path(args.out), restart=args.restart, save_every=args.save_every,
                            warn=warn, on_epoch=progress.update)
    except InputError as error:
        exit_with(error)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; run the same command again to resume from {Path(args.out) / PROGRESS_DIR}",
            file=sys.stderr,
        )
        return 130
    finally:
        if progress is not None:
            progress.close()
    print(format_summary(summary))
    for seed in summary["seeds"]:
        for flag in seed.get("flags") or []:
            warn(f"seed {seed['seed']}: {flag['message']}")
    return 0


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
