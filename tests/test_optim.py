"""The student optimizers against hand-written PyTorch-semantics references, and the lr schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcp.training import optim


def torch_like(name, params, grads, lr, wd, momentum):
    """Plain numpy transcription of torch.optim.SGD(nesterov)/Adam(amsgrad)/AdamW(amsgrad) steps."""
    p = params.copy()
    buf = np.zeros_like(p)
    m, v, vmax = (np.zeros_like(p) for _ in range(3))
    b1, b2 = 0.9, {"adam": 0.99, "adamw": 0.999}.get(name, 0.999)
    out = []
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            g = g + wd * p
            buf = g.copy() if t == 1 else momentum * buf + g
            p = p - lr * (g + momentum * buf)
        else:
            if name == "adamw":
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vmax = np.maximum(vmax, v)
            denom = np.sqrt(vmax) / np.sqrt(1 - b2**t) + 1e-8
            p = p - lr / (1 - b1**t) * m / denom
        out.append(p.copy())
    return out


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_matches_torch_semantics(name):
    rng = np.random.default_rng(0)
    params = rng.normal(size=(7,)).astype(np.float32)
    grads = [rng.normal(size=(7,)).astype(np.float32) for _ in range(5)]
    lr, wd, mom = 0.01, 0.1, 0.9
    expected = torch_like(name, params.astype(np.float64), [g.astype(np.float64) for g in grads], lr, wd, mom)

    tx = optim.student_optimizer()
    p = jnp.asarray(params)
    state = optim.with_hparams(tx.init(p), optim.make_hparams(name, lr, wd, mom))
    for g, want in zip(grads, expected, strict=True):
        updates, state = tx.update(jnp.asarray(g), state, p)
        p = optax.apply_updates(p, updates)
        np.testing.assert_allclose(np.asarray(p), want, rtol=1e-5, atol=1e-6)


def test_vmapped_students_equal_separate_ones():
    """Students differing in optimizer and hyperparameters, updated by one vmapped call."""
    tx = optim.student_optimizer()
    params = {"w": jnp.arange(6.0).reshape(2, 3) / 7, "b": jnp.ones(3)}
    grads = jax.tree.map(lambda x: jnp.cos(x) - 0.3, params)
    settings = [("sgd", 0.1, 0.01, 0.5), ("adam", 0.005, 0.001, 0.9), ("adamw", 0.001, 0.01, 0.99)]

    def run(hp):
        state = optim.with_hparams(tx.init(params), hp)
        p = params
        for _ in range(3):
            u, state = tx.update(grads, state, p)
            p = optax.apply_updates(p, u)
        return p

    hps = [optim.make_hparams(*s) for s in settings]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *hps)
    together = jax.jit(jax.vmap(run))(stacked)
    for i, hp in enumerate(hps):
        alone = run(hp)
        for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(alone), strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-7)


def test_unknown_optimizer_is_an_error():
    with pytest.raises(ValueError, match="rmsprop"):
        optim.make_hparams("rmsprop", 0.1, 0.0, 0.0)


def test_lr_schedule_matches_reference_table():
    warmup = [optim.lr_factor(e) for e in range(10)]
    np.testing.assert_allclose(warmup, [0.25, 0.325, 0.4, 0.475, 0.55, 0.625, 0.7, 0.775, 0.85, 0.925])
    assert [optim.lr_factor(e) for e in (10, 199, 200, 249, 250, 299)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
