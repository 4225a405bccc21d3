"""Spatial layers: the hop-partitioned graph convolution with edge importance, and the Multi-GCN layer.

x: (N, T, V, C) channels last. Adjacency slices come from `Layout.adjacency()` (reference §2.3): slice k
holds the column-normalised entries of joints k hops apart; a layer with graph distance d uses K = d + 1.

The graph products have two formulations (`options.current().formulation`, see `ops`): "matmul" writes
them as one batched matrix product per frame with the graph matrix broadcast (`per_frame_product`;
Multi-GCN's per-sample graphs as an einsum), which XLA:CPU runs without moving the activations; "conv"
moves the contracted axes (adjacency slice, joint) last and the kept joint axis into the other operand, so
that each is ONE plain matrix product with a contraction of K x V (the (K x V, W) graph matrix), or one
batched matrix product per (sample, channel) for Multi-GCN: the layout cuBLAS wants, with the transposes
explicit instead of left to XLA's dot decomposition. Same parameters, same counts, same values up to rounding.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcp.data.skeleton import Layout
from jaxcp.model.ops import BatchNorm, Pointwise, activation_fn, dense, einsum, kaiming_normal, linear, record
from jaxcp.model.options import current


@functools.lru_cache(maxsize=32)
def adjacency(layout: Layout) -> np.ndarray:
    """(MAX_HOP + 1, V, V) float32 hop-partitioned adjacency of a layout (cached per layout)."""
    a = layout.adjacency()
    a.setflags(write=False)
    return a


class SpatialGraphConv(nn.Module):
    """y[n,t,w,c] = sum_k sum_v z[n,t,v,k,c] (A_k * E_k)[v,w] with z = x W + b (a 1x1 conv to K x C_out).

    E (K, V, V) is the trainable edge importance, initialised to ones. Computed as one graph product over the K
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
        # the bias is added after the graph product (the same linear map): its gradient is then a reduction of
        # the (N, T, W, C) output's cotangent, not of the K times larger projection's, which XLA:CPU ran as a
        # slow standalone reduce-window
        bias_per_joint = einsum("kw,kc->wc", graph.sum(axis=1), bias.reshape(k, cout))
        if cin < cout:
            pooled = aggregate_joints(x, graph).reshape(n, t, v, k * cin)
            weights = kernel.reshape(cin, k, cout).transpose(1, 0, 2).reshape(k * cin, cout)
            return dense(pooled, weights) + bias_per_joint
        return combine_slices(dense(x, kernel).reshape(n, t, v, k, cout), graph) + bias_per_joint


def aggregate_joints(x: jax.Array, graph: jax.Array) -> jax.Array:
    """y[n,t,w,k,c] = sum_v x[n,t,v,c] graph[k,v,w]. x: (N, T, V, C), graph: (K, V, W) -> (N, T, W, K, C).

    "conv": (N T C, V) @ (V, K W), then the (K, W) axes moved back before the channels.
    """
    n, t, v, c = x.shape
    if current().formulation != "conv":
        k, w = graph.shape[0], graph.shape[2]
        y = per_frame_product(graph.transpose(2, 0, 1).reshape(w * k, v), x.reshape(n * t, v, c))
        return y.reshape(n, t, w, k, c)
    k, w = graph.shape[0], graph.shape[2]
    y = linear(jnp.matmul, x.transpose(0, 1, 3, 2), graph.transpose(1, 0, 2).reshape(v, k * w))
    return y.reshape(n, t, c, k, w).transpose(0, 1, 4, 3, 2)


def per_frame_product(matrix: jax.Array, frames: jax.Array) -> jax.Array:
    """matrix (W, J) @ frames[b] (J, C) for every b: frames (B, J, C) -> (B, W, C), at the current precision.

    One batched matrix product with the small matrix broadcast over the batch: both operands and the result
    keep their layout, so XLA:CPU copies no activation (a plain matrix product over J would move J last: a
    transpose of the input and of the result, which cost more than the product at the input streams' sizes).
    The backward pass is written out (`_per_frame_backward`) for the same reason.
    """
    return _per_frame_product(matrix, frames, current().precision)


def _broadcast_product(matrix, frames, precision):
    def product(m, f, **kwargs):
        return lax.dot_general(jnp.broadcast_to(m, (f.shape[0], *m.shape)), f, (((2,), (1,)), ((0,), (0,))),
                               **kwargs)

    return linear(product, matrix, frames, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _per_frame_product(matrix, frames, precision):
    return _broadcast_product(matrix, frames, precision)


def _per_frame_forward(matrix, frames, precision):
    return _broadcast_product(matrix, frames, precision), (matrix, frames)


def _per_frame_backward(precision, residuals, g):
    """The frames' gradient is the same product with the matrix transposed; the matrix's, per frame
    g[b] frames[b]^T (contracting the channels, minor in both) summed over frames. Autodiff's version ran
    the first as XLA:CPU's slow generic dot (the broadcast transposed) and transposed activations for the
    second."""
    matrix, frames = residuals

    def per_frame_outer(a, b, **kwargs):
        return lax.dot_general(a, b, (((2,), (2,)), ((0,), (0,))), **kwargs).sum(axis=0)

    return (linear(per_frame_outer, g, frames, precision).astype(matrix.dtype),
            _broadcast_product(matrix.T, g, precision))


_per_frame_product.defvjp(_per_frame_forward, _per_frame_backward)


def combine_slices(z: jax.Array, graph: jax.Array) -> jax.Array:
    """y[n,t,w,c] = sum_k sum_v z[n,t,v,k,c] graph[k,v,w]. z: (N, T, V, K, C), graph: (K, V, W) -> (N, T, W, C).

    "conv": z as (N T C, K V) @ graph as (K V, W), one matrix product, then W moved before the channels.
    """
    n, t, v, k, c = z.shape
    w = graph.shape[2]
    if current().formulation != "conv":
        y = per_frame_product(graph.transpose(2, 1, 0).reshape(w, v * k), z.reshape(n * t, v * k, c))
        return y.reshape(n, t, w, c)
    rows = z.transpose(0, 1, 4, 3, 2).reshape(n * t * c, k * v)
    y = linear(jnp.matmul, rows, graph.reshape(k * v, w))
    return y.reshape(n, t, c, w).transpose(0, 1, 3, 2)


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
        # the value conv's bias is added after the refined graphs (the same linear map): its gradient is then
        # not a reduction over (N, T, V) of the K-times larger values (a slow reduce-window on XLA:CPU)
        x3, value_bias = Pointwise(k * cout, fan_out=cout, defer_bias=True, name="value")(x)
        x3 = x3.reshape(n, t, v, k, cout)
        r = act(x1[:, :, None] - x2[:, None, :])  # (N, U, V, K, rel)
        w4 = self.param("relation_kernel", kaiming_normal(cout), (k, rel, cout))
        b4 = self.param("relation_bias", nn.initializers.zeros, (k, cout))
        alpha = self.param("alpha", nn.initializers.zeros, (k,))
        record(self, "conv", n * v * v * k * cout * rel, w4.size + b4.size)
        refined = (einsum("nuvkr,krc->nuvkc", r, w4) + b4) * alpha[:, None]
        refined = refined + a.transpose(1, 2, 0)[None, :, :, :, None]
        y = apply_refined(refined, x3) + einsum("nuvkc,kc->nuc", refined, value_bias.reshape(k, cout))[:, None]
        return act(y) + BatchNorm(name="bn")(y, train=train) + res

    def _relation(self, x_mean: jax.Array, features: int, fan_out: int, frames: int, name: str) -> jax.Array:
        """1x1 conv of the time-averaged input: (N, V, C_in) -> (N, V, features)."""
        n, v, cin = x_mean.shape
        kernel = self.param(f"{name}_kernel", kaiming_normal(fan_out), (cin, features))
        bias = self.param(f"{name}_bias", nn.initializers.zeros, (features,))
        record(self, "conv", n * frames * v * features * cin, kernel.size + bias.size)
        return dense(x_mean, kernel) + bias


def apply_refined(refined: jax.Array, x3: jax.Array) -> jax.Array:
    """y[n,t,u,c] = sum_k sum_v refined[n,u,v,k,c] x3[n,t,v,k,c]: per sample and channel, the refined
    graphs applied to the values. refined: (N, U, V, K, C), x3: (N, T, V, K, C) -> (N, T, U, C).

    "conv": a batched matrix product over (N, C) of (U, V K) @ (V K, T). The small relation product
    (r @ relation_kernel per slice) stays an einsum in both formulations (a batched matmul over K).
    """
    if current().formulation != "conv":
        return einsum("nuvkc,ntvkc->ntuc", refined, x3)
    n, u, v, k, c = refined.shape
    t = x3.shape[1]
    lhs = refined.transpose(0, 4, 1, 2, 3).reshape(n, c, u, v * k)
    rhs = x3.transpose(0, 4, 2, 3, 1).reshape(n, c, v * k, t)
    return linear(jnp.matmul, lhs, rhs).transpose(0, 3, 2, 1)
