"""Compiled student programs: initialise, train one epoch, predict; all vmapped over students.

For one architecture and batch size, `get_programs(spec)` returns three jitted functions whose leading
axis is the student axis S (several seeds / learning rates / optimizers of ONE architecture at once):

- `init(keys (S,), hparams (S,)) -> TrainState (S, ...)`
- `epoch(state, keys (S,), lr_factor, train) -> (state, metrics (S,))`: samples AutoCP's oversampled
  training windows, augments, featurises and takes one optimizer step per batch inside a `lax.scan`,
  all on device: one call per epoch, no host round trip per batch.
- `predict(state, features) -> (S, M)` window probabilities of CP for precomputed evaluation features.
- `fold_epoch(state, keys (S,), lr_factor, train, plans)`: `epoch` with a training plan per student
  (`FoldPlan`, padded to a common length), for cross-validation folds trained as one program.

Programs are cached per `ProgramSpec` (architecture, layout, features, augmentation, batch size, window, model
options);
`jax.jit` then compiles once per data shape. Nothing here touches files or clocks.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxcp.core.batching import chunked_map
from jaxcp.data.augment import AugmentConfig, augment
from jaxcp.data.features import FeatureConfig, compute_features
from jaxcp.data.skeleton import Layout
from jaxcp.data.windows import WINDOW, TrainPlan, cut_windows, sample_train_windows, train_window_bounds
from jaxcp.model import Arch, create_model, input_shape
from jaxcp.model.options import ModelOptions
from jaxcp.training import optim

PROGRAM_CACHE_SIZE = 16  # architectures whose programs (and compiled executables) stay in memory


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Everything static about a student's compiled programs (the compile-cache key)."""

    arch: Arch
    layout: Layout
    features: FeatureConfig = FeatureConfig()
    augment: AugmentConfig | None = AugmentConfig()
    batch_size: int = 32
    window: int = WINDOW
    eval_batch: int = 256
    options: ModelOptions = ModelOptions()  # formulation, precision, remat of the network


@flax.struct.dataclass
class TrainState:
    params: Any
    batch_stats: Any
    opt_state: optim.StudentOptState
    base_lr: jax.Array
    step: jax.Array

    @property
    def variables(self) -> dict:
        """The network's variables, as `model.apply` takes them."""
        return {"params": self.params, "batch_stats": self.batch_stats}


@flax.struct.dataclass
class TrainData:
    """Training split on device: tiled coordinates, labels and the static oversampling plan."""

    coords: jax.Array  # (N, T_max, V, 2)
    labels: jax.Array  # (N,) int32
    plan: Any  # from jaxcp.data.windows.train_window_plan


@dataclasses.dataclass(frozen=True)
class Programs:
    """The jitted programs of one spec, and their ahead-of-time compiled executables by device and argument
    shapes (filled by the training loop, from any thread under `lock`; evicted with the programs)."""

    init: Any
    epoch: Any
    predict: Any
    model: nn.Module
    fold_epoch: Any = None
    compiled: dict = dataclasses.field(default_factory=dict, compare=False)
    lock: Any = dataclasses.field(default_factory=threading.Lock, compare=False)


def _init_one(spec: ProgramSpec, model: nn.Module, key, hparams: optim.StudentHParams) -> TrainState:
    x = jnp.zeros(input_shape(spec.layout, spec.features, spec.window, batch=2), jnp.float32)
    variables = model.init({"params": key, "dropout": key}, x, train=False)
    params = variables["params"]
    tx = optim.student_optimizer()
    opt_state = optim.with_hparams(tx.init(params), hparams)
    return TrainState(
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=opt_state,
        base_lr=hparams.lr,
        step=jnp.zeros([], jnp.int32),
    )


def _loss_fn(model, params, batch_stats, x, y, key):
    logits, updates = model.apply(
        {"params": params, "batch_stats": batch_stats},
        x,
        train=True,
        mutable=["batch_stats"],
        rngs={"dropout": key},
    )
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    correct = (jnp.argmax(logits, -1) == y).mean()
    return loss, (updates["batch_stats"], correct)


def _epoch_one(spec: ProgramSpec, model: nn.Module, state: TrainState, key, lr_factor, data: TrainData):
    """One epoch for one student: sample, batch, and scan over (augment, featurise, step)."""
    k_sample, k_steps = jax.random.split(key)
    windows, infant = sample_train_windows(k_sample, data.coords, data.plan, window=spec.window)
    state, losses, correct, _ = _scan_batches(spec, model, state, windows, data.labels[infant], k_steps, lr_factor)
    return state, {"loss": losses.mean(), "accuracy": correct.mean(), "max_loss": losses.max()}


def _scan_batches(spec: ProgramSpec, model: nn.Module, state: TrainState, windows, labels, key, lr_factor,
                  num_valid=None):
    """Batch one epoch's (M, W, V, 2) windows (the last incomplete batch dropped) and scan over (augment,
    featurise, step) at learning rate base_lr * lr_factor. With `num_valid`, a step whose batch reaches past
    the first `num_valid` windows leaves the state unchanged. Returns (state, losses, correct, valid) per batch."""
    tx = optim.student_optimizer()
    num_batches = windows.shape[0] // spec.batch_size
    used = num_batches * spec.batch_size
    windows = windows[:used].reshape(num_batches, spec.batch_size, *windows.shape[1:])
    labels = labels[:used].reshape(num_batches, spec.batch_size)
    step_keys = jax.random.split(key, num_batches)
    hp = state.opt_state.hparams._replace(lr=state.base_lr * lr_factor)
    state = state.replace(opt_state=optim.with_hparams(state.opt_state, hp))
    masked = num_valid is not None
    valid = (jnp.arange(num_batches) + 1) * spec.batch_size <= num_valid if masked else jnp.ones(num_batches, bool)

    def step(state: TrainState, xs):
        batch, y, k, ok = xs
        k_aug, k_drop = jax.random.split(k)
        if spec.augment is not None:
            batch = augment(k_aug, batch, spec.augment)
        x = compute_features(batch, spec.layout, spec.features)
        grad_fn = jax.value_and_grad(functools.partial(_loss_fn, model), has_aux=True)
        (loss, (batch_stats, correct)), grads = grad_fn(state.params, state.batch_stats, x, y, k_drop)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state, step=state.step + 1)
        if masked:
            new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
        return new, (loss, correct)

    state, (losses, correct) = jax.lax.scan(step, state, (windows, labels, step_keys, valid))
    return state, losses, correct, valid


@flax.struct.dataclass
class FoldPlan:
    """Per-student training plans padded to a common length M_max: (S, M_max) int32 arrays as in
    `jaxcp.data.windows.TrainPlan` (indices into the shared `TrainData.coords`), and (S,) `num_valid`:
    the first `num_valid` entries of a student's plan are its own windows, the rest is padding."""

    infant: jax.Array
    part: jax.Array
    num_parts: jax.Array
    num_valid: jax.Array


def _fold_epoch_one(spec: ProgramSpec, model: nn.Module, state: TrainState, key, lr_factor, data: TrainData,
                    plan: FoldPlan):
    """One epoch for one student on its own plan (M_max,) of which the first `num_valid` entries count.

    The windows are drawn and shuffled as in `_epoch_one`, then stably reordered so that the valid ones come
    first; a scan step whose batch is not entirely valid leaves the state unchanged. With every entry valid
    this is `_epoch_one` exactly (same draws, same order, same steps).
    """
    k_sample, k_steps = jax.random.split(key)
    start_key, perm_key = jax.random.split(k_sample)
    window_plan = TrainPlan(plan.infant, plan.part, plan.num_parts)
    low, high = train_window_bounds(data.coords.shape[1], window_plan, spec.window)
    starts = jax.random.randint(start_key, low.shape, low, high + 1)
    size = plan.infant.shape[0]
    order = jax.random.permutation(perm_key, size)
    order = order[jnp.argsort(order >= plan.num_valid, stable=True)]  # valid entries first, still shuffled
    infant, starts = plan.infant[order], starts[order]
    windows = cut_windows(data.coords, infant, starts, spec.window)
    state, losses, correct, valid = _scan_batches(spec, model, state, windows, data.labels[infant], k_steps,
                                                  lr_factor, plan.num_valid)
    count = jnp.maximum(valid.sum(), 1)
    return state, {"loss": jnp.where(valid, losses, 0.0).sum() / count,
                   "accuracy": jnp.where(valid, correct, 0.0).sum() / count,
                   "max_loss": jnp.where(valid, losses, -jnp.inf).max()}  # fmt: skip


def _predict_one(spec: ProgramSpec, model: nn.Module, state: TrainState, features):
    """(M, I, W, V, 4) features -> (M,) P(CP), in chunks of `spec.eval_batch`."""

    def run(x):
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
        return jax.nn.softmax(logits, axis=-1)[:, 1]

    return chunked_map(run, features, spec.eval_batch)


def make_programs(spec: ProgramSpec) -> Programs:
    """The jitted, student-vmapped programs of one spec (not cached: use `get_programs`)."""
    model = create_model(spec.arch, spec.layout, spec.features, options=spec.options)
    init = jax.jit(over_students(functools.partial(_init_one, spec, model), (0, 0)))
    epoch = jax.jit(over_students(functools.partial(_epoch_one, spec, model), (0, 0, None, None)),
                    donate_argnums=(0,))
    predict = jax.jit(over_students(functools.partial(_predict_one, spec, model), (0, None)))
    fold_epoch = jax.jit(over_students(functools.partial(_fold_epoch_one, spec, model), (0, 0, None, None, 0)),
                         donate_argnums=(0,))
    return Programs(init=init, epoch=epoch, predict=predict, model=model, fold_epoch=fold_epoch)


def over_students(fn, in_axes: tuple):
    """`jax.vmap(fn, in_axes)` over the leading student axis; with ONE student, `fn` itself on the arguments
    without that axis, the result given it back (decided when traced: the axis size is static).

    A vmap over an axis of size 1 is the same computation, but XLA:CPU compiles it worse: every batched matrix
    product of the network gets one more batch dimension (the input streams are already vmapped), and the
    best architecture's forward + backward ran slower (measured by hand, 2-core CPU; not a committed figure).
    """
    mapped = jax.vmap(fn, in_axes=in_axes)

    def run(*args):
        pairs = list(zip(args, in_axes, strict=True))
        sizes = {leaf.shape[0] for arg, axis in pairs if axis == 0 for leaf in jax.tree.leaves(arg)}
        if sizes != {1}:
            return mapped(*args)
        alone = [jax.tree.map(lambda a: a[0], arg) if axis == 0 else arg for arg, axis in pairs]
        return jax.tree.map(lambda a: a[None], fn(*alone))

    # the program keeps the function's name (jit__epoch_one, ...: compile-cache entries and profiles name it)
    run.__name__ = run.__qualname__ = getattr(fn, "__name__", None) or fn.func.__name__
    return run


# one trace per spec and data shape; a spec dropped from the cache takes its compiled executables with it
_cached_programs = functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)(make_programs)
_programs_lock = threading.Lock()


def get_programs(spec: ProgramSpec) -> Programs:
    """The programs of `spec`, made once and shared by every thread (an LRU cache of `PROGRAM_CACHE_SIZE`)."""
    with _programs_lock:
        return _cached_programs(spec)


get_programs.cache_info, get_programs.cache_clear = _cached_programs.cache_info, _cached_programs.cache_clear


@functools.partial(jax.jit, static_argnames=("layout", "config", "chunk"))
def featurise(windows, layout: Layout, config: FeatureConfig, chunk: int = 512):
    """(M, W, V, 2) evaluation windows -> (M, I, W, V, 4) features, computed once per dataset."""
    return chunked_map(lambda w: compute_features(w, layout, config), windows, chunk)


def stack_students(trees: list) -> Any:
    """Stack per-student pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def select_student(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: x[index], tree)


def where_students(mask, new: Any, old: Any) -> Any:
    """Per-student select between two stacked pytrees; `mask` is (S,) bool."""

    def pick(a, b):
        return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)
