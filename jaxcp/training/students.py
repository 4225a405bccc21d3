"""Training students: the host loop over compiled epochs, validation, early stopping, rewards.

`train_students` trains several students of ONE architecture and batch size together (vmapped): different
seeds, learning rates, weight decays, momenta and optimizers. It follows AutoCP (reference §7):
validation every `eval_every` epochs (and every epoch in the last `eval_last` epochs of a long run), early
stop from epoch 6 on while the best AUC seen is below 0.5, and a student with a non-finite loss fails with
reward 0 without stopping the others.

Which validated epoch's model is kept (its checkpoint, metrics and reward = its validation AUC) is the
setting `select`: "last" (default: the last validated epoch, which uses no validation information),
"auc" (AutoCP's rule, the highest validation AUC, with ties broken by the lower validation loss, then by the
later epoch; AutoCP kept the first epoch with the strictly highest AUC) or "loss" (the lowest validation
loss, ties: the later epoch); "auc" and "loss" consider epochs from `select_from` on.

Validation uses calibrated window probabilities (`calibration: prior`): the training windows are sampled
at other class rates than the infants' prevalence, so `prior_logit_shift` is added to every window logit.

`StudentRun` is the same loop one epoch at a time, with all its progress as explicit state
(`snapshot` / `restore`), so that a long run can be checkpointed and resumed bit for bit
(`jaxcp.training.run`, behind `jaxcp train`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.clinical import metrics
from jaxcp.core.errors import InputError
from jaxcp.data.augment import AugmentConfig
from jaxcp.data.dataset import Dataset, DataSettings
from jaxcp.data.features import FeatureConfig
from jaxcp.data.skeleton import Layout
from jaxcp.data.windows import HOP, PARTS_NEGATIVE, PARTS_POSITIVE, SAMPLINGS, WINDOW, TrainPlan, make_eval_windows
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import ModelSpec
from jaxcp.model.options import FORMULATIONS, PRECISIONS, REMATS, ModelOptions
from jaxcp.training import engine, optim
from jaxcp.training.hparams import HParams
from jaxcp.training.placement import Placement

SELECTIONS = ("last", "auc", "loss")
CALIBRATIONS = ("prior", "none")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a student is trained and validated (defaults: AutoCP's 50-epoch NAS students)."""

    epochs: int = 50
    eval_every: int = 5
    eval_last: int = 0  # evaluate every epoch in the last `eval_last` epochs (15 for long runs)
    early_stop: bool = True
    early_stop_epoch: int = 6
    early_stop_auc: float = 0.5
    window: int = WINDOW
    hop: int = HOP
    parts_positive: int = PARTS_POSITIVE
    parts_negative: int = PARTS_NEGATIVE
    eval_batch: int = 256
    augment: bool = True
    features: FeatureConfig = FeatureConfig()
    augmentation: AugmentConfig = AugmentConfig()
    select: str = "last"  # which validated epoch is kept: "last" | "auc" | "loss"
    select_from: int = 1  # 1-based first epoch that "auc" / "loss" may keep
    sampling: str = "autocp"  # training windows per epoch: "autocp" (parts per class) | "balanced"
    calibration: str = "prior"  # "prior": correct the window probabilities for the sampling | "none"
    labels: tuple[str, str] = ("no CP", "CP")  # class names (label 0, label 1), saved with the models
    formulation: str = "auto"  # how layers are computed: "auto" | "matmul" | "conv" (jaxcp.model.options)
    precision: str = "float32"  # matmul precision: "float32" | "tf32" | "bfloat16"
    remat: str = "none"  # recompute in the backward pass instead of keeping: "none" | "blocks" | "full"

    def __post_init__(self):
        for key, allowed in (("select", SELECTIONS), ("sampling", tuple(SAMPLINGS)),
                             ("calibration", CALIBRATIONS), ("formulation", FORMULATIONS),
                             ("precision", PRECISIONS), ("remat", REMATS)):
            if getattr(self, key) not in allowed:
                raise InputError(f"training setting {key}={getattr(self, key)!r}: must be one of {list(allowed)}")
        if not 1 <= self.select_from <= self.epochs:
            raise InputError(f"training setting select_from={self.select_from}: must be between 1 and "
                             f"epochs ({self.epochs})")
        labels = tuple(self.labels)
        if len(labels) != 2 or not all(isinstance(n, str) and n.strip() for n in labels) or labels[0] == labels[1]:
            raise InputError(f"training setting labels={list(labels)}: must be two different class names")
        object.__setattr__(self, "labels", labels)

    def model_spec(self, arch: Arch, layout: Layout, data: DataSettings | None = None,
                   logit_shift: float = 0.0) -> ModelSpec:
        """How a model trained with these settings is rebuilt and fed: what its checkpoint records."""
        return ModelSpec(arch, layout, self.features, self.window, self.hop, data or DataSettings(),
                         float(logit_shift))

    @property
    def model_options(self) -> ModelOptions:
        """How the students' networks are computed (no effect on parameters or, up to rounding, results)."""
        return ModelOptions(self.formulation, self.precision, self.remat)

    def evaluates_at(self, epoch: int) -> bool:
        """Whether validation runs after 0-based `epoch`."""
        return (
            (epoch + 1) % self.eval_every == 0
            or epoch == self.epochs - 1
            or epoch >= self.epochs - self.eval_last
        )


LONG_SCHEDULE = TrainConfig(epochs=300, eval_last=15, early_stop=False)


@dataclasses.dataclass
class EvalData:
    """A split's evaluation windows, featurised once and kept on device."""

    features: jax.Array  # (M, I, W, V, 4)
    owner: np.ndarray  # (M,) infant index per window
    labels: np.ndarray  # (N,) infant labels
    ids: tuple[str, ...]


@dataclasses.dataclass
class StudentResult:
    reward: float
    status: str  # "ok" | "early_stopped" | "failed"
    best_epoch: int
    metrics: dict
    history: list[dict]
    seconds_compile: float
    seconds_train: float
    seconds_eval: float
    state: Any = None  # the kept TrainState of this student (unstacked), when kept
    flags: list[dict] = dataclasses.field(default_factory=list)  # `metrics.model_flags` of the kept model
    calibration: dict = dataclasses.field(default_factory=dict)  # `calibration_of` the training data
    seconds_compile_waited: float = 0.0  # of seconds_compile, how long training was blocked on it


@dataclasses.dataclass
class EpochReport:
    """What one `StudentRun.run_epoch` did. Arrays are per student (S,)."""

    epoch: int  # 1-based number of the epoch just trained
    losses: np.ndarray
    evaluated: bool
    val_auc: np.ndarray  # NaN where not evaluated
    improved: np.ndarray  # bool: the kept model changes (a checkpoint to save)
    summaries: list[dict]


def program_spec(arch: Arch, layout: Layout, batch_size: int, config: TrainConfig) -> engine.ProgramSpec:
    return engine.ProgramSpec(
        arch=arch,
        layout=layout,
        features=config.features,
        augment=config.augmentation if config.augment else None,
        batch_size=batch_size,
        window=config.window,
        eval_batch=config.eval_batch,
        options=config.model_options,
    )


def make_train_data(dataset: Dataset, config: TrainConfig) -> engine.TrainData:
    frames = int(dataset.coords.shape[1]) if dataset.coords.ndim == 4 else 0
    if frames < config.window:
        raise InputError(f"training windows of window={config.window} frames need recordings at least that long; "
                         f"the longest has {frames}")
    plan = SAMPLINGS[config.sampling](dataset.labels, config.parts_positive, config.parts_negative)
    return engine.TrainData(
        coords=jnp.asarray(dataset.coords), labels=jnp.asarray(dataset.labels, jnp.int32), plan=plan
    )


def make_eval_data(dataset: Dataset, layout: Layout, config: TrainConfig) -> EvalData:
    try:
        windows = make_eval_windows(dataset, window=config.window, hop=config.hop)
    except InputError as error:
        raise InputError(f"{error} (setting window={config.window})") from None
    features = engine.featurise(jnp.asarray(windows.windows), layout, config.features)
    return EvalData(
        features=features, owner=np.asarray(windows.owner), labels=np.asarray(dataset.labels), ids=dataset.ids
    )


def calibration_of(labels: np.ndarray, plan: TrainPlan, method: str = "prior") -> dict:
    """How the window probabilities of a model trained on `plan` are calibrated (what meta.json records).

    labels: (N,) the training infants' labels. {"method", "logit_shift" (0.0 for "none"),
    "train_prevalence" n_pos / n, "sampled_prevalence" W_pos / W (W: the plan's windows per epoch)}.
    """
    labels = np.asarray(labels).reshape(-1)
    window_labels = labels[np.asarray(plan.infant)]
    n_pos, w_pos = int((labels == 1).sum()), int((window_labels == 1).sum())
    shift = metrics.prior_logit_shift(n_pos, labels.size - n_pos, w_pos, window_labels.size - w_pos)
    return {"method": method, "logit_shift": shift if method == "prior" else 0.0,
            "train_prevalence": n_pos / max(labels.size, 1),
            "sampled_prevalence": w_pos / max(window_labels.size, 1)}


def evaluate_probs(probs: np.ndarray, data: EvalData, threshold: float = 0.5) -> dict:
    """Subject-level metrics (and window AUC) of one student's window probabilities."""
    return metrics.evaluate_windows(np.asarray(probs), data.owner, data.labels, threshold)


def _aval(x) -> tuple:
    """(shape, dtype) of an array, a Python scalar or a `jax.ShapeDtypeStruct`."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return tuple(x.shape), jnp.dtype(x.dtype)
    return jnp.shape(x), jnp.result_type(x)


class _Compiled:
    """Calls a program of `programs` through its ahead-of-time compiled executable for `placement` (None:
    JAX's default device) and the arguments' shapes. The executables live in `programs.compiled`, so a
    second student of the same architecture and batch size on the same placement compiles nothing, and they
    are dropped with the programs when `engine.get_programs` evicts them. Threads share them: a program is
    compiled once, and a thread that needs it while another compiles it waits. `seconds` is the compile time
    spent through this handle (0 when everything was cached), `waited` the time it was blocked on
    compilation (its own or another thread's)."""

    def __init__(self, programs: engine.Programs, placement: Placement | None = None):
        self.cache, self.lock, self.placement = programs.compiled, programs.lock, placement
        self.seconds = 0.0
        self.waited = 0.0

    def executable(self, fn, *args):
        """The compiled `fn` for these arguments (arrays or `jax.ShapeDtypeStruct`s on the placement)."""
        key = (fn, self.placement, jax.tree.structure(args), tuple(_aval(x) for x in jax.tree.leaves(args)))
        with self.lock:
            entry, owner = self.cache.get(key), False
            if entry is None:
                entry, owner = self.cache.setdefault(key, concurrent.futures.Future()), True
        start = time.perf_counter()
        if owner:
            try:
                entry.set_result(fn.lower(*args).compile())
            except BaseException as error:
                with self.lock:
                    self.cache.pop(key, None)
                entry.set_exception(error)
                raise
            self.seconds += time.perf_counter() - start
            self.waited += time.perf_counter() - start
        elif not entry.done():
            concurrent.futures.wait([entry])
            self.waited += time.perf_counter() - start
        return entry.result()

    def __call__(self, fn, *args):
        return self.executable(fn, *args)(*args)


def _abstract(tree):
    """The shapes, dtypes and placement of a pytree of arrays, for compiling ahead of time."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


class StudentRun:
    """The training loop of `train_students`, one epoch per `run_epoch()` call.

    Everything the loop depends on is in `snapshot()`: the stacked TrainState (and best states when
    kept), the PRNG keys, the epoch counter and the host-side tracker. `restore(snapshot)` on a run built
    with the same arguments continues exactly where the snapshot was taken (bit-identical on one device).
    """

    def __init__(
        self,
        arch: Arch,
        hparams: Sequence[HParams],
        seeds: Sequence[int],
        train: engine.TrainData,
        val: EvalData,
        layout: Layout,
        config: TrainConfig = TrainConfig(),
        *,
        keep_state: bool = False,
        placement: Placement | None = None,
    ):
        sizes = {hp.batch_size for hp in hparams}
        if len(sizes) != 1 or len(seeds) != len(hparams):
            raise ValueError("students trained together need one batch size and one seed each")
        batch_size = next(iter(sizes))
        if len(train.plan.infant) < batch_size:
            raise InputError(
                f"an epoch has {len(train.plan.infant)} training windows, fewer than a batch of "
                f"{batch_size}; raise parts_positive / parts_negative or use more infants"
            )
        self.placement = placement
        self.config, self.train, self.val = config, self._replicated(train), val
        if placement is not None:
            self.val = dataclasses.replace(val, features=placement.put_replicated(val.features))
        self.seeds = tuple(int(s) for s in seeds)
        self.programs = engine.get_programs(program_spec(arch, layout, batch_size, config))
        self.compiled = _Compiled(self.programs, placement)
        opt_hps = engine.stack_students(
            [optim.make_hparams(h.optimizer, h.lr, h.weight_decay, h.momentum) for h in hparams]
        )
        keys = jax.vmap(jax.random.split)(jnp.stack([jax.random.PRNGKey(s) for s in self.seeds]))
        self.epoch_keys = self._per_student(keys[:, 1])
        # the state is put back on the student layout after every program, so that every call of a program
        # sees the same input shardings (XLA may choose other output shardings on a mesh)
        self.state = self._per_student(self.compiled(self.programs.init, *self._per_student((keys[:, 0], opt_hps))))
        self.best_state = jax.tree.map(jnp.copy, self.state) if keep_state else None
        self.tracker = _Tracker(len(self.seeds), config)
        self.calibration = calibration_of(np.asarray(train.labels), train.plan, config.calibration)
        self.epoch = 0  # epochs done
        self.seconds = {"compile": 0.0, "train": 0.0, "eval": 0.0}

    def _per_student(self, tree):
        """`tree` (leading axis: students) on the run's placement (unchanged without one)."""
        return tree if self.placement is None else self.placement.put_students(tree)

    def _replicated(self, tree):
        """`tree` (shared by the students) on the run's placement (unchanged without one)."""
        return tree if self.placement is None else self.placement.put_replicated(tree)

    @property
    def num_students(self) -> int:
        return len(self.seeds)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs or self.tracker.stopped()

    def run_epoch(self) -> EpochReport:
        """Train one epoch (one compiled call), validate when the schedule says so, update the tracker."""
        epoch = self.epoch
        step_keys = self._per_student(jax.vmap(lambda k: jax.random.fold_in(k, epoch))(self.epoch_keys))
        start, compiling = time.perf_counter(), self.compiled.waited
        lr = self._replicated(jnp.float32(optim.lr_factor(epoch)))
        self.state, epoch_metrics = self.train_epoch(step_keys, lr)
        self.state = self._per_student(self.state)
        losses = np.asarray(epoch_metrics["loss"])
        # time blocked on compilation is reported on its own (self.compiled), not as training or validation
        self.seconds["train"] += time.perf_counter() - start - (self.compiled.waited - compiling)
        self.tracker.record_loss(epoch, losses)
        val_auc = np.full(self.num_students, np.nan)
        improved = np.zeros(self.num_students, bool)
        evaluated = self.config.evaluates_at(epoch)
        if evaluated:
            start, compiling = time.perf_counter(), self.compiled.waited
            probs = np.asarray(self.compiled(self.programs.predict, self.state, self.val.features))
            results = self.validation_results(probs)
            val_auc = np.array([r["auc"] for r in results])
            improved = self.tracker.record_eval(epoch, results)
            if self.best_state is not None and improved.any():
                self.best_state = self._per_student(
                    engine.where_students(jnp.asarray(improved), self.state, self.best_state))
            self.seconds["eval"] += time.perf_counter() - start - (self.compiled.waited - compiling)
        self.tracker.check_early_stop(epoch)
        self.epoch += 1
        return EpochReport(epoch + 1, losses, evaluated, val_auc, improved, self.tracker.summaries())

    def train_epoch(self, step_keys: jax.Array, lr: jax.Array) -> tuple[engine.TrainState, dict]:
        """One compiled epoch of every student: (new stacked state, per-student metrics)."""
        fn, data = self.epoch_program()
        return self.compiled(fn, self.state, step_keys, lr, *data)

    def epoch_program(self) -> tuple[Any, tuple]:
        """The epoch program and the data arguments it takes after (state, step keys, lr factor)."""
        return self.programs.epoch, (self.train,)

    def compile_ahead(self) -> None:
        """Compile the epoch and prediction programs now (e.g. in a background thread), so that the first
        epoch and validation find them compiled."""
        state = _abstract(self.state)
        fn, data = self.epoch_program()
        lr = self._replicated(jnp.float32(optim.lr_factor(0)))
        self.compiled.executable(fn, state, _abstract(self.epoch_keys), lr, *data)
        self.compiled.executable(self.programs.predict, state, self.val.features)

    def validation_results(self, probs: np.ndarray) -> list[dict]:
        """(S, M) raw window P(CP) of the validation windows -> one metrics dict per student (`evaluate_probs`
        of the calibrated probabilities)."""
        shift = self.calibration["logit_shift"]
        return [evaluate_probs(metrics.apply_logit_shift(p, shift), self.val) for p in probs]

    def flags(self, index: int) -> list[dict]:
        """`metrics.model_flags` of the model kept for student `index` ([] when nothing is kept)."""
        return flags_of(self.tracker.best_metrics[index], self.val.labels)

    def model_meta(self, index: int) -> dict:
        """What a saved model of student `index` records besides its weights and spec (meta.json keys)."""
        return {"best_epoch": int(self.tracker.best_epoch[index]), "flags": self.flags(index),
                "calibration": self.calibration, "labels": list(self.config.labels)}

    def student_state(self, index: int) -> engine.TrainState:
        """The current (not the best) TrainState of one student."""
        return engine.select_student(self.state, index)

    def results(self) -> list[StudentResult]:
        keep = self.best_state is not None
        results = self.tracker.results(
            compile_s=self.seconds["compile"] + self.compiled.seconds,
            train_s=self.seconds["train"],
            eval_s=self.seconds["eval"],
            states=[engine.select_student(self.best_state, i) for i in range(self.num_students)]
            if keep
            else None,
        )
        for i, result in enumerate(results):
            result.flags, result.calibration = self.flags(i), dict(self.calibration)
            result.seconds_compile_waited = self.compiled.waited
        return results

    def snapshot(self) -> tuple[dict, dict]:
        """(arrays, info): a pytree of device arrays and a JSON-able dict; together the whole loop state."""
        arrays = {"state": self.state, "epoch_keys": self.epoch_keys}
        if self.best_state is not None:
            arrays["best_state"] = self.best_state
        seconds = dict(self.seconds, compile=self.seconds["compile"] + self.compiled.seconds)
        info = {"epoch": self.epoch, "seeds": list(self.seeds), "tracker": self.tracker.to_dict(),
                "seconds": seconds}  # fmt: skip
        return arrays, info

    def restore(self, arrays: dict, info: dict) -> None:
        """Continue from a `snapshot()` of a run with the same arguments."""
        if list(info["seeds"]) != list(self.seeds) or ("best_state" in arrays) != (
            self.best_state is not None
        ):
            raise ValueError("snapshot of a different run (seeds or kept states differ)")
        self.state = self._per_student(jax.tree.map(jnp.asarray, arrays["state"]))
        self.epoch_keys = self._per_student(jnp.asarray(arrays["epoch_keys"]))
        if self.best_state is not None:
            self.best_state = self._per_student(jax.tree.map(jnp.asarray, arrays["best_state"]))
        self.epoch = int(info["epoch"])
        self.tracker = _Tracker.from_dict(info["tracker"], self.config)
        self.seconds = {k: float(v) for k, v in info["seconds"].items()}
        self.compiled.seconds = self.compiled.waited = 0.0


def train_students(
    arch: Arch,
    hparams: Sequence[HParams],
    seeds: Sequence[int],
    train: engine.TrainData,
    val: EvalData,
    layout: Layout,
    config: TrainConfig = TrainConfig(),
    *,
    keep_state: bool = False,
    on_epoch: Callable[[int, list[dict]], None] | None = None,
    placement: Placement | None = None,
) -> list[StudentResult]:
    """Train len(hparams) students of `arch` together; they must share the batch size.

    `on_epoch(epoch, summaries)` is called after every epoch (0-based epoch, one dict per student);
    `placement`: where the run's arrays live (`StudentRun`; None: JAX's default device).
    """
    run = StudentRun(arch, hparams, seeds, train, val, layout, config, keep_state=keep_state, placement=placement)
    while not run.finished:
        report = run.run_epoch()
        if on_epoch is not None:
            on_epoch(report.epoch - 1, report.summaries)
    return run.results()


def flags_of(kept_metrics: dict, val_labels: np.ndarray) -> list[dict]:
    """`metrics.model_flags` of a kept model's validation metrics; [] when nothing is kept."""
    if not kept_metrics:
        return []
    val_labels = np.asarray(val_labels)
    num_positive = int((val_labels == 1).sum())
    return metrics.model_flags(kept_metrics, num_positive, val_labels.size - num_positive)


def is_better(select: str, auc: float, loss: float, kept_auc: float, kept_loss: float) -> bool:
    """Whether an evaluation (auc, loss) replaces the kept one under rule `select` ("auc" or "loss").

    Nothing kept yet: kept_auc = -inf, kept_loss = +inf. A NaN loss counts as +inf. "auc": a defined AUC
    that is higher, or equal with a loss no higher (so equal both: the later epoch). "loss": a loss no
    higher (ties: the later epoch).
    """
    loss = math.inf if math.isnan(loss) else loss
    if select == "loss":
        return loss <= kept_loss
    if not math.isfinite(auc):
        return False
    return auc > kept_auc or (auc == kept_auc and loss <= kept_loss)


class _Tracker:
    """Per-student bookkeeping on the host: the kept evaluation (`config.select`), the best AUC seen (for
    the early stop), failure. `best_*` describe the kept evaluation."""

    def __init__(self, num: int, config: TrainConfig):
        self.config = config
        self.best_auc = np.full(num, -np.inf)
        self.best_loss = np.full(num, np.inf)
        self.best_epoch = np.full(num, -1)
        self.best_metrics: list[dict] = [{} for _ in range(num)]
        self.max_auc = np.full(num, -np.inf)  # the highest validation AUC seen, kept or not
        self.status = ["running"] * num
        self.history: list[list[dict]] = [[] for _ in range(num)]

    def record_loss(self, epoch: int, losses: np.ndarray) -> None:
        for i, loss in enumerate(losses):
            if self.status[i] != "running":
                continue
            self.history[i].append({"epoch": epoch + 1, "loss": float(loss)})
            if not math.isfinite(float(loss)):
                self.status[i] = "failed"

    def record_eval(self, epoch: int, results: list[dict]) -> np.ndarray:
        """Record 0-based `epoch`'s validation metrics per student; returns (S,) bool: the kept model changed."""
        improved = np.zeros(len(results), bool)
        for i, result in enumerate(results):
            if self.status[i] != "running":
                continue
            auc = float(result["auc"])
            loss = math.nan if result.get("loss") is None else float(result["loss"])
            self.history[i][-1].update(val_auc=auc, val_accuracy=result.get("accuracy"),
                                      val_loss=None if math.isnan(loss) else loss)
            if math.isfinite(auc):
                self.max_auc[i] = max(self.max_auc[i], auc)
            if self._keeps(i, epoch, auc, loss):
                self.best_auc[i], self.best_epoch[i] = auc, epoch + 1
                self.best_loss[i] = math.inf if math.isnan(loss) else loss
                self.best_metrics[i] = result
                improved[i] = True
        return improved

    def _keeps(self, i: int, epoch: int, auc: float, loss: float) -> bool:
        select = self.config.select
        if select == "last":
            return True
        if epoch + 1 < self.config.select_from:
            return False
        return is_better(select, auc, loss, float(self.best_auc[i]), float(self.best_loss[i]))

    def check_early_stop(self, epoch: int) -> None:
        """From 1-based epoch `early_stop_epoch` on, stop a validated student whose best AUC seen (kept or
        not) is too low."""
        cfg = self.config
        if not cfg.early_stop or epoch + 1 < cfg.early_stop_epoch:
            return
        for i in range(len(self.status)):
            evaluated = any("val_auc" in h for h in self.history[i])
            if self.status[i] == "running" and evaluated and self.max_auc[i] < cfg.early_stop_auc:
                self.status[i] = "early_stopped"

    def stopped(self) -> bool:
        return all(s != "running" for s in self.status)

    def summaries(self) -> list[dict]:
        """Per student: status, `best_auc` (the kept evaluation's AUC, the reward so far) and `max_auc`."""
        return [
            {"status": s, "best_auc": _finite_or_none(a), "max_auc": _finite_or_none(m)}
            for s, a, m in zip(self.status, self.best_auc, self.max_auc, strict=True)
        ]

    def to_dict(self) -> dict:
        """JSON-able state (NaN allowed); `from_dict` reads it back exactly."""
        return {
            "best_auc": [_finite_or_none(a) for a in self.best_auc],
            "best_loss": [_finite_or_none(a) for a in self.best_loss],
            "best_epoch": [int(e) for e in self.best_epoch],
            "best_metrics": self.best_metrics,
            "max_auc": [_finite_or_none(a) for a in self.max_auc],
            "status": list(self.status),
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict, config: TrainConfig) -> _Tracker:
        tracker = cls(len(data["status"]), config)
        tracker.best_auc = _array_of(data["best_auc"], -np.inf)
        tracker.best_loss = _array_of(data.get("best_loss", [None] * len(data["status"])), np.inf)
        tracker.best_epoch = np.array(data["best_epoch"], np.int64)
        tracker.best_metrics = [dict(m) for m in data["best_metrics"]]
        tracker.max_auc = _array_of(data.get("max_auc", data["best_auc"]), -np.inf)
        tracker.status = list(data["status"])
        tracker.history = [[dict(h) for h in hs] for hs in data["history"]]
        return tracker

    def reward(self, i: int) -> float:
        """The kept evaluation's AUC; the best AUC seen when nothing was kept; 0 if failed or undefined."""
        auc = self.best_auc[i] if self.best_epoch[i] >= 0 else self.max_auc[i]
        return 0.0 if self.status[i] == "failed" or not np.isfinite(auc) else float(auc)

    def results(self, *, compile_s, train_s, eval_s, states) -> list[StudentResult]:
        out = []
        for i, status in enumerate(self.status):
            failed = status == "failed"
            out.append(
                StudentResult(
                    reward=self.reward(i),
                    status="ok" if status == "running" else status,
                    best_epoch=int(self.best_epoch[i]),
                    metrics=self.best_metrics[i],
                    history=self.history[i],
                    seconds_compile=compile_s,
                    seconds_train=train_s,
                    seconds_eval=eval_s,
                    state=None if states is None or failed else states[i],
                )
            )
        return out


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _array_of(values: list, missing: float) -> np.ndarray:
    return np.array([missing if v is None else v for v in values], np.float64)
