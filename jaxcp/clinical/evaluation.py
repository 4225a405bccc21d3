"""Evaluating trained models on a split of a processed dataset: ensemble risks, threshold, metrics.

Every model scores the split's evaluation windows; several models form an ensemble (the median of the
window probabilities across models, MovementOutcome). An infant's risk is the median of its window
probabilities, positive iff risk >= threshold. The threshold is fixed, or chosen on the validation split
from the same models' risks (`ThresholdRule`): `youden` maximises sensitivity + specificity,
`sensitivity:S` is the highest threshold with sensitivity >= S. `evaluate` returns what
`jaxcp.clinical.report` writes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxcp.clinical import metrics
from jaxcp.clinical.inference import EnsembleOutput, check_compatible, run_ensemble
from jaxcp.clinical.predictor import Predictor
from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.dataset import Dataset, data_settings, dataset_layout, load_dataset
from jaxcp.data.windows import make_eval_windows

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
    spec = predictor.spec
    if layout.name != spec.layout.name or layout.num_joints != spec.layout.num_joints:
        raise InputError(
            f"{predictor.name}: a model for layout {spec.layout.name!r} "
            f"({spec.layout.num_joints} joints); {data_dir} uses {layout.name!r}"
        )
    prepared = data_settings(data_dir).preprocess
    if (
        prepared is not None
        and spec.data.preprocess is not None
        and prepared != spec.data.preprocess
    ):
        differ = next(
            f.name
            for f in dataclasses.fields(prepared)
            if getattr(prepared, f.name) != getattr(spec.data.preprocess, f.name)
        )
        raise InputError(
            f"{data_dir}: prepared with preprocess.{differ}={getattr(prepared, differ)!r}, the model's "
            f"data with {getattr(spec.data.preprocess, differ)!r}"
        )


def predict_split(predictors: list[Predictor], data_dir: Path, split: str) -> tuple[Dataset, EnsembleOutput]:
    first = check_compatible(predictors)
    check_data(first, data_dir)
    dataset = load_dataset(data_dir, split)
    if dataset.num_infants == 0:
        raise InputError(f"{data_dir}: split {split!r} has no infants")
    windows = make_eval_windows(dataset, window=first.spec.window, hop=first.spec.hop)
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
