"""How the network is computed, not what it computes: layer formulations, matmul precision, rematerialisation.

`ModelOptions` is a field of `Network`; while the network traces, `using(options)` makes it visible to the
primitives in `ops`, `graph` and `attention`, which read `current()`. None of it changes parameters or
(up to float rounding) outputs, so checkpoints do not record it and any setting restores any model.

- `formulation`: "matmul" (time shifts and matrix products: im2col temporal convs, shifted multiply-adds
  for depthwise convs, `ops.dense` with its XLA:CPU backward, the graph product as an einsum; fast on
  XLA:CPU, see shared/PERFORMANCE.md), "conv" (`lax.conv_general_dilated`, grouped convs, plain
  `jnp.dot` and the graph product as one matmul over (slice, joint)), or "auto": "matmul" on CPU, "conv"
  on GPU/TPU (`jax.default_backend()` when the network is traced).
- `precision`: "float32" (full float32 matmuls on every backend), "tf32" (float32 storage, TF32 matmuls on
  GPUs that have them; equal to float32 on CPU), "bfloat16" (bfloat16 matmul operands, float32 sums).
- `remat`: "none" (autodiff keeps every intermediate), "blocks" (each block and stem layer is recomputed
  in the backward pass; only block boundaries stay in memory) or "full" (every layer inside the blocks too).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterator

import jax
from jax import lax

FORMULATIONS = ("auto", "matmul", "conv")
PRECISIONS = ("float32", "tf32", "bfloat16")
REMATS = ("none", "blocks", "full")


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """Static computation settings of a network (a Flax module field: part of every compile-cache key)."""

    formulation: str = "auto"
    precision: str = "float32"
    remat: str = "none"

    def __post_init__(self):
        for key, allowed in (("formulation", FORMULATIONS), ("precision", PRECISIONS), ("remat", REMATS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"model option {key}={getattr(self, key)!r}: must be one of {list(allowed)}")

    def resolved(self, backend: str | None = None) -> ModelOptions:
        """The options with "auto" replaced by the formulation of `backend` (default: JAX's default)."""
        if self.formulation != "auto":
            return self
        backend = backend or jax.default_backend()
        return dataclasses.replace(self, formulation="matmul" if backend == "cpu" else "conv")


DEFAULTS = ModelOptions()
_CURRENT: contextvars.ContextVar[ModelOptions | None] = contextvars.ContextVar("jaxcp_model_options", default=None)


@contextlib.contextmanager
def using(options: ModelOptions) -> Iterator[ModelOptions]:
    """Inside, `current()` is `options` with "auto" resolved (set by `Network` around its trace)."""
    token = _CURRENT.set(options.resolved())
    try:
        yield current()
    finally:
        _CURRENT.reset(token)


def current() -> ModelOptions:
    """The options of the network being traced (defaults, resolved, outside a network)."""
    return (_CURRENT.get() or DEFAULTS).resolved()



# ModelOptions.precision -> the `precision` of lax.dot_general / conv_general_dilated. "tf32" is JAX's
# "tensorfloat32" (HIGH): TF32 on NVIDIA GPUs, 3-pass bfloat16 on TPUs, full float32 on CPU. "bfloat16"
# casts the operands instead (see `ops.linear`), so the precision field stays DEFAULT.
DOT_PRECISIONS = {"float32": lax.Precision.HIGHEST, "tf32": lax.Precision.HIGH, "bfloat16": lax.Precision.DEFAULT}


def dot_precision(precision: str | None = None) -> lax.Precision:
    """The lax precision of a ModelOptions precision name (default: the current options')."""
    return DOT_PRECISIONS[precision or current().precision]
