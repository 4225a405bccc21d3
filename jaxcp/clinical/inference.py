"""Ensembles of trained models (`Predictor`s from checkpoints or exported files) on the same windows.

Ensembles follow MovementOutcome (movementoutcome-data.md §3): the ensemble's window probability is the
median over models, an infant's risk the median over its windows, and with several models a prediction is
certain when the models' own risks (median over windows) agree: Q1 > threshold for a positive prediction,
Q3 < threshold for a negative one. Body-part contributions (`jaxcp.clinical.predictor`): the median over
models and over an infant's windows gives one value per joint in [0, 1].

What a model's meta.json says about itself reaches the user through `model_flags` (warnings the training
wrote: a constant-risk model, a validation AUC at chance, a tiny validation split), `class_names` and
`calibration_note` (whether the risks were corrected for the training's window oversampling).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcp.clinical import metrics
from jaxcp.clinical.export import load_exported
from jaxcp.clinical.predictor import DEFAULT_CHUNK, Predictor, load_checkpoint
from jaxcp.core.errors import InputError

DEFAULT_CLASS_NAMES = ("no CP", "CP")


def expand_checkpoints(paths: Sequence[str | Path]) -> list[Path]:
    """Checkpoint folders; a training run folder (jaxcp train --out) stands for all its seed_<k> models."""
    out = []
    for path in map(Path, paths):
        seeds = sorted(path.glob("seed_*/meta.json"), key=lambda p: int(p.parent.name.split("_")[-1])
                       if p.parent.name.split("_")[-1].isdigit() else 0)  # fmt: skip
        if not (path / "meta.json").is_file() and seeds:
            out.extend(p.parent for p in seeds)
        else:
            out.append(path)
    return out


def check_compatible(predictors: Sequence[Predictor]) -> Predictor:
    """The first predictor, after checking that all share layout, window, hop and preprocessing."""
    if not predictors:
        raise InputError("no model given")
    first = predictors[0]
    for other in predictors[1:]:
        mine, theirs = first.spec, other.spec
        for what, a, b in (("layout", mine.layout, theirs.layout), ("window", mine.window, theirs.window),
                           ("hop", mine.hop, theirs.hop),
                           ("preprocessing", mine.data.preprocess, theirs.data.preprocess)):  # fmt: skip
            if a != b:
                name = getattr(a, "name", a)
                raise InputError(
                    f"{other.name}: its {what} differs from that of {first.name} "
                    f"({getattr(b, 'name', b)} vs {name}); an ensemble needs the same"
                )
    return first


@dataclasses.dataclass
class EnsembleOutput:
    """Predictions of K models for M windows of N infants.

    model_probs (K, M), window_probs (M,) = median over models, owner (M,) infant index of each window,
    contributions (K, M, V), risk (N,) = median of the infant's ensemble window probabilities,
    model_risks (K, N) = each model's own median over the infant's windows.
    """

    model_probs: np.ndarray
    window_probs: np.ndarray
    owner: np.ndarray
    contributions: np.ndarray
    risk: np.ndarray
    model_risks: np.ndarray

    @property
    def num_models(self) -> int:
        return int(self.model_probs.shape[0])

    def certain(self, threshold: float) -> np.ndarray | None:
        """(N,) bool certainty of each infant's classification; None for a single model."""
        if self.num_models < 2:
            return None
        return metrics.ensemble_certainty(self.model_risks, threshold, risk=self.risk)

    def subject_contributions(self) -> np.ndarray:
        """(N, V): median over models, then over each infant's windows."""
        per_window = np.median(self.contributions, axis=0)
        return np.stack([np.median(per_window[self.owner == i], axis=0) for i in range(self.risk.shape[0])])


def run_ensemble(
    predictors: Sequence[Predictor], windows: np.ndarray, owner: np.ndarray, num_subjects: int
) -> EnsembleOutput:
    """Every model on the same (M, W, V, 2) windows; `owner` (M,) gives each window's infant."""
    outputs = [p(windows) for p in predictors]
    model_probs = np.stack([o[0] for o in outputs]).astype(np.float64)
    window_probs = metrics.ensemble_window_probs(model_probs)
    risk = metrics.subject_scores(window_probs, owner, num_subjects)
    model_risks = np.stack([metrics.subject_scores(p, owner, num_subjects) for p in model_probs])
    return EnsembleOutput(
        model_probs, window_probs, np.asarray(owner), np.stack([o[1] for o in outputs]), risk, model_risks
    )


def load_predictors(
    checkpoints: Sequence[str | Path] = (), exported: Sequence[str | Path] = (), chunk: int = DEFAULT_CHUNK
) -> list[Predictor]:
    """Predictors of checkpoint folders (training runs expand to their seeds) and exported files."""

    if not checkpoints and not exported:
        raise InputError("no model given: use --checkpoint DIR or --model FILE")
    predictors = [load_checkpoint(path, chunk) for path in expand_checkpoints(checkpoints)]
    return predictors + [load_exported(path, chunk) for path in exported]


# ------------------------------------------------------------------------------------ what the models say
def model_flags(predictors: Sequence[Predictor]) -> dict[str, list[dict]]:
    """{model name: [{"code", "message"}, ...]} of every flagged model (meta "flags"; absent = none).

    Read defensively: entries that are not {"code", "message"} mappings are kept as far as they can be read.
    """
    out = {}
    for p in predictors:
        flags = p.meta.get("flags") or []
        kept = [{"code": str(f.get("code", "flag")), "message": str(f.get("message", f.get("code", "")))}
                if isinstance(f, dict) else {"code": "flag", "message": str(f)}
                for f in (flags if isinstance(flags, list) else [flags])]  # fmt: skip
        if kept:
            out[p.name] = kept
    return out


def flag_lines(flags: dict[str, list[dict]]) -> list[str]:
    """One "<model>: <message>" line per flag (for stderr: `warning: ` + line)."""
    return [f"{name}: {flag['message']}" for name, items in flags.items() for flag in items]


def parse_class_names(text: str, what: str = "--labels") -> tuple[str, str]:
    """"no CP,CP" -> ("no CP", "CP"): two distinct non-empty names, negative class first."""
    names = tuple(name.strip() for name in str(text).split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise InputError(f"{what} {text!r}: give two distinct non-empty class names, the negative first, "
                         f"e.g. \"no CP,CP\"")
    return names


def class_names(predictors: Sequence[Predictor], text: str | None = None) -> tuple[str, str]:
    """The class names: `text` (--labels) if given, else the first model's meta "labels", else no CP / CP."""
    if text is not None:
        return parse_class_names(text)
    labels = predictors[0].meta.get("labels") if predictors else None
    if isinstance(labels, list | tuple) and len(labels) == 2:
        return parse_class_names(",".join(map(str, labels)), f"{predictors[0].name}: meta.json labels")
    return DEFAULT_CLASS_NAMES


def calibration_note(predictors: Sequence[Predictor]) -> dict:
    """{"corrected": bool, "models": [each model's meta "calibration" or None], "description": sentence}.

    The risks are corrected when every model says method "prior" (the Predictor applies its logit shift);
    otherwise 0.5 is not "as likely as not" and the sentence says so.
    """
    found = [p.meta.get("calibration") if isinstance(p.meta.get("calibration"), dict) else None
             for p in predictors]  # fmt: skip
    corrected = bool(found) and all(c is not None and c.get("method") == "prior" for c in found)
    if corrected:
        shifts = sorted({round(float(c.get("logit_shift", math.nan)), 2) for c in found})
        prevalence = float(found[0].get("train_prevalence", math.nan))
        shift = "/".join(f"{s:g}" for s in shifts)
        description = (f"risks corrected for the training's window oversampling (logit shift {shift}): 0.5 "
                       f"means as likely as not at the training cohort's CP prevalence of "
                       f"{100 * prevalence:.0f} %")
    else:
        some = sum(c is not None and c.get("method") == "prior" for c in found)
        mixed = f" ({some} of {len(found)} models corrected)" if some else ""
        description = ("uncorrected" + mixed + ": AutoCP's oversampling of CP windows makes 0.5 favour CP; "
                       "consider --threshold youden on a validation split")
    return {"corrected": corrected, "models": found, "description": description}
