"""`python -m jaxcp.evaluate`: trained models on a split of a processed dataset, with the clinical report.

    python -m jaxcp.evaluate --checkpoint runs/best [more ...] --data data/processed [--split test]
        [--threshold 0.5 | youden | sensitivity:0.9] [--val-split val] [--out DIR] [--format md|html]
        [--labels "no CP,CP"]

Every model scores the split's evaluation windows; several models (or a training run with several seeds)
form an ensemble: the median of the window probabilities across models (MovementOutcome). An infant's
risk is the median of its window probabilities, positive iff risk >= threshold. The threshold is 0.5,
a number, or chosen on the validation split (`--val-split`) from the same models' risks: `youden`
maximises sensitivity + specificity, `sensitivity:S` is the highest threshold with sensitivity >= S.
Never on the evaluated split itself.
The report (`jaxcp.clinical.report`) states which, and whether the models' risks are corrected for the
training's window oversampling. Every figure comes with its 95 % interval; flagged models, a split with too
few infants of a class and risks that hardly vary are warned about on stderr, in metrics.json and in the
report.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jaxcp.clinical import report
from jaxcp.clinical.evaluation import BOOTSTRAP, ThresholdRule, evaluate, select_threshold
from jaxcp.clinical.inference import class_names, flag_lines, load_predictors, parse_class_names
from jaxcp.core.atomic import check_out_folder
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.runtime import enable_compilation_cache


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="jaxcp evaluate", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    parser.add_argument(
        "--checkpoint", nargs="+", default=[], help="model checkpoint folders or training runs"
    )
    parser.add_argument("--model", nargs="+", default=[], help="exported model files (jaxcp export)")
    parser.add_argument("--data", required=True, help="processed dataset folder")
    parser.add_argument("--split", default="test", help="split to evaluate (default test)")
    parser.add_argument("--threshold", default="0.5", help="0.5 (default), a number, youden or sensitivity:S")
    parser.add_argument(
        "--val-split", default="val", help="split that youden / sensitivity:S use (default val)"
    )
    parser.add_argument("--out", default=None, help="report folder (default: evaluation_<split>)")
    parser.add_argument("--format", default="md", choices=report.FORMATS, help="report format (default md)")
    parser.add_argument(
        "--bootstrap", type=int, default=BOOTSTRAP, help="bootstrap resamples for the AUC interval"
    )
    parser.add_argument(
        "--labels", default=None, help='class names "negative,positive" (default: the models\' or "no CP,CP")'
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        rule = ThresholdRule.parse(args.threshold)
        if args.bootstrap < 1:
            raise InputError(f"--bootstrap {args.bootstrap}: must be at least 1")
        if args.labels is not None:
            parse_class_names(args.labels)
        if rule.kind != "fixed" and args.val_split == args.split:
            raise InputError(f"--val-split {args.val_split}: the threshold would be chosen on the evaluated "
                             "infants themselves; choose it on another split (e.g. val)")
        data_dir = Path(args.data)
        out_dir = check_out_folder(args.out or f"evaluation_{args.split}")
        enable_compilation_cache()
        predictors = load_predictors(args.checkpoint, args.model)
        names = class_names(predictors, args.labels)
        choice = select_threshold(rule, predictors, data_dir, args.val_split)
        result, arrays = evaluate(
            predictors, data_dir, args.split, choice.value, choice.description, rule, args.val_split,
            args.bootstrap, choice=choice, class_names=names,
        )  # fmt: skip
        report.write_report(out_dir, result, arrays, args.format)
    except InputError as error:
        exit_with(error)
    for line in flag_lines(result["model_flags"]) + result["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    s = result["subject"]
    print(
        f"{args.split}: {result['num_infants']} infants, {len(predictors)} model(s), threshold "
        f"{choice.value:.4g} ({choice.rule}): AUC {report.interval(s['auc'], s['auc_ci_low'], s['auc_ci_high'])}, "
        f"sensitivity {report.interval(s['sensitivity'], s['sensitivity_ci_low'], s['sensitivity_ci_high'])}, "
        f"specificity {report.interval(s['specificity'], s['specificity_ci_low'], s['specificity_ci_high'])}, "
        f"accuracy {report.interval(s['accuracy'], s['accuracy_ci_low'], s['accuracy_ci_high'])} "
        f"(95 % intervals; {time.perf_counter() - start:.1f} s); report in {out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
