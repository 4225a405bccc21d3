"""Training students: the host loop over compiled epochs, validation, early stopping, rewards.

`train_students` trains several students of ONE architecture and batch size together (vmapped): different
seeds, learning rates, weight decays, momenta and optimizers. It follows AutoCP (reference §7):
validation every `eval_every` epochs (and every epoch in the last `eval_last` epochs of a long run), the
reward is the best validation subject-level AUC (the first epoch with the strictly highest AUC), early stop
from epoch 6 on while the best AUC is below 0.5, and a student with a non-finite loss fails with reward 0
without stopping the others.
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

from jaxcp import engine, metrics, optim
from jaxcp.augment import AugmentConfig
from jaxcp.data.dataset import Dataset
from jaxcp.data.windows import make_eval_windows, train_window_plan
from jaxcp.features import FeatureConfig
from jaxcp.skeleton import Layout
from jaxcp.space import Arch, HParams


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a student is trained and validated (defaults: AutoCP's 50-epoch NAS students)."""

    epochs: int = 50
    eval_every: int = 5
    eval_last: int = 0  # evaluate every epoch in the last `eval_last` epochs (15 for long runs)
    early_stop: bool = True
    early_stop_epoch: int = 6
    early_stop_auc: float = 0.5
    window: int = 150
    hop: int = 75
    parts_positive: int = 30
    parts_negative: int = 5
    eval_batch: int = 256
    augment: bool = True
    features: FeatureConfig = FeatureConfig()
    augmentation: AugmentConfig = AugmentConfig()

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
    plan = train_window_plan(dataset.labels, config.parts_positive, config.parts_negative)
    return engine.TrainData(
        coords=jnp.asarray(dataset.coords), labels=jnp.asarray(dataset.labels, jnp.int32), plan=plan
    )


def make_eval_data(dataset: Dataset, layout: Layout, config: TrainConfig) -> EvalData:
    windows = make_eval_windows(dataset, window=config.window, hop=config.hop)
    features = engine.featurise(jnp.asarray(windows.windows), layout, config.features)
    return EvalData(
        features=features, owner=np.asarray(windows.owner), labels=np.asarray(dataset.labels), ids=dataset.ids
    )


def evaluate_probs(probs: np.ndarray, data: EvalData, threshold: float = 0.5) -> dict:
    """Subject-level metrics (and window AUC) of one student's window probabilities."""
    return metrics.evaluate_windows(np.asarray(probs), data.owner, data.labels, threshold)


class _Compiled:
    """Ahead-of-time compiled executables, shared by the whole process and keyed by program and argument
    shapes, so that a second student of the same architecture and batch size compiles nothing.
    `seconds` is the compile time spent through this handle (0 when everything was cached)."""

    _cache: dict = {}

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, fn, *args):
        shapes = jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), args)
        key = (fn, jax.tree.structure(args), tuple(jax.tree.leaves(shapes)))
        if key not in self._cache:
            start = time.perf_counter()
            self._cache[key] = fn.lower(*args).compile()
            self.seconds += time.perf_counter() - start
        return self._cache[key](*args)


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
    """Train len(hparams) students of `arch` together; they must share the batch size."""
    sizes = {hp.batch_size for hp in hparams}
    if len(sizes) != 1 or len(seeds) != len(hparams):
        raise ValueError("students trained together need one batch size and one seed each")
    spec = program_spec(arch, layout, sizes.pop(), config)
    programs = engine.get_programs(spec)
    compiled = _Compiled()
    num = len(hparams)
    opt_hps = engine.stack_students(
        [optim.make_hparams(h.optimizer, h.lr, h.weight_decay, h.momentum) for h in hparams]
    )
    keys = jax.vmap(jax.random.split)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    init_keys, epoch_keys = keys[:, 0], keys[:, 1]

    state = compiled(programs.init, init_keys, opt_hps)
    best_state = jax.tree.map(jnp.copy, state) if keep_state else None
    tracker = _Tracker(num, config)
    seconds_train = seconds_eval = 0.0
    for epoch in range(config.epochs):
        step_keys = jax.vmap(lambda k, e=epoch: jax.random.fold_in(k, e))(epoch_keys)
        start = time.perf_counter()
        lr = jnp.float32(optim.lr_factor(epoch))
        state, epoch_metrics = compiled(programs.epoch, state, step_keys, lr, train)
        losses = np.asarray(epoch_metrics["loss"])
        seconds_train += time.perf_counter() - start
        tracker.record_loss(epoch, losses)
        if config.evaluates_at(epoch):
            start = time.perf_counter()
            probs = np.asarray(compiled(programs.predict, state, val.features))
            improved = tracker.record_eval(epoch, [evaluate_probs(p, val) for p in probs])
            if keep_state and improved.any():
                best_state = engine.where_students(jnp.asarray(improved), state, best_state)
            seconds_eval += time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(epoch, tracker.summaries())
        if tracker.all_done(epoch):
            break
    return tracker.results(
        compile_s=compiled.seconds,
        train_s=seconds_train,
        eval_s=seconds_eval,
        states=[engine.select_student(best_state, i) for i in range(num)] if keep_state else None,
    )


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

    def all_done(self, epoch: int) -> bool:
        cfg = self.config
        if cfg.early_stop and epoch + 1 >= cfg.early_stop_epoch:
            for i in range(len(self.status)):
                evaluated = self.best_epoch[i] > 0 or any("val_auc" in h for h in self.history[i])
                if self.status[i] == "running" and evaluated and self.best_auc[i] < cfg.early_stop_auc:
                    self.status[i] = "early_stopped"
        return all(s != "running" for s in self.status)

    def summaries(self) -> list[dict]:
        return [
            {"status": s, "best_auc": float(a) if np.isfinite(a) else None}
            for s, a in zip(self.status, self.best_auc, strict=True)
        ]

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
