"""The export format: one self-contained inference file for a trained model (`jaxcp export` writes it).

The file (suffix `.jaxcp` by convention) is a zip archive with two members and no pickle:

    meta.json          format "jaxcp-export-1", the layout (joints, edges, parents, parts), feature and
                       preprocessing settings, window and hop, arch and hparams (for the record),
                       validation metrics, calibration (`logit_shift`, applied by the Predictor to
                       the exported function's raw P(CP)), class labels and flags, input and output
                       description
    forward.jaxexport  the inference function serialized with `jax.export` (StableHLO, weights baked in
                       as constants): float32 windows (b, W, V, 2) of preprocessed coordinates, with a
                       symbolic batch size b -> (P(CP) (b,), body-part contributions (b, V))

`jaxcp predict --model FILE` runs it without building the network from code (only jax is needed), on CPU
or, when it was exported for it, on a CUDA GPU.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import export

import jaxcp
from jaxcp.clinical.predictor import DEFAULT_CHUNK, Predictor, spec_forward
from jaxcp.core import atomic
from jaxcp.core.config import jsonable, to_dict
from jaxcp.core.errors import InputError
from jaxcp.data.skeleton import layout_to_dict
from jaxcp.model.checkpoint import RestoredModel, model_spec

FORMAT = "jaxcp-export-1"
META = "meta.json"
FORWARD = "forward.jaxexport"
PLATFORMS = ("cpu", "cuda")


def export_forward(restored: RestoredModel, platforms: tuple[str, ...] = PLATFORMS) -> export.Exported:
    """The model's inference function with its weights, exported with a symbolic batch dimension."""
    spec = restored.spec
    forward = spec_forward(spec)
    variables = jax.tree.map(jnp.asarray, restored.variables)  # device arrays: numpy constants break custom_vjp
    (batch,) = export.symbolic_shape("b")
    shape = jax.ShapeDtypeStruct((batch, spec.window, spec.layout.num_joints, 2), jnp.float32)
    return export.export(jax.jit(lambda windows: forward(variables, windows)), platforms=platforms)(shape)


def export_meta(restored: RestoredModel, platforms: tuple[str, ...]) -> dict:
    spec = restored.spec
    return jsonable({
        "format": FORMAT, "jaxcp_version": jaxcp.__version__, "source": str(restored.path),
        "arch": to_dict(spec.arch), "hparams": restored.hparams,
        "layout": layout_to_dict(spec.layout), "features": to_dict(spec.features),
        "window": spec.window, "hop": spec.hop, "data": to_dict(spec.data),
        "logit_shift": spec.logit_shift, "calibration": restored.meta.get("calibration"),
        "labels": restored.meta.get("labels"), "flags": restored.meta.get("flags", []),
        "metrics": restored.metrics, "platforms": list(platforms),
        "input": {"shape": ["b", spec.window, spec.layout.num_joints, 2], "dtype": "float32",
                  "meaning": "windows of preprocessed coordinates (x, y), joints in layout order"},
        "outputs": [{"name": "p_cp", "shape": ["b"]},
                    {"name": "contributions", "shape": ["b", spec.layout.num_joints]}],
    })  # fmt: skip


def export_bytes(restored: RestoredModel, platforms: tuple[str, ...] = PLATFORMS) -> bytes:
    """The export file's content; falls back to CPU only when the other platforms cannot be lowered."""
    try:
        exported = export_forward(restored, platforms)
    except Exception:  # a platform that cannot be lowered here
        if platforms == ("cpu",):
            raise
        platforms = ("cpu",)
        exported = export_forward(restored, platforms)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(META, json.dumps(export_meta(restored, platforms), indent=2))
        archive.writestr(FORWARD, bytes(exported.serialize()))
    return buffer.getvalue()


def write_export(
    restored: RestoredModel, out_file: str | Path, platforms: tuple[str, ...] = PLATFORMS
) -> Path:
    out_file = Path(out_file)
    atomic.write_bytes(out_file, export_bytes(restored, platforms))
    return out_file


def read_export(path: str | Path) -> tuple[dict, export.Exported]:
    """(meta, exported function) of an export file; every problem is one InputError line."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(META))
            blob = archive.read(FORWARD)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a jaxcp export file (or a damaged one)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{path}: not a jaxcp export file (format is not {FORMAT!r})")
    try:
        exported = export.deserialize(bytearray(blob))
    except Exception as error:  # flatbuffers / jax raise several types for damaged bytes
        raise InputError(f"{path}: damaged exported function ({type(error).__name__})") from None
    return meta, exported


def load_exported(path: str | Path, chunk: int = DEFAULT_CHUNK) -> Predictor:
    """A Predictor from an export file: no model code involved."""
    meta, exported = read_export(path)
    spec = model_spec(meta, f"{path} {META}")
    platform = jax.default_backend()
    platform = "cuda" if platform == "gpu" else platform
    if platform not in exported.platforms:
        raise InputError(
            f"{path}: exported for {', '.join(exported.platforms)}, this machine runs {platform}"
        )
    expected = (spec.window, spec.layout.num_joints, 2)
    if tuple(exported.in_avals[0].shape[1:]) != expected:
        raise InputError(
            f"{path}: the exported function takes {exported.in_avals[0].shape}, meta.json says "
            f"windows of {expected}"
        )
    return Predictor(str(path), spec, jax.jit(exported.call), chunk, meta)
