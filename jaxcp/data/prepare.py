"""Raw recordings -> a processed, split dataset on disk (`jaxcp prepare`).

A raw folder holds `orgcoords_<id>.csv` or `<id>.npy` recordings (also in RAW_DIR/coords) and `outcomes.csv`
(in RAW_DIR or RAW_DIR/outcomes). `prepare_dataset` reads every labelled recording, preprocesses it
(`jaxcp.data.preprocess`), checks that its skeletons look like a tracked body (`jaxcp.data.quality`),
assigns it to train/val/test (`jaxcp.data.splits`; `test_ids` / `val_ids` files fix those splits) and
writes jaxcp's processed format (`jaxcp.data.dataset`). The output folder is built in a temporary sibling
and renamed into place at the end, so it is either untouched or complete; an existing one is only replaced
when it is a jaxcp dataset.

Bad input is an InputError naming the file and the problem. Recordings without an outcome and recordings
with too many long gaps are skipped with a warning and listed in the manifest. A recording that fails the
data check (bones as variable as unrelated joint pairs) is an error, or is kept or skipped with a warning
(`quality.on_failure`); splits with too few infants of a class get a warning (`jaxcp.data.splits.size_warning`).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from jaxcp.core.atomic import check_out_folder, commit_dir, fresh_dir
from jaxcp.core.config import load_yaml, to_dict, with_overrides
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import MANIFEST, InfantEntry, Manifest, new_manifest, write_manifest, write_split
from jaxcp.data.io import DEFAULT_CONFIDENCE_THRESHOLD, DEFAULT_FPS, check_fps, match_outcomes, read_recording
from jaxcp.data.preprocess import GapReport, PreprocessConfig, TooIncomplete, oriented, preprocess_recording
from jaxcp.data.quality import (
    CohortQuality,
    QualityConfig,
    RecordingQuality,
    assess_cohort,
    measure_recording,
    quality_record,
)
from jaxcp.data.skeleton import Layout, layout_to_dict, load_layout
from jaxcp.data.splits import SPLITS, SplitConfig, fixed_split, size_warning, stratified_folds, stratified_split
from jaxcp.data.windows import WINDOW

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
      quality: see `jaxcp.data.quality.QualityConfig`.
    """

    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    window: int = WINDOW
    short: Literal["error", "skip"] = "error"
    preprocess: PreprocessConfig = dataclasses.field(default_factory=PreprocessConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)

    def __post_init__(self):
        if self.window < 1:
            raise InputError(f"window: must be >= 1, got {self.window}")


@dataclasses.dataclass(frozen=True, eq=False)
class Processed:
    """One preprocessed infant: (T, V, 2) float32 coordinates at the target rate, its gap report and the
    data check's figures of its raw coordinates."""

    id: str
    label: int
    source: str
    coords: np.ndarray
    report: GapReport
    quality: RecordingQuality


def build_config(config_file: str | None, overrides: Sequence[str]) -> PrepareConfig:
    """Defaults, then the YAML file (if any), then `--set` overrides."""
    mapping = load_yaml(config_file) if config_file else {}
    return with_overrides(PrepareConfig, mapping, config_file or "defaults", overrides)


def check_out_dir(out_dir: Path) -> None:
    """OUT_DIR may be new, empty, or an earlier jaxcp dataset (which is then replaced)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
        raise InputError(f"{out_dir}: exists, is not empty and holds no {MANIFEST}; refusing to replace it")
    check_out_folder(out_dir, "OUT_DIR")


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
    figures = measure_recording(oriented(recording.coords, config.preprocess), layout, fps, config.quality)
    return Processed(key, label, str(path), coords, report, figures)


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


def read_id_file(path: str | Path) -> tuple[str, ...]:
    """The ids listed in a text file, one a line; blank lines and `#` comments are ignored."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: id file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read id file ({type(error).__name__})") from None
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return tuple(dict.fromkeys(key for key in ids if key))


def assign(infants: Sequence[Processed], config: SplitConfig, fixed: dict[str, tuple[str, ...]] | None = None,
           sources: dict[str, str] | None = None) -> dict[str, tuple[str, int]]:
    """{id: (split, fold)}: the stratified split (the splits in `fixed` hold exactly those ids), and
    cross-validation folds of train + val (test: -1)."""
    ids, labels = [p.id for p in infants], [p.label for p in infants]
    if fixed:
        split = fixed_split(ids, labels, fixed, config, sources)
    else:
        split = stratified_split(ids, labels, config.test_fraction, config.val_fraction, config.seed)
    out = {key: (name, -1) for name, members in split.items() for key in members}
    pool = [p for p in infants if out[p.id][0] != "test"]
    if len(pool) >= config.num_folds:
        folds = stratified_folds([p.id for p in pool], [p.label for p in pool], config.num_folds, config.seed)
        out.update({key: (out[key][0], k) for k, fold in enumerate(folds) for key in fold})
    return out


def split_warnings(infants: Sequence[Processed], assignment: dict[str, tuple[str, int]]) -> dict[str, str]:
    """{split: `size_warning` line} for every non-empty split with too few infants of a class."""
    out = {}
    for name in SPLITS:
        labels = [p.label for p in infants if assignment[p.id][0] == name]
        message = size_warning(f"split {name!r}", sum(labels), len(labels) - sum(labels)) if labels else None
        if message:
            out[name] = message
    return out


def check_quality(infants: Sequence[Processed], layout: Layout, config: QualityConfig,
                  warn: Callable[[str], None]) -> tuple[list[Processed], list[dict], CohortQuality]:
    """The data check over the cohort: (infants kept, skip records, verdict on the kept ones).

    A failing recording is an InputError (`on_failure: error`, the first in id order), kept with a
    warning (`warn`) or left out with a warning (`skip`)."""
    verdict = assess_cohort({p.id: p.quality for p in infants}, layout, config)
    failing = [p for p in infants if p.id in verdict.failed]
    if failing and config.on_failure == "error":
        first = failing[0]
        more = f" (and {len(failing) - 1} more recordings)" if len(failing) > 1 else ""
        raise InputError(f"{first.source}: {verdict.flags[first.id][0]}{more}; check the x/y column order of "
                         f"the CSV or the layout; --set quality.on_failure=warn to keep it (or =skip)")
    for p in failing:
        action = "kept (quality.on_failure=warn)" if config.on_failure == "warn" else "skipped"
        warn(f"{p.source}: {verdict.flags[p.id][0]}; {action}")
    if not failing or config.on_failure == "warn":
        return list(infants), [], verdict
    kept = [p for p in infants if p.id not in verdict.failed]
    skipped = [{"id": p.id, "source": p.source, "reason": "failed data check"} for p in failing]
    return kept, skipped, assess_cohort({p.id: p.quality for p in kept}, layout, config)


def make_manifest(infants: Sequence[Processed], assignment: dict, layout: Layout, settings: dict,
                  fps: float, skipped: Sequence[dict], quality: dict | None = None) -> Manifest:
    entries = [
        InfantEntry(id=p.id, label=p.label, split=assignment[p.id][0], fold=assignment[p.id][1],
                    length=int(p.coords.shape[0]), source=p.source, **dataclasses.asdict(p.report))
        for p in infants
    ]
    return new_manifest(layout_to_dict(layout), fps, settings, entries, skipped, quality)


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
    test_ids: str | Path | None = None,
    val_ids: str | Path | None = None,
) -> Manifest:
    """Read, preprocess, split and write RAW_DIR into OUT_DIR; returns the manifest written.

    layout: a Layout, a built-in name or a YAML file (default in-motion-29); seed, when given, replaces
    `config.split.seed`. Skipped recordings are reported through `warn` (default: "warning: ..." on
    stderr); `workers` processes read and preprocess a large cohort. `test_ids` / `val_ids`: files of ids
    (one a line) that form the test / val split exactly.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    layout, fps = load_layout(layout), check_fps(fps)
    config = config or PrepareConfig()
    if seed is not None:
        config = dataclasses.replace(config, split=dataclasses.replace(config.split, seed=seed))
    warn = warn or print_warning
    id_files = {name: str(path) for name, path in (("test", test_ids), ("val", val_ids)) if path is not None}
    fixed = {name: read_id_file(path) for name, path in id_files.items()}
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
    infants, failed, verdict = check_quality(infants, layout, config.quality, warn)
    skipped += failed
    if not infants:
        raise InputError(f"{raw_dir}: no usable recordings")
    settings = {"raw_dir": str(raw_dir), "raw_fps": fps, "outcomes": str(outcomes_path), **to_dict(config)}
    if fixed:
        settings["fixed_split"] = {name: {"file": id_files[name], "ids": list(fixed[name])} for name in fixed}
    assignment = assign(infants, config.split, fixed, id_files)
    for message in split_warnings(infants, assignment).values():
        warn(message)
    quality = quality_record({p.id: p.quality for p in infants}, verdict, layout, config.quality)
    manifest = make_manifest(infants, assignment, layout, settings, config.preprocess.target_fps, skipped,
                             quality)
    write_dataset(out_dir, infants, manifest)
    return manifest


def print_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
