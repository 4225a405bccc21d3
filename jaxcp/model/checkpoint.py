"""Trained models on disk: weights with Orbax, and everything needed to rebuild and feed the network.

A model checkpoint is a folder, written atomically (`jaxcp.core.checkpoint`):

    <dir>/state/      Orbax pytree {params, batch_stats}
    <dir>/meta.json   arch, hparams (how it was trained, for the record), layout, feature settings,
                      window/hop, how the training data were prepared (`DataSettings`: what `predict`
                      repeats on new recordings), metrics; `logit_shift` (the calibration added to the
                      logit of every window P(CP), 0.0 when absent) and what `extra` adds (training:
                      `calibration`, `labels`, `flags`, `best_epoch`)

`restore_model` rebuilds the network from `meta.json` with `create_model` (no training code involved) and
gives predictions bit-identical to the saved model's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np

import jaxcp
from jaxcp.core.checkpoint import restore_tree, save_folder
from jaxcp.core.config import from_dict, jsonable, to_dict
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import DataSettings
from jaxcp.data.features import FeatureConfig
from jaxcp.data.skeleton import Layout, layout_from_dict, layout_to_dict
from jaxcp.model.arch import Arch
from jaxcp.model.network import create_model, input_shape

MODEL_FORMAT = "jaxcp-model-1"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A trained network's static description: what builds it and what its input windows are."""

    arch: Arch
    layout: Layout
    features: FeatureConfig
    window: int
    hop: int
    data: DataSettings = DataSettings()
    logit_shift: float = 0.0  # added to the logit of every window P(CP) (prior correction; 0: none)

    def network(self) -> nn.Module:
        return create_model(self.arch, self.layout, self.features)

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return input_shape(self.layout, self.features, self.window, batch)


@dataclasses.dataclass
class RestoredModel:
    spec: ModelSpec
    variables: dict  # {"params", "batch_stats"}
    hparams: dict  # the training hyperparameters, as recorded
    metrics: dict
    path: Path
    meta: dict = dataclasses.field(default_factory=dict)


def save_model(path: str | Path, variables: Mapping, spec: ModelSpec, *, hparams: Any = None,
               metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write a model checkpoint folder atomically. variables: {params, batch_stats}; hparams: a dataclass
    or mapping (recorded only)."""
    meta = {
        "format": MODEL_FORMAT,
        "jaxcp_version": jaxcp.__version__,
        "arch": to_dict(spec.arch),
        "hparams": to_dict(hparams or {}),
        "layout": layout_to_dict(spec.layout),
        "features": to_dict(spec.features),
        "window": spec.window,
        "hop": spec.hop,
        "data": to_dict(spec.data),
        "logit_shift": float(spec.logit_shift),
        "metrics": jsonable(metrics or {}),
        **jsonable(extra or {}),
    }
    tree = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    return save_folder(path, {"state": tree}, {"meta.json": meta})


def read_meta(path: str | Path) -> dict:
    meta_path = Path(path) / "meta.json"
    if not Path(path).is_dir():
        raise InputError(f"{path}: checkpoint folder not found")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not a jaxcp checkpoint (no meta.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{meta_path}: damaged checkpoint metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputError(f"{meta_path}: not a jaxcp model checkpoint")
    return meta


def model_spec(meta: dict, where: str) -> ModelSpec:
    """The typed spec of a model's meta.json (a checkpoint's or an export's); anything missing or malformed
    is an InputError."""
    try:
        spec = ModelSpec(
            arch=from_dict(Arch, meta["arch"], f"{where} arch"),
            layout=layout_from_dict(meta["layout"], f"{where} layout"),
            features=from_dict(FeatureConfig, meta["features"], f"{where} features"),
            window=int(meta["window"]),
            hop=int(meta["hop"]),
            data=from_dict(DataSettings, meta.get("data", {}), f"{where} data"),
            logit_shift=float(meta.get("logit_shift", 0.0)),
        )
    except KeyError as error:
        raise InputError(f"{where}: missing key {error}") from None
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: malformed setting ({error})") from None
    if not np.isfinite(spec.logit_shift):
        raise InputError(f"{where}: logit_shift {spec.logit_shift} is not a finite number")
    if spec.window < 3 or spec.hop < 1:
        raise InputError(f"{where}: window {spec.window} and hop {spec.hop} are not usable")
    return spec


def restore_model(path: str | Path) -> RestoredModel:
    """Read a checkpoint folder; the weights are restored onto the structure of a freshly built model."""
    path = Path(path)
    meta = read_meta(path)
    spec = model_spec(meta, f"{path}/meta.json")
    x = np.zeros(spec.input_shape(1), np.float32)
    shapes = jax.eval_shape(lambda: spec.network().init(jax.random.PRNGKey(0), x, train=False))
    target = {"params": shapes["params"], "batch_stats": shapes.get("batch_stats", {})}
    variables = restore_tree(path / "state", target, f"{path}")
    return RestoredModel(spec=spec, variables=variables, hparams=dict(meta.get("hparams", {})),
                         metrics=meta.get("metrics", {}), path=path, meta=meta)
