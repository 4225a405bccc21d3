"""Pytrees of arrays in folders, with Orbax: written atomically, restored with every shape checked.

A checkpoint folder holds one or more Orbax pytrees (sub-folders) and small JSON files. It is written into a
temporary sibling and renamed into place, so a kill never leaves half a checkpoint where a complete one
was. A folder is written and read by one process alone, also in a job of many (`jaxcp.core.distributed`).
Restoring checks the stored shapes against the expected structure first, so weights that do not fit
are one clear `InputError`, not an Orbax traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax

from jaxcp.core import atomic
from jaxcp.core.distributed import single_process_checkpoint_options
from jaxcp.core.errors import InputError


def orbax():
    """orbax.checkpoint, imported on first use (it takes a while; exported models never need it)."""
    import orbax.checkpoint as ocp

    return ocp


def save_folder(path: str | Path, trees: dict[str, Any], documents: dict[str, dict]) -> Path:
    """Write `trees` (name -> pytree, each an Orbax sub-folder) and `documents` (file name -> JSON-able
    dict) into the folder `path`, atomically."""
    path = Path(path).resolve()
    tmp = atomic.fresh_dir(path)
    try:
        with orbax().StandardCheckpointer(**single_process_checkpoint_options()) as checkpointer:
            for name, tree in trees.items():
                checkpointer.save(tmp / name, jax.device_get(tree))
                checkpointer.wait_until_finished()
        for name, document in documents.items():
            (tmp / name).write_text(json.dumps(document, indent=2))
        atomic.commit_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def restore_tree(directory: Path, target: Any, where: str) -> Any:
    """Restore an Orbax pytree onto `target` (a tree of ShapeDtypeStructs), checking every shape."""
    if not directory.is_dir():
        raise InputError(f"{where}: damaged checkpoint (no {directory.name}/ folder)")
    # the checkpointer is closed on every path: an open one prints "Event loop is closed" tracebacks at exit
    with orbax().StandardCheckpointer(**single_process_checkpoint_options()) as checkpointer:
        try:
            metadata = checkpointer.metadata(directory.resolve())
            stored_shapes = leaf_shapes(getattr(metadata, "item_metadata", metadata))
        except Exception as error:  # orbax raises many types for damaged files
            raise InputError(f"{where}: damaged checkpoint ({type(error).__name__})") from None
        if not stored_shapes:
            raise InputError(f"{where}: damaged checkpoint (no readable array metadata in {directory.name}/)")
        expected = leaf_shapes(target)
        if stored_shapes != expected:
            differ = sorted(set(stored_shapes.items()) ^ set(expected.items()))
            raise InputError(
                f"{where}: the stored weights do not fit the architecture and feature settings of "
                f"its meta.json (first difference at {differ[0][0]})"
            )
        try:
            return checkpointer.restore(directory.resolve(), target)
        except Exception as error:
            raise InputError(f"{where}: damaged checkpoint ({type(error).__name__})") from None


def leaf_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'a/b/0': shape} for every leaf; dict keys, attribute names and indices all become path parts."""

    def part(key) -> str:
        for name in ("key", "name", "idx"):
            if hasattr(key, name):
                return str(getattr(key, name))
        return str(key)

    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {"/".join(part(k) for k in path): tuple(leaf.shape) for path, leaf in leaves}
