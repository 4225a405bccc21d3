"""REINFORCE controller: one softmax over logits per search decision, updated with optax Adam.

Pure functions over an explicit `ControllerState` (evosax/optax style):

    state = init(num_choices, config)               # uniform policy (zero logits)
    actions = sample(key, state, n)                  # (n, D) int32
    state, info = update(state, actions, rewards, weights)
    best = argmax(state)                             # (D,) int32

All decisions live in one padded (D, C_max) logit array with a boolean mask, so the state is a handful
of arrays that `jit` and Orbax handle as they are. Padded entries are set to a large negative number
(probability exactly 0, finite so that gradients and entropies never produce NaN) and receive zero
gradient.

Loss, one Adam step per `update` call (reference autocp-algorithm.md §6.4, with logits instead of
probability weights):

    loss = - sum_r weight_r * (reward_r - baseline) * log pi(a_r) - entropy_weight * H(pi)

with log pi(a) = sum_d log softmax(logits_d)[a_d] and H the sum of the per-decision entropies. The
batch of rollouts is padded with weight-0 rows to a power-of-two bucket (at least `min_bucket`), so a
search whose number of rollouts varies (20, 30 + replay, ...) compiles the update only a few times.

Step size and defaults: AutoCP used weights as probabilities and renormalised them each iteration
(§6.6); we use logits. Adam moves every logit by about `lr` per update whatever the reward
scale, so the paper's 0.001 (`PAPER_LEARNING_RATE`) moves a logit by at most ~0.05 in 50 updates and
leaves the policy practically uniform. Without a baseline, all rewards (AUCs ~0.8) are positive and the
gradient's sign is dominated by how often each option happened to be sampled, not by its reward. The
defaults are therefore lr 0.05 with a moving-average baseline; `paper_config()` gives AutoCP's settings.
The simulation behind this is in tests/test_controller.py (`test_default_config_learns_a_bandit...`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxcp.core.errors import InputError

PAPER_LEARNING_RATE = 0.001
DEFAULT_LEARNING_RATE = 0.05
DEFAULT_BASELINE = "moving_average"
BASELINES = ("none", "moving_average", "batch_mean")
STRATEGIES = ("reinforce", "random")
MASKED_LOGIT = -1e9


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """Static controller settings (hashable: part of the jitted update's cache key).

    strategy: "random" (the default: uniform samples from the space; the policy is never updated) or
    "reinforce" (the paper: sample from the policy, one REINFORCE step per iteration). Random is the default
    because REINFORCE did not beat it in `benchmarks/search_vs_random.py` (README, "Is the search learning?").
    baseline: "none" (the paper), "moving_average" (exponential average of past batch-mean rewards with
    `baseline_decay`, started at the first batch's mean) or "batch_mean" (AutoCP's unused option).
    min_bucket: the smallest padded number of rollouts per update.
    """

    strategy: str = "random"
    lr: float = DEFAULT_LEARNING_RATE
    baseline: str = DEFAULT_BASELINE
    baseline_decay: float = 0.9
    entropy_weight: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    min_bucket: int = 32

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise InputError(f"controller.strategy: unknown strategy {self.strategy!r}; expected one of {STRATEGIES}")
        if self.baseline not in BASELINES:
            raise InputError(f"controller.baseline: unknown baseline {self.baseline!r}; expected one of {BASELINES}")
        if not self.lr > 0:
            raise InputError(f"controller.lr: must be positive, got {self.lr}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise InputError(f"controller.baseline_decay: must be in [0, 1), got {self.baseline_decay}")
        if self.min_bucket < 1:
            raise InputError(f"controller.min_bucket: must be >= 1, got {self.min_bucket}")


def paper_config() -> ControllerConfig:
    """AutoCP's settings: REINFORCE with Adam lr 0.001, no baseline, no entropy bonus."""
    return ControllerConfig(strategy="reinforce", lr=PAPER_LEARNING_RATE, baseline="none", entropy_weight=0.0)


@struct.dataclass
class ControllerState:
    """logits, mask: (D, C_max); opt_state: Adam state of the logits; baseline: () float32 (the moving
    average, 0 until the first update); step: () int32 number of updates done."""

    logits: jax.Array
    mask: jax.Array
    opt_state: optax.OptState
    baseline: jax.Array
    step: jax.Array
    config: ControllerConfig = struct.field(pytree_node=False)
    num_choices: tuple[int, ...] = struct.field(pytree_node=False)


def _optimizer(config: ControllerConfig) -> optax.GradientTransformation:
    return optax.adam(config.lr, b1=config.b1, b2=config.b2, eps=config.eps)


def init(num_choices: Sequence[int], config: ControllerConfig | None = None) -> ControllerState:
    """A uniform policy over `num_choices[d]` options for each decision d."""
    config = ControllerConfig() if config is None else config
    num_choices = tuple(int(n) for n in num_choices)
    if not num_choices or min(num_choices) < 1:
        raise ValueError(f"every decision needs at least one choice, got {num_choices}")
    mask = np.arange(max(num_choices))[None, :] < np.array(num_choices)[:, None]
    logits = jnp.zeros(mask.shape, jnp.float32)
    return ControllerState(logits=logits, mask=jnp.asarray(mask), opt_state=_optimizer(config).init(logits),
                           baseline=jnp.zeros((), jnp.float32), step=jnp.zeros((), jnp.int32),
                           config=config, num_choices=num_choices)


def _log_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """(D, C) masked log-probabilities; padded entries ~ -1e9."""
    return jax.nn.log_softmax(jnp.where(mask, logits, MASKED_LOGIT), axis=-1)


def _action_log_prob(log_p: jax.Array, actions: jax.Array) -> jax.Array:
    """log_p: (D, C), actions: (n, D) -> (n,) joint log-probability."""
    return log_p[jnp.arange(log_p.shape[0]), actions].sum(axis=-1)


def _entropy(log_p: jax.Array, mask: jax.Array) -> jax.Array:
    """(D,) entropy of each decision's distribution."""
    return -jnp.where(mask, jnp.exp(log_p) * log_p, 0.0).sum(axis=-1)


@functools.partial(jax.jit, static_argnames="n")
def sample(key: jax.Array, state: ControllerState, n: int) -> jax.Array:
    """n independent draws of every decision: (n, D) int32."""
    masked = jnp.where(state.mask, state.logits, MASKED_LOGIT)
    return jax.random.categorical(key, masked, axis=-1, shape=(n, masked.shape[0])).astype(jnp.int32)


@jax.jit
def log_prob(state: ControllerState, actions: jax.Array) -> jax.Array:
    """Joint log-probability of each row of actions (n, D) under the current policy: (n,)."""
    return _action_log_prob(_log_softmax(state.logits, state.mask), actions)


def reinforce_loss(logits, mask, actions, advantages, weights, entropy_weight: float) -> jax.Array:
    """- sum_r weights_r advantages_r log pi(a_r) - entropy_weight * sum_d H_d.

    logits, mask: (D, C); actions: (R, D) int; advantages, weights: (R,). Returns a scalar.
    """
    log_p = _log_softmax(logits, mask)
    pg = -(weights * advantages * _action_log_prob(log_p, actions)).sum()
    return pg - entropy_weight * _entropy(log_p, mask).sum()


def _baseline(state: ControllerState, batch_mean: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(baseline used in this update, baseline stored for the next one)."""
    config = state.config
    if config.baseline == "none":
        return jnp.zeros((), jnp.float32), state.baseline
    if config.baseline == "batch_mean":
        return batch_mean, state.baseline
    used = jnp.where(state.step == 0, batch_mean, state.baseline)
    return used, config.baseline_decay * used + (1.0 - config.baseline_decay) * batch_mean


def _update_impl(state: ControllerState, actions, rewards, weights):
    """One REINFORCE + Adam step on a padded batch: actions (B, D) int32, rewards (B,), weights (B,)."""
    total = weights.sum()
    batch_mean = (weights * rewards).sum() / jnp.maximum(total, 1e-12)
    used, next_baseline = _baseline(state, batch_mean)
    loss, grad = jax.value_and_grad(reinforce_loss)(
        state.logits, state.mask, actions, rewards - used, weights, state.config.entropy_weight)
    updates, opt_state = _optimizer(state.config).update(grad, state.opt_state, state.logits)
    logits = optax.apply_updates(state.logits, updates)
    new = state.replace(logits=logits, opt_state=opt_state, baseline=next_baseline, step=state.step + 1)
    entropy = _entropy(_log_softmax(logits, state.mask), state.mask).sum()
    info = {"loss": loss, "baseline": used, "mean_reward": batch_mean, "grad_norm": optax.global_norm(grad),
            "entropy": entropy, "num_rollouts": (weights > 0).sum()}
    return new, info


_update_step = jax.jit(_update_impl)


def bucket_size(num_rollouts: int, min_bucket: int) -> int:
    """The padded batch size: the next power of two >= max(num_rollouts, min_bucket)."""
    return 1 << (max(num_rollouts, min_bucket, 1) - 1).bit_length()


def update(state: ControllerState, actions, rewards, weights=None) -> tuple[ControllerState, dict]:
    """One controller update from R rollouts. actions: (R, D) int; rewards: (R,); weights: (R,) (default 1).

    Replayed rollouts are passed like fresh ones (their log-probabilities use the current logits).
    Returns the new state and a dict of scalars: loss, baseline (used), mean_reward, grad_norm, entropy
    (of the new policy, summed over decisions), num_rollouts.
    """
    actions = np.asarray(actions, dtype=np.int32)
    rewards = np.asarray(rewards, dtype=np.float32)
    weights = np.ones_like(rewards) if weights is None else np.asarray(weights, dtype=np.float32)
    num, width = len(state.num_choices), (rewards.shape[0] if rewards.ndim == 1 else -1)
    if actions.shape != (width, num) or rewards.shape != (width,) or weights.shape != (width,) or width == 0:
        raise ValueError(f"need actions (R, {num}), rewards (R,), weights (R,) with R >= 1; got "
                         f"{actions.shape}, {rewards.shape}, {weights.shape}")
    if ((actions < 0) | (actions >= np.array(state.num_choices))).any():
        raise ValueError("action index out of range of its decision")
    if not (np.isfinite(rewards) | (weights == 0)).all():
        raise ValueError("non-finite reward in a rollout with nonzero weight")
    pad = bucket_size(width, state.config.min_bucket) - width
    actions = np.pad(actions, ((0, pad), (0, 0)))
    rewards = np.pad(np.nan_to_num(rewards), (0, pad))
    weights = np.pad(weights, (0, pad))
    return _update_step(state, actions, rewards, weights)


def argmax(state: ControllerState) -> np.ndarray:
    """The most probable choice of each decision (first index on ties): (D,) int32."""
    return np.asarray(jnp.argmax(jnp.where(state.mask, state.logits, MASKED_LOGIT), axis=-1), dtype=np.int32)


def entropy(state: ControllerState) -> float:
    """The policy's entropy summed over decisions (nats; log of the space's size for a uniform policy)."""
    return float(_entropy(_log_softmax(state.logits, state.mask), state.mask).sum())


def probabilities(state: ControllerState) -> list[np.ndarray]:
    """Softmax probabilities of each decision, unpadded: a list of D arrays of shape (num_choices[d],)."""
    probs = np.asarray(jnp.exp(_log_softmax(state.logits, state.mask)))
    return [probs[d, :n].copy() for d, n in enumerate(state.num_choices)]
