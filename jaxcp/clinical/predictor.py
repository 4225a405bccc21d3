"""One trained model as a function of raw windows: P(CP) and body-part contributions.

A `Predictor` is one trained model behind one function `(B, W, V, 2) windows -> (P(CP) (B,),
contributions (B, V))`: the feature streams, the network, the softmax and a class-activation map, compiled
once for a fixed chunk of windows. It comes from a checkpoint folder (`load_checkpoint`, which builds the
network with `jaxcp.model`) or from an exported file (`jaxcp.clinical.export.load_exported`, which does
not).

Body-part contributions (CAM, movementoutcome-data.md §3): per window, the class maps (last feature map
times the classifier weights) are reduced by the median over time, and the CP minus no-CP difference is
divided by its largest magnitude and clipped at 0.

Calibration: a model trained on oversampled windows records the prior correction `ModelSpec.logit_shift`
(`jaxcp.clinical.metrics.prior_logit_shift`); every window P(CP) a Predictor returns is
sigmoid(logit(p) + logit_shift), so checkpoints and exported files give the same calibrated risks.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.clinical.metrics import apply_logit_shift
from jaxcp.core.batching import host_chunked
from jaxcp.core.errors import InputError
from jaxcp.data.features import FeatureConfig, compute_features
from jaxcp.data.skeleton import Layout
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import ModelSpec, RestoredModel, restore_model
from jaxcp.model.network import create_model

DEFAULT_CHUNK = 16


@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
    """One trained model ready for windows of its layout, length and preprocessing (`spec`).

    `fn(windows (chunk, W, V, 2) float32) -> (probs (chunk,), contributions (chunk, V))` gives the network's
    raw P(CP); calling the Predictor adds the model's calibration `spec.logit_shift` to their logits.
    """

    name: str
    spec: ModelSpec
    fn: Callable
    chunk: int = DEFAULT_CHUNK
    meta: dict = dataclasses.field(default_factory=dict)

    def __call__(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(M, W, V, 2) windows -> probs (M,) float32 and contributions (M, V), in fixed-size chunks."""
        windows = np.asarray(windows, np.float32)
        expected = (self.spec.window, self.spec.layout.num_joints, 2)
        if windows.ndim != 4 or windows.shape[1:] != expected:
            raise InputError(
                f"{self.name}: expected windows (M, {', '.join(map(str, expected))}), got {windows.shape}"
            )
        probs, contributions = host_chunked(self.fn, windows, self.chunk)
        return apply_logit_shift(probs, self.spec.logit_shift), contributions


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


def spec_forward(spec: ModelSpec) -> Callable:
    """`make_forward` for the network of a model spec."""
    return make_forward(spec.network(), spec.layout, spec.features)


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
def _jitted_forward(arch: Arch, layout: Layout, features: FeatureConfig) -> Callable:
    """One jitted forward per network: models that differ only in window, hop or data settings share it."""
    return jax.jit(make_forward(create_model(arch, layout, features), layout, features))


def checkpoint_predictor(restored: RestoredModel, chunk: int = DEFAULT_CHUNK) -> Predictor:
    """A Predictor from a restored checkpoint (the network is built from code)."""
    variables = jax.device_put(restored.variables)
    spec = restored.spec
    forward = _jitted_forward(spec.arch, spec.layout, spec.features)
    return Predictor(str(restored.path), restored.spec, functools.partial(forward, variables), chunk, restored.meta)


def load_checkpoint(path: str | Path, chunk: int = DEFAULT_CHUNK) -> Predictor:
    return checkpoint_predictor(restore_model(path), chunk)
