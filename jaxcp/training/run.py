"""The final, long training of one architecture in a run folder, resumable (behind `jaxcp train`).

The long schedule of AutoCP (reference §7.3): learning rate halved at epochs 200 and 250, validation every
5 epochs and every epoch of the last 15, no early stop. Several seeds are trained together (vmapped). The
run folder holds:

    run.json       what was asked: arch, hparams, seeds, training settings, data folder and sizes
    arch.yaml      the architecture file; config.yaml: the resolved training settings
    seed_<k>/      the kept model of seed k (`jaxcp.model.checkpoint`; setting `select`), replaced when the
                   kept evaluation changes; meta.json also holds its `flags`, `calibration` and `labels`;
                   what `evaluate`, `predict` and `export` read
    progress/      the training state after the latest epoch (`jaxcp.training.checkpoint`), replaced
                   atomically every `save_every` epochs
    summary.json   written last: per seed status, kept epoch, flags, validation metrics and history; the
                   selection rule, calibration and class labels

`train_run` on a folder of an unfinished run with the same request continues from `progress/`; the result
is the same as that of an uninterrupted run. A finished run is not trained again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from jaxcp.core import atomic
from jaxcp.core.config import dump_yaml, jsonable, to_dict, with_overrides
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import data_settings, dataset_layout, load_dataset
from jaxcp.data.splits import size_warning
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import ModelSpec, save_model
from jaxcp.training.archfile import arch_file_text
from jaxcp.training.checkpoint import restore_run_state, save_run_state
from jaxcp.training.hparams import HParams
from jaxcp.training.placement import shard_students
from jaxcp.training.students import (
    LONG_SCHEDULE,
    EpochReport,
    StudentRun,
    TrainConfig,
    make_eval_data,
    make_train_data,
)

RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
PROGRESS_DIR = "progress"
RUN_FORMAT = "jaxcp-train-run-1"


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """Everything that determines a training run's result (a resumed run must ask for the same)."""

    arch: Arch
    hparams: HParams
    config: TrainConfig
    seeds: tuple[int, ...]
    data: str
    train_split: str = "train"
    val_split: str = "val"

    def to_json(self, sizes: dict) -> dict:
        return {"format": RUN_FORMAT, "arch": to_dict(self.arch), "hparams": to_dict(self.hparams),
                "config": to_dict(self.config), "seeds": list(self.seeds), "data": self.data,
                "train_split": self.train_split, "val_split": self.val_split,
                "data_sizes": sizes}  # fmt: skip


def seed_dir(out_dir: Path, index: int) -> Path:
    return out_dir / f"seed_{index}"


def build_config(epochs: int | None, overrides: list[str], base: Mapping | None = None,
                 source: str = "defaults") -> TrainConfig:
    """The long schedule, then the `base` settings (an arch file's input settings, read from `source`:
    `ArchFile.input_settings()`), then `--set key=value` overrides, then `--epochs`."""
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs {epochs}: must be at least 1")
    config = with_overrides(TrainConfig, {**to_dict(LONG_SCHEDULE), **(base or {})}, source, overrides)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    checks = {
        "epochs": config.epochs >= 1,
        "eval_every": config.eval_every >= 1,
        "window": config.window >= 3,
        "hop": config.hop >= 1,
        "eval_last": config.eval_last >= 0,
        "eval_batch": config.eval_batch >= 1,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise InputError(f"--set {bad[0]}={getattr(config, bad[0])}: not a usable value")
    return config


def _first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} ({a!r} there, {b!r} now)"
    return None


def check_out_dir(out_dir: Path, run: dict, restart: bool) -> str:
    """'new', 'restart', 'resume' or 'finished'; an InputError when OUT belongs to something else. Nothing
    is changed on disk (a restart clears the old run only once the new one is known to be valid)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    run_file = out_dir / RUN_FILE
    if not run_file.is_file():
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise InputError(
                f"{out_dir}: not empty and not a jaxcp training run (no {RUN_FILE}); choose a new --out"
            )
        return "new"
    if restart:
        return "restart"
    try:
        old = json.loads(run_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{run_file}: unreadable; use --restart to start this run again") from None
    difference = _first_difference(old, run) if isinstance(old, dict) else "format"
    if difference:
        raise InputError(
            f"{out_dir}: holds a run with different settings: {difference}; use another --out or --restart"
        )
    return "finished" if (out_dir / SUMMARY_FILE).is_file() else "resume"


def write_run_files(out_dir: Path, leftovers: Iterable[Path], arch: Arch, hparams: HParams, config: TrainConfig,
                    run_json: dict, extra: dict[str, str] | None = None) -> None:
    """Clear what an earlier run left (`leftovers`), then write arch.yaml (with the input settings),
    config.yaml, the `extra` files and, last, run.json (what marks the folder as a run)."""
    for path in leftovers:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "arch.yaml", arch_file_text(arch, hparams, config.features, config.window, config.hop))
    atomic.write_text(out_dir / "config.yaml", dump_yaml(config))
    for name, text in (extra or {}).items():
        atomic.write_text(out_dir / name, text)
    atomic.write_text(out_dir / RUN_FILE, json.dumps(run_json, indent=2))


def start_run_folder(out_dir: Path, request: RunRequest, run_json: dict) -> None:
    """Clear what an earlier run left (models, training state, summary), then write what is asked."""
    leftovers = [out_dir / SUMMARY_FILE, out_dir / PROGRESS_DIR, *out_dir.glob("seed_*")]
    write_run_files(out_dir, leftovers, request.arch, request.hparams, request.config, run_json)


def save_best(out_dir: Path, run: StudentRun, report: EpochReport, request: RunRequest, spec: ModelSpec) -> None:
    """Save the model of every seed whose kept model changed in this epoch (`select`), with its flags,
    calibration and class labels in meta.json."""
    for k in (int(i) for i in np.flatnonzero(report.improved)):
        save_model(seed_dir(out_dir, k), run.student_state(k).variables, spec, hparams=request.hparams,
                   metrics=run.tracker.best_metrics[k],
                   extra={**run.model_meta(k), "seed": request.seeds[k], "split": request.val_split})


def train_run(
    request: RunRequest,
    out_dir: Path,
    *,
    restart: bool = False,
    save_every: int = 1,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> dict:
    """Train (or resume, or find finished) the run of `request` in `out_dir`; returns the summary.

    `warn(message)` gets one line per split with too few infants of a class (`splits.size_warning`);
    `on_epoch(report)` is called after every epoch (after its checkpoints are written).
    """
    data_dir = Path(request.data)
    layout = dataset_layout(data_dir)
    train_set = load_dataset(data_dir, request.train_split)
    val_set = load_dataset(data_dir, request.val_split)
    for role, name, labels in (("training", request.train_split, train_set.labels),
                               ("validation", request.val_split, val_set.labels)):
        positive = int((np.asarray(labels) == 1).sum())
        message = size_warning(f"the {role} split {name!r}", positive, len(labels) - positive)
        if message is not None and warn is not None:
            warn(message)
    sizes = {"train": len(train_set.ids), "val": len(val_set.ids), "frames": int(train_set.coords.shape[1])}
    run_json = request.to_json(sizes)
    mode = check_out_dir(out_dir, run_json, restart)
    if mode == "finished":
        log(f"{out_dir}: this run is already finished")
        return json.loads((out_dir / SUMMARY_FILE).read_text())
    config = request.config
    try:  # everything is checked before anything is written
        train_data, val_data = make_train_data(train_set, config), make_eval_data(val_set, layout, config)
    except InputError as error:
        raise InputError(f"{data_dir}: {error}") from None
    seeds = request.seeds
    run = StudentRun(request.arch, [request.hparams] * len(seeds), seeds, train_data, val_data, layout, config,
                     placement=shard_students(len(seeds)))  # the seeds over the local devices when they divide
    if mode in ("new", "restart"):
        start_run_folder(out_dir, request, run_json)
    if mode == "resume" and (out_dir / PROGRESS_DIR).is_dir():
        arrays, info = restore_run_state(out_dir / PROGRESS_DIR, run.snapshot()[0])
        run.restore(arrays, info)
        log(f"{out_dir}: resuming after epoch {run.epoch} of {config.epochs}")
    spec = config.model_spec(request.arch, layout, data_settings(data_dir), run.calibration["logit_shift"])
    while not run.finished:
        report = run.run_epoch()
        save_best(out_dir, run, report, request, spec)
        if run.epoch % save_every == 0 or run.finished:
            save_run_state(out_dir / PROGRESS_DIR, *run.snapshot())
        if on_epoch is not None:
            on_epoch(report)
    return write_summary(out_dir, run, request)


def write_summary(out_dir: Path, run: StudentRun, request: RunRequest) -> dict:
    seeds = []
    for k, result in enumerate(run.results()):
        path = seed_dir(out_dir, k)
        seeds.append({"seed": request.seeds[k], "status": result.status, "reward": result.reward,
                      "best_epoch": result.best_epoch, "checkpoint": path.name if path.is_dir() else None,
                      "flags": result.flags, "metrics": result.metrics, "history": result.history})  # fmt: skip
    result = run.results()[0]
    summary = {
        "epochs": run.epoch,
        "select": request.config.select,
        "calibration": run.calibration,
        "labels": list(request.config.labels),
        "seconds_compile": result.seconds_compile,
        "seconds_train": result.seconds_train,
        "seconds_eval": result.seconds_eval,
        "seeds": seeds,
    }
    atomic.write_text(out_dir / SUMMARY_FILE, json.dumps(jsonable(summary), indent=2))
    return jsonable(summary)


