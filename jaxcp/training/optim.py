"""Student optimizers as AutoCP builds them (PyTorch semantics), with every hyperparameter an array leaf.

AutoCP trains each student with one of three PyTorch optimizers (reference §7.1):

- ``sgd``:   SGD with Nesterov momentum (dampening 0), L2 weight decay added to the gradient;
- ``adam``:  Adam with AMSGrad, betas (0.9, 0.99), L2 weight decay added to the gradient;
- ``adamw``: AdamW with AMSGrad, betas (0.9, 0.999), decoupled decay ``p <- p * (1 - lr * wd)``.

`student_optimizer()` is one optax `GradientTransformation` that implements all three, selected by an
integer ``kind`` stored in its state next to the learning rate, weight decay and momentum. Because all of
them are array leaves (as with `optax.inject_hyperparams`), students that differ in optimizer or in any
hyperparameter can be trained together under `jax.vmap` by one compiled program. The unused moment
buffers cost a few element-wise operations per parameter, which is negligible next to the network.

AMSGrad follows PyTorch: the running maximum is taken over the *uncorrected* second moment, and the step is
``lr / (1 - b1^t) * m / (sqrt(max_v) / sqrt(1 - b2^t) + eps)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
ADAM_B1 = 0.9
ADAM_B2 = {"sgd": 0.999, "adam": 0.99, "adamw": 0.999}
EPS = 1e-8

WARMUP_EPOCHS = 10
WARMUP_START = 0.25
LR_MILESTONES = (200, 250)
LR_GAMMA = 0.5


class StudentHParams(NamedTuple):
    """Optimizer hyperparameters as arrays (scalars for one student, (S,) when vmapped)."""

    kind: jax.Array  # int32 index into OPTIMIZERS
    lr: jax.Array  # learning rate used by the next update (base lr x epoch factor)
    weight_decay: jax.Array
    momentum: jax.Array


class StudentOptState(NamedTuple):
    hparams: StudentHParams
    count: jax.Array
    trace: optax.Params  # SGD momentum buffer
    mu: optax.Params  # Adam first moment
    nu: optax.Params  # Adam second moment (uncorrected)
    nu_max: optax.Params  # AMSGrad running maximum of nu


def make_hparams(optimizer: str, lr: float, weight_decay: float, momentum: float) -> StudentHParams:
    """Array hyperparameters for one student; `optimizer` is a name from OPTIMIZERS."""
    name = optimizer.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} (expected one of {OPTIMIZERS})")
    return StudentHParams(
        kind=jnp.asarray(OPTIMIZERS.index(name), jnp.int32),
        lr=jnp.asarray(lr, jnp.float32),
        weight_decay=jnp.asarray(weight_decay, jnp.float32),
        momentum=jnp.asarray(momentum, jnp.float32),
    )


def student_optimizer() -> optax.GradientTransformationExtraArgs:
    """The three AutoCP optimizers in one transformation; hyperparameters live in the state.

    `init(params)` starts with placeholder hyperparameters; use `with_hparams(state, hparams)` to set them.
    """

    def init(params):
        zeros = lambda: jax.tree.map(jnp.zeros_like, params)  # noqa: E731
        return StudentOptState(
            hparams=make_hparams("sgd", 0.0, 0.0, 0.0),
            count=jnp.zeros([], jnp.int32),
            trace=zeros(),
            mu=zeros(),
            nu=zeros(),
            nu_max=zeros(),
        )

    def update(grads, state: StudentOptState, params=None, **_):
        if params is None:
            raise ValueError("student_optimizer needs params (weight decay)")
        hp = state.hparams
        count = state.count + 1
        is_sgd, is_adamw = hp.kind == 0, hp.kind == 2
        b2 = jnp.where(hp.kind == 1, ADAM_B2["adam"], ADAM_B2["adamw"])
        coupled_wd = jnp.where(is_adamw, 0.0, hp.weight_decay)
        g = jax.tree.map(lambda g, p: g + coupled_wd * p, grads, params)

        trace = jax.tree.map(lambda t, g: hp.momentum * t + g, state.trace, g)
        mu = jax.tree.map(lambda m, g: ADAM_B1 * m + (1 - ADAM_B1) * g, state.mu, g)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, g)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        t = count.astype(jnp.float32)
        step_size = hp.lr / (1 - ADAM_B1**t)
        root_bc2 = jnp.sqrt(1 - b2**t)

        def one(p, g, tr, m, vmax):
            sgd = -hp.lr * (g + hp.momentum * tr)
            adam = -step_size * m / (jnp.sqrt(vmax) / root_bc2 + EPS)
            decoupled = jnp.where(is_adamw, -hp.lr * hp.weight_decay * p, 0.0)
            return jnp.where(is_sgd, sgd, adam + decoupled)

        updates = jax.tree.map(one, params, g, trace, mu, nu_max)
        return updates, StudentOptState(hp, count, trace, mu, nu, nu_max)

    return optax.GradientTransformationExtraArgs(init, update)


def with_hparams(state: StudentOptState, hparams: StudentHParams) -> StudentOptState:
    return state._replace(hparams=hparams)


def lr_factor(epoch: int) -> float:
    """Learning-rate multiplier used during 0-based `epoch` (reference §7.1).

    Linear warm-up from 0.25 over the first 10 epochs (0.25, 0.325, ..., 0.925), then 1, halved at epochs
    200 and 250. Students of 50 epochs see only the warm-up and the constant part.
    """
    if epoch < WARMUP_EPOCHS:
        return WARMUP_START + (1.0 - WARMUP_START) * epoch / WARMUP_EPOCHS
    return LR_GAMMA ** sum(epoch >= m for m in LR_MILESTONES)
