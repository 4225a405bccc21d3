"""`python -m jaxcp.predict`: CP risk of new recordings with trained models (one, or an ensemble).

    python -m jaxcp.predict --checkpoint runs/best [more ...] RECORDING [RECORDING ...] [--out DIR]
    python -m jaxcp.predict --model best.jaxcp RECORDING ...          (an exported file: jaxcp export)

RECORDING: `orgcoords_<id>.csv` / `<id>.npy` files (any .csv or .npy name works; the id is the name without
`orgcoords_` and the suffix) or raw folders holding them (also in FOLDER/coords). Each recording is read
with the model's layout at `--fps` (default 30), preprocessed with the settings the model's training data
were prepared with (stored in the checkpoint), cut into the model's evaluation windows, and scored.

Outputs per infant in OUT (default `predictions/`), each written atomically:

    <id>_results.csv   MovementOutcome's columns: risk, prediction_threshold, positive_classification, and
                       certain_classification for an ensemble (booleans written True/False)
    <id>_windows.json  window starts (frames at the processed rate), the ensemble's and every model's
                       window P(CP), the risk and the classification
    <id>_cam.csv/png   with --contributions: each joint's contribution to a CP prediction in [0, 1] (the
                       class-activation map of movementoutcome-data.md §3), drawn on the infant's median pose

Every recording is read and checked before anything is written: a bad one stops the run with one line
(exit status 2) and leaves earlier results untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from jaxcp import atomic
from jaxcp.checkpoint import jsonable
from jaxcp.data.io import DEFAULT_FPS, check_fps, find_recording_files, read_recording, recording_id
from jaxcp.data.preprocess import PreprocessConfig, preprocess_recording
from jaxcp.data.windows import eval_window_starts
from jaxcp.errors import InputError, exit_with
from jaxcp.inference import EnsembleOutput, Predictor, check_compatible, load_predictors, run_ensemble
from jaxcp.runtime import enable_compilation_cache
from jaxcp.skeleton import Layout


@dataclasses.dataclass(frozen=True, eq=False)
class Prepared:
    """One recording ready for the models: (T, V, 2) processed coordinates and its windows' starts."""

    id: str
    source: str
    coords: np.ndarray
    starts: np.ndarray

    def windows(self, window: int) -> np.ndarray:
        """(M, W, V, 2) evaluation windows."""
        return self.coords[self.starts[:, None] + np.arange(window)[None, :]]


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
    """Read, preprocess (as the model's data were) and window one recording."""
    layout: Layout = model.layout
    recording = read_recording(path, layout, fps, confidence_threshold=model.data.confidence_threshold)
    coords, _ = preprocess_recording(recording, layout, model.data.preprocess or PreprocessConfig())
    try:
        starts = eval_window_starts(coords.shape[0], model.window, model.hop)
    except InputError as error:
        raise InputError(f"{path}: {error} (after preprocessing)") from None
    return Prepared(key, str(path), coords, starts)


def results_csv(risk: float, threshold: float, certain: bool | None) -> str:
    header = "risk,prediction_threshold,positive_classification"
    row = f"{risk!r},{threshold!r},{risk >= threshold}"
    if certain is not None:
        header, row = header + ",certain_classification", row + f",{certain}"
    return f"{header}\n{row}\n"


def write_outputs(
    out_dir: Path,
    items: list[Prepared],
    output: EnsembleOutput,
    predictors: list[Predictor],
    threshold: float,
    fps: float,
    contributions: bool,
) -> list[dict]:
    """Write every infant's files; returns one summary dict per infant."""
    certain = output.certain(threshold)
    joints = predictors[0].layout.joints
    cams = output.subject_contributions() if contributions else None
    summaries = []
    for i, item in enumerate(items):
        mine = output.owner == i
        risk = float(output.risk[i])
        sure = None if certain is None else bool(certain[i])
        record = {"id": item.id, "source": item.source, "raw_fps": fps, "frames": int(item.coords.shape[0]),
                  "window": predictors[0].window, "hop": predictors[0].hop, "starts": item.starts.tolist(),
                  "window_probabilities": output.window_probs[mine].tolist(),
                  "model_window_probabilities": output.model_probs[:, mine].tolist(),
                  "models": [p.name for p in predictors], "model_risks": output.model_risks[:, i].tolist(),
                  "risk": risk, "prediction_threshold": threshold,
                  "positive_classification": risk >= threshold,
                  "certain_classification": sure}  # fmt: skip
        atomic.write_text(out_dir / f"{item.id}_results.csv", results_csv(risk, threshold, sure))
        atomic.write_text(out_dir / f"{item.id}_windows.json", json.dumps(jsonable(record), indent=1) + "\n")
        if cams is not None:
            atomic.write_text(out_dir / f"{item.id}_cam.csv", ",".join(joints) + "\n"
                              + ",".join(repr(float(v)) for v in cams[i]) + "\n")  # fmt: skip
            plot_contributions(out_dir / f"{item.id}_cam.png", item, cams[i], predictors[0].layout)
        summaries.append({"id": item.id, "risk": risk, "positive": risk >= threshold, "certain": sure})
    return summaries


def plot_contributions(path: Path, item: Prepared, values: np.ndarray, layout: Layout) -> None:
    """The infant's median pose, each joint coloured by its contribution (red high, green low)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())


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
    windows = np.concatenate([item.windows(first.window) for item in items])
    owner = np.repeat(np.arange(len(items)), [item.starts.size for item in items])
    output = run_ensemble(predictors, windows, owner, len(items))
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_outputs(out_dir, items, output, predictors, threshold, fps, contributions)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="jaxcp predict", description=__doc__.splitlines()[0].split(": ", 1)[1]
    )
    parser.add_argument("recordings", nargs="*", metavar="RECORDING", help="recording files or raw folders")
    parser.add_argument(
        "--checkpoint", nargs="+", default=[], help="model checkpoint folders or training runs"
    )
    parser.add_argument("--model", nargs="+", default=[], help="exported model files (jaxcp export)")
    parser.add_argument("--out", default="predictions", help="output folder (default predictions/)")
    parser.add_argument("--fps", default=str(DEFAULT_FPS), help="frame rate of the recordings (default 30)")
    parser.add_argument("--threshold", type=float, default=0.5, help="prediction threshold (default 0.5)")
    parser.add_argument("--contributions", action="store_true", help="also write body-part contributions")
    args = parser.parse_args(argv)
    args.checkpoint, rest = split_trailing(args.checkpoint, is_checkpoint)
    args.model, more = split_trailing(args.model, lambda p: not _is_recording(p))
    args.recordings = rest + more + args.recordings
    if not args.recordings:
        parser.error("no RECORDING given")
    return args


def is_checkpoint(text: str) -> bool:
    """A model checkpoint folder, or a training run holding seed_<k> checkpoints."""
    path = Path(text)
    return (path / "meta.json").is_file() or any(path.glob("seed_*/meta.json"))


def _is_recording(text: str) -> bool:
    return Path(text).is_dir() or text.lower().endswith((".csv", ".npy"))


def split_trailing(values: list[str], is_model) -> tuple[list[str], list[str]]:
    """`--checkpoint A B rec1 rec2` takes everything after it: the leading models, then the recordings."""
    for i, value in enumerate(values):
        if i > 0 and not is_model(value):
            return values[:i], values[i:]
    return values, []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        fps = check_fps(args.fps)
        if not 0 <= args.threshold <= 1:
            raise InputError(f"--threshold {args.threshold}: must be in [0, 1]")
        enable_compilation_cache()
        predictors = load_predictors(args.checkpoint, args.model)
        summaries = predict(
            predictors,
            args.recordings,
            Path(args.out),
            fps=fps,
            threshold=args.threshold,
            contributions=args.contributions,
        )
    except InputError as error:
        exit_with(error)
    for s in summaries:
        certain = "" if s["certain"] is None else ("  certain" if s["certain"] else "  uncertain")
        print(f"{s['id']}: risk {s['risk']:.3f}  {'CP' if s['positive'] else 'no CP'}{certain}")
    print(
        f"{len(summaries)} recording(s), {len(predictors)} model(s), {time.perf_counter() - start:.1f} s; "
        f"results in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
