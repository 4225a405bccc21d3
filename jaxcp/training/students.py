"""Training students: the host loop over compiled epochs, validation, early stopping, rewards.

`train_students` trains several students of ONE architecture and batch size together (vmapped): different
seeds, learning rates, weight decays, momenta and optimizers. It follows AutoCP (reference §7):
validation every `eval_every` epochs (and every epoch in the last `eval_last` epochs of a long run), the
reward is the best validation subject-level AUC (the first epoch with the strictly highest AUC), early stop
from epoch 6 on while the best AUC is below 0.5, and a student with a non-finite loss fails with reward 0
without stopping the others.

`StudentRun` is the same loop one epoch at a time, with all its progress as explicit state
(`snapshot` / `restore`), so that a long run can be checkpointed and resumed bit for bit
(`jaxcp.training.run`, behind `jaxcp train`).
"""

from __future__ import annotations

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
from jaxcp.data.windows import HOP, PARTS_NEGATIVE, PARTS_POSITIVE, WINDOW, make_eval_windows, train_window_plan
from jaxcp.model.arch import Arch
from jaxcp.model.checkpoint import ModelSpec
from jaxcp.training import engine, optim
from jaxcp.training.hparams import HParams


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

    def model_spec(self, arch: Arch, layout: Layout, data: DataSettings | None = None) -> ModelSpec:
        """How a model trained with these settings is rebuilt and fed: what its checkpoint records."""
        return ModelSpec(arch, layout, self.features, self.window, self.hop, data or DataSettings())

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
    state: Any = None  # best-validation TrainState of this student (unstacked), when kept


@dataclasses.dataclass
class EpochReport:
    """What one `StudentRun.run_epoch` did. Arrays are per student (S,)."""

    epoch: int  # 1-based number of the epoch just trained
    losses: np.ndarray
    evaluated: bool
    val_auc: np.ndarray  # NaN where not evaluated
    improved: np.ndarray  # bool: a new best validation AUC (the best checkpoint changes)
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
    )


def make_train_data(dataset: Dataset, config: TrainConfig) -> engine.TrainData:
    frames = int(dataset.coords.shape[1]) if dataset.coords.ndim == 4 else 0
    if frames < config.window:
        raise InputError(f"training windows of window={config.window} frames need recordings at least that long; "
                         f"the longest has {frames}")
    plan = train_window_plan(dataset.labels, config.parts_positive, config.parts_negative)
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


def evaluate_probs(probs: np.ndarray, data: EvalData, threshold: float = 0.5) -> dict:
    """Subject-level metrics (and window AUC) of one student's window probabilities."""
    return metrics.evaluate_windows(np.asarray(probs), data.owner, data.labels, threshold)


class _Compiled:
    """Calls a program of `programs` through its ahead-of-time compiled executable for the arguments'
    shapes. The executables live in `programs.compiled`, so a second student of the same architecture and
    batch size compiles nothing, and they are dropped with the programs when `engine.get_programs` evicts
    them. `seconds` is the compile time spent through this handle (0 when everything was cached)."""

    def __init__(self, programs: engine.Programs):
        self.cache = programs.compiled
        self.seconds = 0.0

    def __call__(self, fn, *args):
        shapes = jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), args)
        key = (fn, jax.tree.structure(args), tuple(jax.tree.leaves(shapes)))
        if key not in self.cache:
            start = time.perf_counter()
            self.cache[key] = fn.lower(*args).compile()
            self.seconds += time.perf_counter() - start
        return self.cache[key](*args)


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
        self.config, self.train, self.val = config, train, val
        self.seeds = tuple(int(s) for s in seeds)
        self.programs = engine.get_programs(program_spec(arch, layout, batch_size, config))
        self.compiled = _Compiled(self.programs)
        opt_hps = engine.stack_students(
            [optim.make_hparams(h.optimizer, h.lr, h.weight_decay, h.momentum) for h in hparams]
        )
        keys = jax.vmap(jax.random.split)(jnp.stack([jax.random.PRNGKey(s) for s in self.seeds]))
        self.epoch_keys = keys[:, 1]
        self.state = self.compiled(self.programs.init, keys[:, 0], opt_hps)
        self.best_state = jax.tree.map(jnp.copy, self.state) if keep_state else None
        self.tracker = _Tracker(len(self.seeds), config)
        self.epoch = 0  # epochs done
        self.seconds = {"compile": 0.0, "train": 0.0, "eval": 0.0}

    @property
    def num_students(self) -> int:
        return len(self.seeds)

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs or self.tracker.stopped()

    def run_epoch(self) -> EpochReport:
        """Train one epoch (one compiled call), validate when the schedule says so, update the tracker."""
        epoch = self.epoch
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, epoch))(self.epoch_keys)
        start, compiling = time.perf_counter(), self.compiled.seconds
        lr = jnp.float32(optim.lr_factor(epoch))
        self.state, epoch_metrics = self.compiled(self.programs.epoch, self.state, step_keys, lr, self.train)
        losses = np.asarray(epoch_metrics["loss"])
        # compile time is reported on its own (self.compiled.seconds), not as training or validation
        self.seconds["train"] += time.perf_counter() - start - (self.compiled.seconds - compiling)
        self.tracker.record_loss(epoch, losses)
        val_auc = np.full(self.num_students, np.nan)
        improved = np.zeros(self.num_students, bool)
        evaluated = self.config.evaluates_at(epoch)
        if evaluated:
            start, compiling = time.perf_counter(), self.compiled.seconds
            probs = np.asarray(self.compiled(self.programs.predict, self.state, self.val.features))
            results = [evaluate_probs(p, self.val) for p in probs]
            val_auc = np.array([r["auc"] for r in results])
            improved = self.tracker.record_eval(epoch, results)
            if self.best_state is not None and improved.any():
                self.best_state = engine.where_students(jnp.asarray(improved), self.state, self.best_state)
            self.seconds["eval"] += time.perf_counter() - start - (self.compiled.seconds - compiling)
        self.tracker.check_early_stop(epoch)
        self.epoch += 1
        return EpochReport(epoch + 1, losses, evaluated, val_auc, improved, self.tracker.summaries())

    def student_state(self, index: int) -> engine.TrainState:
        """The current (not the best) TrainState of one student."""
        return engine.select_student(self.state, index)

    def results(self) -> list[StudentResult]:
        keep = self.best_state is not None
        return self.tracker.results(
            compile_s=self.seconds["compile"] + self.compiled.seconds,
            train_s=self.seconds["train"],
            eval_s=self.seconds["eval"],
            states=[engine.select_student(self.best_state, i) for i in range(self.num_students)]
            if keep
            else None,
        )

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
        self.state = jax.tree.map(jnp.asarray, arrays["state"])
        self.epoch_keys = jnp.asarray(arrays["epoch_keys"])
        if self.best_state is not None:
            self.best_state = jax.tree.map(jnp.asarray, arrays["best_state"])
        self.epoch = int(info["epoch"])
        self.tracker = _Tracker.from_dict(info["tracker"], self.config)
        self.seconds = {k: float(v) for k, v in info["seconds"].items()}
        self.compiled.seconds = 0.0


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
) -> list[StudentResult]:
    """Train len(hparams) students of `arch` together; they must share the batch size.

    `on_epoch(epoch, summaries)` is called after every epoch (0-based epoch, one dict per student).
    """
    run = StudentRun(arch, hparams, seeds, train, val, layout, config, keep_state=keep_state)
    while not run.finished:
        report = run.run_epoch()
        if on_epoch is not None:
            on_epoch(report.epoch - 1, report.summaries)
    return run.results()


class _Tracker:
    """Per-student bookkeeping on the host: best AUC, early stop, failure."""

    def __init__(self, num: int, config: TrainConfig):
        self.config = config
        self.best_auc = np.full(num, -np.inf)
        self.best_epoch = np.full(num, -1)
        self.best_metrics: list[dict] = [{} for _ in range(num)]
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
        improved = np.zeros(len(results), bool)
        for i, result in enumerate(results):
            if self.status[i] != "running":
                continue
            auc = result["auc"]
            self.history[i][-1].update(val_auc=auc, val_accuracy=result.get("accuracy"))
            if np.isfinite(auc) and auc > self.best_auc[i]:
                self.best_auc[i], self.best_epoch[i] = auc, epoch + 1
                self.best_metrics[i] = result
                improved[i] = True
        return improved

    def check_early_stop(self, epoch: int) -> None:
        """From 1-based epoch `early_stop_epoch` on, stop a validated student whose best AUC is too low."""
        cfg = self.config
        if not cfg.early_stop or epoch + 1 < cfg.early_stop_epoch:
            return
        for i in range(len(self.status)):
            evaluated = any("val_auc" in h for h in self.history[i])
            if self.status[i] == "running" and evaluated and self.best_auc[i] < cfg.early_stop_auc:
                self.status[i] = "early_stopped"

    def stopped(self) -> bool:
        return all(s != "running" for s in self.status)

    def summaries(self) -> list[dict]:
        return [
            {"status": s, "best_auc": float(a) if np.isfinite(a) else None}
            for s, a in zip(self.status, self.best_auc, strict=True)
        ]

    def to_dict(self) -> dict:
        """JSON-able state (NaN allowed); `from_dict` reads it back exactly."""
        return {
            "best_auc": [float(a) if np.isfinite(a) else None for a in self.best_auc],
            "best_epoch": [int(e) for e in self.best_epoch],
            "best_metrics": self.best_metrics,
            "status": list(self.status),
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: dict, config: TrainConfig) -> _Tracker:
        tracker = cls(len(data["status"]), config)
        tracker.best_auc = np.array([-np.inf if a is None else a for a in data["best_auc"]], np.float64)
        tracker.best_epoch = np.array(data["best_epoch"], np.int64)
        tracker.best_metrics = [dict(m) for m in data["best_metrics"]]
        tracker.status = list(data["status"])
        tracker.history = [[dict(h) for h in hs] for hs in data["history"]]
        return tracker

    def results(self, *, compile_s, train_s, eval_s, states) -> list[StudentResult]:
        out = []
        for i, status in enumerate(self.status):
            failed = status == "failed"
            reward = 0.0 if failed or not np.isfinite(self.best_auc[i]) else float(self.best_auc[i])
            out.append(
                StudentResult(
                    reward=reward,
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
