"""Primitive layers, channels last, in two formulations (one per kind of backend), with thop-rule counting.

Arrays are (N, T, ..., C): batch first, time second, channels last. Every primitive reads
`options.current()` while it traces (`Network` sets it) and computes in one of two formulations:

- "matmul" (the default on CPU): temporal convolutions are sums of time-shifted slices times weight
  matrices (one im2col matmul; strided ones slice with a step), depthwise ones shifted multiply-adds, and
  `dense` has a backward pass written for XLA:CPU. On XLA:CPU these are much faster than
  `lax.conv_general_dilated`, above all in the backward pass (see shared/PERFORMANCE.md).
- "conv" (the default on GPU/TPU): `lax.conv_general_dilated` with a (window, 1) kernel over (T, joints)
  (depthwise: `feature_group_count` = C) and `dense` as a plain matrix product with autodiff's backward:
  the forms cuDNN/cuBLAS and XLA:GPU's fusions are built for.

Both give the same values (float rounding aside) from the same parameters: names, shapes and
initialisers do not depend on the formulation, nor do the counts below. Every matrix product and
convolution, forward and backward, runs at `current().precision` through `linear` (`dense` passes it to
its backward explicitly, as a custom_vjp backward is traced after `using(...)` has returned).

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

from jaxcp.model.options import current, dot_precision, using

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
# Matrix products and convolutions at the options' precision

def linear(fn: Callable, a: jax.Array, b: jax.Array, precision: str | None = None) -> jax.Array:
    """fn(a, b, precision=..., preferred_element_type=...) for a bilinear `fn` (jnp.matmul, an einsum,
    a lax convolution) at a ModelOptions precision (default: `current().precision`), output float32.

    "float32" and "tf32" pass `dot_precision(...)` (HIGHEST, HIGH); autodiff's transposed products keep
    it. "bfloat16" multiplies bfloat16 copies of a and b with float32 sums (`preferred_element_type`);
    its backward multiplies the bfloat16 operands by the cotangent rounded to bfloat16 (autodiff would
    cast the operands back to float32), so each gradient product is rounded to bfloat16 once. XLA:CPU
    has no bfloat16 x bfloat16 -> float32 product, so there (`native_bfloat16()` false) the same
    numbers come from the bfloat16 values converted back to float32 and multiplied at HIGHEST.
    """
    precision = precision or current().precision
    if precision == "bfloat16":
        return _bfloat16_linear(fn, a, b)
    return fn(a, b, precision=dot_precision(precision), preferred_element_type=jnp.float32)


def native_bfloat16() -> bool:
    """Whether the backend multiplies bfloat16 operands into float32 sums itself (not XLA:CPU)."""
    return jax.default_backend() != "cpu"


def _bf16(x: jax.Array) -> jax.Array:
    return x.astype(jnp.bfloat16)


def _bfloat16_product(fn: Callable, a16: jax.Array, b16: jax.Array, out_dtype) -> jax.Array:
    """fn of two bfloat16 operands with float32 sums, the result in `out_dtype`."""
    if native_bfloat16():
        return fn(a16, b16, precision=None, preferred_element_type=out_dtype)
    y = fn(a16.astype(jnp.float32), b16.astype(jnp.float32), precision=lax.Precision.HIGHEST,
           preferred_element_type=jnp.float32)
    return y.astype(out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bfloat16_linear(fn, a, b):
    return _bfloat16_product(fn, _bf16(a), _bf16(b), jnp.float32)


def _bfloat16_linear_forward(fn, a, b):
    a16, b16 = _bf16(a), _bf16(b)
    return _bfloat16_product(fn, a16, b16, jnp.float32), (a16, b16)


def _bfloat16_linear_backward(fn, residuals, g):
    a16, b16 = residuals
    _, vjp = jax.vjp(lambda a, b: _bfloat16_product(fn, a, b, jnp.bfloat16), a16, b16)
    g_a, g_b = vjp(_bf16(g))
    return g_a.astype(jnp.float32), g_b.astype(jnp.float32)


_bfloat16_linear.defvjp(_bfloat16_linear_forward, _bfloat16_linear_backward)


def einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """jnp.einsum of two operands at the current precision."""
    return linear(functools.partial(jnp.einsum, spec), a, b)


def round_operand(x: jax.Array) -> jax.Array:
    """x rounded to bfloat16 (kept float32) under precision "bfloat16", else x: the operands of the
    elementwise products that stand for a convolution (depthwise shifted multiply-adds)."""
    return _bf16(x).astype(x.dtype) if current().precision == "bfloat16" else x


def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x (..., C_in) @ kernel (C_in, C_out) at the current precision, in the current formulation.

    "conv": a plain matrix product (autodiff's backward). "matmul": `dense_xla_cpu`, whose backward is
    written for XLA:CPU. Weights must be JAX arrays or tracers, not numpy constants (custom_vjp under
    vmap rejects those; see export.py).
    """
    options = current()
    if options.formulation == "conv":
        return linear(jnp.matmul, x, kernel, options.precision)
    return dense_xla_cpu(x, kernel, options.precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def dense_xla_cpu(x: jax.Array, kernel: jax.Array, precision: str = "float32") -> jax.Array:
    """x (..., C_in) @ kernel (C_in, C_out), with a backward pass written for XLA:CPU.

    Autodiff's weight gradient x^T g makes XLA:CPU's layout assignment write the cotangent g transposed
    (C_out, N T V) out of the fusion that produces it, a strided copy of the largest activations that
    cost more than the matrix products themselves. Computing (g^T x)^T instead keeps every activation
    in its natural layout (measured 2.3x faster forward + backward on the input-stream shapes, see
    README, Search space and network). Same values as autodiff up to float rounding. `precision` (a
    ModelOptions name) is an explicit argument because the backward is traced outside `using(...)`;
    under "bfloat16" all three products take bfloat16 operands and sum in float32.
    """
    return _dense_forward(x, kernel, precision)[0]


def _matmul_operands(precision: str, *arrays: jax.Array) -> tuple[jax.Array, ...]:
    return tuple(_bf16(a) for a in arrays) if precision == "bfloat16" else arrays


def _dot(a, b, dimension_numbers, precision):
    if precision == "bfloat16" and not native_bfloat16():  # see `linear`
        a, b, precision = a.astype(jnp.float32), b.astype(jnp.float32), "float32"
    return lax.dot_general(a, b, dimension_numbers, precision=dot_precision(precision),
                           preferred_element_type=jnp.float32)


def _dense_forward(x, kernel, precision):
    x, kernel = _matmul_operands(precision, x, kernel)
    y = _dot(x, kernel, (((x.ndim - 1,), (0,)), ((), ())), precision)
    return y, (x, kernel)


def _dense_backward(precision, residuals, g):
    x, kernel = residuals  # bfloat16 copies under "bfloat16"
    (g,) = _matmul_operands(precision, g)
    g_x = _dot(g, kernel, (((g.ndim - 1,), (1,)), ((), ())), precision)
    rows_g, rows_x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    g_kernel = _dot(rows_g, rows_x, (((0,), (0,)), ((), ())), precision).T
    return g_x, g_kernel


dense_xla_cpu.defvjp(_dense_forward, _dense_backward)


def conv_over_time(x: jax.Array, kernel: jax.Array, stride: int, groups: int = 1) -> jax.Array:
    """`lax.conv_general_dilated` along time of x (N, T, ..., C_in), padding (window - 1) // 2.

    kernel (window, C_in / groups, C_out) is used as a (window, 1) HWIO kernel over (T, the middle axes
    flattened). -> (N, output_frames(T), ..., C_out).
    """
    n, t, c = x.shape[0], x.shape[1], x.shape[-1]
    pad = (kernel.shape[0] - 1) // 2
    conv = functools.partial(lax.conv_general_dilated, window_strides=(stride, 1),
                             padding=((pad, pad), (0, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                             feature_group_count=groups)
    y = linear(conv, x.reshape(n, t, -1, c), kernel[:, None])
    return y.reshape(n, y.shape[1], *x.shape[2:-1], kernel.shape[-1])


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
    `init_std` replaces Kaiming by N(0, init_std^2) (the classifier). `defer_bias`: return (x W, bias) and let
    the caller add the bias where it is cheaper (after a linear map that follows; the parameters are the same).
    """

    features: int
    stride: int = 1
    groups: int = 1
    use_bias: bool = True
    fan_out: int | None = None
    init_std: float | None = None
    defer_bias: bool = False

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
            y = einsum("...gi,gio->...go", xg, kernel).reshape(*x.shape[:-1], self.features)
        num_params = kernel.size
        bias = None
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,))
            num_params += self.features
        record(self, "conv", y.size * (cin // g), num_params)
        if self.defer_bias:
            return y, bias
        return y if bias is None else y + bias


def wait_for(x: jax.Array, g: jax.Array) -> jax.Array:
    """x plus 0 x one element of g: the same values (an exact no-op), but XLA cannot compute anything from
    the result before g exists, so a recomputation in a backward pass runs there, not in the forward pass
    (where XLA:CPU would schedule it, and keep its result as if nothing were recomputed)."""
    return x + (0.0 * lax.slice(g.reshape(-1), (0,), (1,))[0]).astype(x.dtype)


def inputs_as_residuals(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """fn(x, *weights) -> array, differentiated with its inputs as the only residuals: the backward pass
    recomputes what autodiff of fn would have kept (the time shifts of a temporal convolution: `window` copies
    of its input, or an im2col matrix `window` times as wide) and takes fn's own vjp there. The same products
    as autodiff, on the same values. The first input is tied to the incoming cotangent (`wait_for`, as in
    `jaxcp.model.remat`); the options of the network being traced are restored for the recomputation.
    """
    options = current()

    @jax.custom_vjp
    def run(x, *weights):
        return fn(x, *weights)

    def forward(x, *weights):
        return fn(x, *weights), (x, weights)

    def backward(residuals, g):
        x, weights = residuals
        with using(options):
            return jax.vjp(fn, wait_for(x, g), *weights)[1](g)

    run.defvjp(forward, backward)
    return run


class TemporalConv(nn.Module):
    """Dense temporal convolution (window x 1), zero padding (window - 1) // 2.

    "matmul": one im2col matmul, the `window` time shifts concatenated on channels times the kernel
    reshaped to (window x C_in, features) (one matrix product forward and two backward); the backward pass
    keeps x, not the window times wider im2col matrix, and rebuilds it (`inputs_as_residuals`). "conv":
    `conv_over_time`.

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
        if current().formulation == "conv":
            y = conv_over_time(x, kernel, self.stride)
        else:
            window, stride = self.window, self.stride

            def im2col_product(x, kernel):  # the shifts concatenated on channels, times the kernel
                columns = jnp.concatenate(shifted_frames(x, window, stride), axis=-1)
                return dense(columns, kernel.reshape(window * cin, -1))

            y = inputs_as_residuals(im2col_product)(x, kernel)
        num_params = kernel.size
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
            num_params += self.features
        record(self, "conv", y.size * cin * self.window, num_params)
        return y


class DepthwiseConv(nn.Module):
    """Depthwise temporal convolution (groups = channels): "matmul" as shifted multiply-adds (operands
    rounded to bfloat16 under that precision; the backward pass keeps x, not its `window` shifts:
    `inputs_as_residuals`), "conv" as a grouped convolution (`conv_over_time`).

    x: (N, T, ..., C) -> (N, ceil(T / stride), ..., C).
    """

    window: int
    stride: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        kernel = self.param("kernel", kaiming_normal(c * self.window), (self.window, c))
        if current().formulation == "conv":
            y = conv_over_time(x, kernel[:, None, :], self.stride, groups=c)
        else:
            window, stride = self.window, self.stride

            def shifted_multiply_adds(x, kernel):
                shifts = shifted_frames(x, window, stride)
                y = shifts[0] * kernel[0]
                for j in range(1, window):
                    y = y + shifts[j] * kernel[j]
                return y

            y = inputs_as_residuals(shifted_multiply_adds)(round_operand(x), round_operand(kernel))
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
