"""The search's honest numbers: ties at the best validation AUC, and the best candidate on held-out infants.

A search validates many candidates on the same few validation infants, so its best validation AUC is the
maximum of noisy measurements: an optimistic number. The result to report is the best candidate's on
infants that neither trained nor selected it (the dataset's test split): subject AUC with a stratified
bootstrap 95 % interval, and sensitivity / specificity / accuracy at 0.5 with exact (Clopper-Pearson)
intervals, next to the numbers of infants per class and a warning when they are few. Risks are
prior-corrected (0.5 = as likely as not at the training prevalence), so a weak model may call no infant
CP at 0.5; the result therefore also gives sensitivity and specificity at the threshold chosen on the
VALIDATION split (Youden's J there), never on the held-out infants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from jaxcp.clinical import metrics
from jaxcp.clinical.evaluation import predict_split
from jaxcp.clinical.predictor import load_checkpoint
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.dataset import available_splits
from jaxcp.data.splits import size_warning

BOOTSTRAP = 2000
THRESHOLD = 0.5
DECIMALS = 3  # AutoCP's rounding of the reward: candidates equal at it are tied


class HeldOutScorer(Protocol):
    """Scores a saved model on a held-out split: per infant labels (N,) and risks (N,)."""

    data_dir: Path
    split: str

    def __call__(self, checkpoint: Path) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class SplitScorer:
    """A split of a processed dataset, scored with the clinical inference code (median window P(CP))."""

    data_dir: Path
    split: str
    val_split: str | None = None  # where the held-out result's second threshold is chosen

    def __call__(self, checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
        dataset, output = predict_split([load_checkpoint(checkpoint)], self.data_dir, self.split)
        return dataset.labels, output.risk

    def validation(self, checkpoint: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """Per infant labels and risks of the validation split (None without one)."""
        if not self.val_split:
            return None
        dataset, output = predict_split([load_checkpoint(checkpoint)], self.data_dir, self.val_split)
        return dataset.labels, output.risk


def split_scorer(data_dir: str | Path, split: str | None, val_split: str | None = None) -> SplitScorer | str:
    """The scorer of `split` of `data_dir`, or the reason why there is no held-out split."""
    if not split:
        return "no held-out split configured (test_split is not set)"
    if split not in available_splits(data_dir):
        return f"the data have no {split!r} split to hold out"
    return SplitScorer(Path(data_dir), split, val_split)


def count_ties(rewards: Iterable[float]) -> tuple[int, int]:
    """(how many rewards equal the best at `DECIMALS` decimals, how many finite rewards there are)."""
    rounded = [round(float(r), DECIMALS) for r in rewards if np.isfinite(r)]
    if not rounded:
        return 0, 0
    best = max(rounded)
    return sum(r == best for r in rounded), len(rounded)


def held_out_result(labels, risk, split: str, model: str, *, bootstrap: int = BOOTSTRAP) -> dict:
    """The summary's "held_out" entry for per-infant `labels` (N,) and `risk` (N,) of one model."""
    labels = np.asarray(labels)
    subject = metrics.subject_metrics(labels, risk, THRESHOLD)
    num_cp = int(labels.sum())
    num_non_cp = int(labels.size - num_cp)
    out = {
        "split": split, "model": model, "num_infants": int(labels.size), "num_cp": num_cp,
        "num_non_cp": num_non_cp, "auc": subject["auc"],
        "auc_ci": list(metrics.bootstrap_auc_ci(labels, risk, bootstrap, seed=DEFAULT_SEED)),
        "bootstrap": bootstrap, "threshold": THRESHOLD,
    }  # fmt: skip
    for name in ("sensitivity", "specificity", "accuracy"):
        out[name] = subject[name]
        out[f"{name}_ci"] = [subject[f"{name}_ci_low"], subject[f"{name}_ci_high"]]
    out["warning"] = size_warning(f"held-out split {split!r}", num_cp, num_non_cp)
    return out


def at_validation_threshold(labels, risk, val_labels, val_risk, val_split: str) -> dict | None:
    """Held-out sensitivity / specificity (exact intervals) at Youden's threshold on the VALIDATION infants'
    risks; None when the validation split lacks a class."""
    val_labels = np.asarray(val_labels)
    try:
        value = metrics.youden_threshold(val_labels, val_risk)
    except ValueError:
        return None
    subject = metrics.subject_metrics(np.asarray(labels), risk, value)
    out = {"threshold": value, "chosen_on": val_split, "num_infants": int(val_labels.size),
           "rule": "youden"}  # fmt: skip
    for name in ("sensitivity", "specificity", "accuracy"):
        out[name] = subject[name]
        out[f"{name}_ci"] = [subject[f"{name}_ci_low"], subject[f"{name}_ci_high"]]
    return out


def _number(value, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _interval(values) -> str:
    return f"{_number(values[0])}-{_number(values[1])}"


def describe_best(best: dict) -> str:
    """The optimistic best validation AUC, said as what it is."""
    ties, count = best.get("ties", 1), best.get("candidates", 1)
    tied = "no tie" if ties <= 1 else f"{ties} tied at that value"
    return (f"best validation AUC {_number(best['reward'])} (optimistic: the maximum over {count} validated "
            f"candidates; {tied})")  # fmt: skip


def describe_held_out(held: dict) -> list[str]:
    """The held-out result as printed lines (a reason when it was skipped; warnings as `warning:` lines)."""
    if "skipped" in held:
        return [f"held-out result: none ({held['skipped']})"]
    lines = [
        f"held-out result on split {held['split']!r} ({held['num_infants']} infants: {held['num_cp']} CP, "
        f"{held['num_non_cp']} non-CP; they neither trained nor selected the model): "
        f"AUC {_number(held['auc'])} (95 % CI {_interval(held['auc_ci'])}), at threshold {held['threshold']:g} "
        f"sensitivity {_number(held['sensitivity'])} ({_interval(held['sensitivity_ci'])}), "
        f"specificity {_number(held['specificity'])} ({_interval(held['specificity_ci'])}), "
        f"accuracy {_number(held['accuracy'])} ({_interval(held['accuracy_ci'])})"
    ]
    chosen = held.get("at_validation_threshold")
    if chosen:
        lines.append(
            f"  at the threshold chosen on split {chosen['chosen_on']!r} ({chosen['num_infants']} infants, "
            f"Youden's J): {chosen['threshold']:.3f}: sensitivity {_number(chosen['sensitivity'])} "
            f"({_interval(chosen['sensitivity_ci'])}), specificity {_number(chosen['specificity'])} "
            f"({_interval(chosen['specificity_ci'])}), accuracy {_number(chosen['accuracy'])} "
            f"({_interval(chosen['accuracy_ci'])})")  # fmt: skip
    if held.get("warning"):
        lines.append(f"warning: {held['warning']}")
    if held.get("advice"):
        lines.append(held["advice"])
    return lines
