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
import functools
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from jaxcp.atomic import commit_dir, fresh_dir
from jaxcp.config import apply_overrides, dump_yaml, from_dict, load_yaml, to_dict
from jaxcp.data.dataset import MANIFEST, InfantEntry, Manifest, new_manifest, write_manifest, write_split
from jaxcp.data.io import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_FPS, check_fps, match_outcomes, read_recording
from jaxcp.data.preprocess import GapReport, PreprocessConfig, TooIncomplete, preprocess_recording
from jaxcp.data.splits import SplitConfig, stratified_folds, stratified_split
from jaxcp.errors import InputError, exit_with
from jaxcp.skeleton import Layout, layout_to_dict, load_layout

MAX_WORKERS = 8
MIN_ITEMS_PER_WORKER = 4  # a worker process costs about 0.5 s to start: give each enough to do
MIN_BYTES_PER_WORKER = 8 * 2**20  # about 4 three-minute 29-joint CSVs


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


def process_one(item: tuple[str, Path, int], layout: Layout, fps: float,
                config: PrepareConfig) -> Processed | dict:
    """Read and preprocess one (id, file, label): a `Processed`, or a skip record (a dict).

    Bad input raises InputError. Pure apart from reading the file, so it can run in worker processes.
    """
    key, path, label = item
    threshold = config.confidence_threshold
    recording = read_recording(path, layout, fps, label=label, confidence_threshold=threshold)
    try:
        coords, report = preprocess_recording(recording, layout, config.preprocess)
    except TooIncomplete as error:
        return {"id": key, "source": str(path), "reason": "too incomplete", "message": f"{error}; skipped"}
    if coords.shape[0] < config.window:
        message = (f"{path}: {coords.shape[0]} frames at {config.preprocess.target_fps:g} Hz, shorter than a "
                   f"window of {config.window} frames")
        if config.short == "error":
            raise InputError(message + " (--set short=skip leaves such recordings out)")
        reason = "shorter than a window"
        return {"id": key, "source": str(path), "reason": reason, "message": f"{message}; skipped"}
    return Processed(key, label, str(path), coords, report)


def process_all(items: Sequence[tuple[str, Path, int]], layout: Layout, fps: float, config: PrepareConfig,
                workers: int = 1) -> list[Processed | dict]:
    """`process_one` over all items, in order; in up to `workers` processes when there is enough to read.

    The first bad input (in item order) is raised, whatever the number of workers.
    """
    job = functools.partial(process_one, layout=layout, fps=fps, config=config)
    size = sum(path.stat().st_size for _, path, _ in items)
    workers = min(workers, len(items) // MIN_ITEMS_PER_WORKER, size // max(MIN_BYTES_PER_WORKER, 1))
    if workers <= 1:
        return [job(item) for item in items]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        return list(pool.map(job, items, chunksize=max(1, len(items) // (8 * workers))))
    finally:
        pool.shutdown(cancel_futures=True)


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


def prepare_dataset(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    layout: Layout | str | None = None,
    fps: float = DEFAULT_FPS,
    config: PrepareConfig | None = None,
    seed: int | None = None,
    warn: Callable[[str], None] | None = None,
    workers: int = 1,
) -> Manifest:
    """Read, preprocess, split and write RAW_DIR into OUT_DIR; returns the manifest written.

    layout: a Layout, a built-in name or a YAML file (default in-motion-29); seed, when given, replaces
    `config.split.seed`. Skipped recordings are reported through `warn` (default: "warning: ..." on
    stderr); `workers` processes read and preprocess a large cohort.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    layout, fps = load_layout(layout), check_fps(fps)
    config = config or PrepareConfig()
    if seed is not None:
        config = dataclasses.replace(config, split=dataclasses.replace(config.split, seed=seed))
    warn = warn or print_warning
    check_out_dir(out_dir)
    labelled, unlabelled, outcomes_path = match_outcomes(raw_dir)
    skipped = []
    for key, path in unlabelled:
        warn(f"{path}: id {key!r} has no outcome in {outcomes_path}; skipped")
        skipped.append({"id": key, "source": str(path), "reason": "no outcome"})
    infants = []
    for result in process_all(labelled, layout, fps, config, workers):
        if isinstance(result, Processed):
            infants.append(result)
        else:
            warn(result.pop("message"))
            skipped.append(result)
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
    settings = "\n".join(f"  {line}" for line in dump_yaml(PrepareConfig()).splitlines())
    parser = argparse.ArgumentParser(
        prog="jaxcp prepare",
        description="Turn raw recordings (orgcoords_<id>.csv or <id>.npy, and outcomes.csv) into a "
        "processed, split dataset.",
        epilog=f"settings (--set key=value, or a --config YAML file) and their defaults:\n{settings}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("raw_dir", help="folder of orgcoords_<id>.csv / <id>.npy files and outcomes.csv")
    parser.add_argument("out_dir", help="processed dataset to write (replaced atomically if it is one)")
    parser.add_argument("--layout", default=None, help="built-in layout name or layout YAML (in-motion-29)")
    parser.add_argument("--fps", default=str(DEFAULT_FPS), help="frame rate of the raw recordings (30)")
    parser.add_argument("--config", default=None, help="YAML file with the settings below")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"processes reading the recordings (default: CPU count, at most {MAX_WORKERS})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="a setting, e.g. preprocess.trunk_multiple=4 or split.seed=7 (repeatable)")
    return parser.parse_args(argv)


def print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        fps = check_fps(args.fps)
        config = build_config(args.config, args.overrides)
        layout = load_layout(args.layout)
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if args.workers is None else args.workers
        manifest = prepare_dataset(args.raw_dir, args.out_dir, layout=layout, fps=fps, config=config,
                                   workers=workers)
    except InputError as error:
        exit_with(error)
    print(format_summary(manifest, args.out_dir, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
