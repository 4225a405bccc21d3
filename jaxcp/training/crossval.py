"""K-fold cross-validation of one architecture: all folds (times seeds) trained as ONE vmapped program.

Infants are assigned to K folds, stratified by outcome (the manifest's `fold`, or
`jaxcp.data.splits.stratified_folds`). Fold k's model is trained on the other K - 2 folds, selected (and its
threshold chosen) on its inner validation fold (k + 1) mod K, and scores its test fold k, which it never
sees. The student axis of the compiled programs is fold-major: student j belongs to fold j // S and seed
j % S. Every student draws its own training windows from its own plan (`engine.FoldPlan`, padded to a
common length), so the K x S students share one compiled epoch program and one prediction program.

An infant's out-of-fold risk is the median over its evaluation windows of the fold's seed ensemble (the
median of the seeds' window probabilities), prior-corrected for the training-window oversampling:
p -> sigmoid(logit(p) + shift), shift = log(n_pos / n_neg) - log(W_pos / W_neg) of the fold's training
infants (n) and planned windows (W), so that 0.5 means "as likely as not" at the training infants' own
prevalence.

`crossval_run` is the resumable run folder behind `jaxcp crossval`:

    run.json       what was asked (arch, hparams, settings, seeds, data, splits, folds, threshold rule)
    arch.yaml      the architecture file; config.yaml: the resolved training settings
    folds.json     the fold of every infant and how the folds were made
    fold_<k>/seed_<s>/  fold k's kept model of seed s (`jaxcp.model.checkpoint`), replaced when it changes
    progress/      the training state after the latest epoch (Orbax), replaced atomically every epoch
    metrics.json, infants.csv, report.md|html, roc.png   written last (`jaxcp.clinical.pooling`)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcp.clinical import metrics, pooling
from jaxcp.clinical.evaluation import ThresholdRule
from jaxcp.core.config import jsonable, to_dict
from jaxcp.core.errors import InputError
from jaxcp.data.dataset import (
    MANIFEST,
    Dataset,
    available_splits,
    data_settings,
    dataset_layout,
    load_dataset,
    read_manifest,
    tile_frames,
)
from jaxcp.data.skeleton import Layout
from jaxcp.data.splits import size_warning, stratified_folds
from jaxcp.data.windows import SAMPLINGS, TrainPlan
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import save_model
from jaxcp.training import engine
from jaxcp.training.checkpoint import restore_run_state, save_run_state
from jaxcp.training.hparams import HParams
from jaxcp.training.placement import Placement, shard_students
from jaxcp.training.run import PROGRESS_DIR, check_out_dir, write_run_files
from jaxcp.training.students import (
    EpochReport,
    EvalData,
    StudentResult,
    StudentRun,
    TrainConfig,
    calibration_of,
    flags_of,
    make_eval_data,
    make_train_data,
)

CROSSVAL_FORMAT = "jaxcp-crossval-run-1"
METRICS_FILE = "metrics.json"
DEFAULT_FOLDS = 5


# --------------------------------------------------------------------------------------------------------
# The cohort and its folds

def load_cohort(data_dir: Path, splits: Sequence[str]) -> Dataset:
    """One Dataset of the infants of `splits` (each recording re-tiled to the longest of all)."""
    cohort = join_datasets([load_dataset(data_dir, split) for split in splits])
    if cohort.num_infants == 0:
        raise InputError(f"{data_dir}: splits {', '.join(splits)} hold no infants")
    return cohort


def join_datasets(parts: Sequence[Dataset]) -> Dataset:
    """The infants of several Datasets of one layout in one, each recording re-tiled to the longest."""
    lengths = np.concatenate([p.lengths for p in parts]).astype(np.int32)
    t_max = int(lengths.max()) if lengths.size else 0
    coords = [tile_frames(p.coords[i], int(p.lengths[i]), t_max) for p in parts for i in range(p.num_infants)]
    return Dataset(tuple(i for p in parts for i in p.ids), np.concatenate([p.labels for p in parts]),
                   np.stack(coords).astype(np.float32) if coords else np.zeros((0, 0, 0, 2), np.float32),
                   lengths, parts[0].layout_name, parts[0].fps)  # fmt: skip


def parse_splits(data_dir: Path, text: str) -> tuple[str, ...]:
    """`--splits`: 'all' (every split of the dataset) or a comma-separated list of known splits."""
    known = available_splits(data_dir)
    if text.strip() == "all":  # the real sets, without AutoCP's aliases of them
        if (data_dir / MANIFEST).is_file():
            return known
        return tuple(s for s in known if (data_dir / f"{s}_coords.npy").is_file())
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in splits if s not in known]
    if not splits or unknown:
        raise InputError(f"--splits {text!r}: unknown split {unknown[0] if unknown else ''!r} "
                         f"(the dataset has {', '.join(known)})")
    if len(set(splits)) != len(splits):
        raise InputError(f"--splits {text!r}: a split is named twice")
    return splits


@dataclasses.dataclass(frozen=True)
class FoldAssignment:
    """Which fold each infant of a cohort is in. fold: (N,) int in [0, K)."""

    ids: tuple[str, ...]
    labels: np.ndarray
    fold: np.ndarray
    num_folds: int
    source: str  # "manifest" or "drawn"

    def members(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.fold == k % self.num_folds)

    def parts(self, k: int) -> dict[str, np.ndarray]:
        """Infant indices of fold k's test (fold k), inner validation (fold k+1 mod K) and training parts."""
        test, val = k % self.num_folds, (k + 1) % self.num_folds
        train = np.flatnonzero((self.fold != test) & (self.fold != val))
        return {"train": train, "val": self.members(val), "test": self.members(test)}

    def to_json(self) -> dict:
        return {"num_folds": self.num_folds, "source": self.source,
                "infants": [{"id": i, "label": int(y), "fold": int(f)}
                            for i, y, f in zip(self.ids, self.labels, self.fold, strict=True)]}  # fmt: skip


def manifest_folds(data_dir: Path, ids: Sequence[str]) -> np.ndarray | None:
    """(N,) the manifest's fold of each infant, or None when the data have no manifest or an infant has none."""
    if not (data_dir / MANIFEST).is_file():
        return None
    folds = {e.id: e.fold for e in read_manifest(data_dir).infants}
    values = np.array([folds.get(i, -1) for i in ids], np.int64)
    return None if (values < 0).any() else values


def assign_folds(cohort: Dataset, given: np.ndarray | None, num_folds: int | None, seed: int) -> FoldAssignment:
    """The manifest's folds `given` when `num_folds` is None and they exist, else K stratified drawn folds."""
    labels = np.asarray(cohort.labels)
    counts = (int((labels == 1).sum()), int((labels == 0).sum()))
    if min(counts) == 0:
        raise InputError(f"cross-validation needs CP and non-CP infants; the cohort has {counts[0]} CP and "
                         f"{counts[1]} non-CP")
    if num_folds is None and given is not None:
        _, fold = np.unique(given, return_inverse=True)  # renumber 0..K-1
        assignment = FoldAssignment(cohort.ids, labels, fold.astype(np.int64), int(fold.max()) + 1, "manifest")
        where = "the manifest's folds (use --folds K to draw others)"
    else:
        k = DEFAULT_FOLDS if num_folds is None else num_folds
        if k < 3:
            raise InputError(f"--folds {k}: must be at least 3 (test, inner validation and training folds)")
        if k > min(counts):
            raise InputError(f"--folds {k}: more folds than infants of the smaller class ({min(counts)}); "
                             f"every fold needs a CP and a non-CP infant")
        folds = stratified_folds(cohort.ids, labels, k, seed)
        index = {key: f for f, members in enumerate(folds) for key in members}
        fold = np.array([index[i] for i in cohort.ids], np.int64)
        assignment, where = FoldAssignment(cohort.ids, labels, fold, k, "drawn"), f"--folds {k}"
    if assignment.num_folds < 3:
        raise InputError(f"{where}: {assignment.num_folds} folds; cross-validation needs at least 3")
    for k in range(assignment.num_folds):
        got = labels[assignment.members(k)]
        if got.min() == got.max():
            raise InputError(f"{where}: fold {k} has no {'non-CP' if got[0] == 1 else 'CP'} infant; "
                             f"use --folds K with K at most {min(counts)}")
    return assignment


def fold_train_plan(assignment: FoldAssignment, k: int, config: TrainConfig) -> TrainPlan:
    """Fold k's training plan (the `sampling` setting) over its training infants (indices into that part)."""
    train = assignment.parts(k)["train"]
    return SAMPLINGS[config.sampling](assignment.labels[train], config.parts_positive, config.parts_negative)


def fold_calibration(assignment: FoldAssignment, k: int, config: TrainConfig) -> dict:
    """`calibration_of` fold k's model: the prior correction from ITS training infants and plan."""
    labels = assignment.labels[assignment.parts(k)["train"]]
    return calibration_of(labels, fold_train_plan(assignment, k, config), config.calibration)


def fold_plans(assignment: FoldAssignment, config: TrainConfig, seeds_per_fold: int) -> engine.FoldPlan:
    """(K * S, M_max) padded training plans, fold-major; a fold's plan indexes the whole cohort."""
    plans = []
    for k in range(assignment.num_folds):
        train = assignment.parts(k)["train"]
        plan = fold_train_plan(assignment, k, config)
        plans.append((train[plan.infant], plan.part, plan.num_parts))
    size = max(p[0].size for p in plans)

    def pad(values, fill):
        return np.concatenate([values, np.full(size - values.size, fill, np.int32)]).astype(np.int32)

    rows = [(pad(i, 0), pad(p, 0), pad(n, 1), i.size) for i, p, n in plans for _ in range(seeds_per_fold)]
    return engine.FoldPlan(*(jnp.asarray(np.stack([r[c] for r in rows])) for c in range(4)))


# --------------------------------------------------------------------------------------------------------
# Training all folds together

class FoldRun(StudentRun):
    """`StudentRun` whose students are K folds x S models of one architecture, each on its own infants.

    The S models per fold are `hparams[s]` with seed `seeds[s]` (seeds of one setting for `jaxcp crossval`,
    or the search's candidates). `val` holds the evaluation windows of the whole cohort; student j is
    validated on the inner validation part of fold j // S only. The kept state of every student is its best
    inner-validation checkpoint.
    """

    def __init__(self, arch: Arch, hparams: Sequence[HParams], seeds: Sequence[int], cohort: engine.TrainData,
                 windows: EvalData, layout: Layout, config: TrainConfig, assignment: FoldAssignment, *,
                 placement: Placement | None = None):
        if len(hparams) != len(seeds):
            raise ValueError("one seed per model")
        self.assignment, self.seeds_per_fold = assignment, len(seeds)
        students = assignment.num_folds * len(seeds)
        super().__init__(arch, [hparams[j % len(seeds)] for j in range(students)],
                         [seeds[j % len(seeds)] for j in range(students)], cohort, windows, layout, config,
                         keep_state=True, placement=placement)  # fmt: skip
        self.plans = self._per_student(fold_plans(assignment, config, len(seeds)))
        smallest, batch = int(np.min(np.asarray(self.plans.num_valid))), hparams[0].batch_size
        if smallest < batch:
            raise InputError(f"a fold's epoch has {smallest} training windows, fewer than a batch of "
                             f"{batch}; raise parts_positive / parts_negative or use fewer folds")
        self.windows = [_part_windows(windows.owner, assignment.parts(k)) for k in range(assignment.num_folds)]
        self.fold_calibration = [fold_calibration(assignment, k, config) for k in range(assignment.num_folds)]

    def fold_of(self, student: int) -> int:
        return student // self.seeds_per_fold

    def epoch_program(self) -> tuple[Any, tuple]:
        """One compiled epoch of every fold's students, each on its own training plan."""
        return self.programs.fold_epoch, (self.train, self.plans)

    def validation_results(self, probs: np.ndarray) -> list[dict]:
        """(S_total, M_all) window probabilities -> each student's metrics on its fold's inner validation."""
        out = []
        for j, p in enumerate(probs):
            k = self.fold_of(j)
            windows, owner, infants = self.windows[k]["val"]
            calibrated = metrics.apply_logit_shift(p[windows], self.fold_calibration[k]["logit_shift"])
            out.append(metrics.evaluate_windows(calibrated, owner, self.val.labels[infants]))
        return out

    def flags(self, index: int) -> list[dict]:
        """The flags of student `index`'s kept model, judged on its fold's inner validation infants."""
        infants = self.windows[self.fold_of(index)]["val"][2]
        return flags_of(self.tracker.best_metrics[index], self.val.labels[infants])

    def model_meta(self, index: int) -> dict:
        return dict(super().model_meta(index), calibration=self.fold_calibration[self.fold_of(index)])

    def results(self) -> list[StudentResult]:
        results = super().results()
        for j, result in enumerate(results):
            result.calibration = dict(self.fold_calibration[self.fold_of(j)])
        return results

    def kept_probs(self) -> np.ndarray:
        """(S_total, M_all) window probabilities of every student's kept model on the whole cohort."""
        return np.asarray(self.compiled(self.programs.predict, self.best_state, self.val.features))


def _part_windows(owner: np.ndarray, parts: dict[str, np.ndarray]) -> dict[str, tuple]:
    """{part: (window indices, owner renumbered within the part, infant indices)} for val and test."""
    out = {}
    for name in ("val", "test"):
        infants = parts[name]
        windows = np.flatnonzero(np.isin(owner, infants))
        local = np.searchsorted(infants, owner[windows])
        out[name] = (windows, local, infants)
    return out


def fold_risks(run: FoldRun, probs: np.ndarray) -> list[dict]:
    """Per fold: the seed ensemble's prior-corrected risks of its inner validation and test infants."""
    out = []
    for k in range(run.assignment.num_folds):
        rows = probs[k * run.seeds_per_fold:(k + 1) * run.seeds_per_fold]
        ensemble = np.median(rows, axis=0)
        shift = run.fold_calibration[k]["logit_shift"]
        fold = {"fold": k, "shift": shift}
        for name, (windows, local, infants) in run.windows[k].items():
            calibrated = metrics.apply_logit_shift(ensemble[windows], shift)
            fold[name] = (infants, metrics.subject_scores(calibrated, local, infants.size))
        out.append(fold)
    return out


def choose_fold_threshold(rule: ThresholdRule, labels: np.ndarray, risks: np.ndarray) -> float:
    """The fold's threshold from its inner validation infants only (a fixed rule ignores them)."""
    if rule.kind == "fixed":
        return rule.value
    if rule.kind == "youden":
        return metrics.youden_threshold(labels, risks)
    return metrics.threshold_for_sensitivity(labels, risks, rule.value)


# --------------------------------------------------------------------------------------------------------
# The run folder

@dataclasses.dataclass(frozen=True)
class CrossvalRequest:
    """Everything that determines a cross-validation's result (a resumed run must ask for the same)."""

    arch: Arch
    hparams: HParams
    config: TrainConfig
    seeds: tuple[int, ...]
    data: str
    splits: tuple[str, ...]
    num_folds: int | None  # None: the manifest's folds when every infant has one
    fold_seed: int
    threshold: str = "0.5"
    report_format: str = "md"

    def to_json(self) -> dict:
        return {"format": CROSSVAL_FORMAT, "arch": to_dict(self.arch), "hparams": to_dict(self.hparams),
                "config": to_dict(self.config), "seeds": list(self.seeds), "data": self.data,
                "splits": list(self.splits), "num_folds": self.num_folds, "fold_seed": self.fold_seed,
                "threshold": self.threshold, "report_format": self.report_format}  # fmt: skip


def fold_dir(out_dir: Path, fold: int, seed_index: int) -> Path:
    return out_dir / f"fold_{fold}" / f"seed_{seed_index}"


def _start_folder(out_dir: Path, request: CrossvalRequest, run_json: dict, assignment: FoldAssignment) -> None:
    leftovers = [*out_dir.glob("fold_*"), out_dir / PROGRESS_DIR, *(out_dir / n for n in pooling.OUTPUTS)]
    write_run_files(out_dir, leftovers, request.arch, request.hparams, request.config, run_json,
                    {"folds.json": json.dumps(assignment.to_json(), indent=1)})


def prepare_crossval(request: CrossvalRequest) -> tuple[FoldRun, dict]:
    """Load the cohort, make the folds and the FoldRun (nothing written); returns (run, facts)."""
    data_dir = Path(request.data)
    layout = dataset_layout(data_dir)
    cohort = load_cohort(data_dir, request.splits)
    given = manifest_folds(data_dir, cohort.ids) if request.num_folds is None else None
    assignment = assign_folds(cohort, given, request.num_folds, request.fold_seed)
    try:
        train, windows = make_train_data(cohort, request.config), make_eval_data(cohort, layout, request.config)
    except InputError as error:
        raise InputError(f"{data_dir}: {error}") from None
    students = assignment.num_folds * len(request.seeds)  # over the local devices when they divide
    run = FoldRun(request.arch, [request.hparams] * len(request.seeds), request.seeds, train, windows, layout,
                  request.config, assignment, placement=shard_students(students))  # fmt: skip
    facts = {"layout": layout, "cohort": cohort, "spec": request.config.model_spec(request.arch, layout,
                                                                                   data_settings(data_dir))}
    return run, facts


def size_warnings(assignment: FoldAssignment) -> list[str]:
    """One line each for the whole cohort and for the smallest test and inner-validation parts."""
    labels = assignment.labels
    found = [size_warning("the cohort", int((labels == 1).sum()), int((labels == 0).sum()))]
    counts = [(int((labels[assignment.members(k)] == 1).sum()), int((labels[assignment.members(k)] == 0).sum()))
              for k in range(assignment.num_folds)]
    pos, neg = min(c[0] for c in counts), min(c[1] for c in counts)
    found.append(size_warning(f"each fold's test part (and inner validation part; the smallest of the "
                              f"{assignment.num_folds} folds)", pos, neg))
    return [w for w in found if w]


def save_kept(out_dir: Path, run: FoldRun, report: EpochReport, request: CrossvalRequest, spec) -> None:
    """Save the model of every fold and seed whose kept model (the `select` rule on its inner validation) changed."""
    tracker = run.tracker
    for j in np.flatnonzero(report.improved):
        k, s = run.fold_of(int(j)), int(j) % run.seeds_per_fold
        meta = run.model_meta(int(j))
        fold_spec = dataclasses.replace(spec, logit_shift=meta["calibration"]["logit_shift"])
        save_model(fold_dir(out_dir, k, s), run.student_state(int(j)).variables, fold_spec, hparams=request.hparams,
                   metrics=tracker.best_metrics[j],
                   extra={**meta, "seed": request.seeds[s], "fold": k,
                          "selected_on": f"inner validation fold {(k + 1) % run.assignment.num_folds}"})


def crossval_run(
    request: CrossvalRequest,
    out_dir: Path,
    *,
    restart: bool = False,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> dict:
    """Run (or resume, or find finished) the cross-validation of `request` in `out_dir`; returns metrics.json.

    `on_epoch(report)` is called after every epoch, after its state was saved.
    """
    run_json = request.to_json()
    mode = check_out_dir(out_dir, run_json, restart)
    if mode in ("resume", "finished") and (out_dir / METRICS_FILE).is_file():
        log(f"{out_dir}: this cross-validation is already finished")
        return json.loads((out_dir / METRICS_FILE).read_text())
    run, facts = prepare_crossval(request)  # everything is checked before anything is written
    warnings = size_warnings(run.assignment)
    for line in warnings:
        warn(line)
    if mode != "resume":
        _start_folder(out_dir, request, run_json, run.assignment)
    elif (out_dir / PROGRESS_DIR).is_dir():
        arrays, info = restore_run_state(out_dir / PROGRESS_DIR, run.snapshot()[0])
        run.restore(arrays, info)
        log(f"{out_dir}: resuming after epoch {run.epoch} of {request.config.epochs}")
    while not run.finished:
        report = run.run_epoch()
        save_kept(out_dir, run, report, request, facts["spec"])
        save_run_state(out_dir / PROGRESS_DIR, *run.snapshot())
        if on_epoch is not None:
            on_epoch(report)
    return finish(out_dir, run, request, warnings)


def finish(out_dir: Path, run: FoldRun, request: CrossvalRequest, warnings: list[str]) -> dict:
    """Score every infant out of fold, choose each fold's threshold on its inner validation, write outputs."""
    start, compiling = time.perf_counter(), run.compiled.seconds
    rule = ThresholdRule.parse(request.threshold)
    folds, assignment = [], run.assignment
    risk = np.full(len(assignment.ids), np.nan)
    threshold = np.zeros(len(assignment.ids))
    for fold in fold_risks(run, run.kept_probs()):
        k = fold["fold"]
        val_infants, val_risk = fold["val"]
        test_infants, test_risk = fold["test"]
        value = choose_fold_threshold(rule, assignment.labels[val_infants], val_risk)
        risk[test_infants], threshold[test_infants] = test_risk, value
        students = range(k * run.seeds_per_fold, (k + 1) * run.seeds_per_fold)
        folds.append({
            "fold": k, "val_fold": (k + 1) % assignment.num_folds, "num_infants": int(test_infants.size),
            "num_positive": int(assignment.labels[test_infants].sum()),
            "num_train": int(assignment.parts(k)["train"].size), "num_val": int(val_infants.size),
            "auc": metrics.roc_auc(assignment.labels[test_infants], test_risk), "threshold": value,
            "val_auc": metrics.roc_auc(assignment.labels[val_infants], val_risk),
            "best_epoch": [int(run.tracker.best_epoch[j]) for j in students],
            "status": [run.tracker.status[j] for j in students], "logit_shift": fold["shift"],
            "ids": [assignment.ids[i] for i in test_infants],
        })  # fmt: skip
    result = pooling.crossval_result(assignment.ids, assignment.labels, risk, assignment.fold, threshold,
                                     seed=request.fold_seed)  # fmt: skip
    eval_s = time.perf_counter() - start - (run.compiled.seconds - compiling)
    result.update({
        "format": pooling.FORMAT, "data": request.data, "splits": list(request.splits),
        "num_folds": assignment.num_folds,
        "fold_source": ("the dataset manifest's fold of every infant" if assignment.source == "manifest"
                        else f"drawn with stratified_folds(K={assignment.num_folds}, seed={request.fold_seed})"),
        "threshold": {"rule": request.threshold, "values": [f["threshold"] for f in folds],
                      "description": threshold_description(rule)},
        "folds": folds, "warnings": warnings, "seeds": list(request.seeds),
        "settings": {"arch": to_dict(request.arch), "hparams": to_dict(request.hparams),
                     "config": to_dict(request.config)},
        "seconds": {"compile": run.seconds["compile"] + run.compiled.seconds, "train": run.seconds["train"],
                    "eval": run.seconds["eval"] + eval_s},
        "epochs": run.epoch,
    })  # fmt: skip
    pooling.write_crossval_report(out_dir, result, request.report_format)
    return jsonable(result)


def threshold_description(rule: ThresholdRule) -> str:
    if rule.kind == "fixed":
        return f"{rule.value:g}, fixed before looking at the data, on prior-corrected risks"
    how = ("maximising Youden's J" if rule.kind == "youden"
           else f"the highest threshold with sensitivity >= {rule.value:g}")
    return f"chosen per fold on its inner validation infants only ({how}), never on its test fold"


# --------------------------------------------------------------------------------------------------------
# Inner cross-validation as a search reward

def inner_cv_results(run: FoldRun) -> list[StudentResult]:
    """One result per model of a finished FoldRun: reward = the mean over folds of its kept inner-validation
    AUC (0 when a fold failed); metrics hold the per-fold values; history is fold 0's."""
    results, per_fold = run.results(), run.seeds_per_fold
    out = []
    for m in range(per_fold):
        folds = [results[k * per_fold + m] for k in range(run.assignment.num_folds)]
        failed = any(r.status == "failed" for r in folds)
        rewards = [r.reward for r in folds]
        status = "failed" if failed else ("ok" if any(r.status == "ok" for r in folds) else folds[0].status)
        out.append(StudentResult(
            reward=0.0 if failed else float(np.mean(rewards)), status=status,
            best_epoch=int(np.median([r.best_epoch for r in folds])),
            metrics={"auc": float(np.mean(rewards)), "fold_val_auc": rewards,
                     "best_epochs": [r.best_epoch for r in folds], "num_folds": run.assignment.num_folds},
            history=folds[0].history, seconds_compile=folds[0].seconds_compile,
            seconds_train=folds[0].seconds_train, seconds_eval=folds[0].seconds_eval,
            seconds_compile_waited=folds[0].seconds_compile_waited))  # fmt: skip
    return out
