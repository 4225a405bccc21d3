"""Scoring new recordings: read, preprocess as the model's data were, window, score, write per infant.

Outputs per infant in the output folder, each written atomically:

    <id>_results.csv   MovementOutcome's columns: risk, prediction_threshold, positive_classification, and
                       certain_classification for an ensemble (booleans written True/False)
    <id>_windows.json  window starts (frames at the processed rate), the ensemble's and every model's
                       window P(CP), the risk and the classification
    <id>_cam.csv/png   with contributions: each joint's contribution to a CP prediction in [0, 1] (the
                       class-activation map of movementoutcome-data.md §3), drawn on the infant's median pose

Every recording is read and checked before anything is written: a bad one is an InputError naming the file,
and earlier results stay untouched.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxcp.clinical.inference import EnsembleOutput, check_compatible, run_ensemble
from jaxcp.clinical.predictor import Predictor
from jaxcp.core import atomic
from jaxcp.core.config import jsonable
from jaxcp.core.errors import InputError
from jaxcp.core.figures import pyplot, save_png
from jaxcp.data.dataset import make_dataset
from jaxcp.data.io import DEFAULT_FPS, find_recording_files, read_recording, recording_id
from jaxcp.data.preprocess import PreprocessConfig, preprocess_recording
from jaxcp.data.skeleton import Layout
from jaxcp.data.windows import make_eval_windows


@dataclasses.dataclass(frozen=True, eq=False)
class Prepared:
    """One recording ready for the models: (T, V, 2) processed coordinates."""

    id: str
    source: str
    coords: np.ndarray


def find_inputs(paths: list[str]) -> list[tuple[str, Path]]:
    """(id, file) of every recording named or found in a named folder; ids must be unique."""
    found: dict[str, Path] = {}
    for text in paths:
        path = Path(text)
        if path.is_dir():
            items = find_recording_files(path).items()
        elif path.is_file():
            if path.suffix.lower() not in (".csv", ".npy"):
                raise InputError(f"{path}: not a recording (expected a .csv or .npy file)")
            items = [(recording_id(path) or path.stem, path)]
        else:
            raise InputError(f"{path}: no such file or folder")
        for key, file in items:
            if key in found and found[key].resolve() != file.resolve():
                raise InputError(f"{file}: id {key!r} also belongs to {found[key]}")
            found[key] = file
    if not found:
        raise InputError("no recordings given")
    return list(found.items())


def prepare(key: str, path: Path, model: Predictor, fps: float) -> Prepared:
    """Read and preprocess one recording as the model's training data were; it must hold one window."""
    spec = model.spec
    recording = read_recording(path, spec.layout, fps, confidence_threshold=spec.data.confidence_threshold)
    coords, _ = preprocess_recording(recording, spec.layout, spec.data.preprocess or PreprocessConfig())
    if coords.shape[0] < spec.window:
        raise InputError(f"{path}: a recording of {coords.shape[0]} frames is shorter than a window of "
                         f"{spec.window} frames (after preprocessing)")
    return Prepared(key, str(path), coords)


def results_csv(risk: float, threshold: float, certain: bool | None) -> str:
    header = "risk,prediction_threshold,positive_classification"
    row = f"{risk!r},{threshold!r},{risk >= threshold}"
    if certain is not None:
        header, row = header + ",certain_classification", row + f",{certain}"
    return f"{header}\n{row}\n"


def write_outputs(
    out_dir: Path,
    items: list[Prepared],
    starts: np.ndarray,
    output: EnsembleOutput,
    predictors: list[Predictor],
    threshold: float,
    fps: float,
    contributions: bool,
) -> list[dict]:
    """Write every infant's files (`starts`: (M,) window starts); returns one summary dict per infant."""
    certain = output.certain(threshold)
    spec = predictors[0].spec
    cams = output.subject_contributions() if contributions else None
    summaries = []
    for i, item in enumerate(items):
        mine = output.owner == i
        risk = float(output.risk[i])
        sure = None if certain is None else bool(certain[i])
        record = {"id": item.id, "source": item.source, "raw_fps": fps, "frames": int(item.coords.shape[0]),
                  "window": spec.window, "hop": spec.hop, "starts": starts[mine].tolist(),
                  "window_probabilities": output.window_probs[mine].tolist(),
                  "model_window_probabilities": output.model_probs[:, mine].tolist(),
                  "models": [p.name for p in predictors], "model_risks": output.model_risks[:, i].tolist(),
                  "risk": risk, "prediction_threshold": threshold,
                  "positive_classification": risk >= threshold,
                  "certain_classification": sure}  # fmt: skip
        atomic.write_text(out_dir / f"{item.id}_results.csv", results_csv(risk, threshold, sure))
        atomic.write_text(out_dir / f"{item.id}_windows.json", json.dumps(jsonable(record), indent=1) + "\n")
        if cams is not None:
            atomic.write_text(out_dir / f"{item.id}_cam.csv", ",".join(spec.layout.joints) + "\n"
                              + ",".join(repr(float(v)) for v in cams[i]) + "\n")  # fmt: skip
            plot_contributions(out_dir / f"{item.id}_cam.png", item, cams[i], spec.layout)
        summaries.append({"id": item.id, "risk": risk, "positive": risk >= threshold, "certain": sure})
    return summaries


def plot_contributions(path: Path, item: Prepared, values: np.ndarray, layout: Layout) -> None:
    """The infant's median pose, each joint coloured by its contribution (red high, green low)."""
    plt = pyplot()
    pose = np.median(item.coords, axis=0)  # (V, 2), y up
    fig, ax = plt.subplots(figsize=(4, 5))
    for a, b in layout.edges:
        ax.plot(pose[[a, b], 0], pose[[a, b], 1], color="0.6", linewidth=2, zorder=1)
    strength = np.clip(values, 0, 1) ** 0.25
    colors = np.stack([strength, 1 - strength, np.zeros_like(strength)], axis=1)
    ax.scatter(pose[:, 0], pose[:, 1], c=colors, s=60 + 140 * np.clip(values, 0, 1), zorder=2, edgecolors="k")
    parts = ", ".join(f"{name} {np.mean(values[list(members)]):.2f}" for name, members in layout.parts)
    ax.set_title(f"{item.id}: body-part contributions\n{parts}", fontsize=8)
    ax.set_aspect("equal")
    ax.axis("off")
    save_png(fig, path)


def predict(
    predictors: list[Predictor],
    inputs: list[str],
    out_dir: Path,
    *,
    fps: float = DEFAULT_FPS,
    threshold: float = 0.5,
    contributions: bool = False,
) -> list[dict]:
    """Read and check all recordings, score them, then write the outputs; returns per-infant summaries."""
    first = check_compatible(predictors)
    items = [prepare(key, path, first, fps) for key, path in find_inputs(inputs)]
    spec = first.spec
    recordings = make_dataset([item.id for item in items], [0] * len(items), [item.coords for item in items],
                              spec.layout.name, spec.data.fps)
    windows = make_eval_windows(recordings, window=spec.window, hop=spec.hop)
    output = run_ensemble(predictors, windows.windows, windows.owner, len(items))
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_outputs(out_dir, items, windows.starts, output, predictors, threshold, fps, contributions)
