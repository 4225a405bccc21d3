"""The state of a long training run on disk, for resuming it after a kill.

A run-state folder holds an Orbax pytree of arrays (`arrays/`: stacked TrainState, PRNG keys, best states)
and `progress.json` (epoch, tracker, timings), written atomically (`jaxcp.core.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcp.core.checkpoint import restore_tree, save_folder
from jaxcp.core.errors import InputError

RUN_FORMAT = "jaxcp-run-state-1"


def save_run_state(path: str | Path, arrays: Any, info: dict) -> Path:
    """Write a training run's state (a pytree of arrays and a JSON-able dict) atomically."""
    return save_folder(path, {"arrays": arrays}, {"progress.json": {"format": RUN_FORMAT, **info}})


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
    return restore_tree(path / "arrays", target, str(path)), info
