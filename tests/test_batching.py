"""Chunked maps: the same rows as one call, for any row count, with one compiled chunk shape."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcp.core.batching import chunked_map, host_chunked, pad_rows


def rows(m: int) -> np.ndarray:
    return np.arange(m * 3, dtype=np.float32).reshape(m, 3)


def test_pad_rows_numpy_and_jax():
    np.testing.assert_array_equal(pad_rows(rows(5), 4)[5:], np.zeros((3, 3)))
    assert pad_rows(jnp.asarray(rows(8)), 4).shape == (8, 3) and isinstance(pad_rows(jnp.ones((5, 2)), 4), jax.Array)


@pytest.mark.parametrize("m", [1, 7, 8, 9, 20])
def test_chunked_map_equals_one_call(m):
    def fn(x):
        return {"sum": x.sum(-1), "double": 2 * x}

    got = jax.jit(lambda x: chunked_map(fn, x, 8))(jnp.asarray(rows(m)))
    np.testing.assert_allclose(got["sum"], rows(m).sum(-1))
    np.testing.assert_allclose(got["double"], 2 * rows(m))


def test_host_chunked_calls_one_shape():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def fn(x):
        return x.sum(-1), x[:, :1]

    for m in (3, 4, 13):
        total, first = host_chunked(fn, rows(m), 4)
        np.testing.assert_allclose(total, rows(m).sum(-1))
        np.testing.assert_array_equal(first, rows(m)[:, :1])
