"""Model checkpoints with Orbax: weights as a pytree, everything needed to rebuild the model as JSON.

A student checkpoint is a folder:

    <dir>/state/      Orbax pytree {params, batch_stats}
    <dir>/meta.json   arch, hparams, layout, feature settings, window/hop, metrics, jaxcp version

It is written into a temporary sibling and renamed into place, so a kill never leaves half a checkpoint
where a complete one was. `restore_model` rebuilds the network from `meta.json` and gives predictions
bit-identical to the saved model's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

import jaxcp
from jaxcp import atomic
from jaxcp.config import from_dict, to_dict
from jaxcp.errors import InputError
from jaxcp.features import FeatureConfig
from jaxcp.skeleton import Layout, layout_from_dict, layout_to_dict
from jaxcp.space import Arch, HParams


@dataclasses.dataclass
class RestoredModel:
    arch: Arch
    hparams: HParams
    layout: Layout
    features: FeatureConfig
    window: int
    hop: int
    params: Any
    batch_stats: Any
    metrics: dict
    path: Path


def save_model(
    path: str | Path,
    *,
    params,
    batch_stats,
    arch: Arch,
    hparams: HParams,
    layout: Layout,
    features: FeatureConfig,
    window: int,
    hop: int,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a model checkpoint folder atomically."""
    path = Path(path).resolve()
    tmp = atomic.fresh_dir(path)
    tree = jax.device_get({"params": params, "batch_stats": batch_stats})
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / "state", tree)
    checkpointer.wait_until_finished()
    meta = {
        "format": "jaxcp-model-1",
        "jaxcp_version": jaxcp.__version__,
        "arch": to_dict(arch),
        "hparams": to_dict(hparams),
        "layout": layout_to_dict(layout),
        "features": to_dict(features),
        "window": window,
        "hop": hop,
        "metrics": _jsonable(metrics or {}),
        **(extra or {}),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    atomic.commit_dir(tmp, path)
    return path


def read_meta(path: str | Path) -> dict:
    meta_path = Path(path) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not a jaxcp checkpoint (no meta.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{meta_path}: damaged checkpoint metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != "jaxcp-model-1":
        raise InputError(f"{meta_path}: not a jaxcp model checkpoint")
    return meta


def restore_model(path: str | Path) -> RestoredModel:
    """Read a checkpoint folder; the weights are restored onto the structure of a freshly built model."""
    from jaxcp import engine  # local import: engine pulls in the model code

    path = Path(path)
    meta = read_meta(path)
    try:
        arch = from_dict(Arch, meta["arch"], f"{path}/meta.json arch")
        hparams = from_dict(HParams, meta["hparams"], f"{path}/meta.json hparams")
        layout = layout_from_dict(meta["layout"], f"{path}/meta.json layout")
        features = from_dict(FeatureConfig, meta["features"], f"{path}/meta.json features")
        window, hop = int(meta["window"]), int(meta["hop"])
    except KeyError as error:
        raise InputError(f"{path}/meta.json: missing key {error}") from None
    spec = engine.ProgramSpec(arch=arch, layout=layout, features=features, window=window)
    model = engine.make_model(spec)
    target = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), np.zeros(engine.input_shape(spec, 1), np.float32), train=False)
    )
    target = {"params": target["params"], "batch_stats": target.get("batch_stats", {})}
    try:
        tree = ocp.StandardCheckpointer().restore((path / "state").resolve(), target)
    except Exception as error:  # orbax raises many types for damaged files
        raise InputError(f"{path}: damaged checkpoint ({type(error).__name__})") from None
    return RestoredModel(
        arch, hparams, layout, features, window, hop, tree["params"], tree["batch_stats"], meta["metrics"], path
    )


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
