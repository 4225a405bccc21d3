"""Inference with trained models: raw windows -> P(CP) and body-part contributions, alone or as an ensemble.

A `Predictor` is one trained model behind one function `(B, W, V, 2) windows -> (P(CP) (B,),
contributions (B, V))`: the feature streams, the network, the softmax and a class-activation map, compiled
once for a fixed chunk of windows. It comes from a checkpoint folder (`load_checkpoint`, which builds the
network from code) or from an exported file (`jaxcp.export.load_exported`, which does not).

Ensembles follow MovementOutcome (movementoutcome-data.md §3): the ensemble's window probability is the
median over models, an infant's risk the median over its windows, and with several models a prediction is
certain when the models' own risks (median over windows) agree: Q1 > threshold for a positive prediction,
Q3 < threshold for a negative one. Body-part contributions (CAM): per model and window, the class maps
(last feature map times the classifier weights) are reduced by the median over time, the CP minus no-CP
difference is divided by its largest magnitude and clipped at 0; then the median over models and over an
infant's windows gives one value per joint in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp import metrics
from jaxcp.checkpoint import DataSettings, RestoredModel, restore_model
from jaxcp.errors import InputError
from jaxcp.features import FeatureConfig, compute_features
from jaxcp.skeleton import Layout

DEFAULT_CHUNK = 16


@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
    """One trained model ready for windows of its layout, length and preprocessing.

    `fn(windows (chunk, W, V, 2) float32) -> (probs (chunk,), contributions (chunk, V))`.
    """

    name: str
    layout: Layout
    features: FeatureConfig
    window: int
    hop: int
    data: DataSettings
    fn: Callable
    chunk: int = DEFAULT_CHUNK
    meta: dict = dataclasses.field(default_factory=dict)

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, W, V, 2) windows -> probs (M,) float32 and contributions (M, V), in fixed-size chunks."""
        windows = np.asarray(windows, np.float32)
        expected = (self.window, self.layout.num_joints, 2)
        if windows.ndim != 4 or windows.shape[1:] != expected:
            raise InputError(
                f"{self.name}: expected windows (M, {', '.join(map(str, expected))}), got {windows.shape}"
            )
        m = windows.shape[0]
        padded = np.concatenate([windows, np.zeros((-m % self.chunk, *expected), np.float32)])
        probs, contributions = [], []
        for start in range(0, padded.shape[0], self.chunk):
            p, c = self.fn(padded[start : start + self.chunk])
            probs.append(np.asarray(p))
            contributions.append(np.asarray(c))
        return np.concatenate(probs)[:m], np.concatenate(contributions)[:m]


def make_forward(model, layout: Layout, features: FeatureConfig) -> Callable:
    """The pure inference `forward(variables, windows (B, W, V, 2)) -> (probs (B,), contributions (B, V))`."""

    def forward(variables, windows):
        x = compute_features(windows, layout, features)
        logits, state = model.apply(variables, x, train=False, mutable=["intermediates"])
        probs = jax.nn.softmax(logits, axis=-1)[:, 1]
        feature_map = state["intermediates"]["features"][0]  # (B, T'', V, C)
        kernel = variables["params"]["classifier"]["fc"]["kernel"]  # (C, 2)
        return probs, window_contributions(feature_map, kernel)

    return forward


def window_contributions(feature_map: jax.Array, kernel: jax.Array) -> jax.Array:
    """(B, T, V, C) last feature map and (C, 2) classifier weights -> (B, V) contributions in [0, 1].

    cam = feature_map @ kernel per class; median over time; CP minus no-CP; divided by the window's largest
    magnitude; negative values set to 0.
    """
    cam = jnp.median(jnp.einsum("btvc,ck->bktv", feature_map, kernel), axis=2)  # (B, 2, V)
    difference = cam[:, 1] - cam[:, 0]
    scale = jnp.max(jnp.abs(difference), axis=-1, keepdims=True)
    return jnp.maximum(jnp.where(scale > 0, difference / jnp.where(scale > 0, scale, 1.0), 0.0), 0.0)


@functools.lru_cache(maxsize=16)
def _jitted_forward(model, layout: Layout, features: FeatureConfig) -> Callable:
    return jax.jit(make_forward(model, layout, features))


def checkpoint_predictor(restored: RestoredModel, chunk: int = DEFAULT_CHUNK) -> Predictor:
    """A Predictor from a restored checkpoint (the network is built from code)."""
    from jaxcp import engine  # local import: the model code is only needed here

    spec = engine.ProgramSpec(
        arch=restored.arch, layout=restored.layout, features=restored.features, window=restored.window
    )
    forward = _jitted_forward(engine.make_model(spec), restored.layout, restored.features)
    variables = jax.device_put(restored.variables)
    return Predictor(
        str(restored.path),
        restored.layout,
        restored.features,
        restored.window,
        restored.hop,
        restored.data,
        functools.partial(forward, variables),
        chunk,
        restored.meta,
    )


def load_checkpoint(path: str | Path, chunk: int = DEFAULT_CHUNK) -> Predictor:
    return checkpoint_predictor(restore_model(path), chunk)


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
        for what, a, b in (("layout", first.layout, other.layout), ("window", first.window, other.window),
                           ("hop", first.hop, other.hop),
                           ("preprocessing", first.data.preprocess, other.data.preprocess)):  # fmt: skip
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
    from jaxcp.export import load_exported  # local import: export builds on this module

    if not checkpoints and not exported:
        raise InputError("no model given: use --checkpoint DIR or --model FILE")
    predictors = [load_checkpoint(path, chunk) for path in expand_checkpoints(checkpoints)]
    return predictors + [load_exported(path, chunk) for path in exported]
