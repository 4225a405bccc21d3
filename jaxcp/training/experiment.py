"""An experiment: one dataset's train and validation splits on device, and training of students on them.

The search and its argmax candidates share this: data are loaded, windowed and featurised once, then any
number of students (of any architecture) are trained against them.

Fold mode (`folds` = K >= 3, the search's `student.folds`): a student is trained K times, on K folds of the
train and validation infants together (stratified, drawn once with `fold_seed`), all folds vmapped with the
student's seeds and candidates (`jaxcp.training.crossval.FoldRun`); its reward is the mean over folds of
its best inner-validation AUC. The long schedule (argmax candidates) still trains on train, validates on val.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

from jaxcp.core.errors import InputError
from jaxcp.core.runtime import DEFAULT_SEED
from jaxcp.data.dataset import Dataset, DataSettings, data_settings, load_dataset
from jaxcp.data.skeleton import Layout
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import save_model
from jaxcp.training import crossval, engine, parallel
from jaxcp.training.hparams import HParams
from jaxcp.training.placement import Placement
from jaxcp.training.students import (
    EvalData,
    StudentResult,
    StudentRun,
    TrainConfig,
    make_eval_data,
    make_train_data,
    train_students,
)


@dataclasses.dataclass
class Experiment:
    layout: Layout
    train_set: Dataset
    val_set: Dataset
    student: TrainConfig
    long: TrainConfig
    data: DataSettings = DataSettings()  # how the data were prepared (stored with saved models)
    folds: int = 0  # students' inner cross-validation folds (0: off)
    fold_seed: int = DEFAULT_SEED

    def __post_init__(self):
        self._replicas: dict = {}  # the students' data per placement
        self._lock = threading.Lock()
        self.train_data = make_train_data(self.train_set, self.student)
        self.val_data = make_eval_data(self.val_set, self.layout, self.student)
        self.fold_data = None
        if self.folds:  # the train and validation infants as one cohort, in folds
            cohort = crossval.join_datasets([self.train_set, self.val_set])
            self.fold_data = (crossval.assign_folds(cohort, None, self.folds, self.fold_seed),
                              make_train_data(cohort, self.student), make_eval_data(cohort, self.layout, self.student))

    def train(
        self,
        arch: Arch,
        hparams: Sequence[HParams],
        seeds: Sequence[int],
        *,
        long: bool = False,
        checkpoint_dir: Path | None = None,
        on_epoch: Callable | None = None,
        placement: Placement | None = None,
    ) -> list[StudentResult]:
        """Train students of one architecture; with `checkpoint_dir`, save the first one's kept model (with
        its flags, calibration and class labels in meta.json). `placement`: as in `student_run` (the search
        trains its argmax candidates where its groups ran, so that they reuse the groups' executables)."""
        if self.fold_data is not None and not long and checkpoint_dir is None:
            return self.train_folds(arch, hparams, seeds, on_epoch=on_epoch)
        config = self.long if long else self.student
        results = train_students(
            arch, hparams, seeds, self.train_data, self.val_data, self.layout, config,
            keep_state=checkpoint_dir is not None, on_epoch=on_epoch, placement=placement,
        )  # fmt: skip
        best = results[0]
        if checkpoint_dir is not None and best.state is not None:
            spec = config.model_spec(arch, self.layout, self.data, best.calibration.get("logit_shift", 0.0))
            extra = {"best_epoch": best.best_epoch, "flags": best.flags, "calibration": best.calibration,
                     "labels": list(config.labels)}
            save_model(checkpoint_dir, best.state.variables, spec, hparams=hparams[0], metrics=best.metrics,
                       extra=extra)
        return results

    def student_run(self, arch: Arch, hparams: Sequence[HParams], seeds: Sequence[int], *,
                    placement: Placement | None = None) -> StudentRun:
        """A run of students on the students' schedule (fold mode: every fold of them, `FoldRun`), its
        arrays on `placement` (the data copied there once per placement and kept)."""
        train, val = self._data_on(placement)
        if self.fold_data is not None:
            return crossval.FoldRun(arch, hparams, seeds, train, val, self.layout, self.student, self.fold_data[0],
                                    placement=placement)  # fmt: skip
        return StudentRun(arch, hparams, seeds, train, val, self.layout, self.student, placement=placement)

    def train_groups(self, groups: Sequence[parallel.Group], devices: Sequence[jax.Device] | None = None, *,
                     on_done: Callable[[int, list[StudentResult]], None] | None = None) -> list[list[StudentResult]]:
        """Train groups of students (each: one architecture and batch size) over `devices` at once, their
        programs compiled ahead (`jaxcp.training.parallel.run_groups`); results per group, in order."""
        return parallel.run_groups(self, groups, devices, on_done=on_done)

    def run_results(self, run: StudentRun) -> list[StudentResult]:
        """A finished `student_run`'s results: one per student (fold mode: per model, `inner_cv_results`)."""
        return crossval.inner_cv_results(run) if isinstance(run, crossval.FoldRun) else run.results()

    def _data_on(self, placement: Placement | None) -> tuple[engine.TrainData, EvalData]:
        """The students' training and validation data (fold mode: the cohort's), copied to `placement` once."""
        data = (self.train_data, self.val_data) if self.fold_data is None else self.fold_data[1:]
        if placement is None:
            return data
        with self._lock:
            if placement not in self._replicas:
                train, val = data
                self._replicas[placement] = (placement.put_replicated(train), dataclasses.replace(
                    val, features=placement.put_replicated(val.features)))  # fmt: skip
            return self._replicas[placement]


    def train_folds(self, arch: Arch, hparams: Sequence[HParams], seeds: Sequence[int], *,
                    on_epoch: Callable | None = None) -> list[StudentResult]:
        """Fold mode: every student on every fold, vmapped; one result per student (mean inner-CV AUC)."""
        assignment, train, windows = self.fold_data
        run = crossval.FoldRun(arch, hparams, seeds, train, windows, self.layout, self.student, assignment)
        while not run.finished:
            report = run.run_epoch()
            if on_epoch is not None:
                on_epoch(report.epoch - 1, report.summaries)
        return crossval.inner_cv_results(run)


def load_experiment(data_dir: str | Path, layout: Layout, student: TrainConfig, long: TrainConfig, *,
                    train_split: str = "train", val_split: str = "val", folds: int = 0) -> Experiment:
    """Load a processed dataset's train and validation splits and put them on device."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise InputError(f"{data_dir}: data folder not found")
    train_set = load_dataset(data_dir, train_split)
    val_set = load_dataset(data_dir, val_split)
    if train_set.layout_name != layout.name:
        raise InputError(f"{data_dir}: data use layout {train_set.layout_name!r}, the config asks for {layout.name!r}")
    try:
        return Experiment(layout, train_set, val_set, student, long, data_settings(data_dir), folds=folds)
    except InputError as error:
        raise InputError(f"{data_dir}: {error}") from None
