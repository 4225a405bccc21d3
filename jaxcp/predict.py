"""`python -m jaxcp.predict`: CP risk of new recordings with trained models (one, or an ensemble).

    python -m jaxcp.predict --checkpoint runs/best [more ...] RECORDING [RECORDING ...] [--out DIR]
    python -m jaxcp.predict --model best.jaxcp RECORDING ...          (an exported file: jaxcp export)

RECORDING: `orgcoords_<id>.csv` / `<id>.npy` files (any .csv or .npy name works; the id is the name without
`orgcoords_` and the suffix) or raw folders holding them (also in FOLDER/coords). Each recording is read
with the model's layout at `--fps` (default 30), preprocessed with the settings the model's training data
were prepared with (stored in the checkpoint), cut into the model's evaluation windows, and scored.

Outputs per infant in OUT (default `predictions/`), each written atomically:

    <id>_results.csv   id, then MovementOutcome's columns: risk, prediction_threshold,
                       positive_classification, and certain_classification for an ensemble (booleans written
                       True/False), then class (the predicted class's name, see --labels)
    <id>_windows.json  window starts (frames at the processed rate), the ensemble's and every model's
                       window P(CP), the risk with its windows' quartiles, the classification, the models'
                       flags and whether their risks are prior-corrected
    <id>_cam.csv/png   with --contributions: each joint's contribution to a CP prediction in [0, 1] (the
                       class-activation map of movementoutcome-data.md §3), drawn head up on the infant's
                       median pose with a colour bar; the title says when a model behind it is flagged

A model flagged by its training (meta.json "flags": risks that hardly vary, a validation AUC at chance, a
tiny validation split) is named in a `warning:` line on stderr and in every <id>_windows.json.

Every recording is read and checked before anything is written: a bad one stops the run with one line
(exit status 2) and leaves earlier results untouched.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from jaxcp.clinical.inference import (
    calibration_note,
    class_names,
    flag_lines,
    load_predictors,
    model_flags,
    parse_class_names,
)
from jaxcp.clinical.prediction import predict
from jaxcp.core.atomic import check_out_folder
from jaxcp.core.errors import InputError, exit_with
from jaxcp.core.runtime import enable_compilation_cache
from jaxcp.data.io import DEFAULT_FPS, check_fps


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
    parser.add_argument(
        "--labels", default=None, help='class names "negative,positive" (default: the models\' or "no CP,CP")'
    )
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
        if args.labels is not None:
            parse_class_names(args.labels)
        out_dir = check_out_folder(args.out)
        enable_compilation_cache()
        predictors = load_predictors(args.checkpoint, args.model)
        names = class_names(predictors, args.labels)
        summaries = predict(
            predictors,
            args.recordings,
            out_dir,
            fps=fps,
            threshold=args.threshold,
            contributions=args.contributions,
            class_names=names,
        )
    except InputError as error:
        exit_with(error)
    for line in flag_lines(model_flags(predictors)):
        print(f"warning: {line}", file=sys.stderr)
    for s in summaries:
        certain = "" if s["certain"] is None else ("  certain" if s["certain"] else "  uncertain")
        low, high = s["window_quartiles"]
        print(f"{s['id']}: risk {s['risk']:.3f} (its windows' P({names[1]}) quartiles {low:.3f}-{high:.3f})  "
              f"{s['class']}{certain}")
    print(
        f"{len(summaries)} recording(s), {len(predictors)} model(s), threshold {args.threshold:g}, "
        f"{calibration_note(predictors)['description']}; {time.perf_counter() - start:.1f} s; "
        f"results in {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
