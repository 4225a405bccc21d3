"""Primitive layers, channels last, in the formulations that are fast under XLA, with thop-rule counting.

Arrays are (N, T, ..., C): batch first, time second, channels last. Temporal convolutions are sums of
time-shifted slices times weight matrices (strided ones slice with a step), depthwise ones are shifted
multiply-adds: on XLA:CPU these are much faster than `lax.conv_general_dilated`, above all in the
backward pass (see shared/PERFORMANCE.md), and they equal the convolution exactly.

Initialisation follows AutoCP: every convolution kernel is Kaiming-normal with fan_out (std =
sqrt(2 / fan_out), fan_out = out_channels x kernel size, depthwise: channels x kernel size), biases zero,
BatchNorm scale 1 and bias 0.

Counting: inside `with count_ops() as records:` every primitive appends an `OpCount` with the MACs and
parameters that thop 0.1.1 assigns to the PyTorch module it stands for (reference §8): convolutions
numel(out) x (C_in / groups) x kernel size, BatchNorm 4 x numel(in), adaptive average pooling
(kernel + 1) x numel(out), softmax (3 n - 1) per softmax of n features. Outside that context nothing is
recorded. The counts are taken from the traced shapes, so `jax.eval_shape` is enough.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

BN_MOMENTUM = 0.9  # flax convention: running = 0.9 running + 0.1 batch (PyTorch momentum 0.1)
BN_EPSILON = 1e-5

ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "hardswish": jax.nn.hard_swish,  # x * relu6(x + 3) / 6, as torch.nn.Hardswish
    "swish": jax.nn.swish,  # x * sigmoid(x)
}


def activation_fn(name: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return ACTIVATION_FNS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}") from None


# --------------------------------------------------------------------------------------------------------
# thop-rule counting

@dataclasses.dataclass(frozen=True)
class OpCount:
    """One counted PyTorch-equivalent module: its Flax path, kind, MACs and parameters (thop rules)."""

    path: str
    kind: str
    macs: int
    params: int


_RECORDS: contextvars.ContextVar[list[OpCount] | None] = contextvars.ContextVar("jaxcp_op_counts",
                                                                                default=None)


@contextlib.contextmanager
def count_ops() -> Iterator[list[OpCount]]:
    """Collect an `OpCount` per primitive traced inside the block (for batch-1 inputs: thop's numbers)."""
    records: list[OpCount] = []
    token = _RECORDS.set(records)
    try:
        yield records
    finally:
        _RECORDS.reset(token)


_REPLICAS: contextvars.ContextVar[int] = contextvars.ContextVar("jaxcp_op_replicas", default=0)


@contextlib.contextmanager
def replicate_counts(copies: int) -> Iterator[None]:
    """Inside, each count stands for `copies` modules traced once under `nn.vmap` (the input streams):
    it is recorded `copies` times, the first path component suffixed 0, 1, ... ("input" -> "input2")."""
    token = _REPLICAS.set(copies)
    try:
        yield
    finally:
        _REPLICAS.reset(token)


def record(module: nn.Module, kind: str, macs: int, params: int = 0) -> None:
    """Append one count if a `count_ops` block is active (no effect otherwise)."""
    records = _RECORDS.get()
    if records is None:
        return
    path = "/".join(module.path)
    copies = _REPLICAS.get()
    if not copies:
        records.append(OpCount(path, kind, int(macs), int(params)))
        return
    head, _, rest = path.partition("/")
    for i in range(copies):
        records.append(OpCount(f"{head}{i}/{rest}", kind, int(macs), int(params)))


def record_avg_pool(module: nn.Module, in_size: int, out_size: int) -> None:
    """thop's AdaptiveAvgPool rule: (pooled elements per output + 1) x numel(out)."""
    record(module, "avgpool", (in_size // out_size + 1) * out_size)


def record_softmax(module: nn.Module, size: int, features: int) -> None:
    """thop's Softmax rule: (exp + add + div) = 3 n - 1 per softmax over n features."""
    record(module, "softmax", size // features * (3 * features - 1))


# --------------------------------------------------------------------------------------------------------
# Initialisers

def kaiming_normal(fan_out: int) -> Callable:
    """N(0, 2 / fan_out): PyTorch's kaiming_normal_(mode='fan_out', nonlinearity='leaky_relu', a=0)."""
    return normal(math.sqrt(2.0 / fan_out))


def normal(std: float) -> Callable:
    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


# --------------------------------------------------------------------------------------------------------
# Matrix products

@jax.custom_vjp
def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x (..., C_in) @ kernel (C_in, C_out), with a backward pass written for XLA:CPU.

    Autodiff's weight gradient x^T g makes XLA:CPU's layout assignment write the cotangent g transposed
    (C_out, N T V) out of the fusion that produces it, a strided copy of the largest activations that
    cost more than the matrix products themselves. Computing (g^T x)^T instead keeps every activation
    in its natural layout (measured 2.3x faster forward + backward on the input-stream shapes, see
    README, Search space and network). Same values as autodiff up to float rounding. Weights must be JAX
    arrays or tracers, not numpy constants (custom_vjp under vmap rejects those; see export.py).
    """
    return x @ kernel


def _dense_forward(x, kernel):
    return x @ kernel, (x, kernel)


def _dense_backward(residuals, g):
    x, kernel = residuals
    g_x = g @ kernel.T
    rows_g, rows_x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    g_kernel = lax.dot_general(rows_g, rows_x, (((0,), (0,)), ((), ()))).T
    return g_x, g_kernel


dense.defvjp(_dense_forward, _dense_backward)


# --------------------------------------------------------------------------------------------------------
# Time shifts

def output_frames(frames: int, window: int, stride: int) -> int:
    """Frames after a temporal conv with padding (window - 1) // 2: ceil(T / stride) for odd windows."""
    pad = (window - 1) // 2
    return (frames + 2 * pad - window) // stride + 1


def shifted_frames(x: jax.Array, window: int, stride: int) -> list[jax.Array]:
    """The `window` zero-padded time shifts of x (N, T, ..., C) that a temporal conv combines.

    Shift j is frames j - pad, j - pad + stride, ... (N, T_out, ..., C) with pad = (window - 1) // 2, so
    conv(x)[t] = sum_j shift_j[t] @ W[j].
    """
    pad = (window - 1) // 2
    t_out = output_frames(x.shape[1], window, stride)
    widths = [(0, 0)] * x.ndim
    widths[1] = (pad, pad)
    padded = jnp.pad(x, widths) if pad else x
    span = stride * (t_out - 1) + 1
    return [lax.slice_in_dim(padded, j, j + span, stride=stride, axis=1) for j in range(window)]


# --------------------------------------------------------------------------------------------------------
# Layers

class Pointwise(nn.Module):
    """1x1 convolution: (N, T, ..., C_in) -> (N, ceil(T / stride), ..., features), optionally grouped.

    `fan_out` overrides the initialiser's fan-out (for kernels that stand for several PyTorch convs);
    `init_std` replaces Kaiming by N(0, init_std^2) (the classifier).
    """

    features: int
    stride: int = 1
    groups: int = 1
    use_bias: bool = True
    fan_out: int | None = None
    init_std: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.stride > 1:
            x = x[:, :: self.stride]
        cin, g = x.shape[-1], self.groups
        if cin % g or self.features % g:
            raise ValueError(f"channels {cin} -> {self.features} are not divisible by {g} groups")
        init = normal(self.init_std) if self.init_std else kaiming_normal(self.fan_out or self.features)
        if g == 1:
            kernel = self.param("kernel", init, (cin, self.features))
            y = dense(x, kernel)
        else:
            kernel = self.param("kernel", init, (g, cin // g, self.features // g))
            xg = x.reshape(*x.shape[:-1], g, cin // g)
            y = jnp.einsum("...gi,gio->...go", xg, kernel).reshape(*x.shape[:-1], self.features)
        num_params = kernel.size
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
            num_params += self.features
        record(self, "conv", y.size * (cin // g), num_params)
        return y


class TemporalConv(nn.Module):
    """Dense temporal convolution (window x 1), zero padding (window - 1) // 2, as one im2col matmul.

    The `window` time shifts are concatenated on channels and multiplied by the kernel reshaped to
    (window x C_in, features): one matrix product forward and two backward.

    x: (N, T, ..., C_in) -> (N, ceil(T / stride), ..., features).
    """

    features: int
    window: int
    stride: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cin = x.shape[-1]
        kernel = self.param("kernel", kaiming_normal(self.window * self.features),
                            (self.window, cin, self.features))
        columns = jnp.concatenate(shifted_frames(x, self.window, self.stride), axis=-1)  # im2col
        y = dense(columns, kernel.reshape(self.window * cin, self.features))
        num_params = kernel.size
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
            num_params += self.features
        record(self, "conv", y.size * cin * self.window, num_params)
        return y


class DepthwiseConv(nn.Module):
    """Depthwise temporal convolution (groups = channels) as shifted multiply-adds.

    x: (N, T, ..., C) -> (N, ceil(T / stride), ..., C).
    """

    window: int
    stride: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kernel = self.param("kernel", kaiming_normal(c * self.window), (self.window, c))
        shifts = shifted_frames(x, self.window, self.stride)
        y = shifts[0] * kernel[0]
        for j in range(1, self.window):
            y = y + shifts[j] * kernel[j]
        num_params = kernel.size
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (c,))
            num_params += c
        record(self, "conv", y.size * self.window, num_params)
        return y


class BatchNorm(nn.Module):
    """BatchNorm over all axes but the last, as torch.nn.BatchNorm2d (eps 1e-5, momentum 0.1).

    Training normalises with the biased batch variance and updates the running variance with the
    unbiased one, as PyTorch does; evaluation uses the running statistics. State in "batch_stats".
    """

    momentum: float = BN_MOMENTUM
    epsilon: float = BN_EPSILON

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (c,), jnp.float32)
        record(self, "bn", 4 * x.size, 2 * c)
        if not train:
            mul = scale * lax.rsqrt(running_var.value + self.epsilon)
            return x * mul + (bias - running_mean.value * mul)
        y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            n = x.size // c
            unbiased = var * (n / max(n - 1, 1))
            running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
            running_var.value = self.momentum * running_var.value + (1 - self.momentum) * unbiased
        return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float):
    """(y, batch mean, biased batch variance) over all axes but the last. x: (..., C).

    A hand-written backward pass (two reductions and one elementwise pass) instead of autodiff's longer
    chain. The mean and variance outputs are for the running statistics only: their cotangents are
    ignored, so they must not feed the loss.
    """
    return _batch_norm_forward(x, scale, bias, epsilon)[0]


def _batch_norm_forward(x, scale, bias, epsilon):
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    var = jnp.maximum(jnp.mean(jnp.square(x), axes) - jnp.square(mean), 0.0)
    inv = lax.rsqrt(var + epsilon)
    y = (x - mean) * (scale * inv) + bias
    return (y, mean, var), (x, mean, inv, scale)


def _batch_norm_backward(epsilon, residuals, cotangents):
    x, mean, inv, scale = residuals
    g = cotangents[0]
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    xhat = (x - mean) * inv
    g_bias = jnp.sum(g, axes)
    g_scale = jnp.sum(g * xhat, axes)
    g_x = (scale * inv / n) * (n * g - g_bias - xhat * g_scale)
    return g_x, g_scale, g_bias


batch_norm_train.defvjp(_batch_norm_forward, _batch_norm_backward)
