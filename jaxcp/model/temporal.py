"""Temporal layers of the search space (reference §4.4): basic, bottleneck, sep, sg, v3, shuffle.

Every layer maps x: (N, T, V, C) -> (N, ceil(T / stride), V, C), temporal kernel `window` with padding
(window - 1) // 2. The residual is the identity for stride 1, else a strided 1x1 conv + BN. Inner widths
are int(C * expand_ratio) (sep, v3) or int(C // reduct_ratio) (bottleneck, sg, shuffle), as in AutoCP.

`variant="autocp"` reproduces AutoCP's code: V3's squeeze-excitation replaces the features by a pooled
vector (the layer outputs its residual plus a per-sample, per-channel constant, §9.2) and Shuffle's
channel shuffle with one channel per group is the identity (§9.3). `variant="corrected"`: V3 gates the
depthwise features with sigmoid(SE); Shuffle is a ShuffleNet unit (grouped 1x1 convs with
`shuffle_groups(C)` groups, activation after the first, a channel shuffle that permutes).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcp.model.ops import (
    BatchNorm,
    DepthwiseConv,
    Pointwise,
    TemporalConv,
    activation_fn,
    record_avg_pool,
)

SHUFFLE_GROUPS = 4


class TemporalLayer(nn.Module):
    """Fields shared by all temporal layers (each layer uses the ones it needs)."""

    window: int
    stride: int = 1
    activation: str = "relu"
    expand_ratio: float = 1.0
    reduct_ratio: float = 1.0
    variant: str = "autocp"

    def residual(self, x: jax.Array, *, train: bool) -> jax.Array:
        if self.stride == 1:
            return x
        conv = Pointwise(x.shape[-1], stride=self.stride, name="residual_conv")
        return BatchNorm(name="residual_bn")(conv(x), train=train)

    def conv_bn(self, x: jax.Array, conv: nn.Module, name: str, *, train: bool) -> jax.Array:
        return BatchNorm(name=f"{name}_bn")(conv(x), train=train)


class BasicTemporal(TemporalLayer):
    """act(BN(conv_window(x))) + residual(x) (activation before the add, as AutoCP)."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        res = self.residual(x, train=train)
        conv = TemporalConv(c, self.window, self.stride, name="conv")
        return act(self.conv_bn(x, conv, "conv", train=train)) + res


class BottleneckTemporal(TemporalLayer):
    """1x1 reduce -> act -> conv_window (strided) -> act -> 1x1 expand, act(BN(.) + residual)."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        inner = int(c // self.reduct_ratio)
        res = self.residual(x, train=train)
        h = act(self.conv_bn(x, Pointwise(inner, name="reduce"), "reduce", train=train))
        h = act(self.conv_bn(h, TemporalConv(inner, self.window, self.stride, name="conv"), "conv",
                             train=train))
        return act(self.conv_bn(h, Pointwise(c, name="expand"), "expand", train=train) + res)


class SepTemporal(TemporalLayer):
    """MobileNetV2-like: 1x1 expand -> act -> depthwise (strided) -> act -> 1x1 project, + residual."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        inner = int(c * self.expand_ratio)
        res = self.residual(x, train=train)
        h = act(self.conv_bn(x, Pointwise(inner, name="expand"), "expand", train=train))
        h = act(self.conv_bn(h, DepthwiseConv(self.window, self.stride, name="depthwise"), "depthwise",
                             train=train))
        return self.conv_bn(h, Pointwise(c, name="project"), "project", train=train) + res


class SGTemporal(TemporalLayer):
    """Sandglass: depthwise -> act -> 1x1 reduce -> 1x1 expand -> act -> depthwise (strided), + residual."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        inner = int(c // self.reduct_ratio)
        res = self.residual(x, train=train)
        h = act(self.conv_bn(x, DepthwiseConv(self.window, name="depthwise1"), "depthwise1", train=train))
        h = self.conv_bn(h, Pointwise(inner, name="reduce"), "reduce", train=train)
        h = act(self.conv_bn(h, Pointwise(c, name="expand"), "expand", train=train))
        h = self.conv_bn(h, DepthwiseConv(self.window, self.stride, name="depthwise2"), "depthwise2",
                         train=train)
        return h + res


class V3Temporal(TemporalLayer):
    """MobileNetV3-like: 1x1 expand -> act -> depthwise (strided) -> squeeze-excite -> 1x1 -> act, + res.

    autocp: the SE output (N, 1, 1, inner) REPLACES the features; corrected: it gates them (sigmoid).
    """

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        inner = int(c * self.expand_ratio)
        res = self.residual(x, train=train)
        h = act(self.conv_bn(x, Pointwise(inner, name="expand"), "expand", train=train))
        h = self.conv_bn(h, DepthwiseConv(self.window, self.stride, name="depthwise"), "depthwise",
                         train=train)
        pooled = h.mean(axis=(1, 2), keepdims=True)  # (N, 1, 1, inner)
        record_avg_pool(self, h.size, pooled.size)
        s = jax.nn.relu(self.conv_bn(pooled, Pointwise(inner // 4, use_bias=False, name="se_reduce"),
                                     "se_reduce", train=train))
        s = self.conv_bn(s, Pointwise(inner, use_bias=False, name="se_expand"), "se_expand", train=train)
        h = h * jax.nn.sigmoid(s) if self.variant == "corrected" else jax.nn.relu(s)
        return act(self.conv_bn(h, Pointwise(c, name="project"), "project", train=train)) + res


def shuffle_groups(channels: int) -> int:
    """Groups of the corrected Shuffle layer: gcd(SHUFFLE_GROUPS, channels)."""
    return math.gcd(SHUFFLE_GROUPS, channels)


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """ShuffleNet's shuffle on the last axis: channel i * (C / g) + j moves to j * g + i."""
    c = x.shape[-1]
    x = x.reshape(*x.shape[:-1], groups, c // groups)
    return jnp.swapaxes(x, -1, -2).reshape(*x.shape[:-2], c)


class ShuffleTemporal(TemporalLayer):
    """1x1 reduce -> channel shuffle -> depthwise (strided) -> 1x1 expand, act(. + residual).

    autocp: dense 1x1 convs, no activation inside, shuffle with groups = inner channels (identity).
    corrected: grouped 1x1 convs (g = shuffle_groups(C), inner rounded down to a multiple of g), an
    activation after the first, and a shuffle with g groups.
    """

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c, act = x.shape[-1], activation_fn(self.activation)
        res = self.residual(x, train=train)
        inner = int(c // self.reduct_ratio)
        if self.variant == "corrected":
            g = shuffle_groups(c)
            inner = max(g, inner // g * g)
            h = act(self.conv_bn(x, Pointwise(inner, groups=g, name="reduce"), "reduce", train=train))
            h = channel_shuffle(h, g)
        else:
            g = 1
            h = self.conv_bn(x, Pointwise(inner, name="reduce"), "reduce", train=train)
            h = channel_shuffle(h, inner)  # one channel per group: the identity, as AutoCP
        depthwise = DepthwiseConv(self.window, self.stride, name="depthwise")
        h = self.conv_bn(h, depthwise, "depthwise", train=train)
        h = self.conv_bn(h, Pointwise(c, groups=g, name="expand"), "expand", train=train)
        return act(h + res)


TEMPORAL_LAYERS: dict[str, type[TemporalLayer]] = {
    "basic": BasicTemporal,
    "bottleneck": BottleneckTemporal,
    "sep": SepTemporal,
    "sg": SGTemporal,
    "v3": V3Temporal,
    "shuffle": ShuffleTemporal,
}


def temporal_class(conv: str) -> type[TemporalLayer]:
    """The temporal layer module class of a conv type name."""
    try:
        return TEMPORAL_LAYERS[conv]
    except KeyError:
        raise ValueError(f"unknown conv type {conv!r}") from None
