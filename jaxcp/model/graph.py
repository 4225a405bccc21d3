"""Spatial layers: the hop-partitioned graph convolution with edge importance, and the Multi-GCN layer.

x: (N, T, V, C) channels last. Adjacency slices come from `Layout.adjacency()` (reference §2.3): slice k
holds the column-normalised entries of joints k hops apart; a layer with graph distance d uses K = d + 1.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcp.data.skeleton import Layout
from jaxcp.model.ops import BatchNorm, Pointwise, activation_fn, dense, kaiming_normal, record


@functools.lru_cache(maxsize=32)
def adjacency(layout: Layout) -> np.ndarray:
    """(MAX_HOP + 1, V, V) float32 hop-partitioned adjacency of a layout (cached per layout)."""
    a = layout.adjacency()
    a.setflags(write=False)
    return a


class SpatialGraphConv(nn.Module):
    """y[n,t,w,c] = sum_k sum_v z[n,t,v,k,c] (A_k * E_k)[v,w] with z = x W + b (a 1x1 conv to K x C_out).

    E (K, V, V) is the trainable edge importance, initialised to ones. Computed as one einsum over the K
    slices; when C_in < C_out the joints are aggregated first (the same linear map, fewer operations).
    x: (N, T, V, C_in) -> (N, T, V, features).
    """

    features: int
    num_slices: int
    layout: Layout

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, t, v, cin = x.shape
        k, cout = self.num_slices, self.features
        a = jnp.asarray(adjacency(self.layout)[:k])
        edge = self.param("edge_importance", nn.initializers.ones, a.shape)
        kernel = self.param("kernel", kaiming_normal(k * cout), (cin, k * cout))
        bias = self.param("bias", nn.initializers.zeros, (k * cout,))
        record(self, "conv", n * t * v * k * cout * cin, kernel.size + bias.size)
        graph = a * edge
        if cin < cout:
            pooled = jnp.einsum("ntvc,kvw->ntwkc", x, graph).reshape(n, t, v, k * cin)
            weights = kernel.reshape(cin, k, cout).transpose(1, 0, 2).reshape(k * cin, cout)
            bias_per_joint = jnp.einsum("kw,kc->wc", graph.sum(axis=1), bias.reshape(k, cout))
            return dense(pooled, weights) + bias_per_joint
        z = (dense(x, kernel) + bias).reshape(n, t, v, k, cout)
        return jnp.einsum("ntvkc,kvw->ntwc", z, graph)


def _residual(x: jax.Array, features: int, *, train: bool) -> jax.Array:
    """Identity if the width is kept, else 1x1 conv + BN (named residual_conv / residual_bn)."""
    if x.shape[-1] == features:
        return x
    return BatchNorm(name="residual_bn")(Pointwise(features, name="residual_conv")(x), train=train)


class SpatialGraphLayer(nn.Module):
    """act(BN(SpatialGraphConv(x))) + residual(x): AutoCP's order, activation before the add (§9.5).

    x: (N, T, V, C_in) -> (N, T, V, features).
    """

    features: int
    graph_distance: int
    layout: Layout
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        res = _residual(x, self.features, train=train)
        y = SpatialGraphConv(self.features, self.graph_distance + 1, self.layout, name="gcn")(x)
        return activation_fn(self.activation)(BatchNorm(name="bn")(y, train=train)) + res


class MultiGCNLayer(nn.Module):
    """The Multi-GCN layer (AutoCP's Spatial_Multi_Layer, CTR-GC-like), reference §4.6.

    For every slice k of the FULL adjacency stack: relation features x1, x2 (1x1 convs to C_in // 2
    channels, mean over time), R = act(x1[u] - x2[v]), A_k' = conv(R) * alpha_k + A_k (per sample and
    channel), y += sum_v A_k'[u, v] x3[v] with x3 a 1x1 conv to C_out. Out: act(y) + BN(y) + residual.
    The K per-slice convolutions are stored as one kernel each (initialised as K separate convs).
    x: (N, T, V, C_in) -> (N, T, V, features).
    """

    features: int
    layout: Layout
    activation: str

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        n, t, v, cin = x.shape
        a = jnp.asarray(adjacency(self.layout))
        k, cout = a.shape[0], self.features
        rel = 8 if cin in (3, 9) else cin // 2
        act = activation_fn(self.activation)
        res = _residual(x, cout, train=train)
        # conv then mean over time == mean over time then conv (linear): the cheap order, counted as the conv
        x_mean = x.mean(axis=1)  # (N, V, C_in)
        x1 = self._relation(x_mean, k * rel, rel, t, "relation_a").reshape(n, v, k, rel)
        x2 = self._relation(x_mean, k * rel, rel, t, "relation_b").reshape(n, v, k, rel)
        x3 = Pointwise(k * cout, fan_out=cout, name="value")(x).reshape(n, t, v, k, cout)
        r = act(x1[:, :, None] - x2[:, None, :])  # (N, U, V, K, rel)
        w4 = self.param("relation_kernel", kaiming_normal(cout), (k, rel, cout))
        b4 = self.param("relation_bias", nn.initializers.zeros, (k, cout))
        alpha = self.param("alpha", nn.initializers.zeros, (k,))
        record(self, "conv", n * v * v * k * cout * rel, w4.size + b4.size)
        refined = (jnp.einsum("nuvkr,krc->nuvkc", r, w4) + b4) * alpha[:, None]
        refined = refined + a.transpose(1, 2, 0)[None, :, :, :, None]
        y = jnp.einsum("nuvkc,ntvkc->ntuc", refined, x3)
        return act(y) + BatchNorm(name="bn")(y, train=train) + res

    def _relation(self, x_mean: jax.Array, features: int, fan_out: int, frames: int, name: str) -> jax.Array:
        """1x1 conv of the time-averaged input: (N, V, C_in) -> (N, V, features)."""
        n, v, cin = x_mean.shape
        kernel = self.param(f"{name}_kernel", kaiming_normal(fan_out), (cin, features))
        bias = self.param(f"{name}_bias", nn.initializers.zeros, (features,))
        record(self, "conv", n * frames * v * features * cin, kernel.size + bias.size)
        return x_mean @ kernel + bias
