"""`python -m jaxcp.crossval`: K-fold cross-validation of one architecture at infant level, resumable.

    python -m jaxcp.crossval --arch configs/arch/autocp_best.yaml --data data/processed --out runs/cv \\
        [--folds 5] [--epochs 300] [--seeds 1] [--seed N] [--splits all | train,val,test]
        [--threshold 0.5 | youden | sensitivity:S] [--set key=value ...] [--space autocp|FILE|none]
        [--restart] [--quiet] [--format md|html]

The infants of `--splits` (default: all) form K folds stratified by outcome: the manifest's folds when
every infant has one and `--folds` is not given, else K (default 5) folds drawn with `--seed`. Fold k is
scored by a model trained on the other folds except fold k+1, which selects the model (best validation AUC)
and, for `youden` / `sensitivity:S`, the fold's threshold: never its test fold. The K folds x S seeds are
trained together as one compiled, vmapped program (the long schedule of `jaxcp train`, `--epochs` and
`--set` as there). The run folder OUT holds run.json, arch.yaml, config.yaml, folds.json, fold_<k>/seed_<s>/
(the kept models), progress/ (the state after the latest epoch) and, written last, metrics.json (pooled
out-of-fold AUC with its interval, sensitivity/specificity/accuracy with exact intervals, per-fold results,
warnings), infants.csv (id,label,risk,fold,positive), report.md|html and roc.png.

Run the same command again after a kill and it continues where it stopped; a finished run is not redone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from jaxcp.clinical.evaluation import ThresholdRule
from jaxcp.clinical.report import FORMATS, number
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.progress import ProgressLog
from jaxcp.core.runtime import DEFAULT_SEED, enable_compilation_cache
from jaxcp.nas.space import read_arch_spec
from jaxcp.training.crossval import CrossvalRequest, crossval_run, parse_splits
from jaxcp.training.run import PROGRESS_DIR, build_config
from jaxcp.training.students import EpochReport


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jaxcp crossval", description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--arch", required=True, help="architecture file (arch: and hparams: sections)")
    parser.add_argument("--data", required=True, help="processed dataset folder (jaxcp prepare)")
    parser.add_argument("--out", required=True, help="run folder (created; an unfinished run there is resumed)")
    parser.add_argument("--folds", type=int, default=None,
                        help="K folds drawn with --seed (default: the manifest's folds, else 5)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 300)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per fold (a seed ensemble per fold)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="first seed; also draws the folds")
    parser.add_argument("--splits", default="all", help="infants used: all (default) or e.g. train,val")
    parser.add_argument("--threshold", default="0.5", help="0.5 (default), a number, youden or sensitivity:S")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a training setting, e.g. window=150 (repeatable)")
    parser.add_argument("--space", default="autocp",
                        help="search space the architecture must belong to (a name, a YAML file, or none)")
    parser.add_argument("--restart", action="store_true", help="discard an earlier run in --out")
    parser.add_argument("--quiet", action="store_true", help="plain progress lines instead of a bar")
    parser.add_argument("--format", default="md", choices=FORMATS, help="report format (default md)")
    return parser.parse_args(argv)


def format_result(result: dict) -> str:
    def ci(name):
        low, high = result[f"{name}_ci"]
        return f"{number(result[name])} (95% CI {number(low)}-{number(high)})"

    lines = [f"{'fold':>4} {'infants':>7} {'CP':>3} {'test AUC':>8} {'val AUC':>8} {'threshold':>9}"]
    lines += [f"{f['fold']:>4} {f['num_infants']:>7} {f['num_positive']:>3} {number(f['auc']):>8} "
              f"{number(f['val_auc']):>8} {number(f['threshold']):>9}" for f in result["folds"]]
    lines += [f"out-of-fold AUC (within folds) {ci('auc')}; pooled risks {ci('auc_pooled')}",
              f"sensitivity {ci('sensitivity')}, specificity {ci('specificity')}, accuracy {ci('accuracy')}",
              f"{result['num_infants']} infants, {result['num_folds']} folds ({result['fold_source']}); "
              f"compile {result['seconds']['compile']:.1f} s, train {result['seconds']['train']:.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = None
    try:
        if args.seeds < 1:
            raise InputError("--seeds must be at least 1")
        if args.folds is not None and args.folds < 3:
            raise InputError(f"--folds {args.folds}: must be at least 3 (test, inner validation and training)")
        ThresholdRule.parse(args.threshold)
        spec = read_arch_spec(args.arch, args.space)  # the arch file's features/window/hop are the base settings
        arch, hparams = spec.arch, spec.hparams
        config = build_config(args.epochs, args.overrides, spec.input_settings(), args.arch)
        data_dir = Path(args.data)
        if not data_dir.is_dir():
            raise InputError(f"{data_dir}: data folder not found (--data)")
        splits = parse_splits(data_dir, args.splits)
        request = CrossvalRequest(arch, hparams, config, tuple(args.seed + s for s in range(args.seeds)),
                                  str(data_dir.resolve()), splits, args.folds, args.seed, args.threshold,
                                  args.format)  # fmt: skip
        enable_compilation_cache()
        log = ProgressLog(config.epochs, quiet=args.quiet)
        start = time.perf_counter()

        def on_epoch(report: EpochReport) -> None:
            best = [s["best_auc"] for s in report.summaries if s["best_auc"] is not None]
            text = (f"epoch {report.epoch}/{config.epochs}  loss {np.mean(report.losses):.4f}  mean kept inner "
                    f"val AUC {number(float(np.mean(best)) if best else None)}  "
                    f"{time.perf_counter() - start:.0f} s")
            log.update(report.epoch, text, notable=report.evaluated)

        result = crossval_run(request, Path(args.out), restart=args.restart, on_epoch=on_epoch,
                              log=lambda line: print(line, file=sys.stderr),
                              warn=lambda line: print(f"warning: {line}", file=sys.stderr))  # fmt: skip
    except InputError as error:
        exit_with(error)
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to resume from {Path(args.out) / PROGRESS_DIR}",
              file=sys.stderr)
        return 130
    finally:
        if log is not None:
            log.close()
    print(format_result(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
