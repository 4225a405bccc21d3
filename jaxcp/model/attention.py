"""Attention layers of the search space (reference §4.5): stja, ca, fa, ja, pa, and their wrapper.

Each attention module maps x: (N, T, V, C) to a multiplicative map that broadcasts against x;
`AttentionLayer` returns act(BN(x * att(x))) + x (AutoCP's order: activation before the add, §9.5).
Frame attention has no sigmoid (a raw, unbounded gate, as AutoCP and EfficientGCN, §9.4).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcp.data.skeleton import Layout
from jaxcp.model.ops import (
    BatchNorm,
    Pointwise,
    TemporalConv,
    activation_fn,
    record_avg_pool,
    record_softmax,
)

FRAME_WINDOW = 9


class STJointAttention(nn.Module):
    """Spatial-temporal joint attention: sigmoid(frame gate (N,T,1,C)) * sigmoid(joint gate (N,1,V,C))."""

    reduct_ratio: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        n, t, v, c = x.shape
        inner = int(c // self.reduct_ratio)
        pooled = jnp.concatenate([x.mean(axis=2), x.mean(axis=1)], axis=1)  # (N, T + V, C)
        z = BatchNorm(name="bn")(Pointwise(inner, name="reduce")(pooled), train=train)
        z = jax.nn.hard_swish(z)
        frame_gate = jax.nn.sigmoid(Pointwise(c, name="frame")(z[:, :t]))  # (N, T, C)
        joint_gate = jax.nn.sigmoid(Pointwise(c, name="joint")(z[:, t:]))  # (N, V, C)
        return frame_gate[:, :, None, :] * joint_gate[:, None, :, :]


class ChannelAttention(nn.Module):
    """Squeeze-excitation over channels: sigmoid(MLP(mean over T, V)) -> (N, 1, 1, C)."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        pooled = x.mean(axis=(1, 2))  # (N, C)
        record_avg_pool(self, x.size, pooled.size)
        h = jax.nn.relu(BatchNorm(name="bn")(Pointwise(c // 4, name="reduce")(pooled), train=train))
        return jax.nn.sigmoid(Pointwise(c, name="expand")(h))[:, None, None, :]


class FrameAttention(nn.Module):
    """Per-frame gate conv_9([mean, max] over joints and channels) -> (N, T, 1, 1), no sigmoid."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        avg, peak = x.mean(axis=(2, 3)), x.max(axis=(2, 3))  # (N, T) each
        record_avg_pool(self, x.size, avg.size)
        stats = jnp.stack([avg, peak], axis=-1)  # (N, T, 2)
        return TemporalConv(1, FRAME_WINDOW, name="conv")(stats)[:, :, None, :]


class JointAttention(nn.Module):
    """Softmax over joints of an MLP of the per-joint mean -> (N, 1, V, 1)."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        v = x.shape[2]
        pooled = x.mean(axis=(1, 3))  # (N, V)
        record_avg_pool(self, x.size, pooled.size)
        h = jax.nn.relu(BatchNorm(name="bn")(Pointwise(v // 2, name="reduce")(pooled), train=train))
        logits = Pointwise(v, name="expand")(h)
        record_softmax(self, logits.size, v)
        return jax.nn.softmax(logits, axis=-1)[:, None, :, None]


class PartAttention(nn.Module):
    """Per channel, a softmax over body parts, copied to every joint of the part -> (N, 1, V, C)."""

    reduct_ratio: float
    layout: Layout

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        n, c = x.shape[0], x.shape[-1]
        parts = len(self.layout.parts)
        inner = int(c // self.reduct_ratio)
        pooled = x.mean(axis=(1, 2))  # (N, C)
        record_avg_pool(self, x.size, pooled.size)
        h = jax.nn.relu(BatchNorm(name="bn")(Pointwise(inner, name="reduce")(pooled), train=train))
        logits = Pointwise(c * parts, name="expand")(h).reshape(n, c, parts)
        record_softmax(self, logits.size, parts)
        weights = jax.nn.softmax(logits, axis=-1)
        per_joint = weights[:, :, jnp.asarray(self.layout.joint_to_part())]  # (N, C, V)
        return jnp.swapaxes(per_joint, 1, 2)[:, None]


class AttentionLayer(nn.Module):
    """act(BN(x * att(x))) + x with att of type `kind`. x: (N, T, V, C) -> (N, T, V, C)."""

    kind: str
    activation: str
    reduct_ratio: float
    layout: Layout

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        att = self._attention()(x, train=train)
        return activation_fn(self.activation)(BatchNorm(name="bn")(x * att, train=train)) + x

    def _attention(self) -> nn.Module:
        try:
            make = ATTENTION_LAYERS[self.kind]
        except KeyError:
            raise ValueError(f"unknown attention type {self.kind!r}") from None
        return make(self)


# attention type name -> the attention module of an AttentionLayer (the space's choices come from here)
ATTENTION_LAYERS: dict[str, Callable[[AttentionLayer], nn.Module]] = {
    "stja": lambda layer: STJointAttention(layer.reduct_ratio, name="att"),
    "ca": lambda layer: ChannelAttention(name="att"),
    "fa": lambda layer: FrameAttention(name="att"),
    "ja": lambda layer: JointAttention(name="att"),
    "pa": lambda layer: PartAttention(layer.reduct_ratio, layer.layout, name="att"),
}
