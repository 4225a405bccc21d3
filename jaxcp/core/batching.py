"""Run a function over many rows in fixed-size chunks (padding the last), so it compiles for one shape.

`chunked_map` runs inside `jit` (a `lax.map` over the chunks, on device); `host_chunked` loops on the host
over a function that is already compiled for one chunk size. Outputs may be any pytree of arrays with the
row axis first; the padding rows are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def pad_rows(x, multiple: int):
    """`x` with zero rows appended so that its first axis is a multiple of `multiple` (numpy or jax)."""
    xp = jnp if isinstance(x, jax.Array) else np
    pad = (-x.shape[0]) % multiple
    return xp.concatenate([x, xp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x


def chunked_map(fn: Callable[[jax.Array], Any], x: jax.Array, chunk: int) -> Any:
    """fn over (M, ...) rows in chunks of min(chunk, M) inside a traced program; outputs (M, ...)."""
    m = x.shape[0]
    chunk = max(min(chunk, m), 1)
    chunks = pad_rows(x, chunk).reshape(-1, chunk, *x.shape[1:])
    out = jax.lax.map(fn, chunks)
    return jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:])[:m], out)


def host_chunked(fn: Callable[[np.ndarray], Any], x: np.ndarray, chunk: int) -> Any:
    """fn over (M, ...) rows in chunks of exactly `chunk` (host loop); outputs as numpy, (M, ...)."""
    m = x.shape[0]
    padded = pad_rows(x, chunk)
    outs = [jax.tree.map(np.asarray, fn(padded[start : start + chunk])) for start in range(0, len(padded), chunk)]
    return jax.tree.map(lambda *ys: np.concatenate(ys)[:m], *outs)
