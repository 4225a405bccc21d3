"""Checkpoints with Orbax: trained models, and the state of a long training run for resuming it.

A model checkpoint is a folder:

    <dir>/state/      Orbax pytree {params, batch_stats}
    <dir>/meta.json   arch, hparams, layout, feature settings, window/hop, how the training data were
                      prepared (`DataSettings`: what `predict` repeats on new recordings), metrics

A run-state checkpoint (`save_run_state`) is a folder with an Orbax pytree of arrays (`arrays/`) and a
JSON file (`progress.json`). Both kinds are written into a temporary sibling and renamed into place, so a
kill never leaves half a checkpoint where a complete one was. `restore_model` rebuilds the network from
`meta.json` and gives predictions bit-identical to the saved model's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxcp
from jaxcp import atomic
from jaxcp.config import from_dict, to_dict
from jaxcp.data.io import DEFAULT_CONFIDENCE_THRESHOLD
from jaxcp.data.preprocess import PreprocessConfig
from jaxcp.errors import InputError
from jaxcp.features import FeatureConfig
from jaxcp.skeleton import Layout, layout_from_dict, layout_to_dict
from jaxcp.space import Arch, HParams

MODEL_FORMAT = "jaxcp-model-1"
RUN_FORMAT = "jaxcp-run-state-1"


def _orbax():
    """orbax.checkpoint, imported on first use (it takes a while; exported models never need it)."""
    import orbax.checkpoint as ocp

    return ocp


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """How a model's training data were prepared, so that new recordings get the same treatment.

    Attributes:
      preprocess: the preprocessing settings (None: unknown, e.g. AutoCP npy data without a manifest).
      confidence_threshold: points with a lower `<joint>_score` were treated as missing.
      fps: frame rate of the processed data (= preprocess.target_fps for jaxcp datasets).
      source: the processed data folder the model was trained on (for the record).
    """

    preprocess: PreprocessConfig | None = None
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    fps: float = 30.0
    source: str = ""


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
    data: DataSettings = DataSettings()
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def variables(self) -> dict:
        return {"params": self.params, "batch_stats": self.batch_stats}


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
    data: DataSettings | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a model checkpoint folder atomically."""
    path = Path(path).resolve()
    tmp = atomic.fresh_dir(path)
    try:
        tree = jax.device_get({"params": params, "batch_stats": batch_stats})
        checkpointer = _orbax().StandardCheckpointer()
        checkpointer.save(tmp / "state", tree)
        checkpointer.wait_until_finished()
        meta = {
            "format": MODEL_FORMAT,
            "jaxcp_version": jaxcp.__version__,
            "arch": to_dict(arch),
            "hparams": to_dict(hparams),
            "layout": layout_to_dict(layout),
            "features": to_dict(features),
            "window": window,
            "hop": hop,
            "data": to_dict(data or DataSettings()),
            "metrics": jsonable(metrics or {}),
            **jsonable(extra or {}),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        atomic.commit_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


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


def model_settings(
    meta: dict, where: str
) -> tuple[Arch, HParams, Layout, FeatureConfig, int, int, DataSettings]:
    """The typed settings of a model's meta.json; anything missing or malformed is an InputError."""
    try:
        arch = from_dict(Arch, meta["arch"], f"{where} arch")
        hparams = from_dict(HParams, meta["hparams"], f"{where} hparams")
        layout = layout_from_dict(meta["layout"], f"{where} layout")
        features = from_dict(FeatureConfig, meta["features"], f"{where} features")
        window, hop = int(meta["window"]), int(meta["hop"])
        data = from_dict(DataSettings, meta.get("data", {}), f"{where} data")
    except KeyError as error:
        raise InputError(f"{where}: missing key {error}") from None
    except (TypeError, ValueError) as error:
        raise InputError(f"{where}: malformed setting ({error})") from None
    if window < 3 or hop < 1:
        raise InputError(f"{where}: window {window} and hop {hop} are not usable")
    return arch, hparams, layout, features, window, hop, data


def restore_model(path: str | Path) -> RestoredModel:
    """Read a checkpoint folder; the weights are restored onto the structure of a freshly built model."""
    from jaxcp import engine  # local import: engine pulls in the model code

    path = Path(path)
    meta = read_meta(path)
    arch, hparams, layout, features, window, hop, data = model_settings(meta, f"{path}/meta.json")
    spec = engine.ProgramSpec(arch=arch, layout=layout, features=features, window=window)
    model = engine.make_model(spec)
    target = jax.eval_shape(
        lambda: model.init(
            jax.random.PRNGKey(0), np.zeros(engine.input_shape(spec, 1), np.float32), train=False
        )
    )
    target = {"params": target["params"], "batch_stats": target.get("batch_stats", {})}
    tree = _restore_tree(path / "state", target, f"{path}")
    return RestoredModel(
        arch=arch, hparams=hparams, layout=layout, features=features, window=window, hop=hop,
        params=tree["params"], batch_stats=tree["batch_stats"], metrics=meta.get("metrics", {}), path=path,
        data=data, meta=meta,
    )  # fmt: skip


def _restore_tree(directory: Path, target: Any, where: str) -> Any:
    """Restore an Orbax pytree onto `target` (a tree of ShapeDtypeStructs), checking every shape."""
    if not directory.is_dir():
        raise InputError(f"{where}: damaged checkpoint (no {directory.name}/ folder)")
    try:
        metadata = _orbax().StandardCheckpointer().metadata(directory.resolve())
        stored = getattr(metadata, "item_metadata", metadata)
        stored_shapes = _leaf_shapes(stored)
    except Exception as error:  # orbax raises many types for damaged files
        raise InputError(f"{where}: damaged checkpoint ({type(error).__name__})") from None
    if not stored_shapes:
        raise InputError(f"{where}: damaged checkpoint (no readable array metadata in {directory.name}/)")
    expected = _leaf_shapes(target)
    if stored_shapes != expected:
        differ = sorted(set(stored_shapes.items()) ^ set(expected.items()))
        raise InputError(
            f"{where}: the stored weights do not fit the architecture and feature settings of "
            f"its meta.json (first difference at {differ[0][0]})"
        )
    try:
        return _orbax().StandardCheckpointer().restore(directory.resolve(), target)
    except Exception as error:
        raise InputError(f"{where}: damaged checkpoint ({type(error).__name__})") from None


def _leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'a/b/0': shape} for every leaf; dict keys, attribute names and indices all become path parts."""

    def part(key) -> str:
        for name in ("key", "name", "idx"):
            if hasattr(key, name):
                return str(getattr(key, name))
        return str(key)

    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {"/".join(part(k) for k in path): tuple(leaf.shape) for path, leaf in leaves}


def save_run_state(path: str | Path, arrays: Any, info: dict) -> Path:
    """Write a training run's state (a pytree of arrays and a JSON-able dict) atomically."""
    path = Path(path).resolve()
    tmp = atomic.fresh_dir(path)
    try:
        checkpointer = _orbax().StandardCheckpointer()
        checkpointer.save(tmp / "arrays", jax.device_get(arrays))
        checkpointer.wait_until_finished()
        (tmp / "progress.json").write_text(json.dumps({"format": RUN_FORMAT, **info}))
        atomic.commit_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def restore_run_state(path: str | Path, target: Any) -> tuple[Any, dict]:
    """Read a `save_run_state` folder; `target` gives the pytree structure, shapes and dtypes."""
    path = Path(path)
    try:
        info = json.loads((path / "progress.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: damaged training state (progress.json unreadable)") from None
    if not isinstance(info, dict) or info.pop("format", None) != RUN_FORMAT:
        raise InputError(f"{path}/progress.json: not a jaxcp training state")
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), target)
    return _restore_tree(path / "arrays", target, str(path)), info


def jsonable(obj):
    """Plain JSON data: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


_jsonable = jsonable  # the old private name
