"""Scoring new recordings: read, preprocess as the model's data were, window, score, write per infant.

Outputs per infant in the output folder, each written atomically:

    <id>_results.csv   id, then MovementOutcome's columns: risk, prediction_threshold,
                       positive_classification, and certain_classification for an ensemble (booleans written
                       True/False), then class (the predicted class's name)
    <id>_windows.json  window starts (frames at the processed rate), the ensemble's and every model's
                       window P(CP), the risk with the quartiles of its windows, the classification and its
                       class name, the models' flags and whether their risks are prior-corrected
    <id>_cam.csv/png   with contributions: each joint's contribution to a CP prediction in [0, 1] (the
                       class-activation map of movementoutcome-data.md §3), drawn head up on the infant's
                       median pose with a colour bar; the title says when a model behind it is flagged

Every recording is read and checked before anything is written: a bad one is an InputError naming the file,
and earlier results stay untouched.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from jaxcp.clinical import inference
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


def results_csv(key: str, risk: float, threshold: float, certain: bool | None,
                names: tuple[str, str] = inference.DEFAULT_CLASS_NAMES) -> str:
    """The one-row results file: id, MovementOutcome's columns, the predicted class's name."""
    header = "id,risk,prediction_threshold,positive_classification"
    row = f"{key},{risk!r},{threshold!r},{risk >= threshold}"
    if certain is not None:
        header, row = header + ",certain_classification", row + f",{certain}"
    return f"{header},class\n{row},{_csv_cell(names[int(risk >= threshold)])}\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def write_outputs(
    out_dir: Path,
    items: list[Prepared],
    starts: np.ndarray,
    output: EnsembleOutput,
    predictors: list[Predictor],
    threshold: float,
    fps: float,
    contributions: bool,
    names: tuple[str, str] = inference.DEFAULT_CLASS_NAMES,
) -> list[dict]:
    """Write every infant's files (`starts`: (M,) window starts); returns one summary dict per infant."""
    certain = output.certain(threshold)
    spec = predictors[0].spec
    cams = output.subject_contributions() if contributions else None
    flags = inference.model_flags(predictors)
    calibration = inference.calibration_note(predictors)
    summaries = []
    for i, item in enumerate(items):
        mine = output.owner == i
        risk = float(output.risk[i])
        quartiles = [float(q) for q in np.percentile(output.window_probs[mine], [25, 75])]
        sure = None if certain is None else bool(certain[i])
        record = {"id": item.id, "source": item.source, "raw_fps": fps, "frames": int(item.coords.shape[0]),
                  "window": spec.window, "hop": spec.hop, "starts": starts[mine].tolist(),
                  "window_probabilities": output.window_probs[mine].tolist(),
                  "model_window_probabilities": output.model_probs[:, mine].tolist(),
                  "models": [p.name for p in predictors], "model_risks": output.model_risks[:, i].tolist(),
                  "risk": risk, "window_quartiles": quartiles, "prediction_threshold": threshold,
                  "positive_classification": risk >= threshold, "class": names[int(risk >= threshold)],
                  "labels": list(names), "certain_classification": sure, "model_flags": flags,
                  "calibration": calibration["description"]}  # fmt: skip
        atomic.write_text(out_dir / f"{item.id}_results.csv", results_csv(item.id, risk, threshold, sure, names))
        atomic.write_text(out_dir / f"{item.id}_windows.json", json.dumps(jsonable(record), indent=1) + "\n")
        if cams is not None:
            atomic.write_text(out_dir / f"{item.id}_cam.csv", ",".join(spec.layout.joints) + "\n"
                              + ",".join(repr(float(v)) for v in cams[i]) + "\n")  # fmt: skip
            plot_contributions(out_dir / f"{item.id}_cam.png", item, cams[i], spec.layout, flag_note(flags),
                               names[1])
        summaries.append({"id": item.id, "risk": risk, "positive": risk >= threshold, "certain": sure,
                          "class": names[int(risk >= threshold)], "window_quartiles": quartiles})  # fmt: skip
    return summaries


def flag_note(flags: dict[str, list[dict]]) -> str | None:
    """A title line for the pictures of flagged models ("flagged model(s): constant_risk; ..."), or None."""
    if not flags:
        return None
    codes = sorted({flag["code"] for items in flags.values() for flag in items})
    return f"{len(flags)} flagged model(s) ({', '.join(codes)}): treat as unreliable"


def head_up_inverts(pose: np.ndarray, layout: Layout) -> bool:
    """Whether the y axis must be inverted to draw the pose (V, 2) head up: True when its thorax joints lie
    below its pelvis joints on an upward y axis (image coordinates, y down)."""
    thorax = float(np.mean(pose[list(layout.thorax), 1]))
    pelvis = float(np.mean(pose[list(layout.pelvis), 1]))
    return thorax < pelvis


def contribution_colors(values: np.ndarray) -> np.ndarray:
    """(V,) contributions in [0, 1] -> (V, 3) RGB: green (none) to red (high), on a fourth-root scale."""
    strength = np.clip(np.asarray(values, np.float64), 0, 1) ** 0.25
    return np.stack([strength, 1 - strength, np.zeros_like(strength)], axis=-1)


def plot_contributions(path: Path, item: Prepared, values: np.ndarray, layout: Layout, note: str | None = None,
                       positive: str = "CP") -> None:
    """The infant's median pose drawn head up, each joint coloured by its contribution (red high, green
    low) with a colour bar; `note` (a flagged model) goes into the title."""
    plt = pyplot()
    from matplotlib.colors import ListedColormap  # matplotlib is imported lazily, as by `pyplot`

    pose = np.median(item.coords, axis=0)  # (V, 2)
    fig, ax = plt.subplots(figsize=(4.6, 5))
    for a, b in layout.edges:
        ax.plot(pose[[a, b], 0], pose[[a, b], 1], color="0.6", linewidth=2, zorder=1)
    cmap = ListedColormap(contribution_colors(np.linspace(0, 1, 256)))
    points = ax.scatter(pose[:, 0], pose[:, 1], c=np.clip(values, 0, 1), cmap=cmap, vmin=0, vmax=1,
                        s=60 + 140 * np.clip(values, 0, 1), zorder=2, edgecolors="k")  # fmt: skip
    fig.colorbar(points, ax=ax, shrink=0.7, label=f"contribution to a '{positive}' prediction")
    if head_up_inverts(pose, layout):
        ax.invert_yaxis()
    parts = ", ".join(f"{name} {np.mean(values[list(members)]):.2f}" for name, members in layout.parts)
    title = f"{item.id}: body-part contributions\n{parts}"
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=8, color="C3" if note else "black")
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
    class_names: tuple[str, str] | None = None,
) -> list[dict]:
    """Read and check all recordings, score them, then write the outputs; returns per-infant summaries.

    class_names: (negative, positive), default the first model's meta "labels" or ("no CP", "CP")."""
    first = check_compatible(predictors)
    items = [prepare(key, path, first, fps) for key, path in find_inputs(inputs)]
    spec = first.spec
    recordings = make_dataset([item.id for item in items], [0] * len(items), [item.coords for item in items],
                              spec.layout.name, spec.data.fps)
    windows = make_eval_windows(recordings, window=spec.window, hop=spec.hop)
    output = run_ensemble(predictors, windows.windows, windows.owner, len(items))
    out_dir.mkdir(parents=True, exist_ok=True)
    names = class_names or inference.class_names(predictors)
    return write_outputs(out_dir, items, windows.starts, output, predictors, threshold, fps, contributions, names)
