"""Evaluating trained models on a split of a processed dataset: ensemble risks, threshold, metrics.

Every model scores the split's evaluation windows; several models form an ensemble (the median of the
window probabilities across models, MovementOutcome). An infant's risk is the median of its window
probabilities, positive iff risk >= threshold. The threshold is fixed, or chosen on the validation split
from the same models' risks (`ThresholdRule`): `youden` maximises sensitivity + specificity,
`sensitivity:S` is the highest threshold with sensitivity >= S. `evaluate` returns what
`jaxcp.clinical.report` writes: every figure with its interval (exact Clopper-Pearson for proportions, a
stratified bootstrap over infants for AUC, F1 and balanced accuracy), the models' flags, whether their risks
are prior-corrected, and warnings when a split is too small or the risks hardly vary.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from jaxcp.clinical import inference, metrics
from jaxcp.clinical.inference import EnsembleOutput, check_compatible, run_ensemble
from jaxcp.clinical.predictor import Predictor
from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.dataset import Dataset, data_settings, dataset_layout, load_dataset
from jaxcp.data.splits import size_warning
from jaxcp.data.windows import make_eval_windows

BOOTSTRAP = 2000
RISK_SPREAD_TOLERANCE = 0.01  # infants' risks spread less than this: the ensemble hardly tells them apart


@dataclasses.dataclass(frozen=True)
class ThresholdRule:
    """How the decision threshold is set: kind "fixed" (value), "youden", or "sensitivity" (target)."""

    kind: str
    value: float = 0.5

    @property
    def name(self) -> str:
        """As on the command line: "fixed", "youden" or "sensitivity:S"."""
        return f"sensitivity:{self.value:g}" if self.kind == "sensitivity" else self.kind

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


@dataclasses.dataclass(frozen=True)
class ThresholdChoice:
    """The decision threshold and where it came from: `chosen_on` is None for a fixed one, else the split
    (with its numbers of infants); `warnings` says when that split is too small."""

    value: float
    description: str
    rule: str
    chosen_on: str | None = None
    num_infants: int = 0
    num_positive: int = 0
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"value": float(self.value), "rule": self.rule, "chosen_on": self.chosen_on,
                "chosen_on_infants": self.num_infants if self.chosen_on else None,
                "chosen_on_positive": self.num_positive if self.chosen_on else None,
                "description": self.description}  # fmt: skip


def select_threshold(rule: ThresholdRule, predictors, data_dir: Path, val_split: str) -> ThresholdChoice:
    """The threshold of `rule`: fixed, or chosen on `val_split` from the same models' risks."""
    name = rule.name
    if rule.kind == "fixed":
        default = " (default)" if rule.value == 0.5 else ""
        return ThresholdChoice(rule.value, f"{rule.value:g}{default}, fixed before looking at the data", name)
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
    positive = int(labels.sum())
    warning = size_warning(f"the threshold's split {val_split!r}", positive, dataset.num_infants - positive)
    return ThresholdChoice(
        value,
        f"{value:.4f}, chosen on the {val_split!r} split ({dataset.num_infants} infants, {positive} with CP) "
        f"as {how}",
        name, val_split, dataset.num_infants, positive, (warning,) if warning else (),
    )  # fmt: skip


def choose_threshold(rule: ThresholdRule, predictors, data_dir: Path, val_split: str) -> tuple[float, str]:
    """(threshold, sentence for the report); see `select_threshold`."""
    choice = select_threshold(rule, predictors, data_dir, val_split)
    return choice.value, choice.description


def constant_risk_warning(risk: np.ndarray, tolerance: float = RISK_SPREAD_TOLERANCE) -> str | None:
    """A sentence when the infants' risks (N,) spread over less than `tolerance`, else None."""
    risk = np.asarray(risk, np.float64)
    if risk.size < 2 or float(risk.max() - risk.min()) >= tolerance:
        return None
    return (f"the risks of all {risk.size} infants lie within {risk.min():.4f}-{risk.max():.4f} (spread below "
            f"{tolerance:g}): the models hardly tell these infants apart, so the AUC and the classifications "
            f"say little about them (and their bootstrap intervals are narrow only because the risks tie)")  # fmt: skip


def proportion_intervals(subject: dict, alpha: float = 0.05) -> dict:
    """Clopper-Pearson intervals of PPV = tp / (tp + fp) and NPV = tn / (tn + fn) from the counts."""
    out = {}
    for name, k, n in (("ppv", subject["tp"], subject["tp"] + subject["fp"]),
                       ("npv", subject["tn"], subject["tn"] + subject["fn"])):  # fmt: skip
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = metrics.clopper_pearson(int(k), int(n), alpha)
    return out


def bootstrap_classification_ci(labels, risk, threshold: float, n_boot: int, seed: int = DEFAULT_SEED,
                                alpha: float = 0.05) -> dict:
    """Percentile intervals of F1 and balanced accuracy at `threshold`, resampling infants within each
    class (as the AUC's interval). labels, risk: (N,). NaN intervals with one class."""
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(risk, np.float64) >= threshold
    pos, neg = predicted[labels], predicted[~labels]
    if pos.size == 0 or neg.size == 0:
        return {f"{k}_ci_{e}": math.nan for k in ("f1", "balanced_accuracy") for e in ("low", "high")}
    rng = np.random.default_rng(seed)
    tp = rng.choice(pos, size=(n_boot, pos.size)).sum(axis=1).astype(np.float64)
    fp = rng.choice(neg, size=(n_boot, neg.size)).sum(axis=1).astype(np.float64)
    fn, tn = pos.size - tp, neg.size - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {"f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
                  "balanced_accuracy": (tp / pos.size + tn / neg.size) / 2}  # fmt: skip
    out = {}
    for name, v in values.items():
        v = v[np.isfinite(v)]
        low, high = np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if v.size else (math.nan,) * 2
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = float(low), float(high)
    return out


def subject_summary(labels, risk, threshold: float, bootstrap: int) -> dict:
    """`metrics.subject_metrics` with an interval for every figure: bootstrap AUC, F1 and balanced accuracy,
    exact PPV/NPV."""
    subject = metrics.subject_metrics(labels, risk, threshold)
    subject["auc_ci_low"], subject["auc_ci_high"] = metrics.bootstrap_auc_ci(
        labels, risk, bootstrap, seed=DEFAULT_SEED
    )
    subject.update(proportion_intervals(subject))
    subject.update(bootstrap_classification_ci(labels, risk, threshold, bootstrap))
    return subject


def evaluate(
    predictors: list[Predictor],
    data_dir: Path,
    split: str,
    threshold: float,
    description: str,
    rule: ThresholdRule,
    val_split: str,
    bootstrap: int = BOOTSTRAP,
    *,
    choice: ThresholdChoice | None = None,
    class_names: tuple[str, str] | None = None,
) -> tuple[dict, dict]:
    """(result for metrics.json and the report, arrays for the figures).

    choice: the threshold's origin (`select_threshold`), default: a fixed threshold / `rule` on `val_split`
    as described; class_names: default the models' (`inference.class_names`).
    """
    if choice is None:
        choice = ThresholdChoice(threshold, description, rule.name, None if rule.kind == "fixed" else val_split)
    names = class_names or inference.class_names(predictors)
    dataset, output = predict_split(predictors, data_dir, split)
    labels = dataset.labels
    subject = subject_summary(labels, output.risk, threshold, bootstrap)
    window_labels = labels[output.owner]
    subject["window_auc"] = metrics.window_auc(window_labels, output.window_probs, output.owner)
    certain = output.certain(threshold)
    positive = output.risk >= threshold
    flags = inference.model_flags(predictors)
    warnings = [w for w in (size_warning(f"the evaluated split {split!r}", int(labels.sum()),
                                         int((labels == 0).sum())),
                            constant_risk_warning(output.risk)) if w] + list(choice.warnings)  # fmt: skip
    result = {
        "format": "jaxcp-evaluation-1", "data": str(data_dir), "split": split,
        "num_infants": dataset.num_infants, "num_positive": int(labels.sum()),
        "num_windows": int(output.owner.size),
        "models": [p.name for p in predictors], "labels": list(names),
        "model_flags": flags, "warnings": warnings,
        "threshold": {**choice.as_dict(), "value": float(threshold),
                      "calibration": inference.calibration_note(predictors)},
        "subject": subject, "bootstrap": bootstrap,
        "certainty": None if certain is None else certainty_summary(certain, positive, labels),
        "per_model": [dict(model=p.name, **model_summary(probs, output.owner, labels, threshold, bootstrap))
                      for p, probs in zip(predictors, output.model_probs, strict=True)],
        "infants": [{"id": key, "label": int(labels[i]), "risk": float(output.risk[i]),
                     "positive": bool(positive[i]), "class": names[int(positive[i])],
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


def model_summary(window_probs, owner, labels, threshold: float, bootstrap: int) -> dict:
    """One model's subject metrics (`metrics.evaluate_windows`) with its bootstrap AUC interval."""
    out = metrics.evaluate_windows(window_probs, owner, labels, threshold)
    risk = metrics.subject_scores(window_probs, owner, len(labels), nan_value=threshold)
    out["auc_ci_low"], out["auc_ci_high"] = metrics.bootstrap_auc_ci(labels, risk, bootstrap, seed=DEFAULT_SEED)
    return out


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
