"""Replay memory of good rollouts (reference autocp-algorithm.md §6.4), as fixed-size arrays.

Rules, in the order the search applies them at each controller update:
1. `sample(key, memory)`: draw `batch_size` stored rollouts uniformly without replacement (all of them if
   fewer are stored); the controller update then scores them under the CURRENT policy together with the
   fresh rollouts. After drawing, if count >= 2 * batch_size the batch size doubles (at most once per
   update; 10 -> 20 -> 40 -> ...).
2. `push(memory, actions, rewards)`: after the update, this iteration's FRESH rollouts whose reward is
   strictly above the threshold (0.9) are stored; when the memory is full the oldest is overwritten (FIFO).

The memory is a ring buffer of numpy arrays (host side: it is tiny and only touched once per update), so
Orbax saves and restores it as it is. Functions are pure: they return a new memory.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import struct

DEFAULT_CAPACITY = 200
DEFAULT_BATCH_SIZE = 10
DEFAULT_THRESHOLD = 0.9


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """enabled: use the memory at all; threshold: fresh rollouts with a reward strictly above it are stored;
    capacity: rollouts kept (FIFO); batch: the first replay batch size (doubles as the memory fills)."""

    enabled: bool = True
    threshold: float = DEFAULT_THRESHOLD
    capacity: int = DEFAULT_CAPACITY
    batch: int = DEFAULT_BATCH_SIZE


@struct.dataclass
class ReplayMemory:
    """actions: (capacity, D) int32; rewards: (capacity,) float32; count: () number of stored rollouts;
    next_index: () slot the next rollout goes to (the oldest once full); batch_size: () current replay batch.
    """

    actions: np.ndarray
    rewards: np.ndarray
    count: np.ndarray
    next_index: np.ndarray
    batch_size: np.ndarray

    @property
    def capacity(self) -> int:
        return self.actions.shape[0]


def init(capacity: int, num_decisions: int, batch_size: int = DEFAULT_BATCH_SIZE) -> ReplayMemory:
    """An empty memory of `capacity` (200 in the paper) rollouts of `num_decisions` actions each."""
    if capacity < 1 or batch_size < 1 or num_decisions < 1:
        raise ValueError(f"capacity, num_decisions and batch_size must be >= 1, got "
                         f"{capacity}, {num_decisions}, {batch_size}")
    return ReplayMemory(actions=np.zeros((capacity, num_decisions), np.int32),
                        rewards=np.zeros(capacity, np.float32), count=np.array(0, np.int32),
                        next_index=np.array(0, np.int32), batch_size=np.array(batch_size, np.int32))


def push(memory: ReplayMemory, actions, rewards, threshold: float = DEFAULT_THRESHOLD,
         valid=None) -> ReplayMemory:
    """Store the rollouts with reward > threshold (strictly), in order, evicting the oldest when full.

    actions: (R, D) int; rewards: (R,) (NaN is never stored); valid: optional (R,) bool of real rows.
    """
    actions = np.asarray(actions, dtype=np.int32)
    rewards = np.asarray(rewards, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != memory.actions.shape[1] or rewards.shape != actions.shape[:1]:
        raise ValueError(f"need actions (R, {memory.actions.shape[1]}) and rewards (R,); got "
                         f"{actions.shape} and {rewards.shape}")
    keep = rewards > threshold
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    # host copies (a memory restored from a checkpoint may hold jax arrays)
    new_actions = np.array(memory.actions, dtype=np.int32)
    new_rewards = np.array(memory.rewards, dtype=np.float32)
    count, slot = int(memory.count), int(memory.next_index)
    for row, reward in zip(actions[keep], rewards[keep], strict=True):
        new_actions[slot], new_rewards[slot] = row, reward
        slot = (slot + 1) % memory.capacity
        count = min(count + 1, memory.capacity)
    return memory.replace(actions=new_actions, rewards=new_rewards, count=np.array(count, np.int32),
                          next_index=np.array(slot, np.int32))


def contents(memory: ReplayMemory) -> tuple[np.ndarray, np.ndarray]:
    """The stored rollouts, oldest first: actions (count, D), rewards (count,)."""
    count, capacity = int(memory.count), memory.capacity
    slots = (int(memory.next_index) - count + np.arange(count)) % capacity
    return memory.actions[slots], memory.rewards[slots]


def draw(key: jax.Array, memory: ReplayMemory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw min(batch_size, count) stored rollouts uniformly without replacement (no doubling).

    Returns actions (batch_size, D) int32, rewards (batch_size,) float32 and valid (batch_size,) bool; the
    drawn rows come first, the rest are zero rows with valid False (drop them or give them weight 0).
    """
    batch, count = int(memory.batch_size), int(memory.count)
    stored = (int(memory.next_index) - count + np.arange(count)) % memory.capacity
    noise = np.asarray(jax.random.uniform(key, (memory.capacity,)))
    chosen = stored[np.argsort(noise[stored], kind="stable")[:batch]]
    actions = np.zeros((batch, memory.actions.shape[1]), np.int32)
    rewards = np.zeros(batch, np.float32)
    valid = np.arange(batch) < chosen.size
    actions[: chosen.size], rewards[: chosen.size] = memory.actions[chosen], memory.rewards[chosen]
    return actions, rewards, valid


def double_batch(memory: ReplayMemory) -> ReplayMemory:
    """AutoCP's growth rule: double the replay batch if count >= 2 * batch_size (once per update)."""
    if int(memory.count) >= 2 * int(memory.batch_size):
        return memory.replace(batch_size=np.array(2 * int(memory.batch_size), np.int32))
    return memory


def sample(key: jax.Array, memory: ReplayMemory) -> tuple[np.ndarray, np.ndarray, np.ndarray, ReplayMemory]:
    """The replay step of one controller update: `draw`, then `double_batch`.

    Returns (actions (B, D), rewards (B,), valid (B,), memory) with B the batch size before doubling;
    keep the returned memory (it carries the new batch size). Call once per update.
    """
    actions, rewards, valid = draw(key, memory)
    return actions, rewards, valid, double_batch(memory)
