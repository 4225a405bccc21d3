"""`python -m jaxcp.prepare RAW_DIR OUT_DIR`: raw recordings -> a processed, split dataset.

RAW_DIR holds `orgcoords_<id>.csv` or `<id>.npy` recordings (also in RAW_DIR/coords) and `outcomes.csv`
(in RAW_DIR or RAW_DIR/outcomes). Every labelled recording is read, preprocessed (`jaxcp.data.preprocess`)
and assigned to train/val/test (`jaxcp.data.splits`); OUT_DIR gets jaxcp's processed format
(`jaxcp.data.dataset`). OUT_DIR is built in a temporary sibling and renamed into place at the end, so it
is either untouched or complete; an existing OUT_DIR is only replaced when it is a jaxcp dataset.

Bad input stops the run with one line naming the file and the problem (exit status 2). Recordings without
an outcome and recordings with too many long gaps are skipped with a warning and listed in the manifest.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from jaxcp.atomic import commit_dir, fresh_dir
from jaxcp.config import apply_overrides, from_dict, load_yaml, to_dict
from jaxcp.data.dataset import MANIFEST, InfantEntry, Manifest, new_manifest, write_manifest, write_split
from jaxcp.data.io import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_FPS, check_fps, match_outcomes, read_recording
from jaxcp.data.preprocess import GapReport, PreprocessConfig, TooIncomplete, preprocess_recording
from jaxcp.data.splits import SplitConfig, stratified_folds, stratified_split
from jaxcp.errors import InputError, exit_with
from jaxcp.skeleton import Layout, layout_to_dict, load_layout


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Settings of `jaxcp prepare`: `--set name=value`, `--set preprocess.name=...`, `--set split.name=...`.

    Attributes:
      confidence_threshold: points whose `<joint>_score` / `<joint>_c` is below this are missing.
      window: frames of one window at the target rate; a shorter processed recording is bad input.
      short: what to do with such a recording: "error" (stop, exit 2) or "skip" (warn and leave it out).
      preprocess: see `jaxcp.data.preprocess.PreprocessConfig`.
      split: see `jaxcp.data.splits.SplitConfig`.
    """

    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    window: int = 150
    short: Literal["error", "skip"] = "error"
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)

    def __post_init__(self):
        if self.window < 1:
            raise InputError(f"window: must be >= 1, got {self.window}")


@dataclasses.dataclass(frozen=True, eq=False)
class Processed:
    """One preprocessed infant: (T, V, 2) float32 coordinates at the target rate and its gap report."""

    id: str
    label: int
    source: str
    coords: np.ndarray
    report: GapReport


def build_config(config_file: str | None, overrides: Sequence[str]) -> PrepareConfig:
    """Defaults, then the YAML file (if any), then `--set` overrides."""
    mapping = load_yaml(config_file) if config_file else {}
    source = config_file or "--set"
    return from_dict(PrepareConfig, apply_overrides(mapping, overrides), source)


def check_out_dir(out_dir: Path) -> None:
    """OUT_DIR may be new, empty, or an earlier jaxcp dataset (which is then replaced)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise InputError(f"{out_dir}: exists, is not empty and holds no {MANIFEST}; refusing to replace it")


def process_one(key: str, path: Path, label: int, layout: Layout, fps: float, config: PrepareConfig,
                warn: Callable[[str], None]) -> tuple[Processed | None, dict | None]:
    """Read and preprocess one recording: (Processed, None), or (None, skip record) after a warning."""
    threshold = config.confidence_threshold
    recording = read_recording(path, layout, fps, label=label, confidence_threshold=threshold)
    try:
        coords, report = preprocess_recording(recording, layout, config.preprocess)
    except TooIncomplete as error:
        warn(f"{error}; skipped")
        return None, {"id": key, "source": str(path), "reason": "too incomplete"}
    if coords.shape[0] < config.window:
        message = (f"{path}: {coords.shape[0]} frames at {config.preprocess.target_fps:g} Hz, shorter than a "
                   f"window of {config.window} frames")
        if config.short == "error":
            raise InputError(message + " (--set short=skip leaves such recordings out)")
        warn(message + "; skipped")
        return None, {"id": key, "source": str(path), "reason": "shorter than a window"}
    return Processed(key, label, str(path), coords, report), None


def assign(infants: Sequence[Processed], config: SplitConfig) -> dict[str, tuple[str, int]]:
    """{id: (split, fold)}: the stratified split, and cross-validation folds of train + val (test: -1)."""
    ids, labels = [p.id for p in infants], [p.label for p in infants]
    split = stratified_split(ids, labels, config.test_fraction, config.val_fraction, config.seed)
    out = {key: (name, -1) for name, members in split.items() for key in members}
    pool = [p for p in infants if out[p.id][0] != "test"]
    if len(pool) >= config.num_folds:
        folds = stratified_folds([p.id for p in pool], [p.label for p in pool], config.num_folds, config.seed)
        out.update({key: (out[key][0], k) for k, fold in enumerate(folds) for key in fold})
    return out


def make_manifest(infants: Sequence[Processed], assignment: dict, layout: Layout, settings: dict,
                  fps: float, skipped: Sequence[dict]) -> Manifest:
    entries = [
        InfantEntry(id=p.id, label=p.label, split=assignment[p.id][0], fold=assignment[p.id][1],
                    length=int(p.coords.shape[0]), source=p.source, **dataclasses.asdict(p.report))
        for p in infants
    ]
    return new_manifest(layout_to_dict(layout), fps, settings, entries, skipped)


def write_dataset(out_dir: Path, infants: Sequence[Processed], manifest: Manifest) -> None:
    """Write arrays and manifest into a temporary sibling of OUT_DIR, then move it into place."""
    tmp = fresh_dir(out_dir)
    try:
        by_id = {p.id: p for p in infants}
        for split in manifest.splits:
            members = [by_id[e.id] for e in manifest.infants if e.split == split]
            ids, labels = [p.id for p in members], [p.label for p in members]
            write_split(tmp, split, ids, labels, [p.coords for p in members])
        write_manifest(tmp, manifest)
        _use_umask(tmp)
        commit_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _use_umask(directory: Path) -> None:
    """Give a temporary directory and its files the usual permissions (temp files are private)."""
    mask = os.umask(0)
    os.umask(mask)
    directory.chmod(0o777 & ~mask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~mask)


def prepare(raw_dir: str | Path, out_dir: str | Path, *, layout: Layout, fps: float = DEFAULT_FPS,
            config: PrepareConfig = PrepareConfig(), warn: Callable[[str], None] = print) -> Manifest:
    """Read, preprocess, split and write RAW_DIR into OUT_DIR; returns the manifest written."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    fps = check_fps(fps)
    check_out_dir(out_dir)
    labelled, unlabelled, outcomes_path = match_outcomes(raw_dir)
    skipped = []
    for key, path in unlabelled:
        warn(f"{path}: id {key!r} has no outcome in {outcomes_path}; skipped")
        skipped.append({"id": key, "source": str(path), "reason": "no outcome"})
    infants = []
    for key, path, label in labelled:
        done, skip = process_one(key, path, label, layout, fps, config, warn)
        infants += [done] if done else []
        skipped += [skip] if skip else []
    if not infants:
        raise InputError(f"{raw_dir}: no usable recordings")
    settings = {"raw_dir": str(raw_dir), "raw_fps": fps, "outcomes": str(outcomes_path), **to_dict(config)}
    manifest = make_manifest(infants, assign(infants, config.split), layout, settings,
                             config.preprocess.target_fps, skipped)
    write_dataset(out_dir, infants, manifest)
    return manifest


def format_summary(manifest: Manifest, out_dir: str | Path, seconds: float) -> str:
    """A table of infants per split and class with minutes of recording, then missing data and skips."""
    lines = [f"wrote {out_dir} in {seconds:.1f} s (layout {manifest.layout_name}, {manifest.fps:g} Hz)",
             f"{'split':<7}{'infants':>8}{'CP':>6}{'non-CP':>8}{'minutes':>9}"]
    for name in (*manifest.splits, "total"):
        rows = [e for e in manifest.infants if name in (e.split, "total")]
        cp = sum(e.label for e in rows)
        minutes = sum(e.length for e in rows) / manifest.fps / 60
        lines.append(f"{name:<7}{len(rows):>8}{cp:>6}{len(rows) - cp:>8}{minutes:>9.1f}")
    raw = sum(e.raw_frames for e in manifest.infants)
    missing = sum(e.missing_fraction * e.raw_frames for e in manifest.infants) / raw
    long_gaps = sum(e.long_gap_fraction * e.raw_frames for e in manifest.infants) / raw
    num_long = sum(e.num_long_gaps for e in manifest.infants)
    max_gap = manifest.settings["preprocess"]["max_gap_s"]
    lines.append(f"missing data: {100 * missing:.2f}% of raw joint-frames; {100 * long_gaps:.2f}% in "
                 f"{num_long} gaps longer than {max_gap:g} s (interpolated as well)")
    if manifest.skipped:
        reasons = sorted({s["reason"] for s in manifest.skipped})
        counts = ", ".join(f"{sum(s['reason'] == r for s in manifest.skipped)} {r}" for r in reasons)
        lines.append(f"skipped {len(manifest.skipped)} recordings ({counts})")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jaxcp prepare", description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", help="folder of orgcoords_<id>.csv / <id>.npy files and outcomes.csv")
    parser.add_argument("out_dir", help="processed dataset to write (replaced atomically if it is one)")
    parser.add_argument("--layout", default=None, help="built-in layout name or layout YAML (in-motion-29)")
    parser.add_argument("--fps", default=str(DEFAULT_FPS), help="frame rate of the raw recordings (30)")
    parser.add_argument("--config", default=None, help="YAML file with the settings below")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a setting, e.g. preprocess.trunk_multiple=4 or split.seed=7 (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        fps = check_fps(args.fps)
        config = build_config(args.config, args.overrides)
        layout = load_layout(args.layout)
        manifest = prepare(args.raw_dir, args.out_dir, layout=layout, fps=fps, config=config,
                           warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    except InputError as error:
        exit_with(error)
    print(format_summary(manifest, args.out_dir, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
