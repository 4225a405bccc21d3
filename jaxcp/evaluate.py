"""`python -m jaxcp.evaluate`: trained models on a split of a processed dataset, with the clinical report.

    python -m jaxcp.evaluate --checkpoint runs/best [more ...] --data data/processed [--split test]
        [--threshold 0.5 | youden | sensitivity:0.9] [--val-split val] [--out DIR] [--format md|html]

Every model scores the split's evaluation windows; several models (or a training run with several seeds)
form an ensemble: the median of the window probabilities across models (MovementOutcome). An infant's
risk is the median of its window probabilities, positive iff risk >= threshold. The threshold is 0.5,
a number, or chosen on the validation split (`--val-split`) from the same models' risks: `youden`
maximises sensitivity + specificity, `sensitivity:S` is the highest threshold with sensitivity >= S.
The report (`jaxcp.report`) states which.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from jaxcp import metrics, report
from jaxcp.data.dataset import Dataset, dataset_layout, load_dataset
from jaxcp.data.windows import make_eval_windows
from jaxcp.errors import InputError, exit_with
from jaxcp.inference import EnsembleOutput, Predictor, check_compatible, load_predictors, run_ensemble
from jaxcp.runtime import DEFAULT_SEED, enable_compilation_cache
from jaxcp.workflow import data_settings

BOOTSTRAP = 2000


@dataclasses.dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is set: kind "fixed" (value), "youden", or "sensitivity" (target)."""

    kind: str
    value: float = 0.5

    @classmethod
    def parse(cls, text: str) -> ThresholdRule:
        text = text.strip().lower()
        if text == "youden":
            return cls("youden")
        kind, _, number = text.partition(":")
        try:
            if kind == "sensitivity" and 0 < float(number) <= 1:
                return cls("sensitivity", float(number))
            if not number and 0 <= float(kind) <= 1:
                return cls("fixed", float(kind))
        except ValueError:
            pass
        raise InputError(
            f"--threshold {text!r}: use a number in [0, 1], 'youden' or 'sensitivity:S' (0 < S <= 1)"
        )


def check_data(predictor: Predictor, data_dir: Path) -> None:
    """The data must use the model's layout and (when both are known) its preprocessing."""
    layout = dataset_layout(data_dir)
    if layout.name != predictor.layout.name or layout.num_joints != predictor.layout.num_joints:
        raise InputError(
            f"{predictor.name}: a model for layout {predictor.layout.name!r} "
            f"({predictor.layout.num_joints} joints); {data_dir} uses {layout.name!r}"
        )
    prepared = data_settings(data_dir).preprocess
    if (
        prepared is not None
        and predictor.data.preprocess is not None
        and prepared != predictor.data.preprocess
    ):
        differ = next(
            f.name
            for f in dataclasses.fields(prepared)
            if getattr(prepared, f.name) != getattr(predictor.data.preprocess, f.name)
        )
        raise InputError(
            f"{data_dir}: prepared with preprocess.{differ}={getattr(prepared, differ)!r}, the model's "
            f"data with {getattr(predictor.data.preprocess, differ)!r}"
        )


def predict_split(predictors: list[Predictor], data_dir: Path, split: str) -> tuple[Dataset, EnsembleOutput]:
    first = check_compatible(predictors)
    check_data(first, data_dir)
    dataset = load_dataset(data_dir, split)
    if dataset.num_infants == 0:
        raise InputError(f"{data_dir}: split {split!r} has no infants")
    windows = make_eval_windows(dataset, window=first.window, hop=first.hop)
    return dataset, run_ensemble(predictors, windows.windows, windows.owner, dataset.num_infants)


def choose_threshold(rule: ThresholdRule, predictors, data_dir: Path, val_split: str) -> tuple[float, str]:
    """(threshold, sentence for the report)."""
    if rule.kind == "fixed":
        default = " (default)" if rule.value == 0.5 else ""
        return rule.value, f"{rule.value:g}{default}, fixed before looking at the data"
    dataset, output = predict_split(predictors, data_dir, val_split)
    labels = dataset.labels
    try:
        if rule.kind == "youden":
            value = metrics.youden_threshold(labels, output.risk)
            how = "maximising Youden's J (sensitivity + specificity - 1)"
        else:
            value = metrics.threshold_for_sensitivity(labels, output.risk, rule.value)
            how = f"the highest threshold with sensitivity >= {rule.value:g}"
    except ValueError as error:
        raise InputError(f"{data_dir}: cannot choose a threshold on split {val_split!r}: {error}") from None
    return value, f"{value:.4f}, chosen on the {val_split!r} split ({dataset.num_infants} infants) as {how}"


def evaluate(
    predictors: list[Predictor],
    data_dir: Path,
    split: str,
    threshold: float,
    description: str,
    rule: ThresholdRule,
    val_split: str,
    bootstrap: int = BOOTSTRAP,
) -> tuple[dict, dict]:
    """(result for metrics.json and the report, arrays for the figures)."""
    dataset, output = predict_split(predictors, data_dir, split)
    labels = dataset.labels
    subject = metrics.subject_metrics(labels, output.risk, threshold)
    window_labels = labels[output.owner]
    subject["window_auc"] = metrics.window_auc(window_labels, output.window_probs, output.owner)
    subject["auc_ci_low"], subject["auc_ci_high"] = metrics.bootstrap_auc_ci(
        labels, output.risk, bootstrap, seed=DEFAULT_SEED
    )
    certain = output.certain(threshold)
    positive = output.risk >= threshold
    result = {
        "format": "jaxcp-evaluation-1", "data": str(data_dir), "split": split,
        "num_infants": dataset.num_infants, "num_positive": int(labels.sum()),
        "num_windows": int(output.owner.size),
        "models": [p.name for p in predictors],
        "threshold": {"value": float(threshold), "rule": rule.kind if rule.kind != "sensitivity" else
                      f"sensitivity:{rule.value:g}", "chosen_on": None if rule.kind == "fixed" else val_split,
                      "description": description},
        "subject": subject, "bootstrap": bootstrap,
        "certainty": None if certain is None else certainty_summary(certain, positive, labels),
        "per_model": [dict(model=p.name, **metrics.evaluate_windows(probs, output.owner, labels, threshold))
                      for p, probs in zip(predictors, output.model_probs, strict=True)],
        "infants": [{"id": key, "label": int(labels[i]), "risk": float(output.risk[i]),
                     "positive": bool(positive[i]),
                     "certain": None if certain is None else bool(certain[i]),
                     "model_risks": [float(r) for r in output.model_risks[:, i]]}
                    for i, key in enumerate(dataset.ids)],
    }  # fmt: skip
    arrays = {
        "labels": labels,
        "risk": output.risk,
        "window_probs": output.window_probs,
        "window_labels": window_labels,
    }
    return result, arrays


def certainty_summary(certain: np.ndarray, positive: np.ndarray, labels: np.ndarray) -> dict:
    correct = positive == (labels == 1)

    def accuracy(mask):
        return float(correct[mask].mean()) if mask.any() else float("nan")

    return {
        "certain": int(certain.sum()),
        "uncertain": int((~certain).sum()),
        "accuracy_certain": accuracy(certain),
        "accuracy_uncertain": accuracy(~certain),
    }


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        rule = ThresholdRule.parse(args.threshold)
        if args.bootstrap < 1:
            raise InputError(f"--bootstrap {args.bootstrap}: must be at least 1")
        data_dir = Path(args.data)
        enable_compilation_cache()
        predictors = load_predictors(args.checkpoint, args.model)
        threshold, description = choose_threshold(rule, predictors, data_dir, args.val_split)
        result, arrays = evaluate(
            predictors, data_dir, args.split, threshold, description, rule, args.val_split, args.bootstrap
        )
        out_dir = Path(args.out or f"evaluation_{args.split}")
        report.write_report(out_dir, result, arrays, args.format)
    except InputError as error:
        exit_with(error)
    s = result["subject"]
    print(
        f"{args.split}: {result['num_infants']} infants, {len(predictors)} model(s), threshold "
        f"{threshold:.4g}: AUC {report.number(s['auc'])}, sensitivity {report.number(s['sensitivity'])}, "
        f"specificity {report.number(s['specificity'])}, accuracy {report.number(s['accuracy'])} "
        f"({time.perf_counter() - start:.1f} s); report in {out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
